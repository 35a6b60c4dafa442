"""The persistent index of one cache folder: key -> (shard, row), plus the journal of recent vectors.

Why SQLite (stdlib ``sqlite3``, WAL mode) rather than a sorted key array + ``searchsorted``:

- Opening is constant time: nothing is read until a key is looked up (a B-tree probe per key), so a
  cache of a million vectors opens as fast as an empty one.
- Writes are transactions. A batch of vectors and its index entries commit together or not at all,
  so a process killed mid-write loses at most the batch it was writing, and a shard's entries are
  committed only after the shard file is durable (see :mod:`skulens.cache.compaction`).
- WAL lets readers in other processes go on reading while one writer writes; writers queue on the
  database lock, so two processes embedding the same catalog cannot corrupt it.
- Small writes are cheap: a single product's vector is one row appended to the ``journal`` table
  instead of a new file; compaction later moves journal rows into ``.npy`` shards.

A sorted array would have to be rewritten (or merged from many small arrays) on every flush and needs
its own locking and crash recovery. The cost of SQLite is a B-tree of keys on disk (about 100 bytes
per entry) and no support on network file systems that lack POSIX locks.

Schema: ``shards(id, file, rows)`` lists the ``.npy`` files; ``entries(key, shard, row)`` maps a key to
a row of a shard; ``journal(key, vector)`` holds recent float32 vectors themselves. A key is in one of
the two tables, never both.
"""

from __future__ import annotations

import sqlite3
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

SCHEMA_VERSION = 1
#: Keys per ``IN (...)`` query (below SQLite's smallest default limit of 999 parameters).
LOOKUP_CHUNK = 500
#: Seconds a writer waits for another process's write transaction before giving up.
LOCK_TIMEOUT_S = 300.0

#: Size the write-ahead log is cut back to after a checkpoint.
WAL_BYTES = 16 << 20

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS shards (id INTEGER PRIMARY KEY AUTOINCREMENT, file TEXT NOT NULL UNIQUE, rows INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, shard INTEGER NOT NULL, row INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS journal (key TEXT PRIMARY KEY, vector BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS entries_by_shard ON entries (shard)",
)


class Hit(NamedTuple):
    """Where one key's vector lives: a shard row (``file``, ``row``, ``rows`` of the shard) or a journal blob."""

    key: str
    shard: int | None
    row: int | None
    vector: bytes | None
    file: str | None
    rows: int | None


class Index:
    """One SQLite database per cache folder. All methods are thread-safe (one connection, one lock)."""

    def __init__(self, path: Path, quarantine: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            self._conn = self._connect()
        except sqlite3.OperationalError:  # locked, unreadable folder...: not the file's fault
            raise
        except sqlite3.DatabaseError as exc:  # not a database / malformed: set it aside and start empty
            quarantine.mkdir(parents=True, exist_ok=True)
            for suffix in ("", "-wal", "-shm"):
                part = Path(f"{path}{suffix}")
                if part.exists():
                    part.replace(quarantine / f"{part.name}.corrupt")
            warnings.warn(f"embedding cache index {path} is unreadable ({exc}); moved to {quarantine}", RuntimeWarning, 2)
            self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA journal_size_limit={WAL_BYTES}")
            # Commits reach the OS at once (safe against a killed process); fsync happens at checkpoints.
            conn.execute("PRAGMA synchronous=NORMAL")
            if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                conn.execute("BEGIN IMMEDIATE")
                for statement in SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``: holds the database's single write lock until it ends)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # ----- reads ------------------------------------------------------------------------------
    def lookup(self, keys: Sequence[str]) -> list[Hit]:
        """Where each of ``keys`` lives (absent keys are left out), read from one snapshot."""
        hits: list[Hit] = []
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                for start in range(0, len(keys), LOOKUP_CHUNK):
                    chunk = list(keys[start : start + LOOKUP_CHUNK])
                    marks = ",".join("?" * len(chunk))
                    rows = self._conn.execute(
                        "SELECT e.key, e.shard, e.row, NULL, s.file, s.rows FROM entries e "
                        f"LEFT JOIN shards s ON s.id = e.shard WHERE e.key IN ({marks}) "
                        f"UNION ALL SELECT key, NULL, NULL, vector, NULL, NULL FROM journal WHERE key IN ({marks})",
                        chunk + chunk,
                    )
                    hits.extend(map(Hit._make, rows))
            finally:
                self._conn.execute("COMMIT")
        return hits

    def contains(self, key: str) -> bool:
        with self._lock:
            query = "SELECT EXISTS (SELECT 1 FROM entries WHERE key = ?) OR EXISTS (SELECT 1 FROM journal WHERE key = ?)"
            return bool(self._conn.execute(query, (key, key)).fetchone()[0])

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT (SELECT count(*) FROM entries) + (SELECT count(*) FROM journal)").fetchone()[0])

    def shard_exists(self, shard: int) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM shards WHERE id = ?", (shard,)).fetchone() is not None

    def shards(self) -> list[tuple[int, str, int]]:
        """``(id, file, rows)`` of every shard, oldest first."""
        with self._lock:
            return [tuple(row) for row in self._conn.execute("SELECT id, file, rows FROM shards ORDER BY id")]

    def journal_rows(self) -> int:
        with self._lock:
            return journal_rows(self._conn)


def journal_rows(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM journal").fetchone()[0])


def add_to_journal(conn: sqlite3.Connection, keys: Sequence[str], blobs: Sequence[bytes]) -> None:
    """Insert journal rows (inside a write transaction); a key another writer already stored is kept."""
    conn.executemany(
        "INSERT OR IGNORE INTO journal (key, vector) SELECT ?, ? WHERE NOT EXISTS (SELECT 1 FROM entries WHERE key = ?)",
        ((key, blob, key) for key, blob in zip(keys, blobs)),
    )


def drop_shard(conn: sqlite3.Connection, shard: int) -> int:
    """Remove a shard and its entries from the index (inside a write transaction); returns the entries dropped."""
    dropped = conn.execute("DELETE FROM entries WHERE shard = ?", (shard,)).rowcount
    conn.execute("DELETE FROM shards WHERE id = ?", (shard,))
    return dropped
