"""What an engine runs on each chunk of a catalog: a job, started once per process (or Ray actor).

A job is a small, picklable description (encoder name, model folder...). :meth:`start` loads the model
and returns a function from one validated chunk (a :class:`~skulens.catalog.Catalog`) to an Arrow table
plus the row issues found while encoding. :class:`ChunkRunner` wraps a started job for the engines: it
takes the rows of :func:`~skulens.catalog.streaming.rows_frame` and returns the table with the ``issue``
column filled in. Both engines call the same runner on the same chunks, so their outputs are the same.

Output tables (Parquet; Spark, DuckDB, pandas and Ray read them directly):
- embed: ``id`` (string), ``vector`` (fixed-size list of float32), ``present`` (bool), ``issue``;
- predict: ``id``, ``title``, ``image``, ``current_category`` (string; each when the input has it), ``category_1..k``
  (string), ``probability_1..k`` (float64, 4 decimals), ``differs_from_current`` (bool), ``issue``;
- index: ``id``, ``vector``, the display/filter columns (as text), ``issue`` — rows with a usable vector only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from skulens.catalog.schema import Catalog, CatalogError, RowIssue
from skulens.catalog.streaming import ISSUE_COLUMN, catalog_of_rows
from skulens.engines.output import read_output

ChunkFunction = Callable[[Catalog], tuple[pa.Table, list[RowIssue]]]


class Job(Protocol):
    """Loads its model in :meth:`start`; the returned function encodes one chunk."""

    def start(self) -> ChunkFunction: ...


def vector_column(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """An ``(n, dim)`` float32 matrix as one Arrow column of fixed-size float32 lists."""
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1), type=pa.float32()), array.shape[1])


def read_vectors(table: pa.Table, column: str = "vector") -> np.ndarray:
    """The ``(n, dim)`` float32 matrix of a vector column written by :func:`vector_column`."""
    chunked = table.column(column).combine_chunks()
    dim = chunked.type.list_size
    return np.asarray(chunked.flatten(), dtype=np.float32).reshape(-1, dim)


@dataclass(frozen=True)
class EmbedJob:
    """Embed each row with one encoder, through the shared embedding cache (``cache_dir``)."""

    encoder: str
    text_fields: tuple[str, ...] = ("title", "description")
    cache_dir: str | None = None
    use_cache: bool = True

    def start(self) -> ChunkFunction:
        from skulens.embed import embed_catalog
        from skulens.encoders import create_encoder

        model = create_encoder(self.encoder)
        if model.requires_fit:
            raise CatalogError(
                f"encoder '{self.encoder}' is fitted on the whole catalog, which a streamed run never holds; "
                "embed it without --engine/--parquet, or use an encoder that needs no fitting"
            )

        def run(catalog: Catalog) -> tuple[pa.Table, list[RowIssue]]:
            result = embed_catalog(
                catalog, model, cache_dir=self.cache_dir, use_cache=self.use_cache, text_fields=self.text_fields
            )
            table = pa.table(
                {
                    "id": pa.array(result.ids, type=pa.string()),
                    "vector": vector_column(result.vectors),
                    "present": pa.array(result.present, type=pa.bool_()),
                }
            )
            return table, result.issues

        return run


@dataclass(frozen=True)
class PredictJob:
    """Top-``k`` categories of each row with a saved categorizer (features through the shared cache)."""

    model: str
    k: int = 5
    cache_dir: str | None = None

    def start(self) -> ChunkFunction:
        from skulens.tasks.categorize import CategoryPredictor, top_k_from_proba
        from skulens.tasks.output_columns import prediction_frame

        predictor = CategoryPredictor.load(self.model, cache_dir=self.cache_dir)

        def run(catalog: Catalog) -> tuple[pa.Table, list[RowIssue]]:
            features = predictor.extractor.transform(catalog)
            rows = top_k_from_proba(predictor.classes_, predictor.proba_from_features(features), self.k)
            return _predictions(prediction_frame(catalog, rows, self.k, predictor.label)), features.issues

        return run


@dataclass(frozen=True)
class IndexJob:
    """Search vectors of each row (``use``: image, text or both) with a saved alignment model, plus the row's
    display/filter columns as text, for building a search index from the output (:func:`index_from_output`).
    Rows without a usable vector are left out, as :meth:`AlignmentModel.build_index` leaves them out."""

    model: str
    use: str = "image"

    def start(self) -> ChunkFunction:
        from skulens.tasks.align import AlignmentError, AlignmentModel

        aligned = AlignmentModel.load(self.model)

        def run(catalog: Catalog) -> tuple[pa.Table, list[RowIssue]]:
            try:
                built = aligned.build_index(catalog, kind="flat", use=self.use)
            except AlignmentError:  # no row of this chunk has a usable vector
                return pa.table({"id": pa.array([], pa.string())}), []  # written by no engine: no rows
            vectors = built.index.reconstruct_n(0, len(built))
            columns = {"id": pa.array(built.ids, pa.string()), "vector": vector_column(vectors)}
            for name in built.metadata.columns:
                if name != "id":
                    values = built.metadata[name]
                    columns[name] = pa.array([None if v is None or pd.isna(v) else str(v) for v in values], pa.string())
            return pa.table(columns), []

        return run


def index_from_output(folder: str | Path, model: str | Path, kind: str = "auto", use: str = "image", name: str = "catalog"):
    """A :class:`~skulens.index.VectorIndex` from the Parquet output of an :class:`IndexJob` (vectors, ids, columns)."""
    from skulens.index import VectorIndex
    from skulens.tasks.align import AlignmentError, AlignmentModel

    table = read_output(folder)
    if table.num_rows == 0 or "vector" not in table.column_names:
        raise AlignmentError(f"catalog '{name}' has no product with a usable {use} to index")
    metadata = table.drop_columns(["id", "vector", ISSUE_COLUMN]).to_pandas()
    identity = AlignmentModel.load(model, check_encoders=False).identity
    extra = {"vectors": use, "catalog": name, "image_root": None}
    return VectorIndex.build(read_vectors(table), table.column("id").to_pylist(), identity, metadata, kind=kind, extra=extra)


def _predictions(frame: pd.DataFrame) -> pa.Table:
    """A :func:`~skulens.tasks.output_columns.prediction_frame` as Arrow, with the same types in every chunk
    (probabilities float64, the flag boolean, every other column text) so the parts read as one dataset."""
    columns = {}
    for name in frame.columns:
        values = [None if pd.isna(v) else v for v in frame[name]]
        kind = pa.float64() if name.startswith("probability_") else pa.bool_() if name == "differs_from_current" else pa.string()
        columns[name] = pa.array(values, kind)
    return pa.table(columns)


class ChunkRunner:
    """A started job as the engines call it: rows (with their ``issue`` column) in, a result table out.

    Also the class of the Ray actors: each actor builds one runner, so each holds one model (one ONNX
    session) for all the chunks it is given. ``threads`` caps the model's thread pools in this process.
    """

    def __init__(self, job: Job, image_roots: Sequence[str | Path], threads: int | None = None) -> None:
        if threads:
            from skulens.threads import THREADS_ENV, apply_thread_budget

            os.environ[THREADS_ENV] = str(threads)
            apply_thread_budget(threads)
        self.image_roots = tuple(Path(root) for root in image_roots)
        self.run = job.start()

    def __call__(self, rows: pd.DataFrame) -> pa.Table:
        given = rows[ISSUE_COLUMN].tolist() if ISSUE_COLUMN in rows.columns else [None] * len(rows)
        catalog = catalog_of_rows(rows, self.image_roots)
        if len(catalog) == 0:  # every row of the chunk was skipped (no id, repeated id): nothing to encode
            return pa.table({"id": pa.array([], pa.string()), ISSUE_COLUMN: pa.array([], pa.string())})
        table, issues = self.run(catalog)
        messages = {i: m for i, m in zip(catalog.ids, given) if isinstance(m, str)}
        for issue in issues:
            messages.setdefault(issue.id, issue.message)
        ids = table.column("id").to_pylist()
        return table.append_column(ISSUE_COLUMN, pa.array([messages.get(i) for i in ids], type=pa.string()))
