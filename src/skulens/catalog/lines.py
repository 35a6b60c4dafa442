"""1-based file line numbers of a table's records, so messages can say "line 358" where an editor shows it.

CSV/TSV: the header is line 1; a record normally starts on line ``row + 2``, but quoted values with line
breaks and blank lines (which pandas skips) move later records down, so such files are followed record by
record with the :mod:`csv` module. JSON Lines: the line of each non-blank line. Other formats (Parquet, a
JSON array) have no lines: ``None``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

#: Bytes read at a time while counting a file's lines.
_BLOCK = 1 << 20


def _count_newlines(path: Path) -> tuple[int, bool]:
    """(number of ``\\n`` in the file, whether it ends with one)."""
    count, last = 0, b""
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            count += block.count(b"\n")
            last = block[-1:]
    return count, last == b"\n"


def _csv_record_lines(path: Path, delimiter: str) -> list[int]:
    """The line each data record of a CSV starts on, blank lines skipped as pandas skips them."""
    starts: list[int] = []
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        next(reader, None)  # the header
        end = reader.line_num
        for record in reader:
            if any(cell.strip() for cell in record):
                starts.append(end + 1)
            end = reader.line_num
    return starts


def _jsonl_record_lines(path: Path) -> list[int]:
    with open(path, "rb") as handle:
        return [number for number, line in enumerate(handle, start=1) if line.strip()]


def record_lines(path: str | Path, rows: int) -> np.ndarray | None:
    """The 1-based line each of the ``rows`` records read from ``path`` starts on, or None when the
    format has no lines (or the records cannot be matched to lines)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        newlines, ends_with_newline = _count_newlines(path)
        if newlines + (0 if ends_with_newline else 1) == rows + 1:  # one record per line: the common case
            return np.arange(2, rows + 2, dtype=np.int64)
        starts = _csv_record_lines(path, "\t" if suffix == ".tsv" else ",")
    elif suffix in (".jsonl", ".ndjson"):
        starts = _jsonl_record_lines(path)
    else:
        return None
    return np.asarray(starts, dtype=np.int64) if len(starts) == rows else None
