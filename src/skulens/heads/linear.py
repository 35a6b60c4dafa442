"""Linear probe: standardisation + logistic regression, regularisation chosen on a validation split.

The regularisation path is fitted by :mod:`skulens.heads.solver` (scikit-learn's objective and L-BFGS
settings, warm-started along the path and into the final refit); ``solver="sklearn"`` runs the former
reference, one cold ``LogisticRegression`` per ``C``, for parity checks and timings.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted, validate_data

from skulens.heads.base import HeadError, align_proba, check_training_labels, head_tags, softmax, validation_rows
from skulens.heads.solver import LogisticFit, RowSpace, as_float64, fit_logistic, fit_path, sample_weights
from skulens.threads import apply_thread_budget

SOLVERS = ("path", "sklearn")
#: Environment variable choosing the solver when ``solver=None`` (benchmarks time both paths with it).
SOLVER_ENV = "SKULENS_PROBE_SOLVER"
#: Environment variable setting the gradient tolerance when ``tol=None``.
TOL_ENV = "SKULENS_PROBE_TOL"
#: C grids: standardised dense embeddings want strong regularisation, L2-normalised TF-IDF weak.
DENSE_CS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
SPARSE_CS = (1.0, 3.0, 10.0, 30.0, 100.0)


def _env_tolerance() -> float:
    """``$SKULENS_PROBE_TOL`` (a positive number), else scikit-learn's default 1e-4."""
    value = os.environ.get(TOL_ENV, "").strip()
    try:
        tol = float(value) if value else 1e-4
    except ValueError:
        tol = -1.0
    if not tol > 0:
        raise HeadError(f"{TOL_ENV}={value!r} is not a positive number; unset it or use e.g. 1e-6")
    return tol


class LinearProbe(ClassifierMixin, BaseEstimator):
    """Logistic regression on frozen embeddings, as in open_clip's linear-probe evaluation.

    ``C`` is searched over ``Cs`` (default: a grid for dense or sparse input) on a stratified validation
    split (lowest log-loss), then the probe is refitted on all training rows. The validation rows and
    their probabilities from the model that did not see them are kept in ``holdout_rows_`` and
    ``holdout_proba_`` (late fusion fits its block weights on them). Dense inputs are standardised;
    sparse inputs (TF-IDF) are used as they are. ``class_weight`` is ``None``, ``"balanced"`` or a dict.
    ``solver="path"`` (the default, unless ``$SKULENS_PROBE_SOLVER`` says otherwise) warm-starts along
    the C grid; ``"sklearn"`` is the cold reference; both stop at the gradient tolerance ``tol`` (default:
    ``$SKULENS_PROBE_TOL`` or scikit-learn's 1e-4; benchmarks run the reference to convergence with it).
    ``holdout=False`` with a single ``C`` skips the validation fit, whose only use then is ``holdout_proba_``
    (the probe is fitted once, on every row, and ``holdout_proba_`` stays empty).
    """

    def __init__(
        self,
        Cs: tuple[float, ...] | None = None,
        val_size: float = 0.2,
        class_weight: str | dict | None = None,
        max_iter: int = 2000,
        seed: int = 0,
        solver: str | None = None,
        tol: float | None = None,
        holdout: bool = True,
    ) -> None:
        self.Cs = Cs
        self.val_size = val_size
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.seed = seed
        self.solver = solver
        self.tol = tol
        self.holdout = holdout

    def __sklearn_tags__(self):
        return head_tags(super().__sklearn_tags__())

    def _scale(self, X):
        if sp.issparse(X):
            return X
        return (np.asarray(X, dtype=np.float32) - self.mean_) / self.scale_

    def fit(self, X, y, val_rows: np.ndarray | None = None) -> LinearProbe:
        """Fit; ``val_rows`` (positions) fixes the validation split instead of drawing one."""
        apply_thread_budget()
        solver = self.solver or os.environ.get(SOLVER_ENV, "path")
        if solver not in SOLVERS:
            raise HeadError(f"unknown solver '{solver}'; choose from {', '.join(SOLVERS)}")
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=(np.float32, np.float64))
        self.classes_ = check_training_labels(y)
        self.tol_ = float(self.tol) if self.tol else _env_tolerance()
        if sp.issparse(X):
            self.mean_ = self.scale_ = None
        else:
            X = X.astype(np.float32, copy=False)
            self.mean_ = X.mean(axis=0)
            self.scale_ = X.std(axis=0) + 1e-6
        Xs = self._scale(X)
        grid = tuple(self.Cs or (SPARSE_CS if sp.issparse(X) else DENSE_CS))
        va = validation_rows(y, self.val_size, self.seed) if val_rows is None else np.asarray(val_rows, dtype=int)
        tr = np.setdiff1d(np.arange(len(y)), va)
        self.holdout_rows_ = np.array([], dtype=int)
        self.holdout_proba_ = np.zeros((0, len(self.classes_)))
        searchable = len(va) > 0 and len(np.unique(y[tr])) >= 2 and (self.holdout or len(grid) > 1)
        if solver == "sklearn":
            self._fit_reference(Xs, y, grid, tr, va, searchable)
        else:
            self._fit_path(as_float64(Xs), y, grid, tr, va, searchable)
        return self

    def _keep(self, C: float, coef: np.ndarray, intercept: np.ndarray, n_iter: int) -> None:
        self.C_ = float(C)
        self.coef_, self.intercept_ = coef.astype(np.float32), intercept.astype(np.float32)
        self.n_iter_ = np.array([n_iter])

    def _val_loss(self, proba: np.ndarray, y_val: np.ndarray) -> float:
        """Log-loss of ``proba`` (columns in ``classes_`` order) on ``y_val``, as scikit-learn's ``log_loss``
        computes it (without its input checks, which cost more than the loss)."""
        clipped = np.clip(proba, 1e-7, 1)
        clipped = clipped / clipped.sum(axis=1, keepdims=True)
        picked = clipped[np.arange(len(y_val)), np.searchsorted(self.classes_, y_val)]
        return float(-np.log(np.clip(picked, np.finfo(picked.dtype).eps, 1.0)).mean())

    def _fit_path(self, X, y, grid: tuple[float, ...], tr: np.ndarray, va: np.ndarray, searchable: bool) -> None:
        """C chosen along a warm-started path on the training part; the refit starts from its solution.
        Solved in row-space coordinates where that is smaller (exact, see :class:`RowSpace`)."""
        space = RowSpace.of(X)
        X = space.Z if space is not None else X
        start, C = None, grid[len(grid) // 2]  # too few rows for a validation split: a middle-of-the-grid default
        if searchable:
            part_classes, part_index = np.unique(y[tr], return_inverse=True)
            weights = sample_weights(part_index, len(part_classes), self.class_weight, part_classes)
            best = (np.inf, None, None)
            for solution in fit_path(X[tr], part_index, len(part_classes), grid, weights, self.tol_, self.max_iter):
                proba = align_proba(solution.proba(X[va]), part_classes, self.classes_)
                loss = self._val_loss(proba, y[va])
                if loss < best[0]:
                    best = (loss, solution, proba)
            _, start, self.holdout_proba_ = best
            self.holdout_rows_, C = va, start.C
            if len(part_classes) != len(self.classes_):
                start = None  # another class set: another parameter shape
        index = np.searchsorted(self.classes_, y)
        weights = sample_weights(index, len(self.classes_), self.class_weight, self.classes_)
        final: LogisticFit = fit_logistic(X, index, len(self.classes_), C, weights, start, self.tol_, self.max_iter)
        coef = space.to_features(final.coef) if space is not None else final.coef
        self._keep(C, coef, final.intercept, final.n_iter)

    def _model(self, C: float) -> LogisticRegression:
        return LogisticRegression(
            C=C, max_iter=self.max_iter, tol=self.tol_, class_weight=self.class_weight, random_state=self.seed
        )

    def _fit_reference(self, X, y, grid: tuple[float, ...], tr: np.ndarray, va: np.ndarray, searchable: bool) -> None:
        """The reference: a cold scikit-learn fit per C on the training part, then a cold refit."""
        C = grid[len(grid) // 2]
        if searchable:
            best = (np.inf, grid[0], None)
            for candidate in grid:
                model = self._model(candidate).fit(X[tr], y[tr])
                proba = align_proba(model.predict_proba(X[va]), model.classes_, self.classes_)
                loss = self._val_loss(proba, y[va])
                if loss < best[0]:
                    best = (loss, candidate, proba)
            _, C, self.holdout_proba_ = best
            self.holdout_rows_ = va
        model = self._model(C).fit(X, y)
        self._keep(C, model.coef_, model.intercept_, int(np.max(model.n_iter_)))

    def _logits(self, X) -> np.ndarray:
        """One score per class (binary: ``[0, score]``), from validated input."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=(np.float32, np.float64), reset=False)
        scores = np.asarray(self._scale(X) @ self.coef_.T + self.intercept_)
        return np.hstack([np.zeros_like(scores), scores]) if scores.shape[1] == 1 else scores

    def decision_function(self, X) -> np.ndarray:
        """Class scores, shape (rows, classes); for two classes the score of ``classes_[1]``, shape (rows,)."""
        scores = self._logits(X)
        return scores[:, 1] if scores.shape[1] == 2 else scores

    def predict_proba(self, X) -> np.ndarray:
        return softmax(self._logits(X))

    def predict(self, X) -> np.ndarray:
        scores = self._logits(X)
        return self.classes_[scores.argmax(axis=1)]

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"coef": self.coef_, "intercept": self.intercept_, "C": np.array([self.C_], dtype=np.float32)}
        if self.mean_ is not None:
            arrays.update(mean=self.mean_.astype(np.float32), scale=self.scale_.astype(np.float32))
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], classes: np.ndarray) -> LinearProbe:
        probe = cls()
        probe.classes_ = np.asarray(classes)
        probe.coef_, probe.intercept_ = arrays["coef"], arrays["intercept"]
        probe.C_ = float(arrays["C"][0])
        probe.mean_, probe.scale_ = arrays.get("mean"), arrays.get("scale")
        probe.n_features_in_ = int(probe.coef_.shape[1])
        if probe.coef_.shape[0] not in (len(classes), 1):
            raise HeadError(f"saved probe has {probe.coef_.shape[0]} outputs but {len(classes)} classes")
        return probe
