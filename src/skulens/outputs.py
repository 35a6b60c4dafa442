"""Output files every command writes the same way: atomically, locked, and safe to open in a spreadsheet.

- :func:`atomic_file` writes to a unique temporary name in the target's folder, fsyncs it and renames
  it over the target, so a run killed mid-write leaves the previous complete file (or none), never a
  partial one; a full disk is a clear :class:`OutputError` and leaves no temporary file behind.
- :func:`folder_lock` lets one run at a time write an output folder (a second one is refused at once).
- :func:`write_csv` escapes cells a spreadsheet would run as a formula (OWASP "CSV injection": text
  starting with ``= + - @``, a tab or a carriage return gets a leading ``'``) and writes atomically;
  every CSV skulens writes (predictions, issues, duplicates, zero-shot, reviews, audit findings,
  corrections, UI downloads) goes through :func:`csv_safe` or :func:`escape_cell`; the files skulens reads
  back (findings, corrections) are unescaped by :func:`read_escaped_csv` / :func:`unescape_cell`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from skulens.errors import SkulensError

#: First characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: The lock file :func:`folder_lock` holds in an output folder.
LOCK_FILE = ".skulens.lock"


class OutputError(SkulensError, OSError):
    """An output that cannot be written (disk full, folder busy, not writable); the message says what to do."""

    code = "output"


def _formula_like(text: str) -> bool:
    """Text a spreadsheet would run as a formula, or such text already escaped (so that escaping is undone exactly)."""
    return text.lstrip("'").startswith(FORMULA_STARTS)


def escape_cell(value: object) -> object:
    """``value`` with a leading ``'`` when it is text a spreadsheet would run as a formula (or such text with
    leading ``'`` already, so :func:`unescape_cell` gives it back unchanged)."""
    if isinstance(value, str) and _formula_like(value):
        return "'" + value
    return value


def unescape_cell(value: object) -> object:
    """The value :func:`escape_cell` was given (for the CSVs skulens reads back: audit findings, corrections)."""
    if isinstance(value, str) and value.startswith("'") and _formula_like(value[1:]):
        return value[1:]
    return value


def read_escaped_csv(path: str | os.PathLike) -> pd.DataFrame:
    """A CSV written by :func:`write_csv` as text cells (no NaN), column names and cells unescaped."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = frame.rename(columns=unescape_cell)
    return frame.apply(lambda column: column.map(unescape_cell)) if len(frame.columns) else frame


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and column names are escaped with :func:`escape_cell`."""
    safe = frame.rename(columns=lambda c: escape_cell(c) if isinstance(c, str) else c)
    for column in safe.columns:
        if safe[column].dtype == object or isinstance(safe[column].dtype, pd.StringDtype):
            safe[column] = safe[column].map(escape_cell, na_action="ignore")
    return safe


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; when the block succeeds it is fsynced and renamed onto
    ``path`` (atomic on one file system); a block that removes the temporary file writes nothing. On any
    error the temporary file is removed and ``path`` keeps its previous content; a full disk raises
    :class:`OutputError` naming the file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # the permissions a plainly created file gets (mkstemp makes it private)
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        if not temp.exists():
            return
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, target)
        _fsync_folder(target.parent)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutputError(f"no space left on the device writing {target}; free some space and run again") from None
        raise
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_file(path) as temp:
        temp.write_text(text, encoding="utf-8")
    return Path(path)


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` as CSV (no index) to ``path`` atomically, formula-like cells escaped."""
    with atomic_file(path) as temp:
        csv_safe(frame).to_csv(temp, index=False)
    return Path(path)


@contextmanager
def folder_lock(folder: str | os.PathLike, wait: bool = False) -> Iterator[Path]:
    """Hold the lock of output ``folder`` (created if needed) for the block: with ``wait`` until another
    process releases it, else :class:`OutputError` at once when another process holds it. The lock goes
    with the process, so a killed run never leaves it held."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_FILE, "a")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(
                f"another skulens run is writing {folder}; wait for it to finish or choose another output"
            ) from None
        yield folder
    finally:
        handle.close()
