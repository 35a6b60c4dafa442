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
