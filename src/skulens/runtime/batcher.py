"""A micro-batching worker: one thread runs a model for everything submitted to it."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any


class MicroBatcher:
    """One worker thread runs ``fn(items) -> results`` for everything submitted.

    The worker takes whatever has queued up while it was busy (up to ``max_batch``) and runs it as one
    batch; a lone request is run at once, so batching adds no latency to a single client. Model calls
    are serialised through this one thread, so no lock is needed around the predictor. Each finished
    future carries ``compute_ms`` and ``batch_size`` (the service reports them in ``Server-Timing``).
    """

    _STOP = object()

    def __init__(self, fn: Callable[[list], list], max_batch: int = 32, name: str = "model") -> None:
        self.fn, self.max_batch = fn, max_batch
        self.name = name
        self.queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self._ensure_worker()

    def _ensure_worker(self) -> None:
        """(Re)start the worker thread; after :meth:`close` (e.g. an ASGI shutdown) the next submit revives it."""
        with self._lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name=f"skulens-{self.name}", daemon=True)
                self.thread.start()

    def submit(self, item: Any) -> Future:
        self._ensure_worker()
        future: Future = Future()
        self.queue.put((item, future))
        return future

    def __call__(self, items: Sequence[Any]) -> list:
        """Run ``items`` through the worker and wait (for callers that are threads themselves)."""
        futures = [self.submit(item) for item in items]
        return [f.result() for f in futures]

    def _next_batch(self) -> list | None:
        """The queued requests to run together; ``None`` when the worker should stop."""
        first = self.queue.get()
        if first is self._STOP:
            return None if self.queue.empty() else []  # requests that arrived after the stop are served first
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                nxt = self.queue.get_nowait()
            except queue.Empty:
                break
            if nxt is self._STOP:
                self.queue.put(nxt)
                break
            batch.append(nxt)
        # Requests whose caller went away (cancelled futures) are dropped, not computed.
        return [(item, future) for item, future in batch if future.set_running_or_notify_cancel()]

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            if not batch:
                continue
            started = time.perf_counter()
            try:
                results = self.fn([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"model returned {len(results)} results for {len(batch)} inputs")
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting request
                for _, future in batch:
                    future.set_exception(exc)
                continue
            compute_ms = (time.perf_counter() - started) * 1000
            for (_, future), result in zip(batch, results):
                future.compute_ms, future.batch_size = compute_ms, len(batch)
                future.set_result(result)

    def close(self) -> None:
        """Stop the worker after the requests already queued."""
        if self.thread is not None and self.thread.is_alive():
            self.queue.put(self._STOP)
            self.thread.join(timeout=5)
