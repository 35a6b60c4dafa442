"""``skulens reviews ...``: train and use review models; ``benchmark_reviews`` backs ``skulens benchmark reviews``.

The main CLI mounts :data:`reviews_app` (``app.add_typer(reviews_app, name="reviews")``). Heavy imports
happen inside the commands so ``--help`` stays instant.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.markup import escape

from skulens.cli.output import console
from skulens.cli.output import fail as _fail

reviews_app = typer.Typer(
    help="Star rating, sentiment and recommendation from review text.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


#: Other names accepted for the review columns of an input file.
ALIASES = {"review_text": ("text", "review", "Review Text"), "title": ("Title", "review_title"), "rating": ("Rating", "stars")}


def read_reviews(path: Path):
    """A reviews file as a catalog: ``review_text`` (or text/review/Review Text), optional ``title`` and
    ``id`` (row numbers when absent)."""
    from skulens.catalog import CatalogError
    from skulens.catalog.readers import read_table
    from skulens.catalog.validation import build_catalog

    frame = read_table(path)
    for column, names in ALIASES.items():
        if column not in frame.columns:
            found = next((name for name in names if name in frame.columns), None)
            if found is not None:
                frame = frame.rename(columns={found: column})
    if "review_text" not in frame.columns and "title" not in frame.columns:
        raise CatalogError(f"{path} has no 'review_text' (or 'text') column; it has: {', '.join(map(str, frame.columns))}")
    if "id" not in frame.columns:
        frame.insert(0, "id", [str(i) for i in range(len(frame))])
    return build_catalog(frame, root=Path(path).resolve().parent, name=Path(path).stem)


@reviews_app.command("train")
def train(
    source: str = typer.Argument(..., metavar="DATASET_OR_FILE", help="'reviews' or a CSV/Parquet with review_text and rating."),
    out: Path = typer.Option(..., "--out", "-o", help="Model folder to write (config.json + weights.npz)."),
    encoders: list[str] = typer.Option(["tfidf", "minilm"], "--encoders", "-e", help="Text encoders; repeat for several."),
    head: str = typer.Option("linear", help="linear (logistic-regression probe) or mlp."),
    class_weight: str = typer.Option("auto", help="auto (choose on validation), none or balanced."),
    test_size: float = typer.Option(0.2, help="Share held out (group-aware, seeded) to report metrics on; 0 = none."),
    limit: int | None = typer.Option(None, help="Only the first N rows."),
    seed: int = typer.Option(0),
) -> None:
    """Train a review model (stars, sentiment, recommendation) and save it; reports held-out metrics."""
    from skulens.catalog import ADAPTERS, CatalogError, load_catalog
    from skulens.catalog.splits import group_split
    from skulens.heads import HeadError
    from skulens.tasks.model_folder import ModelFolderError
    from skulens.tasks.reviews import ReviewPredictor

    weight = None if class_weight.lower() == "none" else class_weight
    try:
        catalog = load_catalog(source) if source in ADAPTERS else read_reviews(Path(source))
        if limit is not None:
            catalog = catalog.head(limit)
        predictor = ReviewPredictor(encoders, head=head, class_weight=weight, seed=seed, progress=True)
        train_part, test_part = (catalog, None) if test_size <= 0 else group_split(catalog, test_size, label="rating", seed=seed)
        started = time.perf_counter()
        predictor.fit(train_part)
        metrics = predictor.evaluate(test_part) if test_part is not None else {}
        predictor.save(out)
    except (CatalogError, HeadError, ModelFolderError) as exc:
        raise _fail(str(exc)) from None
    sel = predictor.selection_
    console.print(
        f"trained on {len(train_part):,} rows in {time.perf_counter() - started:.0f}s; class weight {sel['class_weight']}, "
        f"alpha {sel['alpha']}, fusion weights {sel.get('weights')}"
    )
    if metrics:
        console.print(
            f"held-out ({metrics['n']:,} reviews): star accuracy {metrics['star_accuracy']:.3f}, macro-F1 "
            f"{metrics['star_macro_f1']:.3f}, rating MAE {metrics['rating_mae']:.3f}, recommend AUC "
            f"{metrics.get('recommend_auc', float('nan')):.3f}"
        )
    console.print(f"model written to {out}")


@reviews_app.command("predict")
def predict(
    model: Path = typer.Argument(..., metavar="MODEL_DIR"),
    text: str | None = typer.Option(None, "--text", "-t", help="One review to read."),
    title: str | None = typer.Option(None, "--title", help="Its title (optional)."),
    input: Path | None = typer.Option(None, "--input", "-i", help="CSV/Parquet of reviews (review_text, optional title, id)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="CSV to write predictions to (with --input)."),
) -> None:
    """Predict stars, expected rating, sentiment and recommendation for one text or a file of reviews."""
    from skulens.catalog import CatalogError
    from skulens.tasks.model_folder import ModelFolderError
    from skulens.tasks.reviews import ReviewPredictor

    if (text is None) == (input is None):
        raise _fail('give exactly one of --text "..." or --input FILE')
    try:
        predictor = ReviewPredictor.load(model)
        if text is not None:
            console.print_json(json.dumps(predictor.predict_text(text, title)))
            return
        catalog = read_reviews(input)
        frame = predictor.predict(catalog)
    except (CatalogError, ModelFolderError) as exc:
        raise _fail(str(exc)) from None
    target = output or input.with_name(input.stem + ".predictions.csv")
    frame.to_csv(target, index=False)
    skipped = int(frame["error"].notna().sum())
    console.print(f"{len(frame) - skipped}/{len(frame)} reviews predicted; {skipped} skipped (no text): see the 'error' column")
    console.print(f"predictions written to {target}")


@reviews_app.command("summary")
def summary(
    source: str = typer.Argument(..., metavar="DATASET_OR_FILE"),
    by: str = typer.Option("department", help="product_id, division, department, class or any column."),
    top: int = typer.Option(10, help="How many groups to show (most reviewed first)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write all summaries as JSON here."),
) -> None:
    """Aspect view: rating distribution, share negative and negative/positive phrases per group."""
    from skulens.catalog import CatalogError, load_catalog
    from skulens.tasks.review_summary import review_summary

    try:
        summaries = review_summary(load_catalog(source), by=by)
    except CatalogError as exc:
        raise _fail(str(exc)) from None
    for item in summaries[:top]:
        share = "–" if item["share_negative"] is None else f"{item['share_negative']:.0%}"
        console.print(
            f"[bold]{escape(item['group'])}[/] ({item['n_reviews']} reviews, {share} negative): "
            f"− {escape(', '.join(item['negative_phrases']))} | + {escape(', '.join(item['positive_phrases']))}"
        )
    if out is not None:
        out.write_text(json.dumps(summaries, indent=2))
        console.print(f"summaries written to {out}")


def benchmark_reviews(
    out: Path, models: list[str] | None = None, seed: int = 0, product_rating: bool = True, limit: int | None = None
) -> Path:
    """Run the review benchmark and write ``out/metrics.json`` (+ ``out/metrics.md``); returns the json path.

    ``models`` is a subset of vader, tfidf, minilm, tfidf+minilm; ``limit`` uses only the first N reviews."""
    from skulens.evaluation.review_benchmark import MODELS, run_review_benchmark, write_report

    report = run_review_benchmark(models=models or MODELS, seed=seed, product_rating=product_rating, limit=limit, progress=True)
    report["command"] = f"skulens benchmark reviews --out {out}"
    path = Path(out) / "metrics.json"
    write_report(report, path, Path(out) / "metrics.md")
    console.print(f"metrics written to {path} and {Path(out) / 'metrics.md'}")
    return path
