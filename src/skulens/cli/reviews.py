"""``skulens reviews train|predict|evaluate|summary|benchmark``: star rating, sentiment and recommendation
from review text. Review files are read like catalogs (CSV, TSV, Parquet, JSON Lines) with the same
``--columns`` mapping; names such as ``reviewText`` and ``overall`` are detected."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from skulens.cli.commands import AdaptPriors, add_commands, group
from skulens.cli.output import console, fail, note, print_report_tables
from skulens.cli.sources import Columns, load_reviews_source, report_issues
from skulens.cli.tracking import NoTrack, Register, TrackingUri, tracked_run

reviews_app = group(
    "Star rating, sentiment and recommendation from review text.\n\n"
    "Examples:\n\n"
    "  skulens reviews train reviews --encoders tfidf --out runs/reviews-model\n\n"
    "  skulens reviews predict runs/reviews-model --text 'Runs small, fabric feels cheap'\n\n"
    "  skulens reviews evaluate runs/reviews-model my_reviews.jsonl --columns review_text=body"
)

ReviewSource = Annotated[
    str,
    typer.Argument(
        metavar="DATA",
        help="'reviews' (built-in) or your file (CSV, TSV, Parquet, JSON Lines) with review text and, to train or "
        "evaluate, a 1-5 rating.",
        show_default=False,
    ),
]
Model = Annotated[Path, typer.Argument(metavar="MODEL", help="A model folder written by `skulens reviews train`.")]


def _weights_text(weights: dict | None) -> str:
    """Fusion weights for people: ``tfidf 0.62, minilm 0.38`` (largest first)."""
    if not weights:
        return "none (one encoder)"
    return ", ".join(f"{name} {float(w):.2f}" for name, w in sorted(weights.items(), key=lambda kv: -float(kv[1])))


def train(
    source: ReviewSource,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Model folder to write (config.json + weights.npz).")],
    encoders: Annotated[
        list[str], typer.Option("--encoders", "-e", metavar="NAME", help="Text encoders; repeat for several.")
    ] = ["tfidf", "minilm"],  # noqa: B006
    head: Annotated[str, typer.Option(metavar="linear|mlp", help="linear (logistic-regression probe) or mlp.")] = "linear",
    class_weight: Annotated[str, typer.Option(metavar="auto|none|balanced", help="auto chooses on validation data.")] = "auto",
    test_size: Annotated[
        float, typer.Option(metavar="SHARE", help="Share held out (group-aware, seeded) to report metrics on; 0 = none.")
    ] = 0.2,
    limit: Annotated[int | None, typer.Option(metavar="N", help="Only the first N rows.")] = None,
    seed: Annotated[int, typer.Option(metavar="N", help="Random seed.")] = 0,
    columns: Columns = None,
    tracking_uri: TrackingUri = None,
    no_track: NoTrack = False,
    register: Register = None,
) -> None:
    """Train a review model (stars, sentiment, recommendation) and save it; reports held-out metrics (logged to MLflow)."""
    from skulens.catalog.splits import group_split
    from skulens.progress import step
    from skulens.tasks.reviews import ReviewPredictor

    weight = None if class_weight.lower() == "none" else class_weight
    catalog = load_reviews_source(source, columns)
    if limit is not None:
        catalog = catalog.head(limit)
    params = {"command": "reviews train", "data": source, "encoders": encoders, "head": head, "class_weight": class_weight}
    params |= {"test_size": test_size, "limit": limit, "seed": seed}
    with tracked_run("reviews-train", params, no_track, tracking_uri, register) as run:
        predictor = ReviewPredictor(encoders, head=head, class_weight=weight, seed=seed, progress=True)
        train_part, test_part = (catalog, None) if test_size <= 0 else group_split(catalog, test_size, label="rating", seed=seed)
        started = time.perf_counter()
        with step(f"training on {len(train_part):,} reviews ({', '.join(encoders)})"):
            predictor.fit(train_part)
        metrics = {}
        if test_part is not None:
            with step(f"scoring {len(test_part):,} held-out reviews"):
                metrics = predictor.evaluate(test_part)
        predictor.save(out)
        sel = predictor.selection_
        console.print(
            f"trained on {len(train_part):,} rows in {time.perf_counter() - started:.0f}s; class weight {sel['class_weight']}, "
            f"alpha {sel['alpha']}, fusion weights {_weights_text(sel.get('weights'))}"
        )
        if metrics:
            _print_metrics(metrics, "held-out")
            run.metrics(metrics)
        run.model(out)
        console.print(f"model written to {out}")


def _print_metrics(metrics: dict, what: str) -> None:
    console.print(
        f"{what} ({metrics['n']:,} reviews): star accuracy {metrics['star_accuracy']:.3f}, macro-F1 "
        f"{metrics['star_macro_f1']:.3f}, rating MAE {metrics['rating_mae']:.3f}, recommend AUC "
        f"{metrics.get('recommend_auc', float('nan')):.3f}"
    )


def predict(
    model: Model,
    text: Annotated[str | None, typer.Option("--text", "-t", metavar="REVIEW", help="One review to read.")] = None,
    title: Annotated[str | None, typer.Option("--title", metavar="TITLE", help="Its title (optional).")] = None,
    input: Annotated[
        str | None, typer.Option("--input", "-i", metavar="DATA", help="A file of reviews (CSV, TSV, Parquet, JSON Lines).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help="CSV to write predictions to (with --input).")
    ] = None,
    adapt_priors: AdaptPriors = False,
    columns: Columns = None,
) -> None:
    """Predict stars, expected rating, sentiment and recommendation for one text or a file of reviews."""
    from skulens.tasks.reviews import ReviewPredictor

    if (text is None) == (input is None):
        raise fail('give exactly one of --text "..." or --input FILE')
    if adapt_priors and input is None:
        raise fail("--adapt-priors estimates the star mix of many reviews: use it with --input FILE")
    predictor = ReviewPredictor.load(model)
    if text is not None:
        console.print_json(json.dumps(predictor.predict_one(text, title)))
        return
    catalog = load_reviews_source(input, columns)
    frame = predictor.predict(catalog, adapt_priors=adapt_priors)
    target = output or Path(input).with_name(Path(input).stem + ".predictions.csv")
    from skulens.outputs import write_csv
    from skulens.tasks.output_columns import readable_review_predictions

    write_csv(readable_review_predictions(frame, catalog), target)
    report_issues(catalog, predictor.last_issues_, target.with_name(target.stem + ".issues.csv"), images=False)
    if adapt_priors and predictor.last_prior_shift_ is not None:
        from skulens.cli.categorize import print_prior_shift
        from skulens.tasks.reviews import STARS

        shift = predictor.last_prior_shift_.as_dict()
        report = target.with_name(target.stem + ".prior_shift.json")
        report.write_text(json.dumps({"classes": [int(k) for k in STARS], **shift}, indent=2))
        print_prior_shift(shift, [f"{k}*" for k in STARS])
        note(f"prior-shift report written to {report}")
    skipped = int((frame["issue"] != "").sum())
    console.print(
        f"{len(frame) - skipped}/{len(frame)} reviews predicted; {skipped} skipped (no text, or text the model cannot read): see the 'issue' column"
    )
    console.print(f"predictions written to {target}")


def evaluate(
    model: Model,
    source: ReviewSource,
    out: Annotated[Path | None, typer.Option("--out", "-o", metavar="DIR", help="Write metrics.json here.")] = None,
    adapt_priors: AdaptPriors = False,
    columns: Columns = None,
) -> None:
    """Score a saved review model on reviews with a 1-5 rating (and optionally 'recommended').

    Example: skulens reviews evaluate runs/reviews-model amazon.jsonl --columns review_text=reviewText,rating=overall
    """
    from skulens.progress import step
    from skulens.tasks.reviews import ReviewPredictor

    predictor = ReviewPredictor.load(model)
    catalog = load_reviews_source(source, columns, uses=["recommended"])
    with step(f"scoring {len(catalog):,} reviews"):
        metrics = predictor.evaluate(catalog, adapt_priors=adapt_priors)
    _print_metrics(metrics, "evaluated")
    baseline = metrics["majority_baseline"]
    loses = metrics["star_accuracy"] <= baseline["accuracy"] or metrics["rating_mae"] >= baseline["rating_mae"]
    hint = "" if adapt_priors else " (try --adapt-priors)"
    console.print(
        f"majority-star baseline (always {baseline['class']}*): star accuracy {baseline['accuracy']:.3f}, macro-F1 "
        f"{baseline['macro_f1']:.3f}, rating MAE {baseline['rating_mae']:.3f}"
        + (f"  [bold red]the model does not beat it here{hint}[/]" if loses else "")
    )
    if "prior_shift" in metrics:
        from skulens.cli.categorize import print_prior_shift
        from skulens.tasks.reviews import STARS

        print_prior_shift(metrics["prior_shift"], [f"{k}*" for k in STARS], metrics.get("unadapted"))
    for reason, count in (metrics.get("skipped") or {}).items():
        if count:
            note(f"{count:,} rows not scored: {reason.replace('_', ' ')}")
    if out is not None:
        from skulens.evaluation.report import write_json

        console.print(f"metrics written to {write_json(metrics, out / 'metrics.json')}")


def summary(
    source: ReviewSource,
    by: Annotated[
        str, typer.Option(metavar="COLUMN", help="product_id, division, department, class or any column.")
    ] = "department",
    top: Annotated[int, typer.Option(metavar="N", help="How many groups to show (most reviewed first).")] = 10,
    out: Annotated[Path | None, typer.Option("--out", "-o", metavar="FILE", help="Write all summaries as JSON here.")] = None,
    columns: Columns = None,
) -> None:
    """Aspect view: rating distribution, share negative and negative/positive phrases per group."""
    from rich.markup import escape

    from skulens.tasks.review_summary import review_summary

    catalog = load_reviews_source(source, columns, uses=[by])
    summaries = review_summary(catalog, by=by)
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
    """Run the review benchmark into ``out`` (metrics.json + metrics.md); returns the json path.

    ``models`` is a subset of vader, tfidf, minilm, tfidf+minilm; ``limit`` uses only the first N reviews."""
    from skulens.evaluation.review_benchmark import MODELS, run_review_benchmark, write_report

    report = run_review_benchmark(models=models or MODELS, seed=seed, product_rating=product_rating, limit=limit, progress=True)
    report["command"] = f"skulens reviews benchmark --out {out} --seed {seed}" + (f" --limit {limit}" if limit else "")
    path = Path(out) / "metrics.json"
    write_report(report, path, Path(out) / "metrics.md")
    return path


def benchmark(
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Report folder (metrics.json + metrics.md).")],
    seed: Annotated[int, typer.Option(metavar="N", help="Random seed.")] = 0,
    limit: Annotated[int | None, typer.Option(metavar="N", help="Only the first N reviews (quick check).")] = None,
    tracking_uri: TrackingUri = None,
    no_track: NoTrack = False,
) -> None:
    """Star rating, sentiment and recommendation on the clothing reviews: VADER / TF-IDF / MiniLM / fused (logged to MLflow)."""
    params = {"command": "reviews benchmark", "seed": seed, "limit": limit}
    with tracked_run("reviews-benchmark", params, no_track, tracking_uri) as run:
        path = benchmark_reviews(out, seed=seed, limit=limit)
        report = json.loads(path.read_text())
        for result in report.get("results", []):
            run.metrics(
                {
                    f"{result['model']}.{key}": result.get(key)
                    for key in ("star_accuracy", "star_macro_f1", "rating_mae", "recommend_auc")
                }
            )
        run.artifacts(Path(out), "report")
    print_report_tables(path.with_name("metrics.md"))
    console.print(f"outputs in {out}: metrics.json, metrics.md")


add_commands(reviews_app, train, predict, evaluate, summary, benchmark)


def register(main: typer.Typer) -> None:
    """Add the ``reviews`` group."""
    main.add_typer(reviews_app, name="reviews", rich_help_panel="Tasks")
