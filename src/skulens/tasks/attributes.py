"""Attribute models: one probe per categorical column (colour, gender, usage, season...) on a categorizer's
encoders, trained, saved and loaded with it (``<model>/attributes/<column>/``, each a categorize model folder).

A column keeps its ``max_values`` most frequent values with at least ``min_count`` rows; the cut is recorded
in ``cut_`` (and logged), so a column with hundreds of values stays usable.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from skulens.catalog.schema import Catalog, CatalogError
from skulens.tasks.categorize import CategoryPredictor, top_k_from_proba
from skulens.tasks.inputs import load_product_image, product_text

log = logging.getLogger(__name__)
FOLDER = "attributes"


class AttributeModels:
    """``models_[column]`` is a :class:`CategoryPredictor` whose label is that column."""

    def __init__(
        self, columns: Sequence[str], encoders: Sequence[str], text_fields=("title", "description"), max_values=30, min_count=5
    ):
        self.columns = list(columns)
        self.encoders = list(encoders)
        self.text_fields = tuple(text_fields)
        self.max_values = max_values
        self.min_count = min_count
        self.models_: dict[str, CategoryPredictor] = {}
        self.cut_: dict[str, dict] = {}

    def fit(self, catalog: Catalog) -> AttributeModels:
        for column in self.columns:
            values = catalog.labels(column)
            counts = values.dropna().astype(str).value_counts()
            kept = counts[counts >= self.min_count].iloc[: self.max_values]
            self.cut_[column] = {
                "values": int(len(counts)),
                "kept_values": int(len(kept)),
                "rows_cut": int(counts.sum() - kept.sum()),
            }
            if len(kept) < len(counts):
                log.warning(
                    "attribute %r: kept the %d most frequent of %d values (%d rows cut)",
                    column,
                    len(kept),
                    len(counts),
                    self.cut_[column]["rows_cut"],
                )
            if len(kept) < 2:
                raise CatalogError(
                    f"attribute column '{column}' has fewer than 2 values with {self.min_count}+ rows; drop it from --attributes"
                )
            rows = np.flatnonzero(values.astype(str).isin(kept.index).to_numpy() & values.notna().to_numpy())
            model = CategoryPredictor(self.encoders, label=column, min_class_count=self.min_count, text_fields=self.text_fields)
            self.models_[column] = model.fit(catalog.subset(rows))
        return self

    def predict(self, catalog: Catalog) -> pd.DataFrame:
        """Per column, the most likely value and its probability: columns ``<column>`` and ``<column>_probability``."""
        out = {}
        for column, model in self.models_.items():
            proba = model.predict_proba(catalog)
            out[column] = np.asarray(model.classes_)[proba.argmax(axis=1)]
            out[f"{column}_probability"] = proba.max(axis=1)
        return pd.DataFrame(out)

    def predict_product(self, image=None, title: str | None = None, description: str | None = None, k: int = 3) -> dict:
        """``{column: [(value, probability), ...]}`` for one product (as :meth:`CategoryPredictor.predict_product`)."""
        if not self.models_:
            return {}
        first = next(iter(self.models_.values()))
        pixels = load_product_image(image, draft_size=first.image_resolution())
        text = product_text({"title": title, "description": description}, self.text_fields)
        out = {}
        for column, model in self.models_.items():
            features = model.extractor.transform_inputs([pixels], [text])
            out[column] = top_k_from_proba(model.classes_, model.proba_from_features(features), k)[0]
        return out

    def save(self, folder: str | Path) -> None:
        for column, model in self.models_.items():
            model.save(Path(folder) / FOLDER / _safe(column))

    @classmethod
    def load(cls, folder: str | Path, cache_dir=None) -> AttributeModels | None:
        """The attribute models saved beside a categorize model, or None when it has none."""
        root = Path(folder) / FOLDER
        if not root.is_dir():
            return None
        models = {}
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            model = CategoryPredictor.load(sub, cache_dir=cache_dir)
            models[str(model.label)] = model
        if not models:
            return None
        first = next(iter(models.values()))
        loaded = cls(list(models), first.encoders, first.text_fields)
        loaded.models_ = models
        return loaded


def _safe(column: str) -> str:
    """A folder name for a column (letters, digits, ``-`` and ``_``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", column) or "column"
