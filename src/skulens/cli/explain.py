"""``skulens explain``: why a categorizer gave a product its category (Grad-CAM, word scores, photo vs text)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skulens.cli.commands import Command
from skulens.cli.output import console, err, fail, warn

#: Words shown on the terminal (all are in the files).
SHOWN_WORDS = 8


def explain(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="A model folder written by `skulens categorize train`.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Folder for the overlays, pages and JSON.")],
    image: Annotated[Path | None, typer.Option(metavar="FILE", help="Product photo.")] = None,
    text: Annotated[str | None, typer.Option(metavar="TITLE", help="Product title.")] = None,
    description: Annotated[str | None, typer.Option(metavar="TEXT", help="Product description.")] = None,
    target: Annotated[
        str | None, typer.Option("--class", metavar="CATEGORY", help="Explain this category instead of the predicted one.")
    ] = None,
) -> None:
    """Explain one prediction: where the photo supports the category (Grad-CAM), which words do, and how
    much the photo and the text each moved the answer (with a warning when they disagree).

    Writes DIR/explanation.html (interactive), gradcam-<encoder>.png (overlay), text.html and text.png (highlighted words) and explanation.json.

    Example: skulens explain runs/flipkart-model --image watch.jpg --text "Baby diaper pack" --out runs/why
    """
    from rich.markup import escape

    from skulens.catalog import CatalogError, ImageLoadError
    from skulens.explain import ExplainError, explain_product
    from skulens.explain.render import save_explanation
    from skulens.tasks.categorize import CategoryPredictor

    if image is None and not text and not description:
        raise fail("nothing to explain: give --image FILE and/or --text 'title' (and --description)")
    predictor = CategoryPredictor.load(model)
    try:
        explanation = explain_product(predictor, image=image, title=text, description=description, target=target)
    except ImageLoadError as exc:
        if not (text or description):
            raise fail(f"{exc}; nothing else to explain (give --text too, or a readable image)") from None
        err.print(f"[bold red]WARNING: the image was NOT used[/] — {escape(str(exc))}")
        explanation = explain_product(predictor, title=text, description=description, target=target)
    except (CatalogError, ExplainError) as exc:
        raise fail(str(exc)) from None
    written = save_explanation(explanation, out)
    modality = explanation.modality
    p = explanation.proba[explanation.classes.index(explanation.target)]
    console.print(f"explained: [bold]{escape(explanation.target)}[/] ({p:.1%}); predicted {escape(explanation.predicted)}")
    if modality.conflict:
        warn(modality.statement)
    else:
        console.print(escape(modality.statement))
    for name, shift in (("photo", modality.image_shift), ("text", modality.text_shift)):
        if shift is not None:
            console.print(f"  the {name} moved the log-odds of {escape(explanation.target)} by {shift:+.2f}")
    if explanation.text is not None and explanation.text.words:
        ranked = explanation.text.ranked()[:SHOWN_WORDS]
        console.print("  words for it: " + ", ".join(f"{escape(w)} {s:+.2f}" for w, s in ranked))
    for note in explanation.notes:
        warn(note)
    console.print(f"{len(written)} files written to {out} (open {out / 'explanation.html'})")


def register(main: typer.Typer) -> None:
    """Add ``explain``."""
    main.command("explain", cls=Command, rich_help_panel="Tasks")(explain)
