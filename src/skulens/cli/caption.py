"""``skulens caption train|evaluate`` and ``skulens caption IMAGE... --model M``: product titles written from
product photos by a decoder trained on a catalog's image-title pairs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from skulens.cli.commands import HELP_NAMES, Group, add_commands, flag
from skulens.cli.output import console, fail
from skulens.cli.sources import Columns, ImageRoots, Source, load_source, report_issues

GENERATE = "generate"


class CaptionGroup(Group):
    """``skulens caption IMAGE...`` runs ``generate``: anything that is not a sub-command name or a help
    flag is taken as the start of its arguments."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in HELP_NAMES["help_option_names"]:
            args = [GENERATE, *args]
        return super().parse_args(ctx, args)


caption_app = typer.Typer(
    help="Write product titles from product photos with a captioner trained on your catalog's photo-title pairs.\n\n"
    "Examples:\n\n"
    "  skulens caption train myntra --out runs/caption\n\n"
    "  skulens caption shoe.jpg shirt.jpg --model runs/caption --beam 3\n\n"
    "  skulens caption evaluate runs/caption my_products.csv",
    cls=CaptionGroup,
    no_args_is_help=True,
    add_completion=False,
    context_settings=HELP_NAMES,
)

CaptionModelDir = Annotated[
    Path, typer.Option("--model", "-m", metavar="DIR", help="A captioner folder (`skulens caption train`).")
]
Limit = Annotated[int | None, typer.Option(metavar="N", help="Only the first N products.")]


def _user_errors() -> tuple[type[Exception], ...]:
    from skulens.catalog import CatalogError
    from skulens.catalog.images import ImageLoadError
    from skulens.tasks.caption import CaptionError
    from skulens.tasks.model_folder import ModelFolderError

    return (CaptionError, CatalogError, ImageLoadError, ModelFolderError)


def train(
    source: Source,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Model folder to write (config.json + weights.npz).")],
    architecture: Annotated[str, typer.Option(metavar="transformer|lstm", help="The decoder.")] = "transformer",
    epochs: Annotated[int, typer.Option(metavar="N", help="Most epochs (early stopping on validation CIDEr-D).")] = 30,
    layers: Annotated[int, typer.Option(metavar="N", help="Transformer decoder layers.")] = 2,
    d_model: Annotated[int, typer.Option("--dim", metavar="N", help="Decoder width.")] = 256,
    beam: Annotated[int, typer.Option(metavar="N", help="Default beam width of the saved model (1 = greedy).")] = 3,
    limit: Limit = None,
    seed: Annotated[int, typer.Option(metavar="N", help="Random seed.")] = 0,
    columns: Columns = None,
    image_root: ImageRoots = None,
) -> None:
    """Train a captioner on a catalog's photos and titles and save it.

    Rows without a title or a readable photo are skipped and counted. Example: skulens caption train myntra --out runs/caption
    """
    from skulens.catalog import check_images
    from skulens.progress import step
    from skulens.tasks.caption import CaptionModel

    catalog = load_source(source, columns, image_root, uses=("gender", "colour", "articleType"))
    if limit is not None:
        catalog = catalog.head(limit)
    with step(f"checking {len(catalog):,} photos"):
        found = check_images(catalog)
    try:
        model = CaptionModel(architecture=architecture, epochs=epochs, layers=layers, d_model=d_model, beam=beam, seed=seed)
        model.fit(catalog)
        model.save(out)
    except (*_user_errors(), ValueError) as exc:
        raise fail(str(exc)) from None
    report_issues(catalog, found, out / "issues.csv")
    report = model.fit_report_
    best = report["history"][report["best_epoch"] - 1]
    skipped = report["skipped"]
    console.print(
        f"trained on {report['rows']:,} photo-title pairs (skipped {skipped['no_title']:,} without title, "
        f"{skipped['no_readable_image']:,} without a readable photo); best epoch {best['epoch']} "
        f"(validation CIDEr-D {best['val_cider']:.2f}, BLEU {best['val_bleu']:.1f}); saved to {escape(str(out))}"
    )


def generate(
    images: Annotated[list[Path], typer.Argument(metavar="IMAGE...", help="Product photos (JPEG, PNG, WebP...).")],
    model: CaptionModelDir,
    beam: Annotated[int | None, typer.Option(metavar="N", help="Beam width (1 = greedy; default: the model's).")] = None,
    nearest: Annotated[int, typer.Option(metavar="N", help="Also show the N nearest training titles.")] = 0,
    as_json: Annotated[bool, flag("--json", help="Print the captions as JSON.")] = False,
) -> None:
    """Write a title for each photo.

    A photo that cannot be read is reported and skipped; the others are captioned. Example: skulens caption shoe.jpg --model runs/caption
    """
    from skulens.catalog.images import ImageLoadError
    from skulens.tasks.caption import CaptionModel
    from skulens.tasks.inputs import load_product_image

    try:
        captioner = CaptionModel.load(model)
    except _user_errors() as exc:
        raise fail(str(exc)) from None
    decoded, names, problems = [], [], []
    for path in images:
        try:
            decoded.append(load_product_image(path))  # a regular file within the byte cap, decoded within the pixel caps
            names.append(str(path))
        except (ImageLoadError, OSError) as exc:
            full = path.expanduser().resolve()
            problem = str(exc).replace(f"'{full}'", f"'{path}'") if isinstance(exc, ImageLoadError) else None
            problem = problem or f"image '{path}' cannot be read: {exc.strerror or exc}"
            problems.append(problem)
            if len(images) > 1:
                console.print(f"[yellow]skipped[/] {escape(problem)}")
    if not decoded:
        raise fail(f"{'; '.join(problems)}; give the path of a JPEG, PNG or WebP photo (absolute, or relative to {Path.cwd()})")
    try:
        captions = captioner.generate(decoded, beam=beam, nearest=nearest)
    except _user_errors() as exc:
        raise fail(str(exc)) from None
    if as_json:
        rows = [
            {"image": n, "title": c.title, "alternatives": c.alternatives, "nearest": c.nearest} for n, c in zip(names, captions)
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    table = Table()
    for column in ("image", "title", "other candidates", *(["nearest catalog titles"] if nearest else [])):
        table.add_column(column)
    for name, caption in zip(names, captions):
        others = "; ".join(t for t, _ in caption.alternatives)
        table.add_row(
            escape(name),
            escape(caption.title),
            escape(others),
            *([escape("; ".join(t for t, _ in caption.nearest))] if nearest else []),
        )
    console.print(table)


def evaluate(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="A captioner folder (`skulens caption train`).")],
    source: Source,
    beam: Annotated[int | None, typer.Option(metavar="N", help="Beam width (1 = greedy; default: the model's).")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", metavar="FILE", help="Write metrics and generated titles as JSON here.")
    ] = None,
    limit: Limit = None,
    columns: Columns = None,
    image_root: ImageRoots = None,
) -> None:
    """Score a captioner on a catalog with titles: BLEU, CIDEr-D, ROUGE-L, word overlap, Jaccard, beside the
    nearest-image and attribute-template baselines.

    Only meaningful on products the model was not trained on. Example: skulens caption evaluate runs/caption held_out.csv
    """
    from skulens.catalog import check_images
    from skulens.tasks.caption import CaptionModel

    catalog = load_source(source, columns, image_root, uses=("gender", "colour", "articleType"))
    if limit is not None:
        catalog = catalog.head(limit)
    found = check_images(catalog)
    try:
        captioner = CaptionModel.load(model, progress=True)
        result = captioner.evaluate(catalog, beam=beam)
    except _user_errors() as exc:
        raise fail(str(exc)) from None
    report_issues(catalog, found, out.with_name(out.stem + ".issues.csv") if out is not None else None)
    table = Table(title=f"{result['n']:,} products (beam {result['beam']})")
    for column in ("model", "BLEU", "CIDEr-D", "ROUGE-L", "word overlap %", "Jaccard %", "length ratio"):
        table.add_column(column)
    for name in ("decoder", "retrieval", "template"):
        if name in result:
            m = result[name]
            table.add_row(
                name,
                f"{m['bleu']:.1f}",
                f"{m['cider']:.2f}",
                f"{m['rouge_l']:.1f}",
                f"{m['word_overlap']:.1f}",
                f"{m['jaccard']:.1f}",
                f"{m['length_ratio']:.2f}",
            )
    console.print(table)
    for name, accuracy in result.get("attribute_accuracy", {}).items():
        console.print(f"attribute {escape(name)}: accuracy {accuracy:.3f}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
        console.print(f"wrote {escape(str(out))}")


add_commands(caption_app, train, generate, evaluate)


def register(main: typer.Typer) -> None:
    """Add the ``caption`` group."""
    main.add_typer(caption_app, name="caption", rich_help_panel="Tasks")
