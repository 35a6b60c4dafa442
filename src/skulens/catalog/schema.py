"""The one catalog type every skulens layer works on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from skulens.errors import SkulensError
from skulens.outputs import write_csv

#: The documented columns. Only ``id`` is required; every other column is optional.
#: ``category`` holds a tuple of levels (coarse to fine), e.g. ``("Home Furnishing", "Curtains")``.
SCHEMA_COLUMNS: tuple[str, ...] = (
    "id",
    "title",
    "description",
    "image",
    "category",
    "rating",
    "review_text",
)


#: Optional columns beyond the schema that a task reads when present, mappable like schema columns:
#: ``recommended`` (would the reviewer recommend the product: 1/0, yes/no, true/false).
EXTRA_COLUMNS: tuple[str, ...] = ("recommended",)
#: The star scale of the ``rating`` column.
RATING_RANGE = (1, 5)


class CatalogError(SkulensError, ValueError):
    """Raised for input that cannot be turned into a catalog; the message says how to fix it."""

    code = "catalog"


@dataclass(frozen=True)
class RowIssue:
    """One problem found in one row; the row is skipped or a field is dropped, never the run.

    ``row`` is the 0-based row of the source table; ``line`` the 1-based line of the file it starts on
    (CSV/TSV, JSON Lines; ``None`` for sources without lines), the number messages show.
    """

    row: int
    id: str | None
    column: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else f"row {self.row}"
        who = where + (f" (id {self.id})" if self.id is not None else "")
        return f"{who}, column '{self.column}': {self.message}"


#: The columns of an issues file: ``row`` 0-based in the source table, ``line`` 1-based in the file.
ISSUE_FILE_COLUMNS = ["row", "line", "id", "column", "message"]


def write_issues(issues: Iterable[RowIssue], path: str | Path) -> Path:
    """Write row issues as CSV (row, line, id, column, message)."""
    frame = pd.DataFrame([vars(issue) for issue in issues], columns=ISSUE_FILE_COLUMNS)
    frame["line"] = frame["line"].astype("Int64")  # whole numbers, blank where the source has no lines
    return write_csv(frame, path)


#: Separators a category path may be written with, in the order they are tried (``>>`` before its prefix ``>``).
CATEGORY_SEPARATORS = (">>", ">", "|", "/")


def _label_text(value: object) -> str | None:
    """A label value as text: paths joined with ``>>``, whole numbers without ``.0``, blanks as ``None``."""
    if isinstance(value, (tuple, list)):
        return " >> ".join(map(str, value)) or None
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


@dataclass(frozen=True)
class ColumnMapping:
    """How a file's columns became schema columns.

    ``given`` and ``detected`` map schema name -> source column (from the user's mapping, or found by
    a common name such as ``product_name`` -> ``title``); ``ignored`` maps each source column the
    reader does not use as a schema column to the reason.
    """

    given: dict[str, str] = field(default_factory=dict)
    detected: dict[str, str] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)


@dataclass
class Catalog:
    """A table of products (or reviews) in the skulens schema.

    ``frame`` has the columns of :data:`SCHEMA_COLUMNS` that the source provides, plus any extra
    columns the adapter keeps (e.g. ``recommended``). ``root`` is the folder relative image paths are
    resolved against; ``image_roots`` (``root`` first, then any folder the user declared) are the only
    folders images are read from, after resolving symlinks. ``issues`` lists rows that were skipped or
    fields that were dropped while the catalog was built; ``mapping`` says where its columns came from.
    ``source_rows[i]`` is the row number (0-based) of row ``i`` in the source table, the number its
    issues carry (default: the position); ``source_lines[r]`` is the 1-based file line source row ``r``
    starts on (None for sources without lines).
    """

    frame: pd.DataFrame
    root: Path | None = None
    name: str = "catalog"
    issues: list[RowIssue] = field(default_factory=list)
    image_roots: tuple[Path, ...] = ()
    mapping: ColumnMapping = field(default_factory=ColumnMapping)
    source_rows: list[int] | None = None
    category_sep: str = ">>"
    source_lines: np.ndarray | None = None

    def __post_init__(self) -> None:
        if "id" not in self.frame.columns:
            raise CatalogError(f"catalog '{self.name}' has no 'id' column; map one with columns={{'id': '<your id column>'}}")
        self.frame = self.frame.reset_index(drop=True)
        if self.source_rows is None or len(self.source_rows) != len(self.frame):
            self.source_rows = list(range(len(self.frame)))
        self.frame["id"] = self.frame["id"].astype(str)
        roots = ([self.root] if self.root is not None else []) + list(self.image_roots)
        self.image_roots = tuple(dict.fromkeys(Path(r).resolve() for r in roots))

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        cols = ", ".join(c for c in self.frame.columns)
        return f"Catalog(name={self.name!r}, rows={len(self)}, columns=[{cols}], issues={len(self.issues)})"

    @property
    def ids(self) -> list[str]:
        return self.frame["id"].tolist()

    def has(self, column: str) -> bool:
        """True when the column exists and at least one row has a value."""
        return column in self.frame.columns and self.frame[column].notna().any()

    def column(self, name: str) -> pd.Series:
        if name not in self.frame.columns:
            raise CatalogError(f"catalog '{self.name}' has no column '{name}'; it has: {', '.join(self.frame.columns)}")
        return self.frame[name]

    @property
    def depth(self) -> int:
        """The number of category levels the deepest row has (0 without categories)."""
        if not self.has("category"):
            return 0
        return int(self.frame["category"].dropna().map(len).max())

    def labels(self, level: int | str) -> pd.Series:
        """The category at ``level`` for each row (``None`` where a row's path is shorter).

        ``level`` is an index into the category path (0 = coarsest) or the name of any column; a
        column gives its values as stripped strings (``category`` itself gives the whole path).
        """
        if isinstance(level, str) and not level.isdigit():
            values = self.column(level)
            return pd.Series([_label_text(v) for v in values], index=values.index, dtype=object, name=level)
        index = int(level)
        if not self.has("category"):
            raise CatalogError(f"catalog '{self.name}' has no 'category' column to take level {index} from")
        if index < 0 or index >= self.depth:
            raise CatalogError(
                f"category level {index} does not exist in '{self.name}': levels are 0..{self.depth - 1} "
                f"(paths split on '{self.category_sep}'){self._separator_hint()}"
            )
        return self.frame["category"].map(lambda path: path[index] if isinstance(path, tuple) and len(path) > index else None)

    def _separator_hint(self) -> str:
        """What to try when paths did not split: another separator seen in the values, or level columns."""
        paths = self.frame["category"].dropna()
        for sep in CATEGORY_SEPARATORS:
            if sep == self.category_sep:
                continue
            example = next((p[-1] for p in paths if sep in p[-1] and not (sep == ">" and ">>" in p[-1])), None)
            if example is not None:
                return (
                    f"; the values contain '{sep}' (e.g. '{example[:60]}'): pass --category-sep '{sep}' "
                    f"(category_sep='{sep}' in Python)"
                )
        return "; if each level is its own column, name them with --category-columns A,B,C (category_columns=[...])"

    def texts(self, fields: Iterable[str] = ("title", "description"), sep: str = ". ") -> list[str]:
        """Each row's text fields joined into one string (empty where a row has none)."""
        present = [f for f in fields if f in self.frame.columns]
        if not present:
            return [""] * len(self)
        parts = self.frame[present].astype("string").fillna("")
        return [sep.join(p.strip() for p in row if p.strip()) for row in parts.itertuples(index=False)]

    @property
    def extra_columns(self) -> list[str]:
        """Columns outside :data:`SCHEMA_COLUMNS` (kept, usable as a label or grouping column)."""
        return [str(c) for c in self.frame.columns if c not in SCHEMA_COLUMNS]

    def source_row(self, row: int) -> int:
        """The source-table row number of positional row ``row`` (what its :class:`RowIssue` says)."""
        return self.source_rows[row] if self.source_rows is not None and len(self.source_rows) == len(self) else row

    def line_of(self, source_row: int) -> int | None:
        """The 1-based file line source row ``source_row`` starts on, or None when the source has no lines."""
        if self.source_lines is None or not 0 <= source_row < len(self.source_lines):
            return None
        return int(self.source_lines[source_row])

    def with_lines(self, issues: Iterable[RowIssue]) -> list[RowIssue]:
        """``issues`` with their file line filled in where the catalog knows it."""
        return [
            replace(issue, line=self.line_of(issue.row)) if issue.line is None and self.source_lines is not None else issue
            for issue in issues
        ]

    def subset(self, rows: Iterable[int] | pd.Series) -> Catalog:
        """A catalog with only the given positional rows (or a boolean mask)."""
        positions = np.flatnonzero(np.asarray(rows, dtype=bool)) if isinstance(rows, pd.Series) else list(rows)
        return Catalog(
            self.frame.iloc[list(positions)].copy(),
            root=self.root,
            name=self.name,
            issues=list(self.issues),
            image_roots=self.image_roots,
            mapping=self.mapping,
            source_rows=[self.source_row(int(i)) for i in positions],
            category_sep=self.category_sep,
            source_lines=self.source_lines,
        )

    def head(self, n: int) -> Catalog:
        return self.subset(range(min(n, len(self))))
