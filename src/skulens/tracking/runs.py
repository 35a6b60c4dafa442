"""Read tracked runs back: a table of runs, a side-by-side comparison, and the MLflow UI command."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from skulens.errors import SkulensError
from skulens.extras import require_extra
from skulens.tracking.store import DEFAULT_EXPERIMENT, TrackingStore, TrackingStoreError, check_database, resolve_store
from skulens.tracking.tracker import HTTP_DEFAULTS

#: Metrics shown first by ``list_runs`` when a run has them.
PREFERRED_METRICS = ("macro_f1", "accuracy", "ece", "star_accuracy", "star_macro_f1", "rating_mae", "recommend_auc")


class RunsError(SkulensError, ValueError):
    """A store, experiment or run that cannot be read; the message says what to check."""

    code = "runs"


def _client(store: TrackingStore):
    require_extra("track", feature="reading tracked runs")
    import os

    for variable, value in HTTP_DEFAULTS.items():  # an unreachable server fails in seconds, not minutes
        os.environ.setdefault(variable, value)
    from mlflow import MlflowClient

    if store.folder is not None and not (store.folder / "mlflow.db").is_file() and store.uri.startswith("sqlite:///"):
        raise RunsError(f"no tracking store at {store.folder}; train or benchmark with tracking on first, or pass --tracking-uri")
    try:
        check_database(store)
    except TrackingStoreError as exc:
        raise RunsError(str(exc)) from None
    return MlflowClient(tracking_uri=store.uri, registry_uri=store.uri)


def list_runs(
    uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT, max_results: int = 50, metrics: int = 3
) -> pd.DataFrame:
    """The newest runs of ``experiment``: id, name, status, start time and up to ``metrics`` metrics each
    (:data:`PREFERRED_METRICS` first)."""
    store = resolve_store(uri)
    client = _client(store)
    try:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise RunsError(f"experiment '{experiment}' not found in {store.describe()}")
        runs = client.search_runs([found.experiment_id], max_results=max_results, order_by=["attribute.start_time DESC"])
    except RunsError:
        raise
    except Exception as exc:  # noqa: BLE001 - MLflow and HTTP errors alike: the store cannot be read
        raise RunsError(
            f"cannot read {store.describe()} ({type(exc).__name__}); check --tracking-uri and that the server runs"
        ) from None
    rows = []
    for run in runs:
        row = {
            "run_id": run.info.run_id,
            "name": run.info.run_name,
            "status": run.info.status,
            "started": pd.Timestamp(run.info.start_time, unit="ms").strftime("%Y-%m-%d %H:%M:%S"),
        }
        keys = [k for k in PREFERRED_METRICS if k in run.data.metrics] + sorted(set(run.data.metrics) - set(PREFERRED_METRICS))
        for key in keys[:metrics]:
            row[key] = run.data.metrics[key]
        rows.append(row)
    return pd.DataFrame(rows)


def compare_runs(run_ids: list[str], uri: str | None = None, only_differences: bool = False) -> pd.DataFrame:
    """Params and metrics of ``run_ids`` side by side: one row per key (``param.x`` / ``metric.y``), one column per run."""
    if len(run_ids) < 2:
        raise RunsError("compare needs at least two run ids; list them with `skulens runs list`")
    store = resolve_store(uri)
    client = _client(store)
    columns = {}
    for run_id in run_ids:
        try:
            run = client.get_run(run_id)
        except Exception as exc:  # noqa: BLE001 - MLflow raises several types for a missing run
            raise RunsError(f"run '{run_id}' not found in {store.describe()}: {exc}") from None
        values: dict[str, object] = {"name": run.info.run_name, "status": run.info.status}
        values.update({f"param.{k}": v for k, v in run.data.params.items()})
        values.update({f"metric.{k}": v for k, v in run.data.metrics.items()})
        columns[f"{run.info.run_name} ({run_id[:8]})"] = values
    table = pd.DataFrame(columns)
    table = table.loc[sorted(table.index, key=lambda key: (not str(key).startswith(("name", "status")), str(key)))]
    if only_differences:
        differs = table.astype(str).nunique(axis=1) > 1
        table = table[differs | table.index.isin(["name"])]
    table.index.name = "key"
    return table


def ui_command(uri: str | None = None, port: int = 5000) -> list[str]:
    """The ``mlflow ui`` command for the store, bound to 127.0.0.1 only."""
    store = resolve_store(uri)
    executable = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow")
    base = [executable] if executable else [sys.executable, "-m", "mlflow"]
    command = base + ["ui", "--backend-store-uri", store.uri, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    if store.artifact_root is not None:
        command += ["--default-artifact-root", store.artifact_root]
    return command


def start_ui(uri: str | None = None, port: int = 5000) -> int:
    """Run the MLflow UI in the foreground until interrupted; returns its exit code."""
    require_extra("track", feature="the MLflow UI")
    try:
        return subprocess.call(ui_command(uri, port))
    except KeyboardInterrupt:
        return 0
