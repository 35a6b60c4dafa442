"""Read a catalog in chunks, so a catalog of millions of rows never sits in memory at once.

CSV/TSV files stream through pyarrow's incremental CSV reader, Parquet files row group by row group
(``iter_batches``), JSON Lines through pandas' ``chunksize``; a built-in dataset (already small) is cut
into chunks. Columns are mapped once, from the header, exactly as :func:`~skulens.catalog.read_catalog`
maps them; each chunk is then validated by :func:`~skulens.catalog.build_catalog` (issues carry the
row number in the whole file). Images are not read here: a chunk holds image paths, which the encoders
open batch by batch. CSV cells are read as text (a later block can never disagree with the types
guessed from the first); ``rating`` is made numeric by the validation as usual.

A :class:`CatalogStream` has two halves so that an engine can run them apart: :meth:`raw_frames`
(reading) and :meth:`normalise` (mapping + validation, a pure function of one chunk). The local engine
runs both in one process; the Ray engine reads with Ray Data (with :attr:`csv_options`, so the parse
is the same) and runs :meth:`normalise` as Ray tasks.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from skulens.catalog.readers import apply_columns, json_lines_problem, resolve_columns
from skulens.catalog.schema import Catalog, CatalogError, ColumnMapping, RowIssue
from skulens.catalog.validation import CATEGORY_SEPARATOR, build_catalog, parse_category

#: Rows per chunk: large enough for full encoder batches, small enough that a chunk of long
#: descriptions stays a few tens of megabytes.
DEFAULT_CHUNK_ROWS = 4096
#: The column a normalised chunk carries each row's problem in (``None`` when the row is clean).
ISSUE_COLUMN = "issue"
STREAMED_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson")


@dataclass
class CatalogStream:
    """A catalog file (or an in-memory catalog) read ``chunk_rows`` rows at a time.

    ``root`` is where relative image paths resolve (default: the file's folder), ``image_roots`` further
    folders images may be read from. Duplicate ids are found across chunks (the ids seen so far are
    kept: about 100 bytes per row).
    """

    source: Path | Catalog
    mapping: ColumnMapping
    root: Path | None
    image_roots: tuple[Path, ...]
    name: str
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    header: list[str] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        path: str | Path,
        columns: Mapping[str, str] | None = None,
        root: str | Path | None = None,
        image_roots: Sequence[str | Path] = (),
        name: str | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> CatalogStream:
        """A stream over a CSV, TSV, Parquet or JSON Lines file; the columns are mapped from its header."""
        path = Path(path)
        if not path.is_file():
            raise CatalogError(f"catalog file not found: {path}")
        if path.suffix.lower() not in STREAMED_SUFFIXES:
            raise CatalogError(f"{path}: cannot stream '{path.suffix}' files; use one of {', '.join(STREAMED_SUFFIXES)}")
        if chunk_rows < 1:
            raise CatalogError(f"chunk size must be at least 1 row, not {chunk_rows}")
        header = _header(path)
        mapping = resolve_columns(header, columns, str(path))
        folder = Path(root) if root is not None else path.parent
        roots = tuple(dict.fromkeys(Path(r).resolve() for r in [folder, *image_roots]))
        return cls(path, mapping, folder.resolve(), roots, name or path.stem, chunk_rows, header)

    @classmethod
    def of_catalog(cls, catalog: Catalog, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> CatalogStream:
        """A stream over a catalog already in memory (a built-in dataset): its rows cut into chunks."""
        return cls(catalog, catalog.mapping, catalog.root, catalog.image_roots, catalog.name, chunk_rows)

    @property
    def path(self) -> Path | None:
        return self.source if isinstance(self.source, Path) else None

    @property
    def id_source(self) -> str:
        """The source column that becomes ``id``."""
        renames = {**self.mapping.given, **self.mapping.detected}
        return renames.get("id", "id")

    @property
    def csv_options(self) -> dict:
        """pyarrow CSV options (``parse_options``, ``convert_options``): every column read as text."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        delimiter = "\t" if self.path is not None and self.path.suffix.lower() == ".tsv" else ","
        return {
            "parse_options": pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            "convert_options": pacsv.ConvertOptions(
                column_types={name: pa.string() for name in self.header}, strings_can_be_null=True
            ),
        }

    def count_rows(self) -> int | None:
        """The number of rows when it is known without reading the file (Parquet, in-memory), else None."""
        if isinstance(self.source, Catalog):
            return len(self.source)
        if self.source.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.ParquetFile(self.source).metadata.num_rows
        return None

    def raw_frames(self) -> Iterator[pd.DataFrame]:
        """The source's rows as they are in the file, ``chunk_rows`` (or fewer) at a time."""
        if isinstance(self.source, Catalog):
            frame = self.source.frame
            for start in range(0, len(frame), self.chunk_rows):
                yield frame.iloc[start : start + self.chunk_rows]
            return
        suffix = self.source.suffix.lower()
        try:
            if suffix in (".parquet", ".pq"):
                import pyarrow.parquet as pq

                for batch in pq.ParquetFile(self.source).iter_batches(batch_size=self.chunk_rows):
                    yield batch.to_pandas()
            elif suffix in (".csv", ".tsv"):
                yield from self._csv_frames()
            else:
                for frame in pd.read_json(self.source, lines=True, dtype=False, chunksize=self.chunk_rows):
                    if any(not isinstance(c, str) for c in frame.columns):
                        raise ValueError(json_lines_problem(self.source) or "expected one JSON object per line")
                    yield frame
        except (OSError, ValueError, TypeError) as exc:
            problem = json_lines_problem(self.source) if suffix in (".jsonl", ".ndjson") else None
            raise CatalogError(f"cannot read {self.source}: {problem or exc}") from None

    def _csv_frames(self) -> Iterator[pd.DataFrame]:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        read = pacsv.ReadOptions(block_size=1 << 22)
        pending: list[pd.DataFrame] = []
        rows = 0
        unclosed = unclosed_quote(self.source)
        if unclosed is not None:
            raise ValueError(  # raw_frames names the file
                f"the quoted field starting on line {unclosed} is never closed (the file may be cut short); "
                "close the quote or remove the partial row"
            )
        for batch in pacsv.open_csv(self.source, read_options=read, **self.csv_options):
            frame = pa.Table.from_batches([batch]).to_pandas()
            frame.columns = self.header  # repeated header names made unique as pandas does ('title', 'title.1')
            pending.append(frame)
            rows += batch.num_rows
            while rows >= self.chunk_rows:
                frame = pd.concat(pending, ignore_index=True)
                yield frame.iloc[: self.chunk_rows]
                rest = frame.iloc[self.chunk_rows :]
                pending, rows = [rest], len(rest)
        if rows:
            yield pd.concat(pending, ignore_index=True)

    def normalise(self, frame: pd.DataFrame, offset: int = 0) -> pd.DataFrame:
        """One raw chunk as :func:`rows_frame` of its validated catalog (a pure function of the chunk:
        ids repeated in another chunk are not seen here)."""
        return rows_frame(self.catalog(frame, offset))

    def catalog(self, frame: pd.DataFrame, offset: int = 0, seen: set[str] | None = None) -> Catalog:
        """One raw chunk as a validated :class:`Catalog` whose issues and ``source_rows`` number rows in the
        whole source.

        Rows whose id is in ``seen`` (ids of earlier chunks) are skipped as duplicates.
        """
        if isinstance(self.source, Catalog):
            ids = set(frame["id"])
            issues = [issue for issue in self.source.issues if issue.id in ids]
            rows = [self.source.source_row(offset + i) for i in range(len(frame))]
            return Catalog(frame.copy(), self.root, self.name, issues, self.image_roots, self.mapping, source_rows=rows)
        mapped = apply_columns(frame.reset_index(drop=True), self.mapping)
        if "id" not in mapped.columns:
            raise CatalogError(
                f"{self.source}: no id column (columns: {', '.join(self.header)}); map one with --columns id=<your id column>"
            )
        # Arrow-backed string columns (Ray hands these) would turn the parsed category tuples into nulls
        mapped = mapped.astype(object).where(mapped.notna(), None)
        ids = mapped["id"].map(lambda v: None if v is None or pd.isna(v) else str(v).strip())
        repeated = ids.isin(seen).to_numpy() if seen else np.zeros(len(mapped), dtype=bool)
        kept = np.flatnonzero(~repeated)  # source position of each row handed to the validation
        built = build_catalog(
            mapped[~repeated], root=self.root, name=self.name, image_roots=self.image_roots, mapping=self.mapping
        )
        issues = [RowIssue(offset + int(kept[i.row]), i.id, i.column, i.message) for i in built.issues]
        issues += [
            RowIssue(offset + int(row), ids[row], "id", "duplicate id; row skipped (first occurrence kept)")
            for row in np.flatnonzero(repeated)
        ]
        built.issues = sorted(issues, key=lambda issue: issue.row)
        built.source_rows = [offset + int(kept[row]) for row in built.source_rows]
        return built

    def chunks(self) -> Iterator[Catalog]:
        """Validated catalogs of at most ``chunk_rows`` rows; an id already seen in an earlier chunk is skipped
        (and reported in that chunk's issues)."""
        seen: set[str] = set()
        offset = 0
        for frame in self.raw_frames():
            catalog = self.catalog(frame, offset, seen)
            seen.update(catalog.frame["id"])
            offset += len(frame)
            yield catalog


def rows_frame(catalog: Catalog) -> pd.DataFrame:
    """A validated chunk as the rows an engine hands on: its columns (category paths as ``A >> B`` text) plus
    :data:`ISSUE_COLUMN` (the first problem found in the row, else None)."""
    messages: dict[str, str] = {}
    for issue in catalog.issues:
        if issue.id is not None and issue.column != "id":  # id issues belong to rows that were dropped
            messages.setdefault(issue.id, issue.message)
    out = catalog.frame.reset_index(drop=True)
    if "category" in out.columns:  # paths as "A >> B" text: it survives any trip through Arrow (Ray) and back
        out["category"] = pd.Series(
            [f" {CATEGORY_SEPARATOR} ".join(p) if isinstance(p, tuple) else None for p in out["category"]], dtype=object
        )
    out[ISSUE_COLUMN] = pd.Series([messages.get(i) for i in out["id"]], dtype=object)
    return out


def catalog_of_rows(rows: pd.DataFrame, image_roots: Sequence[str | Path]) -> Catalog:
    """The :class:`Catalog` of rows made by :func:`rows_frame` (possibly after a trip through Arrow), without
    their issue column: missing values as None again, category paths as tuples again."""
    frame = rows.drop(columns=[ISSUE_COLUMN], errors="ignore").reset_index(drop=True).astype(object)
    frame = frame.where(frame.notna(), None)
    if "category" in frame.columns:
        frame["category"] = [parse_category(p) for p in frame["category"]]
    return Catalog(frame, image_roots=tuple(Path(root) for root in image_roots))


def _header(path: Path) -> list[str]:
    """Column names of a file without reading its rows."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(path).schema_arrow.names)
        if suffix in (".csv", ".tsv"):
            return list(pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", nrows=0).columns)
        first = pd.read_json(path, lines=True, dtype=False, nrows=1)
        if any(not isinstance(c, str) for c in first.columns):
            raise ValueError(json_lines_problem(path) or "expected one JSON object per line")
        return list(first.columns)
    except pd.errors.EmptyDataError:
        raise CatalogError(f"catalog file {path} is empty; it needs a header row and at least one product") from None
    except (OSError, ValueError, TypeError, pd.errors.ParserError) as exc:
        raise CatalogError(f"cannot read {path}: {exc}") from None


#: Bytes read at a time when scanning a CSV file's quotes.
SCAN_BLOCK = 1 << 22


def unclosed_quote(path: Path) -> int | None:
    """The line (1-based) where a quoted field that is never closed starts, else None (a CSV file cut
    inside a quoted field: pyarrow would read the rest of the file as that field).

    An even number of quote characters rules it out at disk speed; only an odd count is parsed with
    :mod:`csv` (strict) to confirm and find the line."""
    quotes = 0
    with open(path, "rb") as handle:
        while block := handle.read(SCAN_BLOCK):
            quotes += block.count(b'"')
    if quotes % 2 == 0:
        return None
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        start = 1
        try:
            for _ in reader:
                start = reader.line_num + 1
        except csv.Error:
            return start
    return None


def open_stream(
    source: str | Path | Catalog,
    columns: Mapping[str, str] | None = None,
    image_roots: Sequence[str | Path] = (),
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> CatalogStream:
    """A stream over a file, or over a catalog already loaded (a built-in dataset)."""
    if isinstance(source, Catalog):
        return CatalogStream.of_catalog(source, chunk_rows)
    return CatalogStream.open(source, columns, image_roots=image_roots, chunk_rows=chunk_rows)
