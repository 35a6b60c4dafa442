"""Label-shift adaptation without labels: EM re-estimation of class priors (Saerens, Latinne & Decaestecker,
"Adjusting the outputs of a classifier to new a priori probabilities", Neural Computation 2002).

When a model meets data whose class mix differs from its training data (another shop's reviews with more
1-star ratings, a catalog with more watches), its posteriors are biased towards the training mix. EM
alternates between re-weighting every posterior by ``new_prior / train_prior`` and re-estimating the new
priors as the mean adjusted posterior; the data likelihood never decreases. The estimate is used only when
EM converged within its budget on enough rows; otherwise the posteriors are returned unchanged, with the
reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: Fewer rows than this give prior estimates too noisy to act on.
MIN_ROWS = 30
_FLOOR = 1e-12


@dataclass
class PriorShift:
    """What adaptation found: priors of the training data and estimated on the new data, and whether it was used."""

    applied: bool
    converged: bool
    iterations: int
    n_rows: int
    train_priors: list[float]
    estimated_priors: list[float]
    log_likelihood_gain: float
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def reweight(proba: np.ndarray, train_priors: np.ndarray, new_priors: np.ndarray) -> np.ndarray:
    """Posteriors under ``new_priors``: ``p(k|x) * new(k) / train(k)``, renormalised per row."""
    weights = np.clip(new_priors, _FLOOR, None) / np.clip(train_priors, _FLOOR, None)
    scaled = np.asarray(proba, dtype=float) * weights
    return scaled / np.clip(scaled.sum(axis=1, keepdims=True), _FLOOR, None)


def _log_likelihood(proba: np.ndarray, train_priors: np.ndarray, priors: np.ndarray) -> float:
    """Mean log-likelihood of the rows under ``priors`` (up to a constant): ``log sum_k p(k|x) prior(k)/train(k)``."""
    ratio = np.clip(priors, _FLOOR, None) / np.clip(train_priors, _FLOOR, None)
    return float(np.mean(np.log(np.clip(proba @ ratio, _FLOOR, None))))


def adapt_priors(
    proba: np.ndarray, train_priors: np.ndarray, max_iter: int = 500, tol: float = 1e-6, min_rows: int = MIN_ROWS
) -> tuple[np.ndarray, PriorShift]:
    """Posteriors adapted to the class priors EM estimates on ``proba`` (rows x classes, from a model trained
    with ``train_priors``), and a :class:`PriorShift` report. Unchanged posteriors when EM did not converge
    (largest prior change still above ``tol`` after ``max_iter`` steps) or there are fewer than ``min_rows`` rows."""
    proba = np.asarray(proba, dtype=float)
    train = np.asarray(train_priors, dtype=float)
    if proba.ndim != 2 or proba.shape[1] != len(train):
        raise ValueError(f"posteriors have shape {proba.shape} but the model has {len(train)} training priors")
    train = train / train.sum()
    n = len(proba)
    if n < min_rows:
        report = PriorShift(
            False, False, 0, n, train.tolist(), train.tolist(), 0.0, f"only {n} rows; adaptation needs {min_rows}"
        )
        return proba, report
    priors = train.copy()
    start = _log_likelihood(proba, train, priors)
    converged, iterations, change = False, 0, np.inf
    while not converged and iterations < max_iter:
        updated = reweight(proba, train, priors).mean(axis=0)
        change = float(np.abs(updated - priors).max())
        priors, iterations = updated, iterations + 1
        converged = change < tol
    gain = _log_likelihood(proba, train, priors) - start
    if not converged:
        reason = f"EM did not converge in {max_iter} iterations (last prior change {change:.2g}); posteriors left unchanged"
        return proba, PriorShift(False, False, iterations, n, train.tolist(), priors.tolist(), gain, reason)
    report = PriorShift(True, True, iterations, n, train.tolist(), priors.tolist(), gain, "converged")
    return reweight(proba, train, priors), report
