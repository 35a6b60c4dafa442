"""The ``skulens`` command line (Typer). Heavy imports happen inside commands so ``--help`` is instant."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help=(
        "skulens: multimodal product intelligence for e-commerce catalogs.\n\n"
        "DATASET_OR_FILE is a built-in dataset (flipkart, myntra, reviews; read from $SKULENS_DATA or "
        "../shared/datasets) or a CSV/Parquet catalog with at least an 'id' column."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


def _load(source: str):
    from skulens.catalog import CatalogError, load_catalog

    try:
        return load_catalog(source)
    except CatalogError as exc:
        raise _fail(str(exc)) from None


@app.command()
def encoders(
    modality: Optional[str] = typer.Option(None, help="Only 'image' or 'text' encoders."),
    pattern: str = typer.Option("*", help="Glob on the encoder name, e.g. 'efficientnet-*'."),
) -> None:
    """List the registered encoders (name, modality, embedding size)."""
    from skulens.encoders import list_encoders

    table = Table("name", "modality", "dim", "description")
    for info in list_encoders(pattern, modality):
        table.add_row(info.name, info.modality, str(info.dim) if info.dim else "per model/fit", info.description)
    console.print(table)


@app.command()
def ingest(
    source: str = typer.Argument(..., metavar="DATASET_OR_FILE"),
    check_images: bool = typer.Option(True, help="Open every image header to find missing or bad images."),
    show_issues: int = typer.Option(10, help="How many row issues to print."),
) -> None:
    """Validate a catalog and summarise it: rows, classes per category level, missing/bad images."""
    from skulens.catalog import check_images as check

    catalog = _load(source)
    issues = list(catalog.issues)
    image_issues = check(catalog) if check_images else []
    console.print(f"[bold]{catalog.name}[/]: {len(catalog):,} rows, columns: {', '.join(catalog.frame.columns)}")
    for column in ("title", "description", "image", "review_text", "rating"):
        if column in catalog.frame.columns:
            console.print(f"  {column:<12} {int(catalog.frame[column].notna().sum()):>7,} rows have it")
    if check_images and catalog.has("image"):
        console.print(f"  images unusable: {len(image_issues)}")
    for level in range(catalog.depth):
        counts = catalog.labels(level).value_counts()
        top = ", ".join(f"{name} ({count})" for name, count in counts.head(5).items())
        console.print(f"  level {level}: {len(counts)} classes; top: {top}")
    all_issues = issues + image_issues
    if all_issues:
        console.print(f"[yellow]{len(all_issues)} row issue(s)[/] (rows skipped or fields dropped):")
        for issue in all_issues[:show_issues]:
            console.print(f"  - {issue}")


@app.command()
def embed(
    source: str = typer.Argument(..., metavar="DATASET_OR_FILE"),
    encoder: str = typer.Option(..., "--encoder", "-e", help="Encoder name; see `skulens encoders`."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for embeddings.npz, issues.csv, manifest.json."),
    limit: Optional[int] = typer.Option(None, help="Only the first N rows."),
    cache_dir: Optional[Path] = typer.Option(None, help="Embedding cache (default $SKULENS_CACHE or ~/.cache/skulens)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Recompute everything; do not read or write the cache."),
) -> None:
    """Embed a catalog's images or texts with one encoder; re-runs reuse the on-disk cache."""
    from skulens.catalog import CatalogError, write_issues
    from skulens.embed import embed_catalog
    from skulens.encoders import EncoderError, create_encoder

    catalog = _load(source)
    if limit is not None:
        catalog = catalog.head(limit)
    try:
        model = create_encoder(encoder)
        if model.requires_fit:
            model.fit(catalog.texts())
        started = time.perf_counter()
        result = embed_catalog(catalog, model, cache_dir=cache_dir, use_cache=not no_cache, progress=True)
    except (CatalogError, EncoderError) as exc:
        raise _fail(str(exc)) from None
    elapsed = time.perf_counter() - started
    path = result.save(out)
    issues_path = out / "issues.csv"
    write_issues(catalog.issues + result.issues, issues_path)
    manifest = {
        "source": source,
        "rows": len(catalog),
        "encoder": result.encoder,
        "dim": int(result.vectors.shape[1]),
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
    console.print(f"outputs: {path}, {issues_path}, {out / 'manifest.json'}")


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Where the demo writes its outputs."),
    limit: Optional[int] = typer.Option(None, help="Only the first N products (quicker)."),
) -> None:
    """End to end on Flipkart: ingest, embed with the default image and text encoders, summarise."""
    from skulens.embed import embed_catalog
    from skulens.encoders import create_encoder

    catalog = _load("flipkart")
    if limit is not None:
        catalog = catalog.head(limit)
    console.print(f"[bold]1. ingest[/]: {catalog!r}")
    for name in ("efficientnet-lite0", "minilm"):
        started = time.perf_counter()
        result = embed_catalog(catalog, create_encoder(name), progress=True)
        path = result.save(out / name)
        console.print(
            f"[bold]2. embed {name}[/]: {int(result.present.sum())}/{len(catalog)} rows, dim {result.vectors.shape[1]}, "
            f"{result.encoded} encoded + {result.cached} cached in {time.perf_counter() - started:.1f}s -> {path}"
        )
        for issue in result.issues:
            console.print(f"   [yellow]skipped[/] {issue}")
    console.print(f"[bold]done[/]: outputs in {out.resolve()}")


if __name__ == "__main__":
    app()
