"""The process thread budget: ``$SKULENS_THREADS`` or the available cores, applied to BLAS and PyTorch."""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_info

from skulens.threads import THREADS_ENV, apply_thread_budget, available_cores, thread_budget


def test_budget_defaults_to_available_cores(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert thread_budget() == available_cores() >= 1


def test_budget_from_environment_limits_blas_and_torch(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv(THREADS_ENV, "1")
    try:
        assert apply_thread_budget() == 1
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    finally:
        apply_thread_budget(before)


@pytest.mark.parametrize("value", ["two", "0", "-3"])
def test_bad_budget_is_refused_with_the_variable_named(monkeypatch, value):
    monkeypatch.setenv(THREADS_ENV, value)
    with pytest.raises(ValueError, match=THREADS_ENV):
        thread_budget()


def test_onnx_runtime_options_use_the_budget(monkeypatch):
    pytest.importorskip("onnxruntime")
    from skulens.threads import ort_session_options

    monkeypatch.setenv(THREADS_ENV, "3")
    options = ort_session_options()
    assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1


def _blas_threads_now() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_blas_threads_limits_the_block_and_restores_the_budget(monkeypatch):
    from skulens.threads import blas_threads

    monkeypatch.setenv(THREADS_ENV, "2")
    apply_thread_budget()
    try:
        before = _blas_threads_now()
        with blas_threads(1):
            assert _blas_threads_now() == {1}
        assert _blas_threads_now() == before
    finally:
        apply_thread_budget(available_cores())


@pytest.mark.parametrize("sparse", [True, False])
def test_lbfgs_steps_run_on_one_blas_thread_and_dense_products_on_the_budget(monkeypatch, sparse):
    """The solver's own vector steps on one thread; a dense objective's matrix products on the budget."""
    import numpy as np
    import scipy.sparse as sp

    from skulens.heads import solver

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 8))
    y = (X[:, 0] > 0).astype(int)
    X = sp.csr_matrix(X) if sparse else X
    seen = {"solver": set(), "objective": set()}
    minimize, make_objective = solver.minimize, solver._objective

    def recording_objective(*args):
        loss_grad = make_objective(*args)

        def objective(flat):
            seen["objective"] |= _blas_threads_now()
            return loss_grad(flat)

        return objective

    def recording_minimize(fun, x0, **options):
        seen["solver"] |= _blas_threads_now()
        return minimize(fun, x0, **options)

    monkeypatch.setattr(solver, "_objective", recording_objective)
    monkeypatch.setattr(solver, "minimize", recording_minimize)
    monkeypatch.setenv(THREADS_ENV, "2")
    apply_thread_budget()
    try:
        fit = solver.fit_logistic(solver.as_float64(X), y, 2, 1.0, np.ones(len(y)))
    finally:
        apply_thread_budget(available_cores())
    assert fit.n_iter > 0
    assert seen["solver"] == {1}
    assert seen["objective"] == ({1} if sparse else {2})
