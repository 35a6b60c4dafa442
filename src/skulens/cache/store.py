"""EmbeddingCache: the vectors of one encoder identity, looked up by content key.

Folder layout (``<root>/<identity slug>/``): ``identity.json`` (for people), ``index.sqlite`` (key ->
shard row, and the journal of recent vectors; see :mod:`skulens.cache.index`), ``shards/*.npy``
(memory-mapped on read) and ``quarantine/`` (unreadable files set aside). Opening reads no shard;
``put`` buffers in memory, ``flush`` appends the buffer to the journal in one transaction, and the
journal moves into shards when it passes ``journal_rows`` (see :mod:`skulens.cache.compaction`).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
import zlib
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import numpy as np

from skulens.cache.compaction import CompactionResult, compact
from skulens.cache.index import Hit, Index, add_to_journal, drop_shard, journal_rows
from skulens.cache.keys import folder_name
from skulens.cache.shards import ShardError, journal_vector, open_checksums, open_shard, quarantine, with_checksum

#: Bytes of vectors the journal holds before they move into a shard (rows = this / (4 * dim)).
JOURNAL_BYTES = 8 << 20
#: Shards of one size tier that trigger their merge.
FANOUT = 4
#: Shard files kept memory-mapped at once.
OPEN_SHARDS = 64


def _write_identity(folder: Path, identity: str, dim: int) -> None:
    marker = folder / "identity.json"
    if marker.exists():
        return
    fd, temp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump({"identity": identity, "dim": dim}, handle)
    os.replace(temp, marker)


class EmbeddingCache:
    """Vectors of one encoder identity and dimension, keyed by :func:`~skulens.cache.content_key`.

    ``get`` / ``get_many`` look keys up, ``put`` buffers, ``flush`` persists the buffer, ``compact``
    merges storage. Safe to use from several threads, and from several processes at once (one writer
    at a time; readers never wait for it). ``journal_rows`` and ``fanout`` tune compaction.
    """

    def __init__(self, root: str | Path, identity: str, dim: int, journal_rows: int | None = None, fanout: int = FANOUT) -> None:
        self.identity = identity
        self.dim = int(dim)
        self.folder = Path(root) / folder_name(identity, self.dim)
        self.shard_folder = self.folder / "shards"
        self.quarantine_folder = self.folder / "quarantine"
        self.shard_folder.mkdir(parents=True, exist_ok=True)
        _write_identity(self.folder, identity, self.dim)
        self.journal_rows = journal_rows or max(JOURNAL_BYTES // (4 * max(self.dim, 1)), 1)
        self.fanout = fanout
        self._index = Index(self.folder / "index.sqlite", self.quarantine_folder)
        self._pending: dict[str, np.ndarray] = {}
        self._open: OrderedDict[str, tuple[np.ndarray, np.ndarray | None]] = OrderedDict()
        #: Entries found damaged (checksum or size) since this cache was opened; each is encoded again.
        self.corrupt_entries = 0

    # ----- lookups ----------------------------------------------------------------------------
    def __len__(self) -> int:
        unsaved = [key for key in self._pending if not self._index.contains(key)]
        return self._index.count() + len(unsaved)

    def __contains__(self, key: str) -> bool:
        return key in self._pending or self._index.contains(key)

    def get(self, key: str) -> np.ndarray | None:
        vectors, found = self.get_many([key])
        return vectors[0] if found[0] else None

    def get_many(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors, found)``: an ``(n, dim)`` float32 matrix (zero rows where absent) and a bool mask."""
        vectors = np.zeros((len(keys), self.dim), dtype=np.float32)
        found = np.zeros(len(keys), dtype=bool)
        positions: dict[str, list[int]] = defaultdict(list)
        for i, key in enumerate(keys):
            pending = self._pending.get(key)
            if pending is not None:
                vectors[i], found[i] = pending, True
            else:
                positions[key].append(i)
        if positions:
            self._fill(self._index.lookup(list(positions)), positions, vectors, found, retry=True)
        return vectors, found

    def _fill(
        self, hits: list[Hit], positions: dict[str, list[int]], vectors: np.ndarray, found: np.ndarray, retry: bool
    ) -> None:
        by_shard: dict[tuple[int, str, int], list[Hit]] = defaultdict(list)
        damaged: list[tuple[str, int | None]] = []  # (key, shard) of entries whose checksum fails
        for hit in hits:
            if hit.shard is None:
                vector = journal_vector(hit.vector, self.dim) if hit.vector is not None else None
                if vector is None:
                    damaged.append((hit.key, None))
                    continue
                where = positions[hit.key]
                vectors[where], found[where] = vector, True
            elif hit.file is not None:
                by_shard[(hit.shard, hit.file, hit.rows)].append(hit)
        moved: list[str] = []
        for (shard, file, rows), group in by_shard.items():
            try:
                array = self._shard(file, rows)
            except FileNotFoundError:
                if self._index.shard_exists(shard):
                    self._quarantine(shard, file, "file missing")
                else:  # another process compacted it away after our lookup: look again
                    moved += [hit.key for hit in group]
                continue
            except ShardError as exc:
                self._quarantine(shard, file, str(exc))
                continue
            array, sums = array
            if sums is not None:
                good = []
                for hit in group:
                    if zlib.crc32(np.ascontiguousarray(array[hit.row])) == sums[hit.row]:
                        good.append(hit)
                    else:
                        damaged.append((hit.key, shard))
                group = good
                if not group:
                    continue
            where = [(position, hit.row) for hit in group for position in positions[hit.key]]
            targets, rows_read = np.array(where, dtype=np.int64).T
            order = np.argsort(rows_read, kind="stable")  # read the map front to back
            vectors[targets[order]] = array[rows_read[order]]
            found[targets] = True
        if damaged:
            self._forget(damaged)
        if moved and retry:
            self._fill(self._index.lookup(moved), positions, vectors, found, retry=False)

    def _forget(self, damaged: list[tuple[str, int | None]]) -> None:
        """Drop damaged entries from the index (counted, one warning) so that their vectors are encoded
        again and stored afresh."""
        with self._index.writing() as conn:
            for key, shard in damaged:
                if shard is None:
                    conn.execute("DELETE FROM journal WHERE key = ?", (key,))
                else:
                    conn.execute("DELETE FROM entries WHERE key = ? AND shard = ?", (key, shard))
        self.corrupt_entries += len(damaged)
        warnings.warn(
            f"embedding cache of {self.identity}: {len(damaged)} vector(s) failed their checksum; they will be encoded again",
            RuntimeWarning,
            stacklevel=4,
        )

    def _shard(self, file: str, rows: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The shard's rows (memory-mapped) and their checksums (None for a shard written without them)."""
        opened = self._open.get(file)
        if opened is None:
            opened = (open_shard(self.shard_folder / file, rows, self.dim), open_checksums(self.shard_folder / file, rows))
            self._open[file] = opened
            if len(self._open) > OPEN_SHARDS:
                self._open.popitem(last=False)
        else:
            self._open.move_to_end(file)
        return opened

    def _quarantine(self, shard: int, file: str, reason: str) -> None:
        """Drop an unreadable shard's keys from the index and move the file aside; its vectors re-encode."""
        with self._index.writing() as conn:
            still = conn.execute("SELECT 1 FROM shards WHERE id = ? AND file = ?", (shard, file)).fetchone()
            dropped = drop_shard(conn, shard) if still else 0
        self._open.pop(file, None)
        target = quarantine(self.shard_folder / file, self.quarantine_folder)
        self._warn(target, reason, dropped)

    def _warn(self, target: Path, reason: str, dropped: int) -> None:
        warnings.warn(
            f"embedding cache shard {target.name.removesuffix('.corrupt')} of {self.identity} is unusable ({reason}); "
            f"moved to {target}; its {dropped} vector(s) will be encoded again",
            RuntimeWarning,
            stacklevel=3,
        )

    # ----- writes -----------------------------------------------------------------------------
    def put(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Buffer vectors (one row per key) until :meth:`flush`."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(keys), self.dim):
            raise ValueError(f"expected {len(keys)} vectors of dimension {self.dim}, got shape {vectors.shape}")
        for key, vector in zip(keys, vectors):
            self._pending[key] = vector.copy()

    def flush(self) -> None:
        """Persist buffered vectors in one transaction; compacts when the journal is full."""
        if not self._pending:
            return
        keys = list(self._pending)
        with self._index.writing() as conn:
            add_to_journal(conn, keys, [with_checksum(self._pending[key]) for key in keys])
            journal = journal_rows(conn)
        self._pending = {}
        if journal >= self.journal_rows:
            self.compact(min_journal=self.journal_rows)

    def compact(self, full: bool = False, min_journal: int = 1) -> CompactionResult:
        """Flush, move the journal into a shard and merge shards of similar size (``full``: merge all into one)."""
        self.flush()
        result = compact(
            self._index, self.shard_folder, self.quarantine_folder, self.dim, self.journal_rows, self.fanout, min_journal, full
        )
        self.corrupt_entries += result.corrupt_entries
        for file in result.removed:
            self._open.pop(file, None)
        for target, reason, dropped in result.quarantined:
            self._open.pop(target.name.removesuffix(".corrupt"), None)
            self._warn(target, reason, dropped)
        return result

    def shard_files(self) -> list[str]:
        """The shard files the index lists, oldest first."""
        return [file for _, file, _ in self._index.shards()]

    # ----- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Flush and release the index and the memory maps."""
        self.flush()
        self._open.clear()
        self._index.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()
