"""Tracking options shared by the training and benchmark commands, and the tracker they build."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from skulens.cli.output import note, warn

if TYPE_CHECKING:
    from skulens.tracking import MlflowTracker, NoopTracker

TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        metavar="URI",
        help="MLflow store: a folder (SQLite inside), sqlite:///file.db or http://server. "
        "Default: $MLFLOW_TRACKING_URI, else ./mlruns.",
        show_default=False,
    ),
]
NoTrack = Annotated[
    bool,
    typer.Option(
        "--no-track", envvar="SKULENS_NO_TRACK", metavar="", help="Do not log this run to MLflow (or set SKULENS_NO_TRACK=1)."
    ),
]
Register = Annotated[
    str | None,
    typer.Option(
        "--register", metavar="NAME", help="Register the trained model folder in the MLflow model registry.", show_default=False
    ),
]


def make_cli_tracker(no_track: bool, tracking_uri: str | None, register: str | None = None) -> MlflowTracker | NoopTracker:
    """The tracker a command uses; its failures are printed as warnings and never stop the command.
    ``--tracking-uri`` or ``--register`` without MLflow installed is an error naming the ``track`` extra."""
    from skulens.tracking import make_tracker

    required = tracking_uri is not None or register is not None
    return make_tracker(enabled=not no_track, uri=tracking_uri, warn=warn, required=required)


def store_option(tracker: MlflowTracker) -> str:
    """`` --tracking-uri X`` for commands that must find this store again ('' for the default ./mlruns)."""
    folder = tracker.store.folder
    if folder is not None and folder == Path("mlruns").resolve():
        return ""
    return f" --tracking-uri {folder if folder is not None else tracker.store.uri}"


def report_run(tracker: MlflowTracker | NoopTracker, run_id: str | None, version: str | None = None) -> None:
    """Say where the run went and how to look at it."""
    if run_id is None or not tracker.enabled:
        return
    option = store_option(tracker)
    registered = f"; registered as version {version}" if version else ""
    note(
        f"MLflow run {run_id} logged to {tracker.store.describe()}{registered}; "
        f"see it with `skulens runs list{option}` or `skulens runs ui{option}`"
    )


class RunLog:
    """What a command records inside :func:`tracked_run`: metrics, report folders and the model folder."""

    def __init__(self, tracker: MlflowTracker | NoopTracker, register: str | None) -> None:
        self.tracker = tracker
        self.register = register
        self.version: str | None = None

    def metrics(self, metrics: Mapping[str, Any]) -> None:
        self.tracker.log_metrics(metrics)

    def artifacts(self, folder: Path, path: str | None = None) -> None:
        if folder.is_dir():
            self.tracker.log_artifacts(folder, path)

    def model(self, folder: Path) -> None:
        """Log the model folder as the run's ``model`` artifacts, registered under ``--register NAME`` if given."""
        if self.register:
            self.version = self.tracker.register_model(self.register, folder)
        else:
            self.tracker.log_artifacts(folder, "model")


@contextmanager
def tracked_run(
    name: str, params: Mapping[str, Any], no_track: bool, tracking_uri: str | None, register: str | None = None
) -> Iterator[RunLog]:
    """An MLflow run around a command's work (a no-op with ``--no-track``); prints where it went at the end."""
    tracker = make_cli_tracker(no_track, tracking_uri, register)
    log = RunLog(tracker, register)
    with tracker.start_run(name, params) as run_id:
        yield log
    report_run(tracker, run_id, log.version)
