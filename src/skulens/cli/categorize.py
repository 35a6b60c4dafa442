"""``skulens categorize train|predict|evaluate|benchmark``: product categorization from images and text."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from skulens.cli.audit import Corrections, apply_corrections_file
from skulens.cli.commands import AdaptPriors, add_commands, flag, group
from skulens.cli.engines import ChunkRows, Engine, RayAddress, RayCpus, run_streamed
from skulens.cli.output import console, err, fail, note, print_report_tables, warn
from skulens.cli.sources import (
    CategoryColumns,
    CategorySep,
    Columns,
    ImageRoots,
    Label,
    Source,
    label_value,
    load_source,
    reads_images,
    report_issues,
)
from skulens.cli.tracking import NoTrack, Register, TrackingUri, tracked_run

if TYPE_CHECKING:
    from skulens.tasks.categorize import CategoryPredictor

DEFAULT_ENCODERS = ["efficientnet-lite0", "minilm", "tfidf"]

categorize_app = group(
    "Categorize products from their photo and text: train a model, predict, evaluate, benchmark.\n\n"
    "Examples:\n\n"
    "  skulens categorize train flipkart --label 0 --out runs/flipkart-model\n\n"
    "  skulens categorize predict runs/flipkart-model --image shirt.jpg --text 'Cotton shirt for men'\n\n"
    "  skulens categorize evaluate runs/flipkart-model products.csv --out runs/eval"
)

Model = Annotated[Path, typer.Argument(metavar="MODEL", help="A model folder written by `skulens categorize train`.")]


def train(
    source: Source,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Model folder to write (config.json + weights.npz).")],
    label: Label = "0",
    encoders: Annotated[
        list[str], typer.Option("--encoders", "-e", metavar="NAME", help="Repeat for several; see `skulens encoders`.")
    ] = DEFAULT_ENCODERS,
    head: Annotated[str, typer.Option(metavar="linear|mlp", help="linear (logistic-regression probe) or mlp.")] = "linear",
    fusion: Annotated[
        str, typer.Option(metavar="late|early", help="late (a head per encoder, combined) or early (one head on all).")
    ] = "late",
    min_class_count: Annotated[int, typer.Option(metavar="N", help="Classes with fewer rows are dropped (and reported).")] = 5,
    test_size: Annotated[
        float, typer.Option(metavar="SHARE", help="Share held out (seeded, stratified) to report metrics on; 0 = none.")
    ] = 0.2,
    seed: Annotated[int, typer.Option(metavar="N", help="Random seed (split and heads).")] = 0,
    columns: Columns = None,
    category_sep: CategorySep = None,
    category_columns: CategoryColumns = None,
    image_root: ImageRoots = None,
    tracking_uri: TrackingUri = None,
    no_track: NoTrack = False,
    register: Register = None,
    corrections: Corrections = None,
    attributes: Annotated[
        str | None,
        typer.Option(
            metavar="COL,COL",
            help="Also train attribute models on these columns (e.g. colour,gender); predict and the service then return them.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Train a categorizer on a labelled catalog and save it; reports held-out metrics (logged to MLflow).

    Example: skulens categorize train myntra --label masterCategory --out runs/myntra-model
    """
    from skulens.catalog import CatalogError, check_images, split_catalog
    from skulens.heads import HeadError
    from skulens.progress import step
    from skulens.tasks.categorize import CategoryPredictor
    from skulens.tasks.model_folder import ModelFolderError, training_encoder_names

    level = label_value(label)
    encoders, notes = training_encoder_names(encoders, out)
    for message in notes:
        warn(message)
    wanted = [c.strip() for c in (attributes or "").split(",") if c.strip()]
    catalog = load_source(
        source, columns, image_root, uses=[label, *wanted], category_sep=category_sep, category_columns=category_columns
    )
    catalog = apply_corrections_file(catalog, corrections)
    images = reads_images(encoders)
    params = {"command": "categorize train", "data": source, "label": label, "encoders": encoders, "head": head, "fusion": fusion}
    params |= {"min_class_count": min_class_count, "test_size": test_size, "seed": seed}
    with tracked_run("categorize-train", params, no_track, tracking_uri, register) as run:
        try:
            catalog.labels(level)
            found = check_images(catalog) if images else []
            predictor = CategoryPredictor(
                encoders, head=head, label=level, fusion=fusion, min_class_count=min_class_count, seed=seed, progress=True
            )
            if test_size > 0:
                split = split_catalog(catalog, label=level, val_size=0.0, test_size=test_size, seed=seed)
                with step(f"training on {len(split.train):,} products ({', '.join(encoders)}; {head} head, {fusion} fusion)"):
                    predictor.fit(split.train)
                with step(f"scoring {len(split.test):,} held-out products"):
                    metrics = predictor.evaluate(split.test)
                console.print(
                    f"held-out {metrics['n']} rows: accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}, "
                    f"ECE {metrics['ece']:.3f}"
                )
                run.metrics(metrics)
            else:
                with step(f"training on {len(catalog):,} products ({', '.join(encoders)}; {head} head, {fusion} fusion)"):
                    predictor.fit(catalog)
            saved = predictor.save(out)
            if wanted:
                from skulens.tasks.attributes import AttributeModels

                with step(f"training attribute models: {', '.join(wanted)}"):
                    rows = split.train if test_size > 0 else catalog
                    AttributeModels(wanted, encoders, text_fields=predictor.text_fields).fit(rows).save(out)
        except (CatalogError, HeadError, ModelFolderError, ValueError) as exc:
            raise fail(str(exc)) from None
        report_issues(catalog, found, out / "issues.csv", images=images)
        run.model(out)
        console.print(f"model saved to {saved} ({len(predictor.classes_)} classes)")


def _unusable_image(path: Path) -> str | None:
    """Why the image at ``path`` cannot be used (missing, not an image, corrupt, too large), or None."""
    from skulens.catalog import ImageLoadError, decode_image, read_image_bytes

    full = path.expanduser().resolve()
    try:
        decode_image(read_image_bytes(full, full.parent), name=str(path))
    except ImageLoadError as exc:
        return str(exc).replace(f"'{full}'", f"'{path}'")
    except OSError as exc:
        return f"image '{path}' cannot be read: {exc}"
    return None


def _modalities(predictor: CategoryPredictor) -> tuple[bool, bool]:
    """Whether the model reads images, and whether it reads text."""
    names = list(predictor.encoders)
    images = [reads_images([name]) for name in names]
    return any(images), not all(images)


def _predict_one(predictor: CategoryPredictor, model: Path, image: Path | None, text: str | None, k: int) -> None:
    """Top-k categories of one product; a bad image fails (exit 2) or, with text, is loudly left out."""
    from rich.markup import escape
    from rich.table import Table

    from skulens.catalog import CatalogError, ImageLoadError

    with_images, with_text = _modalities(predictor)
    if image is not None and not with_images:
        warn(f"model {model} reads no images (encoders: {', '.join(predictor.encoders)}); --image {image} is not used")
        image = None
    if text and not with_text:
        warn(f"model {model} reads no text (encoders: {', '.join(predictor.encoders)}); --text is not used")
        text = None
    if image is not None:
        problem = _unusable_image(image)
        if problem and not text:
            raise fail(f"{problem}; nothing else to categorize from (give --text too, or a readable image)")
        if problem:
            _image_not_used(problem)
            image = None
    if image is None and not text:
        raise fail(f"nothing model {model} can read: give --image FILE and/or --text 'title'")
    try:
        top = predictor.predict_one(image=image, title=text, k=k)
    except (ImageLoadError, CatalogError) as exc:
        if image is None or not text:
            raise fail(str(exc)) from None
        _image_not_used(str(exc))
        image = None
        top = predictor.predict_one(image=None, title=text, k=k)
    used = " and ".join(part for part, on in (("the photo", image is not None), ("the text", bool(text))) if on)
    table = Table("category", "probability", header_style="bold")
    for name, p in top:
        table.add_row(escape(str(name)), f"{p:.3f}")
    console.print(f"categories from {used}:")
    console.print(table)


def _print_attributes(attributes: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table("attribute", "value", "probability", "runner-up", header_style="bold")
    for column, top in attributes.items():
        runner = f"{escape(str(top[1][0]))} ({top[1][1]:.3f})" if len(top) > 1 else ""
        table.add_row(escape(column), escape(str(top[0][0])), f"{top[0][1]:.3f}", runner)
    console.print("attributes:")
    console.print(table)


def _image_not_used(problem: str) -> None:
    from rich.markup import escape

    err.print(
        f"[bold red]WARNING: the image was NOT used[/] — {escape(problem)}\n"
        "[bold red]The prediction below comes from the text alone.[/]"
    )


def predict(
    model: Model,
    image: Annotated[Path | None, typer.Option(metavar="FILE", help="Product photo.")] = None,
    text: Annotated[str | None, typer.Option(metavar="TITLE", help="Product title (and description).")] = None,
    input: Annotated[
        str | None, typer.Option("--input", "-i", metavar="DATA", help="A catalog to categorize in batch (any DATA format).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            metavar="FILE.csv|DIR",
            help="Where batch predictions go: a .csv file (catalog read whole), or a folder of Parquet parts "
            "(catalog streamed in chunks, bounded memory; --engine ray writes these).",
        ),
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", metavar="N", help="How many categories to show per product.")] = 5,
    adapt_priors: AdaptPriors = False,
    columns: Columns = None,
    category_sep: CategorySep = None,
    category_columns: CategoryColumns = None,
    image_root: ImageRoots = None,
    engine: Engine = "local",
    ray_address: RayAddress = None,
    ray_cpus: RayCpus = None,
    chunk_rows: ChunkRows = 4096,
) -> None:
    """Categorize one product (--image and/or --text) or a whole file (--input, --output).

    Example: skulens categorize predict runs/flipkart-model --image watch.jpg --text "Analog watch for men"

    Example: skulens categorize predict runs/flipkart-model --input products.parquet --output runs/predictions --engine ray
    """
    import numpy as np
    import pandas as pd

    from skulens.catalog import check_images, issue_column
    from skulens.outputs import write_csv
    from skulens.tasks.attributes import AttributeModels
    from skulens.tasks.categorize import CategoryPredictor, top_k_from_proba
    from skulens.tasks.output_columns import DECIMALS, prediction_frame

    if input is not None and output is None:
        raise fail("--input needs --output FILE for the predictions")
    if adapt_priors and input is None:
        raise fail("--adapt-priors estimates the class mix of many products: use it with --input DATA --output FILE")
    if adapt_priors and output.suffix.lower() != ".csv":
        raise fail("--adapt-priors estimates the class mix of the whole catalog at once: give --output FILE.csv")
    if input is not None and output.suffix.lower() != ".csv":
        from skulens.engines import PredictJob

        run_streamed(
            input,
            PredictJob(str(model), k),
            output,
            engine,
            ray_address,
            ray_cpus,
            chunk_rows,
            columns,
            image_root,
            "categorized",
        )
        return
    if engine != "local" or ray_address is not None:
        raise fail("--engine ray needs --input DATA and --output DIR (a folder of Parquet parts, not a .csv file)")
    predictor = CategoryPredictor.load(model)
    if input is None:
        _predict_one(predictor, model, image, text, k)
        attribute_models = AttributeModels.load(model)
        if attribute_models is not None and (image is not None or text):
            _print_attributes(attribute_models.predict_product(image=image, title=text))
        return
    catalog = load_source(input, columns, image_root, category_sep=category_sep, category_columns=category_columns)
    images = _modalities(predictor)[0]
    found = check_images(catalog) if images else []
    features = predictor.extractor.transform(catalog)
    proba = predictor.proba_from_features(features)
    if adapt_priors:
        proba = _adapted(predictor, proba, output.with_name(output.stem + ".prior_shift.json"), features)
    rows = top_k_from_proba(predictor.classes_, proba, k)
    issues = report_issues(catalog, [*found, *features.issues], output.with_name(output.stem + ".issues.csv"), images=images)
    readable = np.logical_or.reduce([np.asarray(mask, dtype=bool) for mask in features.present.values()])
    rows = [r if ok else [] for r, ok in zip(rows, readable)]  # nothing the model reads: no category, only the issue
    frame = prediction_frame(catalog, rows, k, predictor.label)
    frame["issue"] = issue_column(catalog, issues)
    attribute_models = AttributeModels.load(model)
    if attribute_models is not None:
        frame = pd.concat([frame, attribute_models.predict(catalog).round(DECIMALS)], axis=1)
    write_csv(frame, output)
    differing = (
        f"; {int(frame['differs_from_current'].sum()):,} differ from their current category"
        if "differs_from_current" in frame
        else ""
    )
    console.print(f"{len(frame)} predictions written to {output}; {len(issues)} row issue(s){differing}")


def evaluate(
    model: Model,
    source: Source,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Report folder (metrics.json, report.md, plots).")],
    include_training_rows: Annotated[
        bool,
        flag("--include-training-rows", help="Also score rows the model was trained on (excluded by default: optimistic)."),
    ] = False,
    adapt_priors: AdaptPriors = False,
    columns: Columns = None,
    category_sep: CategorySep = None,
    category_columns: CategoryColumns = None,
    image_root: ImageRoots = None,
) -> None:
    """Evaluate a saved categorizer on labelled data and write a report folder.

    Rows the model was trained on are left out (and counted); so are rows whose class the model does not
    know. Macro-F1 averages the classes present in DATA.

    Example: skulens categorize evaluate runs/flipkart-model holdout.csv --out runs/eval
    """
    from skulens.catalog import check_images
    from skulens.progress import step
    from skulens.tasks.categorize import CategoryPredictor

    predictor = CategoryPredictor.load(model)
    catalog = load_source(
        source, columns, image_root, uses=[str(predictor.label)], category_sep=category_sep, category_columns=category_columns
    )
    images = _modalities(predictor)[0]
    options = {"include_training_rows": True} if include_training_rows else {}  # else the predictor's default: excluded
    found = check_images(catalog) if images else []
    with step(f"scoring {len(catalog):,} products"):
        evaluation = predictor.evaluate_rows(catalog, adapt_priors=adapt_priors, **options)
    metrics = evaluation.metrics
    lines = evaluation_notes(metrics, source, include_training_rows)
    _write_report(evaluation, predictor.classes_, lines, out, f"{model.name} on {source}")
    console.print(
        f"{metrics['n']:,} rows scored: accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}, "
        f"ECE {metrics['ece']:.3f}"
    )
    baseline = metrics.get("majority_baseline")
    if baseline:
        console.print(
            f"majority-class baseline (always '{baseline['class']}'): accuracy {baseline['accuracy']:.3f}, "
            f"macro-F1 {baseline['macro_f1']:.3f}"
            + ("  [bold red]the model does not beat it here[/]" if metrics["accuracy"] <= baseline["accuracy"] else "")
        )
    if "prior_shift" in metrics:
        print_prior_shift(metrics["prior_shift"], predictor.classes_, metrics.get("unadapted"))
    for line in lines:
        note(line)
    report_issues(catalog, found, out / "issues.csv", images=images)
    console.print(f"report in {out}")


def print_prior_shift(shift: dict, classes, unadapted: dict | None = None) -> None:
    """One line on what --adapt-priors did: the estimated class mix (with its 95% interval) beside the
    training one, or why not; with ``unadapted`` metrics (labelled data), whether adapting helped."""
    interval = shift.get("interval") or [[p, p] for p in shift["estimated_priors"]]
    rows = zip(classes, shift["train_priors"], shift["estimated_priors"], interval)
    pairs = sorted(rows, key=lambda t: -abs(t[2] - t[1]))[:5]
    moved = ", ".join(f"{name} {old:.2f}->{new:.2f} [{low:.2f}-{high:.2f}]" for name, old, new, (low, high) in pairs)
    if shift["applied"]:
        note(f"priors adapted on {shift['n_rows']:,} rows ({shift.get('estimator', 'em')}; {shift['reason']}): {moved}")
    else:
        warn(f"priors NOT adapted: {shift['reason']}")
    if shift["applied"] and unadapted:
        changes = ", ".join(f"{name} {before:.3f} -> {after:.3f}" for name, (before, after) in unadapted.items())
        better = all(
            (after >= before) if "accuracy" in name or "f1" in name else (after <= before)
            for name, (before, after) in unadapted.items()
        )
        (note if better else warn)(f"adapting {'helped' if better else 'did NOT help'} here (labels known): {changes}")


def _adapted(predictor: CategoryPredictor, proba, report: Path, features=None):
    """``proba`` adapted to the batch's class priors; the report goes to ``report`` (JSON)."""
    import json

    adapted, shift = predictor.adapted_proba(proba, features)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"classes": [str(c) for c in predictor.classes_], **shift.as_dict()}, indent=2))
    print_prior_shift(shift.as_dict(), predictor.classes_)
    return adapted


def evaluation_notes(metrics: dict, source: str, include_training_rows: bool) -> list[str]:
    """What an evaluation left out and why: training rows, unknown classes, unlabelled rows, absent classes."""
    lines = []
    excluded = int(metrics.get("excluded_training_rows", 0) or 0)
    if excluded:
        lines.append(f"{excluded:,} rows excluded: the model was trained on them (score them too with --include-training-rows)")
    elif include_training_rows:
        lines.append("rows the model was trained on are included (--include-training-rows): scores on them are optimistic")
    unknown_rows = int(metrics.get("unknown_class_rows", metrics.get("skipped_unknown_class", 0)) or 0)
    if unknown_rows:
        classes = metrics.get("unknown_classes") or {}
        shown = ", ".join(f"{name!r} ({count})" for name, count in list(classes.items())[:8])
        lines.append(
            f"{unknown_rows:,} rows have a class the model does not know and were not scored" + (f": {shown}" if shown else "")
        )
    unlabelled = int(metrics.get("unlabelled_rows", 0) or 0)
    if unlabelled:
        lines.append(f"{unlabelled:,} rows have no label and were not scored")
    trained = list(metrics.get("classes_only_in_training_rows") or [])
    absent = [c for c in metrics.get("absent_classes") or [] if c not in trained]
    for classes, why in (
        (trained, f"have rows in {source} only among the excluded training rows"),
        (absent, f"have no rows in {source}"),
    ):
        if classes:
            shown = ", ".join(repr(c) for c in classes[:12]) + (f" and {len(classes) - 12} more" if len(classes) > 12 else "")
            lines.append(f"{len(classes)} of the model's classes {why} (not in macro-F1): {shown}")
    return lines


def _write_report(evaluation, classes, notes: list[str], out: Path, title: str) -> None:
    """The report folder of an evaluation: metrics.json, report.md, report.html and plots."""
    from skulens.evaluation.model_report import write_evaluation_report
    from skulens.progress import step

    y_pred = classes[evaluation.proba.argmax(axis=1)]
    with step("writing the report (bootstrap intervals, plots)"):
        write_evaluation_report(
            evaluation.metrics,
            evaluation.y_true,
            y_pred,
            evaluation.proba,
            classes,
            evaluation.rows,
            out,
            title,
            given_notes=notes,
        )


def benchmark(
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Report folder (metrics.json, report.md, plots).")],
    dataset: Annotated[str, typer.Option(metavar="DATA", help="flipkart, myntra or your catalog file.")] = "flipkart",
    label: Label = "0",
    folds: Annotated[int, typer.Option(metavar="N", help="Cross-validation folds.")] = 5,
    seeds: Annotated[list[int], typer.Option("--seed", metavar="N", help="Repeat for several CV seeds.")] = [0],  # noqa: B006
    configs: Annotated[str | None, typer.Option(metavar="NAME,...", help="Only these configurations (default: all).")] = None,
    min_class_count: Annotated[int, typer.Option(metavar="N", help="Classes with fewer rows are left out.")] = 5,
    finetune: Annotated[
        bool,
        flag(
            "--finetune",
            help="Also compare 'finetuned ...' configurations: EfficientNet-Lite0 fine-tuned inside each outer "
            "training fold (never on its test rows), then probed and fused as usual.",
        ),
    ] = False,
    finetune_views: Annotated[
        int, typer.Option(metavar="N", help="With --finetune: views per image (1 clean + N-1 augmented).")
    ] = 4,
    finetune_epochs: Annotated[int, typer.Option(metavar="N", help="With --finetune: most epochs per fold.")] = 20,
    finetune_lr: Annotated[float, typer.Option(metavar="RATE", help="With --finetune: peak AdamW learning rate.")] = 1e-3,
    finetune_freeze_blocks: Annotated[
        int | None, typer.Option(metavar="N", help="With --finetune: frozen blocks (default: all before the last downsampling).")
    ] = None,
    finetune_cache: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE.npy", help="With --finetune: keep the frozen blocks' outputs in this file for later runs (large)."
        ),
    ] = None,
    columns: Columns = None,
    category_sep: CategorySep = None,
    category_columns: CategoryColumns = None,
    image_root: ImageRoots = None,
    tracking_uri: TrackingUri = None,
    no_track: NoTrack = False,
) -> None:
    """Cross-validated comparison of image, text and fused categorizers (plus baselines); logged to MLflow.

    Example: skulens categorize benchmark --dataset flipkart --label 0 --folds 5 --out runs/bench
    """
    import shlex
    import sys

    from skulens.evaluation.categorize_benchmark import DEFAULT_CONFIGS, run_categorize_benchmark

    known = DEFAULT_CONFIGS
    fold_features = None
    if finetune:
        from skulens.evaluation.finetune_benchmark import FinetunedFoldFeatures, finetuned_configs
        from skulens.tasks.finetune_image import ImageRecipe
        from skulens.training.finetune import TrainConfig

        known = DEFAULT_CONFIGS + finetuned_configs()
        fold_features = FinetunedFoldFeatures(
            ImageRecipe(freeze_blocks=finetune_freeze_blocks, views=finetune_views),
            TrainConfig(epochs=finetune_epochs, lr=finetune_lr),
            out,
            note,
            True,
            finetune_cache,
        )
    chosen = known
    if configs:
        wanted = [c.strip() for c in configs.split(",")]
        chosen = tuple(c for c in known if c.name in wanted)
        if len(chosen) != len(wanted):
            raise fail(f"unknown config in {wanted}; known: {[c.name for c in known]}")
    catalog = load_source(
        dataset, columns, image_root, uses=[label], category_sep=category_sep, category_columns=category_columns
    )
    params = {"command": "categorize benchmark", "data": dataset, "label": label, "folds": folds, "seeds": seeds}
    params |= {"configs": [c.name for c in chosen], "min_class_count": min_class_count}
    with tracked_run("categorize-benchmark", params, no_track, tracking_uri) as run:
        summary = run_categorize_benchmark(
            catalog,
            label_value(label),
            out,
            folds=folds,
            seeds=seeds,
            configs=chosen,
            min_class_count=min_class_count,
            command="skulens " + shlex.join(sys.argv[1:]),
            log=note,
            fold_features=fold_features,
        )
        for result in summary.get("results", []):
            run.metrics({f"{result['name']}.{key}": result.get(key) for key in ("macro_f1", "accuracy", "ece")})
        run.metrics({"total_seconds": summary.get("total_seconds")})
        run.artifacts(out, "report")
    print_report_tables(out / "report.md")
    seconds = summary.get("total_seconds")
    console.print((f"done in {seconds}s; " if seconds is not None else "") + f"report in {out / 'report.md'}")


add_commands(categorize_app, train, predict, evaluate, benchmark)


def register(main: typer.Typer) -> None:
    """Add the ``categorize`` group."""
    main.add_typer(categorize_app, name="categorize", rich_help_panel="Tasks")
