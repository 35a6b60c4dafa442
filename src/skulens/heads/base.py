"""Shared pieces of the heads (scikit-learn estimators: ``fit`` returns self, fitted attributes end in ``_``)."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets

from skulens.errors import SkulensError


class HeadError(SkulensError, ValueError):
    """A head that cannot be trained or restored; the message says why."""

    code = "head"


def check_training_labels(y: np.ndarray) -> np.ndarray:
    """The sorted classes of ``y``; refuses empty input, continuous targets and a single class."""
    if len(y) == 0:
        raise HeadError("no training rows: the catalog (after dropping rows without a label) is empty")
    check_classification_targets(y)
    classes = np.unique(y)
    if len(classes) < 2:
        raise HeadError(f"only one class ({classes[0]!r}) in the training rows; a classifier needs at least two")
    return classes


def head_tags(tags):
    """scikit-learn tags shared by the probes: they accept sparse input (TF-IDF)."""
    tags.input_tags.sparse = True
    return tags


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large scores."""
    scores = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(scores)
    return exp / exp.sum(axis=1, keepdims=True)


def validation_rows(y: np.ndarray, val_size: float, seed: int) -> np.ndarray:
    """Positions of a seeded, stratified validation split; empty when a class has under 2 rows."""
    counts = np.unique(y, return_counts=True)[1]
    if counts.min() < 2 or len(y) * val_size < len(counts):
        return np.array([], dtype=int)
    _, val = train_test_split(np.arange(len(y)), test_size=val_size, stratify=y, random_state=seed)
    return np.sort(val)


def align_proba(proba: np.ndarray, head_classes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Columns of ``proba`` (ordered by ``head_classes``) placed in the order of ``classes``."""
    if np.array_equal(head_classes, classes):
        return proba
    out = np.zeros((proba.shape[0], len(classes)), dtype=proba.dtype)
    out[:, np.searchsorted(classes, head_classes)] = proba
    return out
