"""Turn a raw table into a clean :class:`Catalog`, reporting (not crashing on) bad rows."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from skulens.catalog.images import (
    DEFAULT_MAX_PIXELS,
    ImageLoadError,
    decode_image,
    read_image_bytes,
    resolve_image_path,
)
from skulens.catalog.schema import CATEGORY_SEPARATORS, RATING_RANGE, Catalog, CatalogError, ColumnMapping, RowIssue

CATEGORY_SEPARATOR = ">>"
#: Short side (px) JPEGs are decoded at when checked: a reduced-scale decode still reads every byte.
CHECK_DRAFT = 32
#: Share of a category column's text values that must hold a separator for it to be detected.
SEPARATOR_SHARE = 0.5


def detect_separator(values: Iterable[object]) -> str:
    """The separator a column of category paths is written with: the first of :data:`CATEGORY_SEPARATORS`
    found in at least half of its text values (``>`` counted only outside ``>>``), else ``>>``."""
    texts = [v for v in values if isinstance(v, str) and v.strip() and not v.strip().startswith("[")]
    for sep in CATEGORY_SEPARATORS:
        found = sum(sep in t.replace(">>", "") if sep == ">" else sep in t for t in texts)
        if texts and found >= SEPARATOR_SHARE * len(texts):
            return sep
    return CATEGORY_SEPARATOR


def category_from_columns(frame: pd.DataFrame, columns: Sequence[str], name: str = "catalog") -> pd.Series:
    """Category paths built from one column per level (coarse to fine); a path ends at its first blank level."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CatalogError(
            f"category column(s) {missing} are not in '{name}' (columns: {', '.join(map(str, frame.columns))}); "
            "give --category-columns as the level columns from coarse to fine"
        )

    def path(row: Sequence[object]) -> tuple[str, ...] | None:
        levels = []
        for value in row:
            if value is None or (isinstance(value, float) and pd.isna(value)) or not str(value).strip():
                break
            levels.append(str(value).strip())
        return tuple(levels) or None

    return pd.Series([path(row) for row in frame[list(columns)].itertuples(index=False)], index=frame.index, dtype=object)


def parse_category(value: object, separator: str = CATEGORY_SEPARATOR) -> tuple[str, ...] | None:
    """A category path from ``"A >> B >> C"``, a flat ``"Shoes"``, a sequence of levels, or a JSON list
    holding one such path (Flipkart's ``'["A >> B >> C"]'``)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list):
            value = parsed[0] if len(parsed) == 1 and isinstance(parsed[0], str) else parsed
    if isinstance(value, (list, tuple, np.ndarray)):  # Parquet gives list columns back as arrays
        levels = [str(v).strip() for v in value]
    else:
        levels = [part.strip() for part in str(value).split(separator)]
    levels = [level for level in levels if level]
    return tuple(levels) or None


def build_catalog(
    frame: pd.DataFrame,
    root: Path | None = None,
    name: str = "catalog",
    image_roots: Sequence[str | Path] = (),
    mapping: ColumnMapping | None = None,
    category_sep: str | None = None,
    category_columns: Sequence[str] | None = None,
) -> Catalog:
    """A validated catalog from a frame already in the skulens schema.

    Category paths are split on ``category_sep`` (default: detected, see :func:`detect_separator`), or built
    from ``category_columns``, one column per level.

    Rows without an id or with a repeated id are skipped; image paths outside the image roots
    (``root`` and ``image_roots``, symlinks resolved) are dropped from their row. Each is recorded in
    ``catalog.issues`` with the row number (0-based, in the source order) and what to do about it.
    """
    if "id" not in frame.columns:
        raise CatalogError(
            f"'{name}' has no 'id' column (columns: {', '.join(map(str, frame.columns))}); "
            "map one with columns={'id': '<your id column>'}"
        )
    frame = frame.reset_index(drop=True).copy()
    roots = tuple(dict.fromkeys(Path(r).resolve() for r in ([root] if root is not None else []) + list(image_roots)))
    issues: list[RowIssue] = []
    keep = pd.Series(True, index=frame.index)

    _drop_nested_cells(frame, issues, keep)
    ids = frame["id"].map(lambda v: None if pd.isna(v) or str(v).strip() == "" else str(v).strip())
    for row in frame.index[ids.isna() & keep]:
        issues.append(RowIssue(int(row), None, "id", "empty id; row skipped (give every row a unique id)"))
        keep[row] = False
    duplicated = ids.notna() & ids.duplicated(keep="first")
    for row in frame.index[duplicated]:
        issues.append(RowIssue(int(row), ids[row], "id", "duplicate id; row skipped (first occurrence kept)"))
        keep[row] = False
    frame["id"] = ids

    sep = category_sep or CATEGORY_SEPARATOR
    if category_columns:
        frame["category"] = category_from_columns(frame, category_columns, name)
    elif "category" in frame.columns:
        sep = category_sep or detect_separator(frame["category"])
        frame["category"] = frame["category"].map(lambda value: parse_category(value, sep))
    if "image" in frame.columns:
        frame["image"] = _object_column(frame, "image", lambda v: None if pd.isna(v) or str(v).strip() == "" else str(v))
        for row, path in frame["image"].items():
            if path is None or not keep[row]:
                continue
            try:
                resolve_image_path(path, roots)
            except ImageLoadError as exc:
                issues.append(RowIssue(int(row), ids[row], "image", f"{exc}; image dropped, text kept"))
                frame.at[row, "image"] = None
    for column in ("title", "description", "review_text"):
        if column in frame.columns:
            frame[column] = _object_column(frame, column, lambda v: None if pd.isna(v) else str(v))
    if "title" in frame.columns:
        reported = {issue.row for issue in issues if issue.column == "title"}
        for row in frame.index[frame["title"].map(lambda v: v is None or not v.strip())]:
            if keep[row] and row not in reported:
                issues.append(RowIssue(int(row), ids[row], "title", "empty title (blank or spaces only); the row has no title"))
    for column in ("title", "description", "review_text"):  # one rule: blank or spaces-only text is missing text
        if column in frame.columns:
            frame[column] = _object_column(frame, column, lambda v: v if v is not None and v.strip() else None)
    if "rating" in frame.columns:
        frame["rating"] = _numeric(frame, "rating", issues, ids)
        low, high = RATING_RANGE
        for row in frame.index[frame["rating"].notna() & ~frame["rating"].between(low, high)]:
            value = frame.at[row, "rating"]
            issues.append(
                RowIssue(int(row), ids[row], "rating", f"rating {value:g} is outside {low}-{high} stars; value dropped")
            )
            frame.at[row, "rating"] = np.nan
    if "recommended" in frame.columns:
        frame["recommended"] = _yes_no(frame, "recommended", issues, ids)

    return Catalog(
        frame[keep].reset_index(drop=True),
        root=root,
        name=name,
        issues=sorted(issues, key=lambda issue: issue.row),
        image_roots=roots,
        mapping=mapping or ColumnMapping(),
        source_rows=[int(row) for row in frame.index[keep]],
        category_sep=sep,
    )


#: Columns that hold one text (or number) per row; a list, array or mapping there is not a value.
SCALAR_COLUMNS = ("id", "title", "description", "review_text", "image", "rating", "recommended")


def _drop_nested_cells(frame: pd.DataFrame, issues: list[RowIssue], keep: pd.Series) -> None:
    """Cells of :data:`SCALAR_COLUMNS` holding a list, array or mapping (a Parquet list column, a JSON array)
    become missing, each with a row issue; a row whose id is such a cell is skipped."""
    for column in (c for c in SCALAR_COLUMNS if c in frame.columns):
        nested = frame[column].map(lambda v: isinstance(v, (list, tuple, dict, set, np.ndarray)))
        for row in frame.index[nested]:
            kind = "mapping" if isinstance(frame.at[row, column], dict) else "list"
            if column == "id":
                issues.append(RowIssue(int(row), None, "id", f"id is a {kind}, not one value; row skipped"))
                keep[row] = False
            else:
                ident = frame.at[row, "id"]
                ident = None if isinstance(ident, (list, tuple, dict, set, np.ndarray)) or pd.isna(ident) else str(ident).strip()
                issues.append(RowIssue(int(row), ident, column, f"{column} is a {kind}, not one value; value dropped"))
            frame.at[row, column] = None


def _object_column(frame: pd.DataFrame, column: str, convert) -> pd.Series:
    """``convert`` applied to each value, as an object column so missing values stay ``None``.

    (``Series.map`` would infer pandas' string dtype, which turns ``None`` back into ``NaN``.)
    """
    return pd.Series([convert(v) for v in frame[column]], index=frame.index, dtype=object)


def _numeric(frame: pd.DataFrame, column: str, issues: list[RowIssue], ids: pd.Series) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna()
    for row in frame.index[bad]:
        raw = frame.at[row, column]
        if str(raw).strip().lower() in {"", "no rating available", "nan", "none"}:
            continue
        issues.append(RowIssue(int(row), ids[row], column, f"'{raw}' is not a number; value dropped"))
    return values


YES = {"1", "1.0", "true", "yes", "y", "t"}
NO = {"0", "0.0", "false", "no", "n", "f"}


def _yes_no(frame: pd.DataFrame, column: str, issues: list[RowIssue], ids: pd.Series) -> pd.Series:
    """1.0 / 0.0 from yes/no, true/false or 1/0 (any case); other values are reported and dropped (NaN)."""
    out = []
    for row, raw in frame[column].items():
        text = "" if raw is None or (isinstance(raw, float) and pd.isna(raw)) else str(raw).strip().lower()
        if text in YES or text in NO:
            out.append(1.0 if text in YES else 0.0)
            continue
        if text:
            issues.append(RowIssue(int(row), ids[row], column, f"'{raw}' is not yes/no (or 1/0, true/false); value dropped"))
        out.append(np.nan)
    return pd.Series(out, index=frame.index, dtype=float)


def check_images(catalog: Catalog, max_pixels: int = DEFAULT_MAX_PIXELS, workers: int = 2) -> list[RowIssue]:
    """Read and decode every image (JPEGs at a reduced scale: fast, yet truncated data still fails) and
    list the rows whose image cannot be used, numbered by their source row.

    The same check for every command, so each reports the same unusable images.
    """
    if not catalog.has("image"):
        return []
    paths = catalog.frame["image"].tolist()

    def problem(path: str | None) -> str | None:
        if path is None:
            return None
        try:
            decode_image(
                read_image_bytes(path, catalog.image_roots), name=str(path), max_pixels=max_pixels, draft_size=CHECK_DRAFT
            )
        except ImageLoadError as exc:
            return str(exc)
        except OSError as exc:
            return f"image '{path}' cannot be read: {exc}"
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        found = list(pool.map(problem, paths))
    ids = catalog.ids
    return [RowIssue(catalog.source_row(row), ids[row], "image", message) for row, message in enumerate(found) if message]
