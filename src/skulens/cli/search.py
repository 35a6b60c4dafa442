"""``skulens search train|index|query``, ``skulens similar``, ``skulens dedupe`` and ``skulens zero-shot``:
the image-text alignment from the command line.

The main CLI mounts :data:`search_app` (``app.add_typer(search_app, name="search")``) and calls
:func:`register` for the top-level commands. Heavy imports happen inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from skulens.cli.output import console
from skulens.cli.output import fail as _fail

search_app = typer.Typer(
    help="Text and image search over a catalog with skulens' own image-text alignment.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors a user can fix; they are printed without a traceback."""
    from skulens.catalog import CatalogError
    from skulens.heads import HeadError
    from skulens.index import SearchIndexError
    from skulens.tasks.align import AlignmentError
    from skulens.tasks.model_folder import ModelFolderError

    return (AlignmentError, CatalogError, HeadError, ModelFolderError, SearchIndexError)


def _catalog(source: str):
    from skulens.catalog import load_catalog

    return load_catalog(source)


def _where(values: list[str]) -> dict[str, list[str]]:
    where: dict[str, list[str]] = {}
    for item in values:
        column, sep, value = item.partition("=")
        if not sep or not column.strip():
            raise _fail(f"--where '{item}' must look like COLUMN=VALUE, e.g. gender=Men")
        where.setdefault(column.strip(), []).append(value.strip())
    return where


def _hits_table(hits: list[dict], title: str) -> Table:
    table = Table(title=title)
    for column in ("rank", "id", "score", "title"):
        table.add_column(column)
    for rank, hit in enumerate(hits, 1):
        table.add_row(str(rank), escape(hit["id"]), f"{hit['score']:.3f}", escape(str(hit.get("title") or "")))
    return table


def _open_index(index_dir: Path, model_dir: Path | None):
    from skulens.index import VectorIndex
    from skulens.tasks.align import AlignmentModel

    index = VectorIndex.load(index_dir)
    folder = model_dir or index.manifest.get("model_folder")
    if not folder:
        raise _fail(f"{index_dir} does not record its model folder; pass --model")
    model = AlignmentModel.load(folder)
    index.check_identity(model.identity)
    return index, model


def _print_hits(hits: list[dict], as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(json.dumps(hits, ensure_ascii=False, default=str))
    else:
        console.print(_hits_table(hits, title))


@search_app.command("train")
def train(
    source: str = typer.Argument(..., metavar="DATASET_OR_FILE", help="Catalog with images and titles."),
    out: Path = typer.Option(..., "--out", "-o", help="Model folder to write (config.json + weights.npz)."),
    image_encoders: list[str] = typer.Option(
        ["efficientnet-lite0", "efficientnet-lite2", "classical-image"], "--image-encoder", help="Repeat for several."
    ),
    text_encoders: list[str] = typer.Option(["minilm", "tfidf"], "--text-encoder", help="Repeat for several."),
    dim: int = typer.Option(256, help="Dimension of the shared space."),
    hidden: int = typer.Option(0, help="0 = linear projections; N = MLP with N hidden units."),
    epochs: int = typer.Option(30, help="Most training epochs (early stopping on validation recall)."),
    limit: int | None = typer.Option(None, help="Only the first N products."),
    seed: int = typer.Option(0),
) -> None:
    """Train an image-text alignment on a catalog's image-title pairs and save it."""
    from skulens.heads.align import AlignConfig
    from skulens.tasks.align import AlignmentModel

    try:
        catalog = _catalog(source)
        if limit is not None:
            catalog = catalog.head(limit)
        config = AlignConfig(dim=dim, hidden=hidden, max_epochs=epochs, seed=seed)
        model = AlignmentModel(image_encoders, text_encoders, config=config, progress=True).fit(catalog)
        model.save(out)
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    best = model.heads.history[model.heads.best_epoch]
    console.print(
        f"trained on {model.trained_pairs} pairs; best epoch {best['epoch']} "
        f"(validation recall@1 {best.get('val_recall1', float('nan')):.3f}); saved to {escape(str(out))}"
    )


@search_app.command("index")
def build_index(
    source: str = typer.Argument(..., metavar="DATASET_OR_FILE", help="Catalog whose products to index."),
    model_dir: Path = typer.Option(..., "--model", "-m", help="Alignment model folder (skulens search train)."),
    out: Path = typer.Option(..., "--out", "-o", help="Index folder to write."),
    kind: str = typer.Option("auto", help="auto (flat up to 50,000 products, IVF above), flat, ivf or hnsw."),
    vectors: str = typer.Option("image", help="What to index per product: image, text or both."),
) -> None:
    """Embed every product and write a searchable index (FAISS + manifest + metadata)."""
    from skulens.tasks.align import AlignmentModel

    try:
        model = AlignmentModel.load(model_dir)
        index = model.build_index(_catalog(source), kind=kind, use=vectors)
        index.manifest["model_folder"] = str(model_dir.resolve())
        index.save(out)
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    console.print(f"indexed {len(index)} products ({index.kind} {index.manifest['params']}) into {escape(str(out))}")


@search_app.command("query")
def query(
    index_dir: Path = typer.Argument(..., metavar="INDEX", help="Index folder (skulens search index)."),
    text: str | None = typer.Argument(None, help="What to look for, e.g. 'red running shoes for men'."),
    image: Path | None = typer.Option(None, "--image", help="Query by this image instead of a text."),
    k: int = typer.Option(10, "-k", help="How many products to return."),
    where: list[str] = typer.Option([], "--where", help="COLUMN=VALUE filter; repeat for several."),
    model_dir: Path | None = typer.Option(None, "--model", "-m", help="Model folder (default: the one that built the index)."),
    as_json: bool = typer.Option(False, "--json", help="Print the hits as JSON."),
) -> None:
    """The products most similar to a text or an image."""
    try:
        index, model = _open_index(index_dir, model_dir)
        hits = model.search(index, text=text, image=image, k=k, where=_where(where))
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    _print_hits(hits, as_json, f"top {len(hits)} for {text or image}")


def similar(
    index_dir: Path = typer.Argument(..., metavar="INDEX", help="Index folder (skulens search index)."),
    product_id: str = typer.Argument(..., help="An indexed product id."),
    k: int = typer.Option(10, "-k", help="How many products to return."),
    where: list[str] = typer.Option([], "--where", help="COLUMN=VALUE filter; repeat for several."),
    model_dir: Path | None = typer.Option(None, "--model", "-m", help="Model folder (default: the one that built the index)."),
    as_json: bool = typer.Option(False, "--json", help="Print the hits as JSON."),
) -> None:
    """Products that look like PRODUCT_ID ("more like this")."""
    try:
        index, model = _open_index(index_dir, model_dir)
        hits = model.similar(index, product_id, k=k, where=_where(where))
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    _print_hits(hits, as_json, f"more like {product_id}")


def dedupe(
    source: str = typer.Argument(..., metavar="DATASET_OR_FILE", help="Catalog to check."),
    model_dir: Path = typer.Option(..., "--model", "-m", help="Alignment model folder."),
    threshold: float | None = typer.Option(
        None, help="Score (mean image+text cosine) above which a pair is flagged; default: chosen on the data."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the pairs as CSV here."),
    limit: int | None = typer.Option(None, help="Only the first N products."),
) -> None:
    """Near-duplicate listings: the same product photographed or titled twice."""
    from skulens.tasks.align import AlignmentModel

    try:
        catalog = _catalog(source)
        if limit is not None:
            catalog = catalog.head(limit)
        result = AlignmentModel.load(model_dir).dedupe(catalog, threshold=threshold)
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    precision = "n/a" if result.precision is None else f"{result.precision:.3f}"
    recall = "n/a" if result.recall is None else f"{result.recall:.3f}"
    console.print(
        f"{len(result.pairs)} near-duplicate pairs at threshold {result.threshold:.3f} ({result.threshold_source}); "
        f"{result.exact_pairs} exact-duplicate candidate pairs: precision {precision}, recall {recall}"
    )
    if out is not None:
        result.pairs.to_csv(out, index=False)
        console.print(f"wrote {escape(str(out))}")
    else:
        table = Table()
        for column in ("id_a", "id_b", "score", "image_sim", "text_sim", "exact"):
            table.add_column(column)
        for row in result.pairs.head(20).itertuples(index=False):
            table.add_row(
                escape(row.id_a),
                escape(row.id_b),
                f"{row.score:.3f}",
                f"{row.image_sim:.3f}",
                f"{row.text_sim:.3f}",
                str(row.exact),
            )
        console.print(table)


def zero_shot(
    source: str = typer.Argument(..., metavar="DATASET_OR_FILE", help="Catalog of products to categorise."),
    labels: str = typer.Option(..., "--labels", "-l", help="Comma-separated label names, e.g. 'Shoes,Watches,Bags'."),
    model_dir: Path = typer.Option(..., "--model", "-m", help="Alignment model folder."),
    k: int = typer.Option(3, "-k", help="How many labels to return per product."),
    use: str = typer.Option("image", help="Classify from the image, the text or both."),
    template: list[str] = typer.Option(
        [], "--template", help="Prompt template with {label}; repeat for several (default: built-in set)."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write predictions as CSV here."),
    limit: int | None = typer.Option(None, help="Only the first N products."),
) -> None:
    """Categorise products from label names alone (no labelled training data)."""
    import pandas as pd

    from skulens.tasks.align import DEFAULT_TEMPLATES, AlignmentModel

    names = [name.strip() for name in labels.split(",") if name.strip()]
    try:
        catalog = _catalog(source)
        if limit is not None:
            catalog = catalog.head(limit)
        top = AlignmentModel.load(model_dir).zero_shot(catalog, names, tuple(template) or DEFAULT_TEMPLATES, k=k, use=use)
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    frame = pd.DataFrame(
        {
            "id": catalog.ids,
            "title": catalog.frame["title"] if "title" in catalog.frame.columns else None,
            "label": [row[0][0] for row in top],
            "probability": [row[0][1] for row in top],
            "top_k": [json.dumps(row) for row in top],
        }
    )
    if out is not None:
        frame.to_csv(out, index=False)
        console.print(f"wrote {len(frame)} predictions to {escape(str(out))}")
        return
    table = Table()
    for column in ("id", "title", "label", "probability"):
        table.add_column(column)
    for row in frame.head(20).itertuples(index=False):
        table.add_row(escape(row.id), escape(str(row.title or "")), escape(row.label), f"{row.probability:.3f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Mount ``search`` and the top-level ``similar``, ``dedupe`` and ``zero-shot`` commands on ``app``."""
    app.add_typer(search_app, name="search")
    app.command("similar")(similar)
    app.command("dedupe")(dedupe)
    app.command("zero-shot")(zero_shot)
