"""``skulens demo``: the whole tool end to end on the built-in datasets (what ``make demo`` runs)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from skulens.cli.commands import add_commands
from skulens.cli.output import console, markdown_tables
from skulens.cli.sources import load_source

VARIANTS = {
    "image": ["efficientnet-lite0"],
    "text": ["minilm", "tfidf"],
    "fused": ["efficientnet-lite0", "minilm", "tfidf"],
}


def demo(
    out: Annotated[Path, typer.Option(metavar="DIR", help="Where the demo writes models and reports.")] = Path("runs/demo"),
    seed: Annotated[int, typer.Option(metavar="N", help="Random seed (split and models).")] = 0,
) -> None:
    """End to end: Flipkart categorizers (photo, text, both) trained, evaluated and used; a review model."""
    from rich.markup import escape

    from skulens.catalog import split_catalog
    from skulens.catalog.splits import group_split
    from skulens.evaluation.report import confusion_png, markdown_table, write_json
    from skulens.progress import step
    from skulens.tasks.categorize import CategoryPredictor
    from skulens.tasks.reviews import ReviewPredictor

    catalog = load_source("flipkart")
    console.print(f"[bold]1. ingest[/]: {escape(repr(catalog))}")
    split = split_catalog(catalog, label=0, val_size=0.0, test_size=0.2, seed=seed)
    console.print(f"[bold]2. split[/]: {len(split.train)} train / {len(split.test)} held-out products (seed {seed})")
    rows, predictors = [], {}
    for name, encoder_names in VARIANTS.items():
        started = time.perf_counter()
        with step(f"{name} model ({', '.join(encoder_names)}): training and scoring"):
            predictor = CategoryPredictor(encoder_names, label=0, seed=seed, progress=True).fit(split.train)
            metrics = predictor.evaluate(split.test)
        predictors[name] = predictor
        rows.append(
            {
                "model": name,
                "encoders": encoder_names,
                "accuracy": metrics["accuracy"],
                "macro_f1": metrics["macro_f1"],
                "ece": metrics["ece"],
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    table = markdown_table(
        rows,
        [
            ("model", "model"),
            ("encoders", "encoders"),
            ("accuracy", "accuracy"),
            ("macro_f1", "macro-F1"),
            ("ece", "ECE"),
            ("seconds", "train+eval s"),
        ],
    )
    console.print("[bold]3. held-out comparison[/] (Flipkart level 0, 7 classes):")
    for _, rich_table in markdown_tables(table):
        console.print(rich_table)
    fused = predictors["fused"]
    fused.save(out / "models" / "flipkart-categorizer")
    report = out / "report"
    write_json({"comparison": rows, "fused": fused.metrics_}, report / "metrics.json")
    confusion_png(fused.metrics_["confusion_matrix"], fused.metrics_["classes"], report / "confusion.png", "fused, held-out")
    (report / "report.md").write_text(
        f"# Flipkart demo (held-out {len(split.test)} products)\n\n{table}\n\n![confusion](confusion.png)\n"
    )
    console.print("[bold]4. predictions[/] for held-out products of five classes:")
    sample = split.test.subset(split.test.labels(0).drop_duplicates().index[:5])  # one product per class
    for (title, truth), top in zip(zip(sample.frame["title"], sample.labels(0)), fused.top_k(sample, 3)):
        guesses = ", ".join(f"{c} {p:.2f}" for c, p in top)
        console.print(f"  {escape(str(title))[:60]:<60} true: {truth:<28} predicted: {escape(guesses)}")

    reviews_train, reviews_test = group_split(load_source("reviews"), 0.2, label="rating", seed=seed)
    with step(f"review model (tfidf): training on {len(reviews_train):,} reviews and scoring"):
        reviewer = ReviewPredictor(["tfidf"], seed=seed).fit(reviews_train)
        scores = reviewer.evaluate(reviews_test)
    reviewer.save(out / "models" / "reviews-tfidf")
    console.print(
        f"[bold]5. reviews[/]: TF-IDF review model on {len(reviews_train):,} reviews; held-out star accuracy "
        f"{scores['star_accuracy']:.3f}, rating MAE {scores['rating_mae']:.3f}, recommend AUC {scores['recommend_auc']:.3f}"
    )
    examples = ["Love it, fits perfectly and the fabric is soft.", "Cheap fabric, ripped after one wash."]
    for text, result in zip(examples, reviewer.predict_texts(examples)):
        console.print(f"  {text:<50} -> {result['expected_rating']:.1f} stars, {result['sentiment']}")
    console.print(
        f"[bold]done[/]: models in {out / 'models'} (serve them: skulens serve --models {out / 'models'}), "
        f"report {report / 'report.md'}"
    )


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the top level."""
    add_commands(app, demo, rich_help_panel="Getting started")
