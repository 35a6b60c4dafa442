"""Read CSV/TSV/Parquet/JSON Lines files into catalogs, mapping your column names to the schema.

Columns are mapped in two ways: an explicit mapping (``{"title": "product_name"}``, on the command line
``--columns title=product_name``) and, for schema columns still missing, detection of common names
(``product_name`` -> ``title``, ``reviewText`` -> ``review_text``, ``overall`` -> ``rating``...). The
catalog's :class:`~skulens.catalog.schema.ColumnMapping` records what was used and what was ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from skulens.catalog.lines import record_lines
from skulens.catalog.schema import EXTRA_COLUMNS, SCHEMA_COLUMNS, Catalog, CatalogError, ColumnMapping
from skulens.catalog.validation import build_catalog

SUPPORTED_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")

#: Common source names per schema column, in order of preference (compared without case, spaces or
#: punctuation, so ``Review Text``, ``review_text`` and ``reviewText`` are the same name).
CATALOG_NAMES: dict[str, tuple[str, ...]] = {
    "id": ("id", "sku", "asin", "product_id", "uniq_id", "item_id", "style_id"),
    "title": ("title", "product_name", "name", "product_title", "productDisplayName", "item_name"),
    "description": ("description", "product_description", "desc", "product_desc", "details"),
    "image": (
        *("image", "img", "image_path", "img_path", "image_url", "img_url", "image_file", "filename", "file_name"),
        *("photo", "photo_path", "picture"),
    ),
    "category": ("category", "category_path", "product_category_tree", "categories", "product_category", "category_tree"),
    "rating": ("rating", "overall", "stars", "star_rating", "score", "product_rating"),
    "review_text": ("review_text", "reviewText", "review", "text", "review_body", "body"),
}
#: Review files: a product key (asin, product_id...) names the product reviewed, not the review, so it
#: never becomes the id; the review's own title may be called ``summary`` or ``headline``.
REVIEW_NAMES: dict[str, tuple[str, ...]] = {
    **CATALOG_NAMES,
    "id": ("id", "review_id"),
    "title": ("title", "review_title", "summary", "headline"),
    "recommended": ("recommended", "recommended_ind", "would_recommend", "recommend", "is_recommended"),
}


def _key(name: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def parse_columns(text: str | None) -> dict[str, str]:
    """``"title=product_name,image=img"`` -> ``{"title": "product_name", "image": "img"}``."""
    if not text or not text.strip():
        return {}
    mapping: dict[str, str] = {}
    for part in text.split(","):
        schema, sep, source = part.partition("=")
        if not sep or not schema.strip() or not source.strip():
            raise CatalogError(
                f"column mapping '{part.strip()}' is not SCHEMA=COLUMN; write e.g. --columns title=product_name,image=img"
            )
        mapping[schema.strip()] = source.strip()
    return mapping


def read_table(path: str | Path, id_column: str | Sequence[str] = "id") -> pd.DataFrame:
    """A CSV, TSV, Parquet or JSON Lines file as a DataFrame (all columns kept).

    CSV columns named in ``id_column`` (compared without case, spaces or punctuation) are read as
    strings (leading zeros kept).
    """
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"catalog file not found: {path}")
    suffix = path.suffix.lower()
    wanted = {_key(id_column)} if isinstance(id_column, str) else {_key(name) for name in id_column}
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".tsv"):
            sep = "\t" if suffix == ".tsv" else ","
            header = pd.read_csv(path, sep=sep, nrows=0).columns
            return pd.read_csv(path, sep=sep, dtype={c: str for c in header if _key(c) in wanted})
        if suffix in (".jsonl", ".ndjson", ".json"):
            return _read_json(path, suffix)
    except pd.errors.EmptyDataError:
        raise CatalogError(f"catalog file {path} is empty; it needs a header row and at least one product") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise CatalogError(f"cannot read {path}: {exc}") from None
    raise CatalogError(f"{path}: unsupported file type '{suffix}'; use one of {', '.join(SUPPORTED_SUFFIXES)}")


def _read_json(path: Path, suffix: str) -> pd.DataFrame:
    """JSON Lines (one object per line); a ``.json`` file may also hold one array of objects."""
    with open(path, "rb") as handle:
        start = handle.read(4096).lstrip()
    if not start:
        raise pd.errors.EmptyDataError
    if suffix == ".json" and start.startswith(b"["):
        frame = pd.read_json(path, dtype=False)
        if any(not isinstance(c, str) for c in frame.columns):
            raise ValueError("expected one JSON object per line (JSON Lines) or an array of objects")
        return frame
    try:
        frame = pd.read_json(path, lines=True, dtype=False)
    except (ValueError, TypeError):
        frame = None
    if frame is None or any(not isinstance(c, str) for c in frame.columns):
        raise ValueError(json_lines_problem(path) or "expected one JSON object per line (JSON Lines)")
    return frame


def json_lines_problem(path: Path) -> str | None:
    """What makes ``path`` not JSON Lines of objects: the first line that is not valid JSON or not an
    object, by number (1-based); None when every line is an object."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as exc:
                return f"line {number} is not valid JSON ({exc}); write one JSON object per line"
            if not isinstance(value, dict):
                return f"line {number} is a JSON {type(value).__name__}, not an object; write one JSON object per line"
    return None


def resolve_columns(
    columns: Sequence[object], given: Mapping[str, str] | None, source: str, names: Mapping[str, Sequence[str]] = CATALOG_NAMES
) -> ColumnMapping:
    """Which source column feeds each schema column: ``given`` first, then the common ``names``.

    A schema column that already exists under its own name is used as is. Unknown schema names and
    mapped columns that are not in the file are errors naming what the file has.
    """
    given = dict(given or {})
    mappable = (*SCHEMA_COLUMNS, *EXTRA_COLUMNS)
    unknown = sorted(set(given) - set(mappable))
    if unknown:
        raise CatalogError(f"unknown schema column(s) {unknown} in the mapping; mappable columns are {', '.join(mappable)}")
    present = [str(c) for c in columns]
    missing = [src for src in given.values() if src not in present]
    if missing:
        raise CatalogError(f"{source}: column(s) {missing} not found; the file has: {', '.join(present)}")
    used = set(given.values())
    detected: dict[str, str] = {}
    for schema, candidates in names.items():
        if schema in given or (schema in present and schema not in used):
            continue
        wanted = [_key(c) for c in candidates]
        found = [c for c in present if c not in used and _key(c) in wanted]
        if found:
            choice = min(found, key=lambda c: wanted.index(_key(c)))
            if choice != schema:
                detected[schema] = choice
            used.add(choice)
    taken = {**{s: s for s in mappable if s in present}, **given, **detected}
    ignored: dict[str, str] = {}
    for column in present:
        if column in taken.values():
            continue
        if column in taken and taken[column] != column:
            ignored[column] = f"replaced by the mapping {column}={taken[column]}"
        else:
            ignored[column] = "not a schema column (kept as an extra column)"
    return ColumnMapping(given=given, detected=detected, ignored=ignored)


def apply_columns(frame: pd.DataFrame, mapping: ColumnMapping) -> pd.DataFrame:
    """``frame`` with mapped columns renamed to schema names (a column they replace is dropped)."""
    renames = {**mapping.given, **mapping.detected}
    sources = set(renames.values())
    replaced = [schema for schema, src in renames.items() if schema in frame.columns and schema != src and schema not in sources]
    return frame.drop(columns=replaced).rename(columns={src: schema for schema, src in renames.items()})


def frame_to_catalog(
    frame: pd.DataFrame,
    columns: Mapping[str, str] | None = None,
    root: str | Path | None = None,
    name: str = "catalog",
    image_roots: Sequence[str | Path] = (),
    reviews: bool = False,
    source: str | None = None,
    category_sep: str | None = None,
    category_columns: Sequence[str] | None = None,
) -> Catalog:
    """A validated catalog from any table: columns mapped and detected, rows checked.

    With ``reviews=True`` product keys are not taken as ids and a table without an id gets ``<name>:<row>`` ids.
    ``source`` (default ``name``) names the input in error messages. ``category_sep`` / ``category_columns``:
    see :func:`~skulens.catalog.validation.build_catalog`.
    """
    mapping = resolve_columns(frame.columns, columns, source or name, REVIEW_NAMES if reviews else CATALOG_NAMES)
    frame = apply_columns(frame, mapping)
    if reviews and "id" not in frame.columns:
        # ids name the file and the row, so rows of another file never pass for training rows
        frame.insert(0, "id", [f"{name}:{i}" for i in range(len(frame))])
    root_path = Path(root).resolve() if root is not None else None
    return build_catalog(
        frame,
        root=root_path,
        name=name,
        image_roots=image_roots,
        mapping=mapping,
        category_sep=category_sep,
        category_columns=category_columns,
    )


def _text_columns(columns: Mapping[str, str] | None, names: Mapping[str, Sequence[str]]) -> list[str]:
    """Source columns to read as text: the mapped id column, else every common id name."""
    if columns and "id" in columns:
        return [columns["id"]]
    return list(names["id"])


def read_catalog(
    path: str | Path,
    columns: Mapping[str, str] | None = None,
    root: str | Path | None = None,
    name: str | None = None,
    image_roots: Sequence[str | Path] = (),
    category_sep: str | None = None,
    category_columns: Sequence[str] | None = None,
) -> Catalog:
    """Read a catalog file. ``root`` (default: the file's folder) is where relative image paths resolve;
    ``image_roots`` are further folders images may be read from. Category paths are split on ``category_sep``
    (``>>``, ``>``, ``|``, ``/``; detected when not given) or built from ``category_columns`` (one per level).

    >>> read_catalog("products.csv", columns={"id": "sku", "title": "name", "image": "img"})
    """
    path = Path(path)
    frame = read_table(path, id_column=_text_columns(columns, CATALOG_NAMES))
    if frame.empty:
        raise CatalogError(f"catalog file {path} has no rows; add at least one product")
    catalog = frame_to_catalog(
        frame,
        columns,
        root if root is not None else path.parent,
        name or path.stem,
        image_roots,
        source=str(path),
        category_sep=category_sep,
        category_columns=category_columns,
    )
    return _with_file_lines(catalog, path, len(frame))


def _with_file_lines(catalog: Catalog, path: Path, rows: int) -> Catalog:
    """``catalog`` numbering its source rows with the lines of ``path`` (its issues too)."""
    catalog.source_lines = record_lines(path, rows)
    catalog.issues = catalog.with_lines(catalog.issues)
    return catalog


def read_reviews(path: str | Path, columns: Mapping[str, str] | None = None, name: str | None = None) -> Catalog:
    """Read a reviews file (any catalog format): ``review_text`` and/or ``title``, optional ``rating``
    and ``id`` (row numbers when absent), with the same mapping and name detection as catalogs."""
    path = Path(path)
    frame = read_table(path, id_column=_text_columns(columns, REVIEW_NAMES))
    if frame.empty:
        raise CatalogError(f"reviews file {path} has no rows; add at least one review")
    catalog = _with_file_lines(
        frame_to_catalog(frame, columns, path.parent, name or path.stem, reviews=True, source=str(path)), path, len(frame)
    )
    if "review_text" not in catalog.frame.columns and "title" not in catalog.frame.columns:
        raise CatalogError(
            f"{path} has no review text column (review_text, reviewText, review, text...); it has: "
            f"{', '.join(map(str, frame.columns))}; map one with --columns review_text=<column>"
        )
    return catalog
