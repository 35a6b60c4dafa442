"""The ``skulens`` command line (Typer). Heavy imports happen inside commands so ``--help`` is instant."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from skulens.cli.output import console
from skulens.cli.output import fail as _fail
from skulens.cli.reviews import benchmark_reviews as run_review_benchmark
from skulens.cli.reviews import reviews_app
from skulens.cli.serve import register as register_serve_commands

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


def _load(source: str):
    from skulens.catalog import CatalogError, load_catalog

    try:
        return load_catalog(source)
    except CatalogError as exc:
        raise _fail(str(exc)) from None


@app.command()
def encoders(
    modality: str | None = typer.Option(None, help="Only 'image' or 'text' encoders."),
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
            console.print(f"  - {escape(str(issue))}")


@app.command()
def embed(
    source: str = typer.Argument(..., metavar="DATASET_OR_FILE"),
    encoder: str = typer.Option(..., "--encoder", "-e", help="Encoder name; see `skulens encoders`."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for embeddings.npz, issues.csv, manifest.json."),
    limit: int | None = typer.Option(None, help="Only the first N rows."),
    cache_dir: Path | None = typer.Option(None, help="Embedding cache (default $SKULENS_CACHE or ~/.cache/skulens)."),
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


def _label(value: str) -> int | str:
    return int(value) if value.isdigit() else value


@app.command()
def train(
    source: str = typer.Argument(..., metavar="DATASET_OR_FILE"),
    out: Path = typer.Option(..., "--out", "-o", help="Model folder to write (config.json + weights.npz)."),
    label: str = typer.Option("0", help="Category level (0 = coarsest) or a column name to predict."),
    encoders: list[str] = typer.Option(
        ["efficientnet-lite0", "minilm", "tfidf"], "--encoders", "-e", help="Repeat for several; see `skulens encoders`."
    ),
    head: str = typer.Option("linear", help="linear (logistic-regression probe) or mlp."),
    fusion: str = typer.Option("late", help="late (stacked per-modality heads) or early (concatenation)."),
    min_class_count: int = typer.Option(5, help="Classes with fewer training rows are dropped (and reported)."),
    test_size: float = typer.Option(0.2, help="Share held out (seeded, stratified) to report metrics on; 0 = none."),
    seed: int = typer.Option(0),
) -> None:
    """Train a categorizer on a labelled catalog and save it; reports held-out metrics."""
    from skulens.catalog import CatalogError, split_catalog
    from skulens.heads import HeadError
    from skulens.tasks.categorize import CategoryPredictor

    catalog = _load(source)
    predictor = CategoryPredictor(
        encoders, head=head, label=_label(label), fusion=fusion, min_class_count=min_class_count, seed=seed, progress=True
    )
    try:
        if test_size > 0:
            split = split_catalog(catalog, label=_label(label), val_size=0.0, test_size=test_size, seed=seed)
            predictor.fit(split.train)
            metrics = predictor.evaluate(split.test)
            console.print(
                f"held-out {metrics['n']} rows: accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}, "
                f"ECE {metrics['ece']:.3f}"
            )
        else:
            predictor.fit(catalog)
    except (CatalogError, HeadError, ValueError) as exc:
        raise _fail(str(exc)) from None
    for name, count in predictor.dropped_classes_.items():
        console.print(f"[yellow]dropped class[/] {name!r}: {count} row(s) < {min_class_count}")
    console.print(f"model saved to {predictor.save(out)} ({len(predictor.classes_)} classes)")


@app.command()
def predict(
    model: Path = typer.Argument(..., help="A model folder written by `skulens train`."),
    image: Path | None = typer.Option(None, help="Product image file."),
    text: str | None = typer.Option(None, help="Product title (and description)."),
    input: Path | None = typer.Option(None, "--input", "-i", help="CSV/Parquet catalog to predict in batch."),
    output: Path | None = typer.Option(None, "--output", help="Where batch predictions go (CSV)."),
    k: int = typer.Option(5, help="How many categories to show."),
) -> None:
    """Categorize one product (--image and/or --text) or a whole file (--input/--output)."""
    from skulens.catalog import CatalogError, read_catalog
    from skulens.tasks.categorize import CategoryPredictor
    from skulens.tasks.model_folder import ModelFolderError

    try:
        predictor = CategoryPredictor.load(model)
        if input is None:
            top = predictor.predict_product(image=image, title=text, k=k)
            table = Table("category", "probability")
            for name, p in top:
                table.add_row(name, f"{p:.3f}")
            console.print(table)
            return
        if output is None:
            raise CatalogError("--input needs --output FILE for the predictions")
        catalog = read_catalog(input)
        rows = predictor.top_k(catalog, k)
    except (CatalogError, ModelFolderError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    import pandas as pd

    frame = pd.DataFrame({"id": catalog.ids})
    for rank in range(k):
        frame[f"category_{rank + 1}"] = [r[rank][0] if len(r) > rank else None for r in rows]
        frame[f"probability_{rank + 1}"] = [round(r[rank][1], 5) if len(r) > rank else None for r in rows]
    frame.to_csv(output, index=False)
    console.print(f"{len(frame)} predictions written to {output}; {len(catalog.issues)} row issue(s)")


@app.command()
def evaluate(
    model: Path = typer.Argument(..., help="A model folder written by `skulens train`."),
    source: str = typer.Argument(..., metavar="DATASET_OR_FILE"),
    out: Path = typer.Option(..., "--out", "-o", help="Report folder (metrics.json, report.md, confusion.png)."),
) -> None:
    """Evaluate a saved categorizer on a labelled catalog and write a report folder."""
    from skulens.catalog import CatalogError
    from skulens.evaluation.report import confusion_png, markdown_table, write_json
    from skulens.tasks.categorize import CategoryPredictor
    from skulens.tasks.model_folder import ModelFolderError

    try:
        predictor = CategoryPredictor.load(model)
        metrics = predictor.evaluate(_load(source))
    except (CatalogError, ModelFolderError) as exc:
        raise _fail(str(exc)) from None
    write_json(metrics, out / "metrics.json")
    confusion_png(metrics["confusion_matrix"], metrics["classes"], out / "confusion.png", f"{model.name} on {source}")
    per_class = [{"class": c, **v} for c, v in metrics["per_class"].items()]
    (out / "report.md").write_text(
        f"# {model.name} on {source}\n\naccuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}, "
        f"ECE {metrics['ece']:.3f} ({metrics['n']} rows)\n\n"
        + markdown_table(
            per_class,
            [("class", "class"), ("precision", "precision"), ("recall", "recall"), ("f1", "F1"), ("support", "support")],
        )
        + "\n\n![confusion matrix](confusion.png)\n"
    )
    console.print(f"accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}; report in {out}")


benchmark_app = typer.Typer(help="Reproducible benchmarks that write metrics.json + report.md.", no_args_is_help=True)
app.add_typer(benchmark_app, name="benchmark")
app.add_typer(reviews_app, name="reviews")


@benchmark_app.command("reviews")
def benchmark_reviews(
    out: Path = typer.Option(..., "--out", "-o"),
    seed: int = typer.Option(0),
    limit: int | None = typer.Option(None, help="Only the first N reviews (quick check)."),
) -> None:
    """Star rating, sentiment and recommendation on the clothing reviews: VADER / TF-IDF / MiniLM / fused."""
    run_review_benchmark(out, seed=seed, limit=limit)
    console.print(f"outputs in {out}")


@benchmark_app.command("categorize")
def benchmark_categorize(
    dataset: str = typer.Option("flipkart", help="flipkart, myntra or a catalog file."),
    label: str = typer.Option("0", help="Category level or column."),
    folds: int = typer.Option(5),
    seeds: list[int] = typer.Option([0], "--seed", help="Repeat for several CV seeds."),
    configs: str | None = typer.Option(None, help="Comma-separated config names to run (default: all)."),
    min_class_count: int = typer.Option(5),
    out: Path = typer.Option(..., "--out", "-o"),
) -> None:
    """Cross-validated comparison of image, text and fused categorizers (plus baselines)."""
    import shlex
    import sys

    from skulens.evaluation.categorize_benchmark import DEFAULT_CONFIGS, run_categorize_benchmark

    chosen = DEFAULT_CONFIGS
    if configs:
        wanted = [c.strip() for c in configs.split(",")]
        chosen = tuple(c for c in DEFAULT_CONFIGS if c.name in wanted)
        if len(chosen) != len(wanted):
            raise _fail(f"unknown config in {wanted}; known: {[c.name for c in DEFAULT_CONFIGS]}")
    command = "skulens " + shlex.join(sys.argv[1:])
    summary = run_categorize_benchmark(
        _load(dataset),
        _label(label),
        out,
        folds=folds,
        seeds=seeds,
        configs=chosen,
        min_class_count=min_class_count,
        command=command,
        log=console.print,
    )
    console.print((out / "report.md").read_text())
    console.print(f"done in {summary['total_seconds']}s; outputs in {out}")


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Where the demo writes models, reports and embeddings."),
    seed: int = typer.Option(0),
) -> None:
    """End to end: Flipkart categorizers (image/text/fused) trained, evaluated and used; a review model."""
    from skulens.catalog import split_catalog
    from skulens.evaluation.report import confusion_png, markdown_table, write_json
    from skulens.tasks.categorize import CategoryPredictor

    catalog = _load("flipkart")
    console.print(f"[bold]1. ingest[/]: {escape(repr(catalog))}")
    split = split_catalog(catalog, label=0, val_size=0.0, test_size=0.2, seed=seed)
    console.print(f"[bold]2. split[/]: {len(split.train)} train / {len(split.test)} held-out products (seed {seed})")
    variants = {
        "image": ["efficientnet-lite0"],
        "text": ["minilm", "tfidf"],
        "fused": ["efficientnet-lite0", "minilm", "tfidf"],
    }
    rows, predictors = [], {}
    for name, encoder_names in variants.items():
        started = time.perf_counter()
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
    console.print(table)
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
    from skulens.catalog.splits import group_split
    from skulens.tasks.reviews import ReviewPredictor

    reviews_train, reviews_test = group_split(_load("reviews"), 0.2, label="rating", seed=seed)
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


register_serve_commands(app)  # skulens serve / skulens ui

if __name__ == "__main__":
    app()
