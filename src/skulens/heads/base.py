"""Shared checks for heads (scikit-learn estimator contract: ``fit`` returns self, fitted attrs end in _)."""

from __future__ import annotations

import numpy as np


class HeadError(ValueError):
    """A head that cannot be trained or restored; the message says why."""


def check_training_labels(y: np.ndarray) -> np.ndarray:
    """The sorted classes of ``y``; refuses empty input and a single class."""
    if len(y) == 0:
        raise HeadError("no training rows: the catalog (after dropping rows without a label) is empty")
    classes = np.unique(y)
    if len(classes) < 2:
        raise HeadError(f"only one class ({classes[0]!r}) in the training rows; a classifier needs at least two")
    return classes
