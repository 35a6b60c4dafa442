"""The fast probe path (warm-started L-BFGS, row-space coordinates) against the scikit-learn reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from skulens.heads import HeadError, LinearProbe
from skulens.heads.solver import RowSpace, as_float64, fit_logistic, sample_weights


def _data(n: int, d: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=1.5, size=(classes, d))
    y = rng.integers(0, classes, size=n)
    return (centres[y] + rng.normal(size=(n, d))).astype(np.float32), y


def _sparse_texts(n: int, vocab: int, classes: int, seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    rows, cols = [], []
    for i, label in enumerate(y):
        words = np.concatenate([rng.integers(0, vocab, size=6), label * 7 + rng.integers(0, 7, size=2)])
        rows += [i] * len(words)
        cols += list(words)
    X = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, vocab))
    X.sum_duplicates()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1))).ravel()
    return sp.csr_matrix(sp.diags(1 / norms) @ X, dtype=np.float32), y


@pytest.mark.parametrize(
    ("X", "y", "class_weight"),
    [
        (*_data(300, 20, 4), None),  # more rows than features: primal coordinates
        (*_data(120, 400, 5, seed=1), None),  # fewer rows than features: row-space coordinates
        (*_data(200, 12, 2, seed=2), "balanced"),  # binomial
        (*_sparse_texts(250, 900, 3), None),  # TF-IDF-like, row space
        (*_sparse_texts(400, 300, 4, seed=3), "balanced"),  # sparse, primal
    ],
)
def test_fast_probe_matches_the_scikit_learn_reference(X, y, class_weight):
    grid = (0.01, 0.1, 1.0, 10.0)
    fast = LinearProbe(Cs=grid, class_weight=class_weight, tol=1e-8, max_iter=20_000).fit(X, y)
    slow = LinearProbe(Cs=grid, class_weight=class_weight, tol=1e-8, max_iter=20_000, solver="sklearn").fit(X, y)
    assert fast.C_ == slow.C_
    np.testing.assert_array_equal(fast.holdout_rows_, slow.holdout_rows_)
    np.testing.assert_allclose(fast.holdout_proba_, slow.holdout_proba_, atol=1e-3)
    np.testing.assert_allclose(fast.predict_proba(X), slow.predict_proba(X), atol=1e-3)
    assert (fast.predict(X) == slow.predict(X)).mean() >= 0.99


def test_fast_probe_at_default_tolerance_agrees_with_the_reference():
    X, y = _data(400, 64, 6, seed=4)
    fast, slow = LinearProbe().fit(X, y), LinearProbe(solver="sklearn").fit(X, y)
    assert fast.C_ == slow.C_
    assert (fast.predict(X) == slow.predict(X)).mean() >= 0.99
    assert np.abs(fast.predict_proba(X) - slow.predict_proba(X)).max() < 0.02


def test_one_C_matches_logistic_regression_exactly():
    X, y = _data(150, 30, 3, seed=5)
    Xd = as_float64(X)
    weights = sample_weights(y, 3, "balanced", np.arange(3))
    fit = fit_logistic(Xd, y, 3, 0.5, weights, tol=1e-10, max_iter=10_000)
    reference = LogisticRegression(C=0.5, class_weight="balanced", tol=1e-10, max_iter=10_000).fit(Xd, y)
    np.testing.assert_allclose(fit.proba(Xd), reference.predict_proba(Xd), atol=1e-6)


@pytest.mark.parametrize("sparse", [False, True])
def test_row_space_reproduces_the_features(sparse):
    X, _ = _sparse_texts(40, 200, 3) if sparse else _data(40, 200, 3)
    Xd = as_float64(X)
    space = RowSpace.of(Xd)
    assert space is not None and space.Z.shape[0] == 40 and space.Z.shape[1] <= 40
    coef = np.random.default_rng(0).normal(size=(3, space.Z.shape[1]))
    np.testing.assert_allclose(space.Z @ coef.T, np.asarray(Xd @ space.to_features(coef).T), atol=1e-8)
    assert RowSpace.of(as_float64(_data(300, 20, 3)[0])) is None  # more rows than features: not smaller


def test_unknown_solver_is_refused():
    X, y = _data(40, 3, 2)
    with pytest.raises(ValueError, match="unknown solver"):
        LinearProbe(solver="newton").fit(X, y)


def test_tolerance_comes_from_the_environment_when_not_given(monkeypatch):
    X, y = _data(200, 16, 3, seed=6)
    monkeypatch.setenv("SKULENS_PROBE_TOL", "1e-8")
    tight = LinearProbe().fit(X, y)
    assert tight.tol_ == 1e-8 and LinearProbe(tol=1e-3).fit(X, y).tol_ == 1e-3
    monkeypatch.setenv("SKULENS_PROBE_TOL", "fast")
    with pytest.raises(HeadError, match="SKULENS_PROBE_TOL"):
        LinearProbe().fit(X, y)


@pytest.mark.parametrize("solver", ["path", "sklearn"])
def test_a_fixed_C_without_holdout_fits_once_on_every_row(solver):
    X, y = _sparse_texts(300, 500, 4, seed=6)
    with_holdout = LinearProbe(Cs=(3.0,), solver=solver, tol=1e-8, max_iter=20_000).fit(X, y)
    without = LinearProbe(Cs=(3.0,), solver=solver, tol=1e-8, max_iter=20_000, holdout=False).fit(X, y)
    assert len(with_holdout.holdout_rows_) > 0 and len(without.holdout_rows_) == 0 and without.holdout_proba_.shape == (0, 4)
    assert without.C_ == with_holdout.C_ == 3.0
    np.testing.assert_allclose(without.predict_proba(X), with_holdout.predict_proba(X), atol=1e-4)
    searched = LinearProbe(Cs=(1.0, 3.0), holdout=False).fit(X, y)  # a C search always keeps its holdout
    assert len(searched.holdout_rows_) > 0
