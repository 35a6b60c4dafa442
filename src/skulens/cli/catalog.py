"""``skulens encoders``, ``skulens ingest`` and ``skulens embed``: look at a catalog and embed it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from skulens.cli.commands import add_commands, flag
from skulens.cli.engines import ChunkRows, Engine, RayAddress, RayCpus, run_streamed
from skulens.cli.output import console, fail
from skulens.cli.sources import Columns, ImageRoots, Source, load_source, report_images

PANEL = "Catalogs"
DEFAULT_TEXT_FIELDS = "title,description,review_text"
DEFAULT_CHUNK_ROWS = 4096  # skulens.catalog.streaming.DEFAULT_CHUNK_ROWS (not imported: --help stays fast)


def encoders(
    modality: Annotated[str | None, typer.Option(metavar="image|text", help="Only image or text encoders.")] = None,
    pattern: Annotated[str, typer.Option(metavar="GLOB", help="Filter names, e.g. 'efficientnet-*'.")] = "*",
) -> None:
    """List the encoders that can embed images or texts (name, modality, embedding size)."""
    from rich.table import Table

    from skulens.encoders import list_encoders

    table = Table("name", "modality", "dim", "description", header_style="bold")
    for info in list_encoders(pattern, modality):
        table.add_row(info.name, info.modality, str(info.dim) if info.dim else "per model/fit", info.description)
    console.print(table)


def ingest(
    source: Source,
    columns: Columns = None,
    image_root: ImageRoots = None,
    check_images: Annotated[
        bool, flag("--check-images/--no-check-images", help="Open every image header to find missing or bad images.")
    ] = True,
    show_issues: Annotated[int, typer.Option(metavar="N", help="How many row issues to print.")] = 10,
    issues: Annotated[Path | None, typer.Option(metavar="FILE", help="Write every row issue to this CSV.")] = None,
) -> None:
    """Validate a catalog and summarise it: rows, columns, classes per category level, unusable images.

    Example: skulens ingest products.csv --columns title=product_name,image=img
    """
    from rich.markup import escape

    from skulens.catalog import check_images as check

    catalog = load_source(source, columns, image_root)
    image_issues = check(catalog) if check_images else []
    console.print(f"[bold]{escape(catalog.name)}[/]: {len(catalog):,} rows, columns: {escape(', '.join(catalog.frame.columns))}")
    for column in ("title", "description", "image", "review_text", "rating"):
        if column in catalog.frame.columns:
            console.print(f"  {column:<12} {int(catalog.frame[column].notna().sum()):>7,} rows have it")
    if check_images and catalog.has("image"):
        console.print(f"  images unusable: {len(image_issues)}")
    for level in range(catalog.depth):
        counts = catalog.labels(level).value_counts()
        top = ", ".join(f"{name} ({count})" for name, count in counts.head(5).items())
        console.print(f"  level {level}: {len(counts)} classes; top: {escape(top)}")
    all_issues = catalog.issues + image_issues
    if all_issues:
        console.print(f"[yellow]{len(all_issues)} row issue(s)[/] (rows skipped or fields dropped):")
        for issue in all_issues[:show_issues]:
            console.print(f"  - {escape(str(issue))}")
    report_images(catalog, image_issues, issues)


def embed(
    source: Source,
    encoder: Annotated[str, typer.Option("--encoder", "-e", metavar="NAME", help="Encoder name; see `skulens encoders`.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", metavar="DIR", help="Folder for embeddings.npz, issues.csv, manifest.json.")
    ],
    limit: Annotated[int | None, typer.Option(metavar="N", help="Only the first N rows.")] = None,
    text_fields: Annotated[
        str, typer.Option(metavar="FIELD,...", help="Text columns joined into each row's text (text encoders).")
    ] = DEFAULT_TEXT_FIELDS,
    cache_dir: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Embedding cache (default $SKULENS_CACHE or ~/.cache/skulens).")
    ] = None,
    no_cache: Annotated[bool, flag("--no-cache", help="Recompute everything; do not read or write the cache.")] = False,
    columns: Columns = None,
    image_root: ImageRoots = None,
    parquet: Annotated[
        bool, flag("--parquet", help="Stream the catalog in chunks and write Parquet parts (id, vector, present, issue).")
    ] = False,
    engine: Engine = "local",
    ray_address: RayAddress = None,
    ray_cpus: RayCpus = None,
    chunk_rows: ChunkRows = DEFAULT_CHUNK_ROWS,
) -> None:
    """Embed a catalog's images or texts with one encoder; re-runs reuse the on-disk cache.

    Without --parquet or --engine ray: the catalog is read whole and DIR gets embeddings.npz. With them it
    is streamed in chunks (memory stays bounded on catalogs of millions of rows) and DIR gets Parquet parts.

    Example: skulens embed flipkart -e efficientnet-lite0 --limit 64 -o runs/emb

    Example: skulens embed products.csv -e minilm --engine ray --ray-address auto -o runs/emb
    """
    from skulens.catalog import CatalogError
    from skulens.embed import embed_catalog
    from skulens.encoders import create_encoder
    from skulens.progress import step

    fields = tuple(f.strip() for f in text_fields.split(",") if f.strip())
    if parquet or engine != "local" or ray_address is not None:
        from skulens.engines import EmbedJob

        if limit is not None:
            raise fail("--limit reads the whole catalog; it cannot be combined with --parquet/--engine ray")
        job = EmbedJob(encoder, fields, str(cache_dir) if cache_dir else None, use_cache=not no_cache)
        run_streamed(source, job, out, engine, ray_address, ray_cpus, chunk_rows, columns, image_root, "embedded")
        return
    catalog = load_source(source, columns, image_root)
    if limit is not None:
        catalog = catalog.head(limit)
    with step(f"loading {encoder}"):
        model = create_encoder(encoder)
    if model.modality == "text" and not any(f in catalog.frame.columns for f in fields):
        raise CatalogError(f"none of the text fields {list(fields)} is a column of {catalog.name}; pick some with --text-fields")
    if model.requires_fit:
        with step(f"fitting {encoder} on {len(catalog):,} texts ({', '.join(fields)})"):
            model.fit(catalog.texts(fields))
    started = time.perf_counter()
    result = embed_catalog(catalog, model, cache_dir=cache_dir, use_cache=not no_cache, progress=True, text_fields=fields)
    elapsed = time.perf_counter() - started
    path = result.save(out)
    issues_path = out / "issues.csv"
    manifest = {
        "source": source,
        "rows": len(catalog),
        "encoder": result.encoder,
        "dim": int(result.vectors.shape[1]),
        "text_fields": list(fields) if model.modality == "text" else None,
        "present": int(result.present.sum()),
        "encoded": result.encoded,
        "from_cache": result.cached,
        "issues": len(result.issues),
        "seconds": round(elapsed, 2),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    console.print(
        f"{manifest['present']}/{len(catalog)} rows embedded ({result.encoded} encoded, {result.cached} from cache) "
        f"in {elapsed:.1f}s with {result.encoder}; {len(result.issues)} issue(s)"
    )
    report_images(catalog, result.issues, issues_path, images=model.modality == "image")
    console.print(f"outputs: {path}, {issues_path}, {out / 'manifest.json'}")


def register(app: typer.Typer) -> None:
    """Add ``encoders``, ``ingest`` and ``embed`` to the top level."""
    add_commands(app, encoders, ingest, embed, rich_help_panel=PANEL)
