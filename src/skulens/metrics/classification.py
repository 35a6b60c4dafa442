"""Classification and regression metrics, calibration (ECE), and a mean/std summary over runs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray, bins: int = 15) -> float:
    """ECE of the top-1 confidence: sum over equal-width bins of |accuracy - confidence| x bin share."""
    confidence = proba.max(axis=1)
    correct = classes[proba.argmax(axis=1)] == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def classification_metrics(y_true: Sequence, y_pred: Sequence, classes: Sequence, proba: np.ndarray | None = None) -> dict:
    """Accuracy, macro/micro/weighted F1, per-class P/R/F1/support, confusion matrix and (with
    probabilities) expected calibration error.

    Macro-F1 averages over the classes *present* in ``y_true`` (support > 0): a class the model knows
    but the test rows do not contain is listed in ``absent_classes`` and not scored 0.
    """
    y_true, y_pred, classes = np.asarray(y_true), np.asarray(y_pred), np.asarray(classes)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    present = classes[support > 0]
    result = {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)) if len(present) else 0.0,
        "micro_f1": float(f1_score(y_true, y_pred, labels=classes, average="micro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=classes, average="weighted", zero_division=0)),
        "per_class": {
            str(c): {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for c, p, r, f, s in zip(classes, precision, recall, f1, support)
        },
        "classes": [str(c) for c in classes],
        "absent_classes": [str(c) for c in classes[support == 0]],
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
    }
    if proba is not None:
        result["ece"] = expected_calibration_error(y_true, proba, classes)
    return result


def majority_baseline(y_true: Sequence, majority: object) -> dict:
    """Scores of always predicting ``majority`` (the model's most frequent training class): a model that does
    not beat them on new data is not helping there."""
    y_true = np.asarray(y_true).astype(str)
    pred = np.full(len(y_true), str(majority))
    return {
        "class": str(majority),
        "accuracy": float(accuracy_score(y_true, pred)),
        "macro_f1": float(f1_score(y_true, pred, labels=np.unique(y_true), average="macro", zero_division=0)),
    }


def mean_std_ci(values: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean, sample std and a Student-t interval of the mean over runs, treating runs as independent.

    Folds of one cross-validation share training rows and seeds add no data, so this interval is too
    narrow for fold or seed scores; benchmarks report :mod:`skulens.metrics.intervals` (a bootstrap over
    test rows) instead and use this only to describe the spread of per-fold scores.
    """
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    half = float(stats.t.ppf((1 + confidence) / 2, len(values) - 1) * std / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "n": int(len(values))}


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict:
    """MAE, RMSE and R^2."""
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    error = y_pred - y_true
    total = ((y_true - y_true.mean()) ** 2).sum()
    return {
        "n": int(len(y_true)),
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "r2": float(1 - (error**2).sum() / total) if total > 0 else 0.0,
    }
