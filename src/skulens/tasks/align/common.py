"""Constants, the error type and small helpers shared by the alignment modules."""

from __future__ import annotations

import numpy as np

from skulens.errors import SkulensError

#: What ``skulens.tasks.align`` re-exports from here.
__all__ = [
    "DEFAULT_IMAGE_ENCODERS",
    "DEFAULT_TEMPLATES",
    "DEFAULT_TEXT_ENCODERS",
    "MIN_PAIRS",
    "TASK",
    "TFIDF_MAX_FEATURES",
    "AlignmentError",
]

TASK = "align"
MIN_PAIRS = 64
DEFAULT_IMAGE_ENCODERS = ("efficientnet-lite0", "efficientnet-lite2", "classical-image")
DEFAULT_TEXT_ENCODERS = ("minilm", "tfidf")
TFIDF_MAX_FEATURES = 4096
#: Prompt ensemble: generic phrasings plus the gender / colour words product titles carry.
DEFAULT_TEMPLATES = (
    "{label}",
    "a photo of {label}",
    "a product photo of {label}",
    "{label} for men",
    "{label} for women",
    "men {label}",
    "women {label}",
    "black {label}",
    "blue {label}",
    "white {label}",
)


class AlignmentError(SkulensError, ValueError):
    """Input an alignment model cannot use (too few pairs, empty query, unknown script...)."""

    code = "alignment"


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)
