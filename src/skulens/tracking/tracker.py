"""Trackers: ``MlflowTracker`` logs runs to an MLflow store, ``NoopTracker`` does nothing.

Both have the same small interface: ``start_run(name, params)`` (a context manager yielding the run
id or None), ``log_metrics``, ``log_artifacts(folder)`` and ``register_model(name, folder)``. A model
is registered as the plain files of its folder (no pickle flavour). Tracking never stops the work it
records: the first failure (unreachable server, unwritable folder, bad URI) is reported once as a
warning and the tracker turns itself off; the caller's model and outputs are untouched.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from skulens.extras import installed, require_extra
from skulens.tracking.store import DEFAULT_EXPERIMENT, TrackingStore, check_database, resolve_store

MAX_PARAM_LENGTH = 500
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")


def _warn_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level with dotted keys; keys cleaned to what MLflow accepts."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = _KEY_CHARS.sub("_", f"{prefix}{key}")
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a (nested) metrics mapping; booleans, strings, lists and NaN are left out."""
    out = {}
    for key, value in flatten(metrics).items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


def param_strings(params: Mapping[str, Any]) -> dict[str, str]:
    """Parameters as strings, lists joined by commas, cut to MLflow's length limit."""
    out = {}
    for key, value in flatten(params).items():
        text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
        out[key] = text[:MAX_PARAM_LENGTH]
    return out


class Tracker(Protocol):
    """What commands call to record a run."""

    def start_run(self, name: str, params: Mapping[str, Any] | None = None) -> Any: ...

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None: ...

    def log_artifacts(self, folder: str | Path, path: str | None = None) -> None: ...

    def register_model(self, name: str, folder: str | Path) -> str | None: ...


class NoopTracker:
    """A tracker that records nothing (``--no-track``)."""

    enabled = False
    run_id: str | None = None

    @contextmanager
    def start_run(self, name: str, params: Mapping[str, Any] | None = None) -> Iterator[None]:
        yield None

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        return None

    def log_artifacts(self, folder: str | Path, path: str | None = None) -> None:
        return None

    def register_model(self, name: str, folder: str | Path) -> str | None:
        return None


class MlflowTracker:
    """Logs runs to an MLflow store through ``MlflowClient`` (no global MLflow state is touched)."""

    def __init__(
        self,
        store: TrackingStore | str | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
        warn: Callable[[str], None] = _warn_stderr,
    ) -> None:
        self.store = store if isinstance(store, TrackingStore) else resolve_store(store)
        self.experiment = experiment
        self.warn = warn
        self.enabled = True
        self.run_id: str | None = None
        self._client: Any = None

    def _guard(self, what: str, action: Callable[[], Any]) -> Any:
        """Run ``action``; on any error warn once, turn tracking off and return None."""
        if not self.enabled:
            return None
        try:
            return action()
        except Exception as exc:  # noqa: BLE001 - tracking must never stop the run it records
            self.enabled = False
            self.warn(
                f"MLflow tracking to {self.store.describe()} failed while trying to {what} ({type(exc).__name__}: {exc}); "
                "tracking is off for the rest of this run, the model and outputs are kept"
            )
            return None

    def client(self) -> Any:
        if self._client is None:
            for name in ("mlflow", "alembic"):
                logging.getLogger(name).setLevel(logging.WARNING)
            for variable, value in HTTP_DEFAULTS.items():  # an unreachable server fails in seconds, not minutes
                os.environ.setdefault(variable, value)
            from mlflow import MlflowClient

            if self.store.folder is not None:
                self.store.folder.mkdir(parents=True, exist_ok=True)
            check_database(self.store, write=True)  # a read-only store fails now, not after MLflow's retries
            self._client = MlflowClient(tracking_uri=self.store.uri, registry_uri=self.store.uri)
        return self._client

    def _experiment_id(self) -> str:
        client = self.client()
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        return client.create_experiment(self.experiment, artifact_location=self.store.artifact_root)

    def _start(self, name: str, params: Mapping[str, Any] | None) -> str:
        from mlflow.entities import Param

        client = self.client()
        run = client.create_run(self._experiment_id(), run_name=name, tags={"skulens.command": name})
        strings = param_strings(params or {})
        if strings:
            client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in strings.items()])
        return run.info.run_id

    @contextmanager
    def start_run(self, name: str, params: Mapping[str, Any] | None = None) -> Iterator[str | None]:
        """A run named ``name`` with ``params``; marked FINISHED, or FAILED when the block raises."""
        self.run_id = self._guard("start a run", lambda: self._start(name, params))
        try:
            yield self.run_id
        except BaseException:
            self._end("FAILED")
            raise
        self._end("FINISHED")

    def _end(self, status: str) -> None:
        run_id = self.run_id
        if run_id is not None:
            self._guard("end the run", lambda: self.client().set_terminated(run_id, status))
        self.run_id = None

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log the finite numbers of ``metrics`` (nested keys joined by dots)."""
        run_id = self.run_id
        values = numeric_metrics(metrics)
        if run_id is None or not values:
            return

        def log() -> None:
            import time

            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            batch = [Metric(k, v, now, step or 0) for k, v in values.items()]
            for start in range(0, len(batch), 1000):
                self.client().log_batch(run_id, metrics=batch[start : start + 1000])

        self._guard("log metrics", log)

    def log_artifacts(self, folder: str | Path, path: str | None = None) -> None:
        """Copy the files of ``folder`` into the run's artifacts (under ``path`` when given)."""
        run_id = self.run_id
        if run_id is None:
            return
        self._guard(f"log artifacts from {folder}", lambda: self.client().log_artifacts(run_id, str(folder), path))

    def register_model(self, name: str, folder: str | Path) -> str | None:
        """Log ``folder`` as the run's ``model`` artifacts and register them as a new version of ``name``."""
        run_id = self.run_id
        if run_id is None:
            return None

        def register() -> str:
            from mlflow.exceptions import MlflowException

            client = self.client()
            client.log_artifacts(run_id, str(folder), "model")
            try:
                client.create_registered_model(name)
            except MlflowException as exc:
                if "already exists" not in str(exc).lower():
                    raise
            source = f"{client.get_run(run_id).info.artifact_uri}/model"
            return str(client.create_model_version(name, source=source, run_id=run_id).version)

        return self._guard(f"register model '{name}'", register)


def make_tracker(
    enabled: bool = True,
    uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    warn: Callable[[str], None] = _warn_stderr,
    required: bool = False,
) -> MlflowTracker | NoopTracker:
    """The tracker a command uses: MLflow at ``uri`` (see :func:`resolve_store`) or a no-op one.

    Without MLflow (the ``track`` extra) tracking that is only on by default turns off with a warning; tracking
    asked for (``required``: a store or a registry name was given) raises :class:`~skulens.extras.MissingExtraError`.
    """
    if not enabled:
        return NoopTracker()
    if not installed("mlflow"):
        if required:
            require_extra("track", feature="MLflow tracking")
        warn("this run is not tracked: MLflow is not installed (pip install 'skulens[track]', or pass --no-track)")
        return NoopTracker()
    return MlflowTracker(uri, experiment, warn)
