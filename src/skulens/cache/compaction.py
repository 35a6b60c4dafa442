"""Compaction: journal rows move into a shard, and shards of similar size merge (size-tiered).

Tier 0 holds shards below ``base * fanout`` rows, tier t those of ``[base * fanout**t, base * fanout**(t+1))``.
When a tier holds ``fanout`` shards they merge into one shard, which lands in a higher tier. Each tier
therefore holds fewer than ``fanout`` shards: a cache of N rows has at most about
``(fanout - 1) * log_fanout(N / base)`` shards, and each vector is rewritten about ``log_fanout(N / base)``
times over the cache's life.

Everything runs inside one write transaction of the index. New shards are written durably before the
entries that point at them are updated, and replaced shard files are deleted only after the commit, so
a process killed at any point leaves the index pointing at complete files. Files a killed compaction
left behind (unreferenced shards, temporary files) are removed by the next compaction, which holds the
write lock and so knows no other writer is producing files.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skulens.cache.index import Index, drop_shard, journal_rows
from skulens.cache.shards import (
    CHECKSUM_SUFFIX,
    SUFFIX,
    TEMP_SUFFIX,
    ShardError,
    journal_vector,
    open_checksums,
    open_shard,
    quarantine,
    row_checksums,
    write_shard,
)

Shard = tuple[int, str, int]  # (id, file, rows)


@dataclass
class CompactionResult:
    """What one compaction did: shards written, shard files removed, shards set aside as unreadable, and
    entries dropped because their checksum failed (they are encoded again when next needed)."""

    written: int = 0
    removed: list[str] = field(default_factory=list)
    quarantined: list[tuple[Path, str, int]] = field(default_factory=list)  # (new place, reason, entries dropped)
    corrupt_entries: int = 0


def tier(rows: int, base: int, fanout: int) -> int:
    """The size tier of a shard of ``rows`` rows (see the module docstring)."""
    level, limit = 0, base * fanout
    while rows >= limit:
        level, limit = level + 1, limit * fanout
    return level


def next_merge(shards: list[Shard], base: int, fanout: int) -> list[Shard] | None:
    """The shards of the lowest tier that holds ``fanout`` or more of them, or None."""
    tiers: dict[int, list[Shard]] = defaultdict(list)
    for shard in shards:
        tiers[tier(shard[2], base, fanout)].append(shard)
    for level in sorted(tiers):
        if len(tiers[level]) >= fanout:
            return tiers[level]
    return None


def _register(conn: sqlite3.Connection, file: str, rows: int) -> int:
    return int(conn.execute("INSERT INTO shards (file, rows) VALUES (?, ?)", (file, rows)).lastrowid)


def _remove_orphans(conn: sqlite3.Connection, folder: Path) -> None:
    known = {row[0] for row in conn.execute("SELECT file FROM shards")}
    for path in folder.iterdir():
        shard_name = path.name.removesuffix(CHECKSUM_SUFFIX)
        if path.name.endswith(TEMP_SUFFIX) or (shard_name.endswith(SUFFIX) and shard_name not in known):
            path.unlink(missing_ok=True)


def _journal_to_shard(conn: sqlite3.Connection, folder: Path, dim: int) -> bool:
    journal = conn.execute("SELECT key, vector FROM journal ORDER BY rowid").fetchall()
    conn.execute("DELETE FROM journal")
    # A vector of another size or with a wrong checksum is dropped: it is encoded again when next needed.
    good = [(key, vector) for key, vector in ((key, journal_vector(blob, dim)) for key, blob in journal) if vector is not None]
    if not good:
        return False
    vectors = np.stack([vector for _, vector in good])
    shard = _register(conn, write_shard(folder, [vectors], len(vectors), dim), len(vectors))
    conn.executemany(
        "INSERT OR IGNORE INTO entries (key, shard, row) VALUES (?, ?, ?)",
        ((key, shard, row) for row, (key, _) in enumerate(good)),
    )
    return True


def _merge(conn: sqlite3.Connection, group: list[Shard], folder: Path, dim: int, result: CompactionResult) -> None:
    """Merge ``group`` into one new shard; unreadable members are dropped from the index instead."""
    readable: list[tuple[Shard, np.ndarray]] = []
    for shard in group:
        try:
            readable.append((shard, open_shard(folder / shard[1], shard[2], dim)))
        except (ShardError, FileNotFoundError) as exc:
            result.quarantined.append((folder / shard[1], str(exc), drop_shard(conn, shard[0])))
    if not readable:
        return
    for (shard_id, file, rows), array in readable:  # rows whose checksum fails are dropped, not merged as good
        sums = open_checksums(folder / file, rows)
        if sums is not None:
            bad = np.flatnonzero(row_checksums(array) != sums)
            conn.executemany("DELETE FROM entries WHERE shard = ? AND row = ?", ((shard_id, int(r)) for r in bad))
            result.corrupt_entries += len(bad)
    total = sum(len(array) for _, array in readable)
    merged = _register(conn, write_shard(folder, [array for _, array in readable], total, dim), total)
    result.written += 1
    offset = 0
    for (shard_id, file, rows), _ in readable:
        conn.execute("UPDATE entries SET shard = ?, row = row + ? WHERE shard = ?", (merged, offset, shard_id))
        conn.execute("DELETE FROM shards WHERE id = ?", (shard_id,))
        result.removed.append(file)
        offset += rows


def compact(
    index: Index,
    folder: Path,
    quarantine_folder: Path,
    dim: int,
    base: int,
    fanout: int,
    min_journal: int = 1,
    full: bool = False,
) -> CompactionResult:
    """Move the journal into a shard (when it holds ``min_journal`` rows or more) and merge shard tiers.

    ``full=True`` merges every shard into one. Replaced files are deleted and unreadable ones moved to
    ``quarantine_folder`` after the commit.
    """
    result = CompactionResult()
    with index.writing() as conn:
        _remove_orphans(conn, folder)
        if journal_rows(conn) >= max(min_journal, 1):
            result.written += _journal_to_shard(conn, folder, dim)
        while True:
            shards: list[Shard] = [tuple(row) for row in conn.execute("SELECT id, file, rows FROM shards ORDER BY id")]
            group = (shards if len(shards) > 1 else None) if full else next_merge(shards, base, fanout)
            if not group:
                break
            _merge(conn, group, folder, dim, result)
            if full:
                break
    for file in result.removed:
        try:
            (folder / file).unlink(missing_ok=True)
            (folder / f"{file}{CHECKSUM_SUFFIX}").unlink(missing_ok=True)
        except OSError:  # still mapped on a platform that forbids deleting it: the next compaction retries
            pass
    result.quarantined = [(quarantine(path, quarantine_folder), reason, n) for (path, reason, n) in result.quarantined]
    return result
