"""Read CSV/Parquet files into catalogs, with a mapping from your column names to the schema."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from skulens.catalog.schema import SCHEMA_COLUMNS, Catalog, CatalogError
from skulens.catalog.validation import build_catalog

SUPPORTED_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")


def read_table(path: str | Path, id_column: str = "id") -> pd.DataFrame:
    """A CSV, TSV or Parquet file as a DataFrame (all columns kept, ids in ``id_column`` read as strings)."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"catalog file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype={id_column: str})
    except pd.errors.EmptyDataError:
        raise CatalogError(f"catalog file {path} is empty; it needs a header row and at least one product") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise CatalogError(f"cannot read {path}: {exc}") from None
    raise CatalogError(f"{path}: unsupported file type '{suffix}'; use one of {', '.join(SUPPORTED_SUFFIXES)}")


def map_columns(frame: pd.DataFrame, columns: Mapping[str, str] | None, source: str) -> pd.DataFrame:
    """Rename source columns to schema names. ``columns`` maps schema name -> source column.

    Schema columns that already exist under their own name are kept; other source columns are kept
    as extras. A mapped source column that does not exist is an error that lists what does.
    """
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(SCHEMA_COLUMNS))
    if unknown:
        raise CatalogError(f"unknown schema column(s) {unknown} in the mapping; schema columns are {SCHEMA_COLUMNS}")
    missing = [src for src in columns.values() if src not in frame.columns]
    if missing:
        raise CatalogError(f"{source}: column(s) {missing} not found; the file has: {', '.join(map(str, frame.columns))}")
    renamed = frame.rename(columns={src: dst for dst, src in columns.items()})
    return renamed.loc[:, ~renamed.columns.duplicated(keep="last")]


def read_catalog(
    path: str | Path,
    columns: Mapping[str, str] | None = None,
    root: str | Path | None = None,
    name: str | None = None,
) -> Catalog:
    """Read a catalog file. ``root`` (default: the file's folder) is where image paths resolve.

    >>> read_catalog("products.csv", columns={"id": "sku", "title": "name", "image": "img"})
    """
    path = Path(path)
    frame = map_columns(read_table(path, id_column=(columns or {}).get("id", "id")), columns, str(path))
    if frame.empty:
        raise CatalogError(f"catalog file {path} has no rows; add at least one product")
    root_path = Path(root) if root is not None else path.parent
    return build_catalog(frame, root=root_path.resolve(), name=name or path.stem)
