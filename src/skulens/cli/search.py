"""``skulens search train|index|query``, ``skulens similar``, ``skulens dedupe`` and ``skulens zero-shot``:
skulens' own image-text space (an alignment trained on a catalog's photo-title pairs) from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from skulens.cli.commands import Command, add_commands, flag, group
from skulens.cli.engines import ChunkRows, Engine, RayAddress, RayCpus, run_streamed
from skulens.cli.output import console, fail, warn
from skulens.cli.sources import Columns, ImageRoots, Source, load_source, report_issues

DEFAULT_IMAGE_ENCODERS = ["efficientnet-lite0", "efficientnet-lite2", "classical-image"]
DEFAULT_TEXT_ENCODERS = ["minilm", "tfidf"]

search_app = group(
    "Search products by words or by a photo with an image-text alignment trained on your catalog.\n\n"
    "Examples:\n\n"
    "  skulens search train myntra --out runs/align\n\n"
    "  skulens search index myntra --model runs/align --out runs/align/index\n\n"
    "  skulens search query runs/align/index 'red running shoes for men' -k 10 --where gender=Men\n\n"
    "  skulens search query runs/align/index --image shoe.jpg"
)

Index = Annotated[Path, typer.Argument(metavar="INDEX", help="An index folder written by `skulens search index`.")]
AlignModel = Annotated[
    Path,
    typer.Option(
        "--model", "-m", metavar="DIR", help="An alignment model (`skulens search train`), or `base`: the packaged base space."
    ),
]
OptionalAlignModel = Annotated[
    Path | None,
    typer.Option(
        "--model",
        "-m",
        metavar="DIR",
        help="An alignment model folder, or `base` (default): the packaged base space blended with the training-free prior.",
    ),
]
ModelOverride = Annotated[
    Path | None,
    typer.Option("--model", "-m", metavar="DIR", help="Alignment model folder (default: the one that built the index)."),
]
Where = Annotated[
    list[str] | None, typer.Option("--where", metavar="COLUMN=VALUE", help="Keep products with this value; repeat for several.")
]
K = Annotated[int, typer.Option("-k", metavar="N", help="How many products to return.")]
AsJson = Annotated[bool, flag("--json", help="Print the results as JSON.")]
Limit = Annotated[int | None, typer.Option(metavar="N", help="Only the first N products.")]


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors a user can fix; they are printed without a traceback."""
    from skulens.catalog import CatalogError
    from skulens.heads import HeadError
    from skulens.index import SearchIndexError
    from skulens.tasks.align import AlignmentError
    from skulens.tasks.model_folder import ModelFolderError

    return (AlignmentError, CatalogError, HeadError, ModelFolderError, SearchIndexError)


def _model_ref(model: Path) -> str:
    """How an index records its model: ``base`` for the packaged base space, else the folder's absolute path."""
    from skulens.tasks.align.base_space import is_base

    return "base" if is_base(model) else str(model.resolve())


def _where(values: list[str] | None) -> dict[str, list[str]]:
    where: dict[str, list[str]] = {}
    for item in values or []:
        column, sep, value = item.partition("=")
        if not sep or not column.strip():
            raise fail(f"--where '{item}' must look like COLUMN=VALUE, e.g. gender=Men")
        where.setdefault(column.strip(), []).append(value.strip())
    return where


def _load_keeping_columns(source: str, columns: str | None, image_root: list[Path] | None):
    """A catalog whose extra columns all go into the index (for --where and display): none is reported unused."""
    from skulens.catalog import ADAPTERS, load_catalog, parse_columns
    from skulens.cli.sources import report_mapping

    catalog = load_catalog(source, columns=parse_columns(columns), image_roots=list(image_root or []))
    if source not in ADAPTERS:
        report_mapping(catalog, uses=catalog.frame.columns)
    return catalog


def _issues_file(out: Path | None) -> Path | None:
    """Where a command writing ``out`` (a folder or a file) lists its row issues."""
    if out is None:
        return None
    return out.with_name(out.stem + ".issues.csv") if out.suffix else out / "issues.csv"


def _image_check(catalog):
    """The unusable images of ``catalog`` (the check every command runs)."""
    from skulens.catalog import check_images

    return check_images(catalog)


def _open_index(index_dir: Path, model_dir: Path | None):
    from skulens.index import VectorIndex
    from skulens.tasks.align import AlignmentModel

    index = VectorIndex.load(index_dir)
    folder = model_dir or index.manifest.get("model_folder")
    if not folder:
        raise fail(f"{index_dir} does not record its model folder; pass --model DIR")
    model = AlignmentModel.load(folder)
    index.check_identity(model.identity)
    return index, model


def _print_hits(hits: list[dict], as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(json.dumps(hits, ensure_ascii=False, default=str))
        return
    table = Table(title=escape(title))
    for column in ("rank", "id", "similarity", "title"):
        table.add_column(column, justify="right" if column in ("rank", "similarity") else "left")
    for rank, hit in enumerate(hits, 1):
        table.add_row(str(rank), escape(hit["id"]), f"{hit['score']:.3f}", escape(str(hit.get("title") or "")))
    console.print(table)


def train(
    source: Source,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Model folder to write (config.json + weights.npz).")],
    image_encoder: Annotated[
        list[str], typer.Option("--image-encoder", metavar="NAME", help="Frozen image encoders; repeat for several.")
    ] = DEFAULT_IMAGE_ENCODERS,
    text_encoder: Annotated[
        list[str], typer.Option("--text-encoder", metavar="NAME", help="Frozen text encoders; repeat for several.")
    ] = DEFAULT_TEXT_ENCODERS,
    dim: Annotated[int, typer.Option(metavar="N", help="Dimension of the shared space.")] = 256,
    hidden: Annotated[int, typer.Option(metavar="N", help="0 = linear projections; N = an MLP with N hidden units.")] = 0,
    epochs: Annotated[int, typer.Option(metavar="N", help="Most epochs (early stopping on validation recall).")] = 30,
    limit: Limit = None,
    seed: Annotated[int, typer.Option(metavar="N", help="Random seed.")] = 0,
    clip: Annotated[
        Path | None,
        typer.Option(
            "--clip", metavar="DIR", help="Save this local CLIP checkpoint's own space instead (no training; DATA is not read)."
        ),
    ] = None,
    from_base: Annotated[
        bool,
        flag("--from-base", help="Start from the packaged base space and adapt it (encoder options are the base space's)."),
    ] = False,
    columns: Columns = None,
    image_root: ImageRoots = None,
) -> None:
    """Train an image-text alignment on a catalog's photo-title pairs and save it.

    Example: skulens search train myntra --out runs/align   (or --from-base to adapt the packaged base space)
    """
    from skulens.heads.align import AlignConfig
    from skulens.progress import step
    from skulens.tasks.align import AlignmentModel

    if clip is not None:
        try:
            AlignmentModel.from_clip(clip).save(out)
        except (*_user_errors(), ValueError) as exc:
            raise fail(str(exc)) from None
        console.print(f"saved the CLIP checkpoint {escape(str(clip))} as an alignment model (no training) to {escape(str(out))}")
        return
    catalog = load_source(source, columns, image_root)
    if limit is not None:
        catalog = catalog.head(limit)
    found = _image_check(catalog)
    if from_base:
        try:
            base = AlignmentModel.load("base")
            with step(f"adapting the base space to {len(catalog):,} products"):
                model = AlignmentModel().adapt(catalog, base)
            model.save(out)
        except _user_errors() as exc:
            raise fail(str(exc)) from None
        report_issues(catalog, found, _issues_file(out))
        if model is base:
            warn(base.adapt_note)
        console.print(f"{escape(model.adapt_note)}; saved to {escape(str(out))}")
        return
    try:
        config = AlignConfig(dim=dim, hidden=hidden, epochs=epochs, seed=seed)
        model = AlignmentModel(image_encoder, text_encoder, head_config=config, progress=True)
        with step(f"training on {len(catalog):,} products ({', '.join(image_encoder + text_encoder)})"):
            model.fit(catalog)
        model.save(out)
    except _user_errors() as exc:
        raise fail(str(exc)) from None
    report_issues(catalog, found, _issues_file(out))
    best = model.heads_.history[model.heads_.best_epoch]
    recall = best.get("val_recall1")
    console.print(
        f"trained on {model.trained_pairs_:,} photo-title pairs; best epoch {best['epoch']}"
        + (f" (validation recall@1 {recall:.3f})" if recall is not None else "")
        + f"; saved to {escape(str(out))}"
    )


def index(
    source: Source,
    model: AlignModel,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Index folder to write.")],
    kind: Annotated[
        str, typer.Option(metavar="auto|flat|ivf|hnsw", help="auto: flat up to 50,000 products, IVF above.")
    ] = "auto",
    vectors: Annotated[str, typer.Option(metavar="image|text|both", help="What represents each product.")] = "image",
    limit: Limit = None,
    columns: Columns = None,
    image_root: ImageRoots = None,
    parquet: Annotated[
        bool,
        flag("--parquet", help="Stream the catalog in chunks (bounded memory while encoding); vectors kept in DIR/vectors."),
    ] = False,
    engine: Engine = "local",
    ray_address: RayAddress = None,
    ray_cpus: RayCpus = None,
    chunk_rows: ChunkRows = 4096,
) -> None:
    """Embed every product and write a searchable index (FAISS index + manifest + metadata for --where).

    With --parquet or --engine ray the products are encoded chunk by chunk (on Ray: by an actor pool) into
    DIR/vectors/*.parquet, and the index is built from those files.

    Example: skulens search index myntra --model runs/align --out runs/align/index
    """
    from skulens.progress import step
    from skulens.tasks.align import AlignmentModel

    if parquet or engine != "local" or ray_address is not None:
        from skulens.engines import IndexJob, index_from_output

        if limit is not None:
            raise fail("--limit reads the whole catalog; it cannot be combined with --parquet/--engine ray")
        vectors_dir = out / "vectors"
        job = IndexJob(_model_ref(model), vectors)
        run_streamed(
            source,
            job,
            vectors_dir,
            engine,
            ray_address,
            ray_cpus,
            chunk_rows,
            columns,
            image_root,
            "encoded",
            keeps_columns=True,
        )
        try:
            with step("building the index"):
                built = index_from_output(vectors_dir, model, kind=kind, use=vectors, name=Path(source).stem)
            built.manifest["model_folder"] = _model_ref(model)
            built.save(out)
        except _user_errors() as exc:
            raise fail(str(exc)) from None
        console.print(f"indexed {len(built):,} products ({built.kind} {built.manifest['params']}) into {escape(str(out))}")
        return
    catalog = _load_keeping_columns(source, columns, image_root)
    if limit is not None:
        catalog = catalog.head(limit)
    found = _image_check(catalog) if vectors != "text" else []
    try:
        aligned = AlignmentModel.load(model)
        aligned.progress = True
        with step(f"indexing {len(catalog):,} products"):
            built = aligned.build_index(catalog, kind=kind, use=vectors)
        built.manifest["model_folder"] = _model_ref(model)
        built.save(out)
    except _user_errors() as exc:
        raise fail(str(exc)) from None
    report_issues(catalog, found, _issues_file(out), images=vectors != "text")
    console.print(f"indexed {len(built):,} products ({built.kind} {built.manifest['params']}) into {escape(str(out))}")


def query(
    index_dir: Index,
    text: Annotated[
        str | None, typer.Argument(metavar="TEXT", help="What to look for, e.g. 'red running shoes for men'.")
    ] = None,
    image: Annotated[Path | None, typer.Option("--image", metavar="FILE", help="Query by this photo instead of a text.")] = None,
    k: K = 10,
    where: Where = None,
    model: ModelOverride = None,
    as_json: AsJson = False,
) -> None:
    """The products closest to a text or a photo.

    Example: skulens search query runs/align/index 'red running shoes for men' -k 10 --where gender=Men
    """
    try:
        loaded, aligned = _open_index(index_dir, model)
        hits = aligned.search(loaded, text=text, image=image, k=k, where=_where(where) or None)
    except _user_errors() as exc:
        raise fail(str(exc)) from None
    _print_hits(hits, as_json, f"top {len(hits)} for {text if text is not None else image}")


def similar(
    index_dir: Index,
    product_id: Annotated[str, typer.Argument(metavar="PRODUCT_ID", help="An indexed product id.")],
    k: K = 10,
    where: Where = None,
    model: ModelOverride = None,
    as_json: AsJson = False,
) -> None:
    """Products that look like PRODUCT_ID ("more like this").

    Example: skulens similar runs/align/index 15970 -k 5
    """
    try:
        loaded, aligned = _open_index(index_dir, model)
        hits = aligned.similar(loaded, product_id, k=k, where=_where(where) or None)
    except _user_errors() as exc:
        raise fail(str(exc)) from None
    _print_hits(hits, as_json, f"more like {product_id}")


def dedupe(
    source: Source,
    model: AlignModel,
    threshold: Annotated[
        float | None,
        typer.Option(metavar="SCORE", help="Flag pairs above this mean photo+text cosine (default: chosen on the data)."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", metavar="FILE", help="Write every pair as CSV here.")] = None,
    limit: Limit = None,
    columns: Columns = None,
    image_root: ImageRoots = None,
) -> None:
    """Near-duplicate listings: the same product photographed or titled twice.

    Example: skulens dedupe myntra --model runs/align --out runs/duplicates.csv
    """
    from skulens.tasks.align import AlignmentModel
    from skulens.tasks.output_columns import readable_pairs

    catalog = load_source(source, columns, image_root)
    if limit is not None:
        catalog = catalog.head(limit)
    found = _image_check(catalog)
    try:
        result = AlignmentModel.load(model).dedupe(catalog, threshold=threshold)
    except _user_errors() as exc:
        raise fail(str(exc)) from None
    report_issues(catalog, found, _issues_file(out))
    quality = ""
    if result.precision is not None:
        quality = (
            f"; against the {result.exact_pairs:,} exact-duplicate candidate pairs (same photo bytes or title): "
            f"precision {result.precision:.3f}, recall {result.recall:.3f}"
        )
    console.print(
        f"{len(result.pairs):,} near-duplicate pairs at score >= {result.threshold:.3f} ({result.threshold_source}){quality}"
    )
    if out is not None:
        from skulens.outputs import write_csv

        write_csv(readable_pairs(result.pairs, catalog), out)
        console.print(f"wrote {escape(str(out))}")
        return
    table = Table()
    for column in ("id_a", "id_b", "score", "photo", "text", "exact"):
        table.add_column(column)
    for row in result.pairs.head(20).itertuples(index=False):
        table.add_row(
            escape(row.id_a), escape(row.id_b), f"{row.score:.3f}", f"{row.image_sim:.3f}", f"{row.text_sim:.3f}", str(row.exact)
        )
    console.print(table)


def zero_shot(
    source: Source,
    labels: Annotated[str, typer.Option("--labels", "-l", metavar="A,B,...", help="Comma-separated category names.")],
    model: OptionalAlignModel = None,
    k: Annotated[int, typer.Option("-k", metavar="N", help="How many labels to show per product.")] = 3,
    use: Annotated[str, typer.Option(metavar="image|text|both", help="Categorise from the photo, the text or both.")] = "image",
    template: Annotated[
        list[str] | None, typer.Option("--template", metavar="TEXT", help="Prompt with {label}; repeat (default: built-in set).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", metavar="FILE", help="Write the predictions as CSV here.")] = None,
    limit: Limit = None,
    columns: Columns = None,
    image_root: ImageRoots = None,
) -> None:
    """Categorise products from category names alone (no labelled training data).

    Without --model, the packaged base space (trained on Myntra, no training on your catalog) blended with
    the training-free ImageNet-vocabulary prior; labels the prior cannot place are scored by the base space.

    Example: skulens zero-shot flipkart --labels 'Watches,Baby Care,Computers'
    """
    import pandas as pd

    from skulens.catalog import issue_column
    from skulens.tasks.align import DEFAULT_TEMPLATES, AlignmentModel
    from skulens.tasks.output_columns import DECIMALS, product_columns, top_k_columns

    names = [name.strip() for name in labels.split(",") if name.strip()]
    catalog = load_source(source, columns, image_root)
    if limit is not None:
        catalog = catalog.head(limit)
    found = _image_check(catalog) if use != "text" else []
    try:
        aligned = AlignmentModel.load(model if model is not None else "base")
        top = aligned.zero_shot(catalog, names, tuple(template or ()) or DEFAULT_TEMPLATES, k=k, use=use)
    except _user_errors() as exc:
        raise fail(str(exc)) from None
    issues = report_issues(catalog, found, _issues_file(out), images=use != "text")
    if aligned.zero_shot_note:
        warn(aligned.zero_shot_note)
    columns = product_columns(catalog)
    columns.setdefault("title", [None] * len(catalog))
    frame = pd.DataFrame(
        {
            **columns,
            "label": [row[0][0] if row else None for row in top],
            "probability": [round(row[0][1], DECIMALS) if row else None for row in top],
            **top_k_columns(top, k, name="label"),
            "issue": issue_column(catalog, issues),
        }
    )
    if out is not None:
        from skulens.outputs import write_csv

        write_csv(frame, out)
        console.print(f"wrote {len(frame):,} predictions to {escape(str(out))}")
        return
    table = Table()
    for column in ("id", "title", "label", "probability"):
        table.add_column(column)
    for row in frame.head(20).itertuples(index=False):
        shown = (escape(row.label), f"{row.probability:.3f}") if row.label else ("—", escape(str(row.issue or "")))
        table.add_row(escape(row.id), escape(str(row.title or "")), *shown)
    console.print(table)


add_commands(search_app, train, index, query)


def register(main: typer.Typer) -> None:
    """Add the ``search`` group and the ``similar``, ``dedupe`` and ``zero-shot`` commands."""
    main.add_typer(search_app, name="search", rich_help_panel="Tasks")
    add_commands(main, similar, dedupe, rich_help_panel="Tasks")
    main.command("zero-shot", cls=Command, rich_help_panel="Tasks")(zero_shot)
