"""Products held in memory, as the service and the UI receive them, in the form the predictors take.

Thin helpers only: they ask the predictor's own encoders what they read and how an image is prepared,
and leave every feature and probability to the predictor (``CategoryPredictor.predict_inputs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def product_text(product: dict, fields: Sequence[str]) -> str:
    """The text a catalog row would give: the non-empty ``fields`` joined like :meth:`Catalog.texts`."""
    parts = [str(product.get(f) or "").strip() for f in fields]
    return ". ".join(p for p in parts if p)


def _encoders(predictor: Any) -> list:
    return [predictor.extractor.encoder(name) for name in predictor.encoders]


def image_resolution(predictor: Any) -> int | None:
    """The largest input resolution of the predictor's image encoders (the JPEG draft-decoding size)."""
    sizes = [getattr(e, "resolution", None) or 0 for e in _encoders(predictor) if e.modality == "image"]
    return max(sizes) if sizes else None


def prepare_image(predictor: Any, image: Any) -> Any:
    """The image encoder's per-image preprocessing, done now (in the caller's thread, e.g. the decode pool).

    With exactly one image encoder that offers ``prepare`` (resize to its input array) the model worker
    then only runs the network; otherwise the decoded image is returned as it is.
    """
    images = [e for e in _encoders(predictor) if e.modality == "image"]
    if image is not None and len(images) == 1 and hasattr(images[0], "prepare"):
        return images[0].prepare(image)
    return image


def top_k_from_proba(classes: Sequence[str], proba: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
    """For each row of ``proba``, the ``k`` most likely classes with their probabilities."""
    order = np.argsort(-proba, axis=1)[:, :k]
    return [[(str(classes[j]), float(proba[i, j])) for j in row] for i, row in enumerate(order)]
