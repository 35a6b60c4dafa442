"""Corrections files: a person's fixes to a catalog (``id, column, old, new, source``), applied before training.

``column`` is what ``--label`` accepts: a category level (``0`` = coarsest; the path is cut after the
corrected level, since deeper levels belonged to the old category) or the name of any column. A row
naming an id or column the catalog does not have, or whose ``old`` no longer matches the catalog, is
refused and reported (a :class:`RowIssue`); the other rows are applied.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from skulens.catalog.schema import Catalog, CatalogError, RowIssue, _label_text
from skulens.outputs import escape_cell, read_escaped_csv

COLUMNS = ("id", "column", "old", "new", "source")


@dataclass
class Applied:
    """The corrected catalog, how many corrections were applied, and the refused rows."""

    catalog: Catalog
    applied: int
    refused: list[RowIssue] = field(default_factory=list)


def read_corrections(path: str | Path) -> pd.DataFrame:
    """The corrections file as text columns :data:`COLUMNS` (a missing file is an error naming it)."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"corrections file '{path}' does not exist; write one with `skulens audit` or the UI's audit page")
    frame = read_escaped_csv(path)
    missing = [c for c in COLUMNS[:4] if c not in frame.columns]
    if missing:
        raise CatalogError(f"corrections file '{path}' lacks column(s) {', '.join(missing)}; it needs: {', '.join(COLUMNS)}")
    if "source" not in frame.columns:
        frame["source"] = ""
    return frame[list(COLUMNS)]


def append_corrections(path: str | Path, rows: list[dict]) -> Path:
    """Append corrections (dicts with :data:`COLUMNS`) to ``path``, writing the header when the file is new."""
    path = Path(path)
    new = not path.exists() or path.stat().st_size == 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        if new:
            writer.writeheader()
        for row in rows:
            # formula-like cells escaped for spreadsheets; read_corrections gives them back unchanged
            writer.writerow({c: "" if row.get(c) is None else escape_cell(str(row.get(c))) for c in COLUMNS})
    return path


def _current(frame: pd.DataFrame, row: int, column: str) -> str | None:
    if column.isdigit():
        path = frame.at[row, "category"]
        level = int(column)
        return str(path[level]) if isinstance(path, tuple) and len(path) > level else None
    return _label_text(frame.at[row, column])


def apply_corrections(catalog: Catalog, corrections: pd.DataFrame, source_name: str = "corrections") -> Applied:
    """A copy of ``catalog`` with ``corrections`` applied in file order (a later row sees earlier fixes)."""
    frame = catalog.frame.copy()
    position = {row_id: i for i, row_id in enumerate(frame["id"])}
    refused: list[RowIssue] = []
    applied = 0
    for line, fix in enumerate(corrections.itertuples(index=False), start=2):  # line 1 is the header
        row_id, column, old, new = str(fix.id).strip(), str(fix.column).strip(), str(fix.old).strip(), str(fix.new).strip()

        def refuse(message: str, row_id: str = row_id, line: int = line) -> None:
            refused.append(RowIssue(line, row_id, "corrections", f"{source_name} line {line}: {message}; not applied", line))

        if row_id not in position:
            refuse(f"id '{row_id}' is not in catalog '{catalog.name}'")
            continue
        if column.isdigit() and "category" not in frame.columns:
            refuse(f"catalog '{catalog.name}' has no category path for level {column}")
            continue
        if not column.isdigit() and (column not in frame.columns or column in ("id", "category")):
            refuse(f"column '{column}' cannot be corrected (catalog columns: {', '.join(map(str, frame.columns))})")
            continue
        if not new:
            refuse("the new value is empty")
            continue
        row = position[row_id]
        current = _current(frame, row, column)
        if old and current != old:
            refuse(f"'{column}' of id '{row_id}' is now {current!r}, not {old!r} (stale correction)")
            continue
        if column.isdigit():
            level = int(column)
            path = frame.at[row, "category"]
            path = tuple(path) if isinstance(path, tuple) else ()
            if len(path) < level:
                refuse(f"id '{row_id}' has no category at level {level - 1} to put level {level} under")
                continue
            frame.at[row, "category"] = path[:level] + (new,)
        else:
            frame.at[row, column] = new
        applied += 1
    corrected = Catalog(
        frame,
        root=catalog.root,
        name=catalog.name,
        issues=list(catalog.issues) + refused,
        image_roots=catalog.image_roots,
        mapping=catalog.mapping,
        source_rows=catalog.source_rows,
        category_sep=catalog.category_sep,
        source_lines=catalog.source_lines,
    )
    return Applied(corrected, applied, refused)
