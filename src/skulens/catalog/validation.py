"""Turn a raw table into a clean :class:`Catalog`, reporting (not crashing on) bad rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from skulens.catalog.images import DEFAULT_MAX_PIXELS, ImageLoadError, resolve_image_path
from skulens.catalog.schema import Catalog, CatalogError, RowIssue

CATEGORY_SEPARATOR = ">>"


def parse_category(value: object, separator: str = CATEGORY_SEPARATOR) -> tuple[str, ...] | None:
    """A category path from a string like ``"A >> B >> C"`` or a sequence of levels."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, (list, tuple, np.ndarray)):  # Parquet gives list columns back as arrays
        levels = [str(v).strip() for v in value]
    else:
        levels = [part.strip() for part in str(value).split(separator)]
    levels = [level for level in levels if level]
    return tuple(levels) or None


def build_catalog(frame: pd.DataFrame, root: Path | None = None, name: str = "catalog") -> Catalog:
    """A validated catalog from a frame already in the skulens schema.

    Rows without an id or with a repeated id are skipped; image paths that escape ``root`` are
    dropped from their row. Each is recorded in ``catalog.issues`` with the row number (0-based, in
    the source order) and what to do about it.
    """
    if "id" not in frame.columns:
        raise CatalogError(
            f"'{name}' has no 'id' column (columns: {', '.join(map(str, frame.columns))}); "
            "map one with columns={'id': '<your id column>'}"
        )
    frame = frame.reset_index(drop=True).copy()
    issues: list[RowIssue] = []
    keep = pd.Series(True, index=frame.index)

    ids = frame["id"].map(lambda v: None if pd.isna(v) or str(v).strip() == "" else str(v).strip())
    for row in frame.index[ids.isna()]:
        issues.append(RowIssue(int(row), None, "id", "empty id; row skipped (give every row a unique id)"))
        keep[row] = False
    duplicated = ids.notna() & ids.duplicated(keep="first")
    for row in frame.index[duplicated]:
        issues.append(RowIssue(int(row), ids[row], "id", "duplicate id; row skipped (first occurrence kept)"))
        keep[row] = False
    frame["id"] = ids

    if "category" in frame.columns:
        frame["category"] = frame["category"].map(parse_category)
    if "image" in frame.columns:
        frame["image"] = _object_column(frame, "image", lambda v: None if pd.isna(v) or str(v).strip() == "" else str(v))
        for row, path in frame["image"].items():
            if path is None or not keep[row]:
                continue
            try:
                resolve_image_path(path, root)
            except ImageLoadError as exc:
                issues.append(RowIssue(int(row), ids[row], "image", f"{exc}; image dropped, text kept"))
                frame.at[row, "image"] = None
    for column in ("title", "description", "review_text"):
        if column in frame.columns:
            frame[column] = _object_column(frame, column, lambda v: None if pd.isna(v) else str(v))
    if "rating" in frame.columns:
        frame["rating"] = _numeric(frame, "rating", issues, ids)

    return Catalog(frame[keep].reset_index(drop=True), root=root, name=name, issues=issues)


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


def check_images(catalog: Catalog, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[RowIssue]:
    """Open every image header (no full decode) and list the rows whose image cannot be used."""
    issues: list[RowIssue] = []
    if not catalog.has("image"):
        return issues
    for row, (row_id, path) in enumerate(zip(catalog.frame["id"], catalog.frame["image"])):
        if path is None:
            continue
        try:
            full = resolve_image_path(path, catalog.root)
            if not full.is_file():
                raise ImageLoadError(f"image '{path}' not found at {full}")
            with Image.open(full) as image:
                width, height = image.size
            if width * height > max_pixels:
                raise ImageLoadError(f"image '{path}' is {width}x{height}, over the {max_pixels:,}-pixel limit")
        except ImageLoadError as exc:
            issues.append(RowIssue(row, row_id, "image", str(exc)))
        except (OSError, Image.DecompressionBombError) as exc:
            issues.append(RowIssue(row, row_id, "image", f"image '{path}' cannot be opened: {exc}"))
    return issues
