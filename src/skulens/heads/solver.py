"""L2-penalised logistic regression (multinomial, or binomial for two classes) fitted by L-BFGS.

The objective is scikit-learn's ``LogisticRegression(penalty="l2", solver="lbfgs")`` objective,
``(1/S) sum_i w_i loss_i + ||W||^2 / (2 C S)`` with ``S = sum_i w_i`` and the intercept not penalised,
minimised with the same scipy L-BFGS-B settings, so both reach the same optimum. What makes it faster:
L-BFGS-B's own steps run on one BLAS thread (see :func:`fit_logistic`);
the features are converted to float64 once; :func:`fit_path` warm-starts each ``C`` from the solution
of the previous (more strongly regularised) one; and with fewer rows than features the problem is
solved in the coordinates of the rows' span (:class:`RowSpace`), which is exact: the optimal weights
are a combination of the training rows, and the penalty is unchanged by the orthonormal change of basis.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from skulens.threads import blas_threads, thread_budget

#: Row-space coordinates are used up to this many rows, and only when they save >= 30% of the columns.
ROW_SPACE_MAX_ROWS = 4000
ROW_SPACE_MAX_RATIO = 0.7


@dataclass
class LogisticFit:
    """One solution: ``coef`` (outputs, features), ``intercept`` (outputs,); outputs is 1 for two classes."""

    C: float
    coef: np.ndarray
    intercept: np.ndarray
    n_iter: int

    def scores(self, X) -> np.ndarray:
        return np.asarray(X @ self.coef.T) + self.intercept

    def proba(self, X) -> np.ndarray:
        """Class probabilities, shape (rows, classes)."""
        scores = self.scores(X)
        if scores.shape[1] == 1:
            positive = expit(scores[:, 0])
            return np.column_stack([1.0 - positive, positive])
        return np.exp(scores - _logsumexp(scores))


def _logsumexp(scores: np.ndarray) -> np.ndarray:
    """Row-wise log-sum-exp, shape (rows, 1)."""
    top = scores.max(axis=1, keepdims=True)
    return top + np.log(np.exp(scores - top).sum(axis=1, keepdims=True))


@dataclass
class RowSpace:
    """Coordinates of the rows of ``X`` in an orthonormal basis ``V`` of their span: ``X = Z @ V.T``.

    From the eigendecomposition of the Gram matrix ``X X^T = U diag(s^2) U^T``: ``Z = U diag(s)`` and
    ``V.T = diag(1/s) U^T X``. Directions with ``s < 1e-6 * max(s)`` (no data) are dropped.
    Weights ``W'`` in these coordinates are ``W' @ V.T`` on the features, and vice versa ``W @ V``.
    """

    Z: np.ndarray
    _map: np.ndarray  # diag(1/s) U^T, shape (r, n): V.T = _map @ X
    _X: np.ndarray | sp.csr_matrix

    @classmethod
    def of(cls, X) -> RowSpace | None:
        """The row space of ``X`` (float64), or None where it would not make the problem smaller."""
        n, d = X.shape
        if n > ROW_SPACE_MAX_ROWS or n > ROW_SPACE_MAX_RATIO * d:
            return None
        gram = X @ X.T
        gram = gram.toarray() if sp.issparse(gram) else np.asarray(gram)
        eigenvalues, U = np.linalg.eigh(gram)
        s = np.sqrt(np.clip(eigenvalues, 0.0, None))
        keep = s > 1e-6 * max(s.max(), 1e-300)
        U, s = U[:, keep], s[keep]
        return cls(U * s, (U / s).T, X)

    def to_features(self, coef: np.ndarray) -> np.ndarray:
        """Weights on the original features, shape (outputs, features)."""
        return np.asarray(self._X.T @ (coef @ self._map).T).T


def as_float64(X):
    """Dense or CSR features as float64 (the solver's working precision), without copying when they are."""
    if sp.issparse(X):
        return sp.csr_matrix(X, dtype=np.float64)
    return np.asarray(X, dtype=np.float64)


def sample_weights(y_index: np.ndarray, n_classes: int, class_weight: str | dict | None, classes: np.ndarray) -> np.ndarray:
    """Per-row weights from ``class_weight`` as scikit-learn computes them (``"balanced"``: n / (k * count))."""
    if class_weight is None:
        return np.ones(len(y_index))
    if class_weight == "balanced":
        counts = np.bincount(y_index, minlength=n_classes).astype(float)
        per_class = np.where(counts > 0, len(y_index) / (n_classes * np.maximum(counts, 1)), 0.0)
    else:
        per_class = np.array([float(class_weight.get(c, 1.0)) for c in classes])
    return per_class[y_index]


def _objective(X, target: np.ndarray, weights: np.ndarray, n_out: int, penalty: float):
    """Loss-and-gradient of the flattened (outputs, features + 1) parameters."""
    n_features = X.shape[1]

    def loss_grad(flat: np.ndarray) -> tuple[float, np.ndarray]:
        params = flat.reshape(n_out, n_features + 1)
        coef, intercept = params[:, :-1], params[:, -1]
        scores = np.asarray(X @ coef.T) + intercept
        if n_out == 1:
            z = scores[:, 0]
            losses = -log_expit(z) + (1.0 - target) * z
            residual = (expit(z) - target)[:, None]
        else:
            norm = _logsumexp(scores)
            losses = norm[:, 0] - scores[np.arange(len(target)), target]
            residual = np.exp(scores - norm)
            residual[np.arange(len(target)), target] -= 1.0
        residual *= weights[:, None]
        grad = np.empty_like(params)
        grad[:, :-1] = np.asarray(X.T @ residual).T + penalty * coef
        grad[:, -1] = residual.sum(axis=0)
        loss = float(losses @ weights) + 0.5 * penalty * float(np.vdot(coef, coef))
        return loss, grad.ravel()

    return loss_grad


def _with_blas_threads(loss_grad, threads: int):
    """``loss_grad`` run with ``threads`` BLAS threads."""

    def run(flat: np.ndarray) -> tuple[float, np.ndarray]:
        with blas_threads(threads):
            return loss_grad(flat)

    return run


def fit_logistic(
    X,
    y_index: np.ndarray,
    n_classes: int,
    C: float,
    weights: np.ndarray,
    init: LogisticFit | None = None,
    tol: float = 1e-4,
    max_iter: int = 2000,
) -> LogisticFit:
    """Minimise the objective for one ``C`` from ``init`` (zeros when None). ``X`` is float64 (see
    :func:`as_float64`); ``y_index`` holds class positions 0..n_classes-1; ``weights`` one per row."""
    n_out = 1 if n_classes == 2 else n_classes
    total = float(weights.sum())
    target = y_index.astype(np.float64) if n_out == 1 else y_index
    loss_grad = _objective(X, target, weights / total, n_out, 1.0 / (C * total))
    start = np.zeros((n_out, X.shape[1] + 1))
    if init is not None:
        start[:, :-1], start[:, -1] = init.coef, init.intercept
    if not sp.issparse(X):  # dense matrix products use the thread budget (sparse ones are single-threaded loops)
        loss_grad = _with_blas_threads(loss_grad, thread_budget())
    # L-BFGS-B's vector steps (BLAS level 1 on every parameter, holding the GIL) run on one thread: a threaded
    # BLAS splits each of those many short calls and waits on its workers, 8x slower per step at TF-IDF's
    # 250,000 parameters on a busy 2-core machine (220 vs 26 ms).
    with blas_threads(1):
        result = minimize(
            loss_grad,
            start.ravel(),
            method="L-BFGS-B",
            jac=True,
            options={"maxiter": max_iter, "maxls": 50, "gtol": tol, "ftol": 64 * np.finfo(float).eps},
        )
    params = result.x.reshape(n_out, X.shape[1] + 1)
    return LogisticFit(float(C), params[:, :-1].copy(), params[:, -1].copy(), int(result.nit))


def fit_path(
    X,
    y_index: np.ndarray,
    n_classes: int,
    Cs: Sequence[float],
    weights: np.ndarray,
    tol: float = 1e-4,
    max_iter: int = 2000,
) -> Iterator[LogisticFit]:
    """Solutions for ``Cs`` in increasing order (strongest regularisation first), each started from the
    previous one: nearby optima need few iterations."""
    previous = None
    for C in sorted(Cs):
        previous = fit_logistic(X, y_index, n_classes, C, weights, previous, tol, max_iter)
        yield previous
