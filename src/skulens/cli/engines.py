"""The options that run a command on an engine (``--engine local|ray``, ``--ray-address``, ``--chunk-rows``)
and the streamed run they share: catalog streamed in chunks -> job -> Parquet parts + ``_manifest.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from skulens.cli.output import console, fail, warn

if TYPE_CHECKING:
    from skulens.engines import Job, RunSummary

Engine = Annotated[
    str,
    typer.Option(
        metavar="local|ray",
        help="local: this process, one chunk at a time (bounded memory). ray: a Ray Data pipeline (validate as tasks, "
        "encode in an actor pool, write Parquet) on a local Ray or the cluster given by --ray-address.",
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        metavar="auto|ray://HOST:PORT",
        help="The Ray cluster to run on (auto: the one this machine belongs to). Without it a private local Ray starts on this machine (node address 127.0.0.1).",
        show_default=False,
    ),
]
RayCpus = Annotated[
    int | None,
    typer.Option(
        metavar="N",
        help="CPUs of the local Ray started without --ray-address (default: the cores, 2 to 4; at least 2): "
        "one reads and validates, each other one runs an encoding actor.",
        show_default=False,
    ),
]
ChunkRows = Annotated[int, typer.Option(metavar="N", help="Rows per chunk read and encoded at once (memory vs batching).")]


def open_source_stream(
    source: str, columns: str | None, image_roots: list[Path] | None, chunk_rows: int, keeps_columns: bool = False
):
    """A built-in dataset or a file as a :class:`~skulens.catalog.streaming.CatalogStream` (exits 2 on bad input).

    ``keeps_columns``: the job keeps every column (a search index: for --where and display), so none is
    reported as unused."""
    import pandas as pd

    from skulens.catalog import ADAPTERS, Catalog, load_catalog, parse_columns
    from skulens.catalog.streaming import open_stream
    from skulens.cli.sources import report_mapping

    roots = list(image_roots or [])
    for root in roots:
        if not root.is_dir():
            raise fail(f"--image-root {root} is not a folder")
    if source in ADAPTERS:
        return open_stream(load_catalog(source, columns=parse_columns(columns), image_roots=roots), chunk_rows=chunk_rows)
    stream = open_stream(Path(source), parse_columns(columns), image_roots=roots, chunk_rows=chunk_rows)
    report_mapping(
        Catalog(pd.DataFrame({"id": []}), name=stream.name, mapping=stream.mapping), stream.header if keeps_columns else ()
    )
    return stream


def run_streamed(
    source: str,
    job: Job,
    out: Path,
    engine: str,
    address: str | None,
    cpus: int | None,
    chunk_rows: int,
    columns: str | None,
    image_roots: list[Path] | None,
    what: str,
    keeps_columns: bool = False,
) -> RunSummary:
    """Stream ``source`` through ``job`` on ``engine`` into Parquet parts in ``out``; writes ``out/_manifest.json``.
    ``keeps_columns``: see :func:`open_source_stream`."""
    from skulens.catalog.issues import count_line
    from skulens.engines import ENGINES, run_job
    from skulens.engines.output import ISSUES_FILE, MANIFEST
    from skulens.outputs import folder_lock, write_text

    if engine not in ENGINES:
        raise fail(f"--engine must be one of {', '.join(ENGINES)}, not '{engine}'")
    stream = open_source_stream(source, columns, image_roots, chunk_rows, keeps_columns)
    if out.exists() and not out.is_dir():
        raise fail(f"output {out} is a file; give a folder for the Parquet parts")
    with folder_lock(out):  # one run at a time per output folder; the manifest is written last
        summary = run_job(stream, job, out, engine=engine, address=address, num_cpus=cpus, progress=True)
        manifest = {"source": source, "job": type(job).__name__, **vars(job), "chunk_rows": chunk_rows, **summary.to_dict()}
        write_text(out / MANIFEST, json.dumps(manifest, indent=2, default=str))
    rate = summary.rows_out / summary.seconds if summary.seconds else 0.0
    console.print(f"{summary.rows_out:,} rows {what} with the {engine} engine in {summary.seconds:.1f}s ({rate:,.0f} rows/s)")
    line = count_line(summary.rows_in, summary.issues, str(out / ISSUES_FILE))
    if line is not None:
        warn(line)
    skipped = sum(issue.column == "id" for issue in summary.issues)
    unencoded = summary.rows_in - summary.rows_out - skipped
    if unencoded > 0:  # an index job leaves out rows without a usable vector
        warn(f"{unencoded:,} rows left out: nothing to encode (no usable image or text)")
    console.print(f"outputs: {out}/*.parquet, {out / ISSUES_FILE}, {out / MANIFEST}")
    return summary
