"""CategoryPredictor: categories from image, text or both, with calibrated probabilities."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from skulens import __version__
from skulens.catalog.schema import Catalog, CatalogError
from skulens.heads.fusion import make_fusion, restore_fusion
from skulens.metrics import classification_metrics
from skulens.tasks.features import FeatureExtractor, Features
from skulens.tasks.model_folder import read_model_folder, write_model_folder

log = logging.getLogger(__name__)

TASK = "categorize"
DEFAULT_ENCODERS = ("efficientnet-lite0", "minilm", "tfidf")


def rollup(proba: np.ndarray, classes: Sequence[str], parents: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Sum fine-level probabilities into their parent categories: (parent classes, parent proba)."""
    parent_names = np.array(sorted(set(parents[c] for c in classes)))
    index = np.searchsorted(parent_names, [parents[c] for c in classes])
    out = np.zeros((proba.shape[0], len(parent_names)))
    np.add.at(out.T, index, proba.T)
    return parent_names, out


class CategoryPredictor:
    """Train on a catalog with known categories, then categorize new products.

    ``label`` is a category level (0 = coarsest) or a column name. ``encoders`` are registry names;
    with more than one, their heads are combined by ``fusion`` (``late`` stacking or ``early``
    concatenation). Classes with fewer than ``min_class_count`` training rows are dropped, and the
    reason is logged and kept in ``dropped_classes_``.
    """

    def __init__(
        self,
        encoders: Sequence[str] = DEFAULT_ENCODERS,
        head: str = "linear",
        label: int | str = 0,
        fusion: str = "late",
        min_class_count: int = 5,
        text_fields: Sequence[str] = ("title", "description"),
        seed: int = 0,
        cache_dir: str | Path | None = None,
        progress: bool = False,
    ) -> None:
        if not encoders:
            raise CatalogError("give at least one encoder, e.g. encoders=['minilm']")
        self.encoders = list(encoders)
        self.head = head
        self.label = label
        self.fusion = fusion
        self.min_class_count = min_class_count
        self.text_fields = tuple(text_fields)
        self.seed = seed
        self.extractor = FeatureExtractor(self.encoders, self.text_fields, cache_dir=cache_dir, progress=progress)
        self.metrics_: dict = {}

    # ----- training -------------------------------------------------------------------------
    def training_rows(self, catalog: Catalog) -> tuple[Catalog, np.ndarray]:
        """Rows usable for training (labelled, in a class with enough rows) and their labels."""
        if len(catalog) == 0:
            raise CatalogError(f"catalog '{catalog.name}' is empty; nothing to train on")
        labels = catalog.labels(self.label)
        labelled = labels.notna().to_numpy()
        counts = labels[labelled].value_counts()
        rare = counts[counts < self.min_class_count]
        self.dropped_classes_ = {str(c): int(n) for c, n in rare.items()}
        for name, count in self.dropped_classes_.items():
            log.warning("class %r has %d training row(s) (< min_class_count=%d); dropped", name, count, self.min_class_count)
        keep = labelled & ~labels.isin(rare.index).to_numpy()
        if keep.sum() == 0:
            raise CatalogError(
                f"no trainable rows in '{catalog.name}' at label {self.label!r}: every class has fewer than "
                f"{self.min_class_count} rows; lower min_class_count or pick a coarser level"
            )
        self._record_parents(catalog, keep)
        return catalog.subset(np.flatnonzero(keep)), labels[keep].astype(str).to_numpy()

    def _record_parents(self, catalog: Catalog, keep: np.ndarray) -> None:
        self.parents_: dict[str, list[str]] = {}
        if isinstance(self.label, int) or str(self.label).isdigit():
            level = int(self.label)
            for path in catalog.frame["category"][keep]:
                if isinstance(path, tuple) and len(path) > level:
                    self.parents_.setdefault(path[level], list(path[:level]))

    def fit(self, catalog: Catalog) -> CategoryPredictor:
        """Embed the catalog (cached), fit any fitted encoders and the heads. Returns self."""
        train, y = self.training_rows(catalog)
        self.extractor.fit(train)
        return self.fit_features(self.extractor.transform(train), y)

    def fit_features(self, features: Features, y: np.ndarray) -> CategoryPredictor:
        """Fit the heads on precomputed features (used by benchmarks that share embeddings across folds)."""
        self.model_ = make_fusion(self.fusion, self.head, seed=self.seed).fit(features.blocks, features.present, np.asarray(y))
        self.classes_ = self.model_.classes_
        return self

    # ----- prediction -----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise CatalogError("this CategoryPredictor is not trained yet; call fit(catalog) or load(folder)")

    def proba_from_features(self, features: Features) -> np.ndarray:
        self._check_fitted()
        return self.model_.predict_proba(features.blocks, features.present)

    def predict_proba(self, catalog: Catalog) -> np.ndarray:
        """Class probabilities, shape (rows, classes), columns in ``classes_`` order."""
        self._check_fitted()
        return self.proba_from_features(self.extractor.transform(catalog))

    def predict(self, catalog: Catalog) -> np.ndarray:
        proba = self.predict_proba(catalog)
        return self.classes_[proba.argmax(axis=1)]

    def top_k(self, catalog: Catalog, k: int = 5) -> list[list[tuple[str, float]]]:
        """For each row, the ``k`` most likely categories with their probabilities."""
        proba = self.predict_proba(catalog)
        order = np.argsort(-proba, axis=1)[:, :k]
        return [[(str(self.classes_[j]), float(proba[i, j])) for j in row] for i, row in enumerate(order)]

    def predict_parents(self, catalog: Catalog, level: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Roll fine-level probabilities up to an ancestor ``level``: (parent classes, proba)."""
        self._check_fitted()
        mapping = {}
        for cls in self.classes_:
            path = self.parents_.get(str(cls), [])
            if level >= len(path):
                raise CatalogError(f"class {cls!r} has no ancestor at level {level}; the model is trained at level {self.label}")
            mapping[str(cls)] = path[level]
        return rollup(self.predict_proba(catalog), [str(c) for c in self.classes_], mapping)

    # ----- evaluation -----------------------------------------------------------------------
    def evaluate(self, catalog: Catalog) -> dict:
        """Metrics on labelled rows whose class the model knows (others are counted and skipped)."""
        self._check_fitted()
        labels = catalog.labels(self.label)
        known = labels.isin(self.classes_).to_numpy()
        if known.sum() == 0:
            raise CatalogError(f"no rows of '{catalog.name}' carry a class this model knows; nothing to evaluate")
        rows = catalog.subset(np.flatnonzero(known))
        proba = self.predict_proba(rows)
        y_true = labels[known].astype(str).to_numpy()
        metrics = classification_metrics(y_true, self.classes_[proba.argmax(axis=1)], self.classes_, proba)
        metrics["skipped_unknown_class"] = int((~known & labels.notna().to_numpy()).sum())
        self.metrics_ = metrics
        return metrics

    # ----- persistence ----------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write a self-describing model folder: ``config.json`` + ``weights.npz`` (no pickle)."""
        self._check_fitted()
        config = {
            "task": TASK,
            "skulens_version": __version__,
            "label": self.label,
            "head": self.head,
            "fusion": self.fusion,
            "encoders": self.extractor.identities(),
            "text_fields": list(self.text_fields),
            "classes": [str(c) for c in self.classes_],
            "parents": self.parents_,
            "dropped_classes": self.dropped_classes_ if hasattr(self, "dropped_classes_") else {},
            "metrics": {k: v for k, v in self.metrics_.items() if k in ("accuracy", "macro_f1", "ece", "n")},
        }
        arrays = {f"fusion.{k}": v for k, v in self.model_.to_arrays().items()}
        arrays.update({f"encoder.{k}": v for k, v in self.extractor.to_arrays().items()})
        return write_model_folder(folder, config, arrays)

    @classmethod
    def load(cls, folder: str | Path, cache_dir: str | Path | None = None) -> CategoryPredictor:
        """Load a folder written by :meth:`save`; fails clearly if it is not one or an encoder is missing."""
        config, arrays = read_model_folder(folder, TASK)
        predictor = cls(
            encoders=list(config["encoders"]),
            head=config["head"],
            label=config["label"],
            fusion=config["fusion"],
            text_fields=config["text_fields"],
            cache_dir=cache_dir,
        )
        predictor.extractor.restore({k[8:]: v for k, v in arrays.items() if k.startswith("encoder.")})
        predictor.extractor.check_identities(config["encoders"], folder)
        predictor.classes_ = np.array(config["classes"])
        predictor.parents_ = config.get("parents", {})
        predictor.dropped_classes_ = config.get("dropped_classes", {})
        predictor.metrics_ = config.get("metrics", {})
        fusion_arrays = {k[7:]: v for k, v in arrays.items() if k.startswith("fusion.")}
        predictor.model_ = restore_fusion(config["fusion"], fusion_arrays, predictor.encoders, predictor.classes_, config["head"])
        return predictor

    # ----- single products ------------------------------------------------------------------
    def predict_product(
        self, image: str | Path | None = None, title: str | None = None, description: str | None = None, k: int = 5
    ) -> list[tuple[str, float]]:
        """Top-``k`` categories of one product given by an image path and/or text."""
        if image is None and not (title or description):
            raise CatalogError("give an image, a title or a description to categorize")
        image_path = Path(image).resolve() if image is not None else None
        frame = pd.DataFrame(
            [{"id": "product", "title": title, "description": description, "image": image_path.name if image_path else None}]
        )
        catalog = Catalog(frame, root=image_path.parent if image_path else None, name="input")
        return self.top_k(catalog, k)[0]
