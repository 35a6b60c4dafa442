"""One thread budget for the whole process: BLAS/OpenMP pools, PyTorch and ONNX Runtime all use it.

The budget is ``$SKULENS_THREADS`` when set, else the CPU cores this process may run on. Each library
otherwise sizes its own pool to the machine, and on a machine busy with other jobs the pools (and
their spin-waiting workers) fight over the same cores, which slows a run far more than the load
itself. :func:`apply_thread_budget` is called where encoders and solvers are created; it is cheap
and idempotent, and it touches PyTorch only once PyTorch has been imported by someone else.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

THREADS_ENV = "SKULENS_THREADS"

_lock = threading.Lock()
_applied: dict[str, int] = {}


def available_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def thread_budget() -> int:
    """``$SKULENS_THREADS`` (a positive integer) or the available cores."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        try:
            threads = int(value)
        except ValueError:
            raise ValueError(f"{THREADS_ENV}={value!r} is not a whole number of threads; unset it or use e.g. 2") from None
        if threads < 1:
            raise ValueError(f"{THREADS_ENV}={value!r} must be at least 1")
        return threads
    return available_cores()


def apply_thread_budget(threads: int | None = None) -> int:
    """Limit BLAS/OpenMP pools (threadpoolctl) and PyTorch's intra-op pool to ``threads`` (default:
    :func:`thread_budget`) and return it. Libraries loaded after a first call are limited on the next."""
    threads = threads or thread_budget()
    with _lock:
        if _applied.get("blas") != threads or _applied.get("libraries") != _loaded_libraries():
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=threads)
            _applied["blas"], _applied["libraries"] = threads, _loaded_libraries()
        torch = sys.modules.get("torch")
        if torch is not None and _applied.get("torch") != threads:
            torch.set_num_threads(threads)
            _applied["torch"] = threads
    return threads


def _loaded_libraries() -> int:
    """A cheap stand-in for "which native libraries are loaded": the number of imported modules."""
    return len(sys.modules)


_controllers: dict[int, object] = {}


def _controller():
    """A threadpoolctl controller of the loaded libraries (made again once more modules are imported;
    making one costs ~2 ms, using one ~20 µs)."""
    from threadpoolctl import ThreadpoolController

    loaded = _loaded_libraries()
    with _lock:
        if loaded not in _controllers:
            _controllers.clear()
            _controllers[loaded] = ThreadpoolController()
        return _controllers[loaded]


@contextmanager
def blas_threads(threads: int) -> Iterator[None]:
    """Run the block with BLAS pools limited to ``threads``; the former limits come back afterwards."""
    with _controller().limit(limits=threads, user_api="blas"):
        yield


def ort_session_options(threads: int | None = None):
    """ONNX Runtime session options using ``threads`` intra-op threads (default: the budget), without
    spin-waiting workers (they burn cores other work needs on a busy machine)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or thread_budget()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options
