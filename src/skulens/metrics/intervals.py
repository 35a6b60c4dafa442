"""Percentile-bootstrap confidence intervals over test rows.

Rows (not folds, not seeds) are resampled with replacement; the interval is the (2.5, 97.5) percentile
range of the statistic over the resamples. A statistic bounded to [0, 1] (accuracy, macro-F1, AUC) is
computed on every resample, so its interval stays in [0, 1] by construction. Out-of-fold predictions
of one cross-validation run cover every row once and are resampled together; predictions of several
seeds are never pooled as independent rows (give each seed its own interval).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

METHOD = "percentile bootstrap over test rows"
DEFAULT_RESAMPLES = 1000


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n: int,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """``statistic(rows)`` on all ``n`` rows and its percentile interval over seeded resamples of rows.

    ``statistic`` takes an index array (with repeats) and returns a float; resamples where it returns
    NaN (e.g. an AUC with one class drawn) are left out of the percentiles.
    """
    if n < 1:
        raise ValueError("a bootstrap needs at least one row")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n, size=n)) for _ in range(resamples)], dtype=float)
    values = values[~np.isnan(values)]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail]) if len(values) else (np.nan, np.nan)
    return {"estimate": float(statistic(np.arange(n))), "ci95": [float(low), float(high)]}


def _encode(y_true: Sequence, y_pred: Sequence) -> tuple[np.ndarray, np.ndarray, int]:
    labels, codes = np.unique(
        np.concatenate([np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)]).astype(str), return_inverse=True
    )
    n = len(np.asarray(y_true))
    return codes[:n], codes[n:], len(labels)


def macro_f1_from_codes(true: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Macro-F1 over the classes present in ``true`` (integer codes 0..k-1), as
    :func:`skulens.metrics.classification_metrics` defines it."""
    counts = np.bincount(true * k + pred, minlength=k * k).reshape(k, k)
    tp = np.diag(counts).astype(float)
    support, predicted = counts.sum(axis=1), counts.sum(axis=0)
    present = support > 0
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    return float(f1[present].mean()) if present.any() else 0.0


def classification_intervals(
    y_true: Sequence, y_pred: Sequence, resamples: int = DEFAULT_RESAMPLES, seed: int = 0, confidence: float = 0.95
) -> dict:
    """Bootstrap intervals of accuracy and macro-F1 (over present classes) of one set of predictions."""
    true, pred, k = _encode(y_true, y_pred)
    correct = (true == pred).astype(float)
    return {
        "method": METHOD,
        "resamples": resamples,
        "seed": seed,
        "accuracy": bootstrap_ci(lambda rows: correct[rows].mean(), len(true), resamples, seed, confidence),
        "macro_f1": bootstrap_ci(
            lambda rows: macro_f1_from_codes(true[rows], pred[rows], k), len(true), resamples, seed, confidence
        ),
    }


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC from ranks (ties averaged); NaN when ``y_true`` holds only one class."""
    from scipy.stats import rankdata

    y_true = np.asarray(y_true).astype(bool)
    positives = int(y_true.sum())
    negatives = len(y_true) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y_true].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def review_intervals(
    stars_true: Sequence[int],
    stars_pred: Sequence[int],
    expected: Sequence[float],
    recommend_true: Sequence[float] | None = None,
    recommend_score: Sequence[float] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Bootstrap intervals over test reviews of star accuracy, star macro-F1, expected-rating MAE and
    (where recommendation labels and scores are given; unlabelled rows left out) recommend ROC-AUC."""
    true, pred, k = _encode(stars_true, stars_pred)
    correct = (true == pred).astype(float)
    error = np.abs(np.asarray(expected, dtype=float) - np.asarray(stars_true, dtype=float))
    n = len(true)
    result = {
        "method": METHOD,
        "resamples": resamples,
        "seed": seed,
        "star_accuracy": bootstrap_ci(lambda rows: correct[rows].mean(), n, resamples, seed, confidence),
        "star_macro_f1": bootstrap_ci(
            lambda rows: macro_f1_from_codes(true[rows], pred[rows], k), n, resamples, seed, confidence
        ),
        "rating_mae": bootstrap_ci(lambda rows: error[rows].mean(), n, resamples, seed, confidence),
    }
    if recommend_true is not None and recommend_score is not None:
        labels = np.asarray(recommend_true, dtype=float)
        known = ~np.isnan(labels)
        labels, score = labels[known].astype(int), np.asarray(recommend_score, dtype=float)[known]
        if len(np.unique(labels)) == 2:
            result["recommend_auc"] = bootstrap_ci(
                lambda rows: roc_auc(labels[rows], score[rows]), len(labels), resamples, seed, confidence
            )
    return result
