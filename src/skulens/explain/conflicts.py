"""Photo-vs-text conflicts for a whole catalog: the listings whose photo, title and description point at
different categories.

The batch form of the check in :mod:`skulens.explain.modality`. Each product is scored with every block
(the prediction), then by each *view* alone: the photo (text blocks marked absent, as for a product
without text), and the text — and, when the model reads several text fields, each field on its own (a
listing whose title was swapped still has an honest description, which would otherwise out-vote it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from skulens.catalog.schema import Catalog
from skulens.explain.modality import CONFLICT_LOG_RATIO, disagreement
from skulens.heads.fusion import LateFusion
from skulens.tasks.categorize import CategoryPredictor
from skulens.tasks.features import Features
from skulens.tasks.inputs import Data, as_catalog


def _only(features: Features, names: set[str]) -> Features:
    return Features(features.blocks, {name: mask & (name in names) for name, mask in features.present.items()})


def view_proba(predictor: CategoryPredictor, features: Features, names: set[str]) -> np.ndarray:
    """What the blocks ``names`` alone predict. Late fusion: their heads at full strength (see
    :meth:`~skulens.heads.fusion.LateFusion.view_proba`: a photo the fusion down-weights still says what it
    sees); early fusion: the one head with the other blocks marked absent."""
    if isinstance(predictor.model_, LateFusion):
        return predictor.model_.view_proba(features.blocks, features.present, names)
    return predictor.proba_from_features(_only(features, names))


def _field_only(catalog: Catalog, field: str, fields: tuple[str, ...]) -> Catalog:
    """``catalog`` with every text field but ``field`` blanked (what the text encoders then see is that field)."""
    frame = catalog.frame.copy()
    for other in fields:
        if other != field and other in frame.columns:
            frame[other] = None
    return Catalog(frame, catalog.root, catalog.name, [], catalog.image_roots, catalog.mapping)


def view_probabilities(
    predictor: CategoryPredictor, catalog: Catalog, features: Features
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per view (``image``, ``text``, and ``title`` / ``description`` / ... when the model reads several text
    fields that the catalog has): (class probabilities from that view alone, rows that have it)."""
    kinds = {n: predictor.extractor.encoder(n).modality for n in predictor.encoders}
    views: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for modality in ("image", "text"):
        names = {n for n, kind in kinds.items() if kind == modality}
        has = np.zeros(len(catalog), dtype=bool)
        for name in names:
            has |= features.present[name]
        if has.any():
            views[modality] = (view_proba(predictor, features, names), has)
    text_names = [n for n, kind in kinds.items() if kind == "text"]
    fields = tuple(f for f in predictor.text_fields if catalog.has(f))
    if text_names and len(fields) > 1 and isinstance(predictor.model_, LateFusion):  # per-field views need per-block heads
        for field in fields:
            single = predictor.extractor.transform(_field_only(catalog, field, predictor.text_fields), text_names)
            blocks = {**features.blocks, **single.blocks}
            present = {
                n: (single.present[n] if n in single.present else np.zeros(len(catalog), dtype=bool)) for n in features.present
            }
            has = np.any([single.present[n] for n in text_names], axis=0)
            if has.any():
                views[field] = (predictor.proba_from_features(Features(blocks, present)), has)
    return views


def catalog_conflicts(predictor: CategoryPredictor, data: Data, threshold: float = CONFLICT_LOG_RATIO) -> pd.DataFrame:
    """One row per product (the catalog's order): the predicted category and its probability; per view
    (see :func:`view_probabilities`) its top class, that class's probability and the predicted class's;
    ``conflict_score``, the largest :func:`~skulens.explain.modality.disagreement` of a view with the
    prediction (empty for products with fewer than two separate views: photo, and the text or its fields); ``conflict``: score >= ``threshold``;
    ``conflict_view``: the view that disagrees most.
    """
    catalog = as_catalog(data)
    features = predictor.extractor.transform(catalog)
    classes = np.array([str(c) for c in predictor.classes_])
    full = predictor.proba_from_features(features)
    chosen = full.argmax(axis=1)
    rows = np.arange(len(chosen))
    out = pd.DataFrame({"id": catalog.ids, "predicted": classes[chosen], "probability": full[rows, chosen].round(4)})
    views = view_probabilities(predictor, catalog, features)
    scores = np.full((len(views), len(rows)), np.nan)
    for i, (view, (own, has)) in enumerate(views.items()):
        out[f"{view}_top"] = np.where(has, classes[own.argmax(axis=1)], None)
        out[f"{view}_top_probability"] = np.where(has, own.max(axis=1).round(4), np.nan)
        out[f"{view}_predicted_probability"] = np.where(has, own[rows, chosen].round(4), np.nan)
        scores[i] = np.where(has, disagreement(own, chosen), np.nan)
    if not views:  # no product has a view the model reads: nothing to compare
        return out.assign(conflict_score=np.nan, conflict_view=None, conflict=False)
    separate = [v for v in views if v != "text"] if len(views) > 2 else list(views)  # fields stand in for "text"
    two = np.sum([views[v][1] for v in separate], axis=0) >= 2
    filled = np.where(np.isnan(scores), -np.inf, scores)
    best = filled.max(axis=0)
    out["conflict_score"] = np.where(two, np.round(best, 4), np.nan)
    out["conflict_view"] = np.where(two, np.array(list(views))[filled.argmax(axis=0)], None)
    out["conflict"] = two & (best >= threshold)
    return out
