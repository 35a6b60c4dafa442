"""The local engine: one process, one chunk at a time, bounded memory."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq

from skulens.catalog.streaming import CatalogStream, rows_frame
from skulens.engines.jobs import ChunkRunner, Job
from skulens.engines.output import RunSummary, prepare_output
from skulens.progress import progress_bar


def run_local(stream: CatalogStream, job: Job, out: str | Path, progress: bool = False) -> RunSummary:
    """Run ``job`` over ``stream`` chunk by chunk in this process, appending to ``out/part-00000.parquet``.

    Memory holds one chunk, the model and the ids seen so far (to skip duplicates across chunks).
    """
    out = prepare_output(Path(out))
    started = time.perf_counter()
    runner = ChunkRunner(job, stream.image_roots)
    writer: pq.ParquetWriter | None = None
    rows_in = rows_out = with_issue = 0
    try:
        with progress_bar(stream.count_rows() or 0, f"{stream.name} rows", progress) as bar:
            for catalog in stream.chunks():
                read = len(catalog) + sum(1 for issue in catalog.issues if issue.column == "id")
                table = runner(rows_frame(catalog))
                if table.num_rows:  # a chunk whose rows were all skipped may have no columns to write
                    if writer is None:
                        writer = pq.ParquetWriter(out / "part-00000.parquet", table.schema)
                    writer.write_table(table)
                rows_in += read
                rows_out += table.num_rows
                with_issue += table.num_rows - table.column("issue").null_count
                bar.advance(read)
    finally:
        if writer is not None:
            writer.close()
    return RunSummary("local", rows_in, rows_out, with_issue, round(time.perf_counter() - started, 3), str(out))
