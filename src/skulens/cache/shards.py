"""Shard files: float32 ``(rows, dim)`` arrays in ``.npy`` format, written durably, read memory-mapped.

A shard is written to a temporary file, flushed and fsynced, then renamed into place and the folder
fsynced, so a shard file that exists is complete. Keys live only in the index. Reading maps the file
(``np.load(mmap_mode="r")``, never unpickling) and checks its shape against the index, so a truncated
or foreign file is reported as :class:`ShardError` instead of yielding wrong vectors.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from skulens.errors import SkulensError

SUFFIX = ".npy"
TEMP_SUFFIX = ".tmp"


class ShardError(SkulensError, ValueError):
    """A shard file that cannot be used (truncated, wrong shape or type, unreadable)."""

    code = "cache_shard"


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms without directory handles
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_shard(folder: Path, parts: Iterable[np.ndarray], rows: int, dim: int) -> str:
    """Write the row blocks ``parts`` (``rows`` rows in all) as one new shard; returns its file name.

    Blocks are copied one at a time into a memory-mapped output, so merging large shards needs little
    memory. The file only appears under its final name once it is complete and on disk.
    """
    name = f"shard-{uuid.uuid4().hex}{SUFFIX}"
    temp = folder / f"{name}{TEMP_SUFFIX}"
    try:
        out = np.lib.format.open_memmap(temp, mode="w+", dtype=np.float32, shape=(rows, dim))
        start = 0
        for part in parts:
            out[start : start + len(part)] = part
            start += len(part)
        if start != rows:
            raise ValueError(f"shard expected {rows} rows, got {start}")
        out.flush()
        del out
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, folder / name)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_folder(folder)
    return name


def open_shard(path: Path, rows: int, dim: int) -> np.ndarray:
    """The shard at ``path`` as a read-only memory map of shape ``(rows, dim)``.

    Raises FileNotFoundError when the file is gone and :class:`ShardError` when it is not that array.
    """
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, EOFError, OSError) as exc:
        raise ShardError(f"unreadable: {exc}") from None
    if not isinstance(array, np.ndarray):
        raise ShardError("is not a single .npy array")
    if array.dtype != np.float32 or array.shape != (rows, dim):
        raise ShardError(f"holds {array.dtype} {array.shape}, the index expects float32 {(rows, dim)}")
    return array


def quarantine(path: Path, folder: Path) -> Path:
    """Move a bad shard into ``folder`` (kept for inspection, never read again); returns where it went."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{path.name}.corrupt"
    try:
        os.replace(path, target)
    except FileNotFoundError:
        pass
    return target
