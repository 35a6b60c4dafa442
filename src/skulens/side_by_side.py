"""Run independent CPU-bound tasks side by side in forked processes, within the thread budget.

Threads do not help where the work holds the GIL (scipy's L-BFGS-B does), so with a thread budget of
two or more, :func:`run_side_by_side` runs the first task in this process and each other one in a forked
child (which shares this process's memory, so inputs are not copied), each with an equal share of the
budget; results come back pickled through a pipe (they never touch a file). With a budget of one,
one task, no ``fork`` on the platform, or PyTorch loaded (a forked child can hang on the thread pool
the parent's PyTorch started), the tasks run one after the other here.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TypeVar

from skulens.threads import THREADS_ENV, apply_thread_budget, thread_budget

T = TypeVar("T")
#: Loaded, these keep tasks in this process: a forked child can hang on the thread pool PyTorch started.
FORK_UNSAFE_MODULES = ("torch",)


class SideBySideError(RuntimeError):
    """A task failed (or its process died) in a forked child."""


def _child(task: Callable[[], T], threads: int, connection) -> None:
    """Run ``task`` with ``threads`` threads and send ``("ok", result)`` or ``("error", traceback)``."""
    os.environ[THREADS_ENV] = str(threads)
    try:
        apply_thread_budget(threads)
        connection.send(("ok", task()))
    except BaseException:  # every failure goes back to the parent, which raises it
        connection.send(("error", traceback.format_exc()))
    finally:
        connection.close()
        os._exit(0)  # no atexit handlers or buffer flushes inherited from the parent


def run_side_by_side(tasks: Sequence[Callable[[], T]], threads: int | None = None) -> list[T]:
    """``[task() for task in tasks]``, computed side by side when the thread budget (``threads``, default
    :func:`~skulens.threads.thread_budget`) allows: up to one process per thread, each task with
    ``budget // processes`` threads."""
    budget = threads or thread_budget()
    processes = min(budget, len(tasks))
    if (
        processes < 2
        or "fork" not in multiprocessing.get_all_start_methods()
        or any(name in sys.modules for name in FORK_UNSAFE_MODULES)
    ):
        return [task() for task in tasks]
    share = budget // processes
    context = multiprocessing.get_context("fork")
    results: list[T] = []
    for start in range(0, len(tasks), processes):
        batch = tasks[start : start + processes]
        children = []
        for task in batch[1:]:
            receive, send = context.Pipe(duplex=False)
            child = context.Process(target=_child, args=(task, share, send), daemon=True)
            child.start()
            send.close()
            children.append((child, receive))
        apply_thread_budget(share)
        try:
            results.append(batch[0]())
        except BaseException:
            for child, receive in children:
                child.terminate()
                child.join()
                receive.close()
            raise
        finally:
            apply_thread_budget(budget)
        for child, receive in children:
            try:
                status, value = receive.recv()
            except EOFError:
                child.join()
                raise SideBySideError(
                    f"a side-by-side task's process ended without a result (exit code {child.exitcode})"
                ) from None
            finally:
                receive.close()
            child.join()
            if status != "ok":
                raise SideBySideError(f"a side-by-side task failed:\n{value}")
            results.append(value)
    return results
