"""Where runs go: a tracking URI (from an option, ``MLFLOW_TRACKING_URI`` or ``./mlruns``) and its artifact root.

A plain folder (the default ``./mlruns``, or ``file:`` URIs) becomes a SQLite store inside it,
``<folder>/mlflow.db``, with artifacts in ``<folder>/artifacts`` (MLflow's file-system backend is in
maintenance mode and refuses to start by default). Any other URI (``sqlite:///...``, ``http://...``,
``databricks``) is passed to MLflow as it is.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_STORE = "./mlruns"
#: Seconds a check waits for a SQLite store another process is writing (MLflow's own busy timeout).
BUSY_SECONDS = 20
DEFAULT_EXPERIMENT = "skulens"


@dataclass(frozen=True)
class TrackingStore:
    """A resolved tracking location: the URI MLflow gets and the artifact root for new experiments."""

    uri: str
    artifact_root: str | None
    folder: Path | None = None

    def describe(self) -> str:
        return str(self.folder) if self.folder is not None else self.uri


def _is_local_folder(value: str) -> bool:
    scheme = urlparse(value).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def resolve_store(uri: str | None = None) -> TrackingStore:
    """The store for ``uri``, else ``$MLFLOW_TRACKING_URI``, else ``./mlruns`` (folders are not created here)."""
    value = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_STORE
    if _is_local_folder(value):
        folder = Path(urlparse(value).path if value.startswith("file:") else value).expanduser().resolve()
        return TrackingStore(f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri(), folder)
    if value.startswith("sqlite:///"):
        database = Path(value[len("sqlite:///") :]).expanduser().resolve()
        return TrackingStore(value, (database.parent / "artifacts").as_uri(), database.parent)
    return TrackingStore(value, None)


class TrackingStoreError(OSError):
    """A tracking store that cannot be opened; the message names it and what to do."""


def check_database(store: TrackingStore, write: bool = False) -> None:
    """Open a SQLite store's database once (and, with ``write``, take and release its write lock): MLflow
    retries a database it cannot open for about 100 s, this fails at once with :class:`TrackingStoreError`.
    Other stores are left to MLflow (their HTTP retries and timeouts are kept short by the tracker)."""
    if not store.uri.startswith("sqlite:///"):
        return
    database = store.uri[len("sqlite:///") :]
    try:
        connection = sqlite3.connect(database, timeout=BUSY_SECONDS)
        try:
            connection.execute("PRAGMA schema_version").fetchone()
            if write:
                connection.execute("BEGIN IMMEDIATE")
                connection.rollback()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise TrackingStoreError(
            f"cannot {'write' if write else 'open'} the tracking database {database} ({exc}); make its folder writable, "
            "pass another --tracking-uri, or --no-track"
        ) from None
