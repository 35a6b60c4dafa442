"""``skulens finetune image|text``: fine-tune EfficientNet-Lite on a labelled catalog's photos, or MiniLM on its texts
(review stars or product labels), into a new encoder."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from skulens.cli.commands import add_commands, group
from skulens.cli.output import console, fail, note
from skulens.cli.sources import CategoryColumns, CategorySep, Columns, ImageRoots, Label, Source, label_value, load_source
from skulens.cli.tracking import NoTrack, TrackingUri, tracked_run

finetune_app = group(
    "Fine-tune a pretrained encoder on your labelled catalog; the result is a new encoder (`finetuned:<folder>`)\n"
    "that every command reads like the bundled ones.\n\n"
    "Examples:\n\n"
    "  skulens finetune image flipkart --label 0 --out runs/ft-lite0\n\n"
    "  skulens categorize train flipkart --label 0 -e finetuned:runs/ft-lite0 -e minilm -e tfidf --out runs/model\n\n"
    "  skulens finetune text reviews --target stars --out runs/ft-minilm-stars\n\n"
    "  skulens reviews train reviews -e finetuned-text:runs/ft-minilm-stars -e tfidf --out runs/review-model\n\n"
    "An interrupted run resumes from its last epoch when started again with the same --out."
)


Seeds = Annotated[
    int,
    typer.Option(
        metavar="N",
        help="Fine-tune N times (seeds --seed .. --seed+N-1, folders OUT/seed<k>) and report each validation metric's "
        "mean, std and 95% Student-t interval across the seeds (OUT/seeds.json).",
    ),
]


#: The training options both commands take (their defaults differ).
Epochs = Annotated[int, typer.Option(metavar="N", help="Most epochs (early stopping may end sooner).")]
BatchSize = Annotated[int, typer.Option(metavar="N", help="Batch size (halved automatically when memory runs out).")]
WeightDecay = Annotated[float, typer.Option(metavar="W", help="AdamW weight decay.")]
LabelSmoothing = Annotated[float, typer.Option(metavar="S", help="Label smoothing of the cross-entropy.")]
Patience = Annotated[int, typer.Option(metavar="N", help="Stop after N epochs without a better validation macro-F1.")]
ValSize = Annotated[float, typer.Option(metavar="SHARE", help="Grouped share of the rows used for early stopping.")]


def train_config(options: dict):
    """The :class:`~skulens.training.finetune.TrainConfig` of a command's options (its ``locals()``): each config
    field the command has an option for (``epochs``, ``lr``, ``seed``...), the defaults for the others."""
    from dataclasses import fields

    from skulens.training.finetune import TrainConfig

    return TrainConfig(**{f.name: options[f.name] for f in fields(TrainConfig) if f.name in options})


def training_rows_or_fail(catalog, label: str, min_class_count: int):
    """The labelled rows of ``catalog`` at ``label`` and their labels (a clear error otherwise)."""
    from skulens.tasks.categorize import CategoryPredictor

    return CategoryPredictor(label=label_value(label), min_class_count=min_class_count).training_rows(catalog)


def tracked_finetune(
    name: str, params: dict, folder: Path, no_track: bool, tracking_uri: str | None, train: Callable, metrics: Callable
):
    """Run ``train(on_epoch)`` in a tracked run: each epoch's record logged, ``metrics(outcome)`` at the end and
    the encoder folder as an artifact; a training error becomes a CLI error. Returns the outcome."""

    with tracked_run(name, params, no_track, tracking_uri) as run:
        outcome = train(lambda record: run.tracker.log_metrics(record, step=record["epoch"]))
        run.metrics(metrics(outcome))
        run.artifacts(folder, "encoder")
    return outcome


def across_seeds(seed: int, seeds: int, out: Path, once: Callable[[int, Path], dict[str, float]]) -> None:
    """``once(seed, out)``; with ``seeds`` > 1, ``once(s, out/seed<s>)`` per seed, then the mean, std and 95%
    t-interval of each returned metric across seeds, printed and written to ``out/seeds.json``."""
    from skulens.training.finetune import seed_summary

    if seeds < 1:
        raise fail(f"--seeds must be at least 1, not {seeds}")
    if seeds == 1:
        once(seed, out)
        return
    summary = seed_summary({s: once(s, out / f"seed{s}") for s in range(seed, seed + seeds)})
    (out / "seeds.json").write_text(json.dumps(summary, indent=2))
    for metric, stats in summary["across_seeds"].items():
        low, high = stats["ci95"]
        console.print(
            f"{metric} across {stats['n']} seeds: {stats['mean']:.3f} ± {stats['std']:.3f} (std), 95% t-interval [{low:.3f}, {high:.3f}]"
        )
    console.print(f"per-seed encoders in {out}/seed<k>; summary in {out / 'seeds.json'}")


def image(
    source: Source,
    out: Annotated[
        Path, typer.Option("--out", "-o", metavar="DIR", help="Encoder folder to write (weights, encoder.json, curves.png).")
    ],
    label: Label = "0",
    encoder: Annotated[
        str, typer.Option(metavar="NAME", help="Pretrained start: efficientnet-lite0, efficientnet-lite1 or efficientnet-lite2.")
    ] = "efficientnet-lite0",
    freeze_blocks: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Keep the first N blocks frozen (their outputs are computed once). Default: all before the last "
            "downsampling block, so the last two stages and the head train. 0 = end-to-end.",
        ),
    ] = None,
    views: Annotated[int, typer.Option(metavar="N", help="Views per image: the clean one plus N-1 augmented.")] = 4,
    epochs: Epochs = 20,
    batch_size: BatchSize = 32,
    lr: Annotated[float, typer.Option(metavar="RATE", help="Peak AdamW learning rate (cosine schedule after warm-up).")] = 1e-3,
    weight_decay: WeightDecay = 0.05,
    label_smoothing: LabelSmoothing = 0.1,
    patience: Patience = 5,
    val_size: ValSize = 0.15,
    min_class_count: Annotated[
        int, typer.Option(metavar="N", help="Drop classes with fewer rows first (0 = keep all; too few images is an error).")
    ] = 0,
    seed: Annotated[int, typer.Option(metavar="N", help="Random seed (split, views, training order).")] = 0,
    seeds: Seeds = 1,
    columns: Columns = None,
    category_sep: CategorySep = None,
    category_columns: CategoryColumns = None,
    image_root: ImageRoots = None,
    tracking_uri: TrackingUri = None,
    no_track: NoTrack = False,
) -> None:
    """Fine-tune EfficientNet-Lite on labelled photos (partial fine-tuning, practical on a CPU).

    Example: skulens finetune image flipkart --label 0 --out runs/ft-lite0
    """
    from skulens.tasks.finetune_image import ImageRecipe, finetune_image

    settings = train_config(locals())

    variant = encoder.removeprefix("efficientnet-")
    if variant not in ("lite0", "lite1", "lite2"):
        raise fail(f"--encoder {encoder}: fine-tuning supports efficientnet-lite0, efficientnet-lite1 and efficientnet-lite2")
    catalog = load_source(source, columns, image_root, uses=[label], category_sep=category_sep, category_columns=category_columns)
    recipe = ImageRecipe(variant=variant, freeze_blocks=freeze_blocks, views=views, val_size=val_size)
    rows, labels = training_rows_or_fail(catalog, label, min_class_count)

    def once(seed: int, folder: Path) -> dict[str, float]:
        config = replace(settings, seed=seed)
        params = {"command": "finetune image", "data": source, "label": label, "encoder": encoder}
        outcome = tracked_finetune(
            "finetune-image",
            params | recipe.__dict__ | config.as_dict(),
            folder,
            no_track,
            tracking_uri,
            lambda on_epoch: finetune_image(rows, labels, folder, recipe, config, on_epoch=on_epoch, log=note, progress=True),
            lambda outcome: {
                "best_val_macro_f1": outcome.result.best_val_macro_f1,
                "best_epoch": outcome.result.best_epoch,
                "seconds": outcome.seconds,
            },
        )
        result = outcome.result
        console.print(
            f"encoder saved to {folder}: best epoch {result.best_epoch}/{result.epochs_run}, validation macro-F1 "
            f"{result.best_val_macro_f1:.3f} ({outcome.n_val} images), {outcome.seconds:.0f}s; curves in {folder / 'curves.png'}\n"
            f"use it as: -e finetuned:{folder}"
        )
        return {"val_macro_f1": result.best_val_macro_f1, "seconds": outcome.seconds}

    across_seeds(seed, seeds, out, once)


def text(
    source: Source,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", metavar="DIR", help="Encoder folder to write (sentence-transformers files, encoder.json)."),
    ],
    target: Annotated[
        str,
        typer.Option(
            metavar="stars|label",
            help="stars: the 1-5 'rating' column, with an ordinal loss (cross-entropy + expected-rating error); "
            "label: the category level or column given by --label.",
        ),
    ] = "label",
    label: Label = "0",
    text_fields: Annotated[
        str | None,
        typer.Option(
            metavar="FIELD,...",
            help="Text columns joined as the input. Default: title,review_text for stars; title,description for label "
            "(what `reviews train` and `categorize train` read).",
        ),
    ] = None,
    freeze_layers: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Keep the embeddings and the first N of MiniLM's 6 layers frozen (their states are computed once). "
            "Default: 5, so the last layer, pooling and a head train.",
        ),
    ] = None,
    max_length: Annotated[int, typer.Option(metavar="TOKENS", help="Truncate texts to this many tokens.")] = 160,
    ordinal_weight: Annotated[
        float, typer.Option(metavar="W", help="stars: weight of the expected-rating absolute error added to the cross-entropy.")
    ] = 1.0,
    epochs: Epochs = 8,
    batch_size: BatchSize = 32,
    lr: Annotated[
        float,
        typer.Option(
            metavar="RATE", help="Peak AdamW learning rate of the layers (the new head: 30x; cosine schedule after warm-up)."
        ),
    ] = 2e-4,
    weight_decay: WeightDecay = 0.01,
    label_smoothing: LabelSmoothing = 0.1,
    patience: Patience = 3,
    val_size: ValSize = 0.15,
    min_class_count: Annotated[
        int, typer.Option(metavar="N", help="label: drop classes with fewer rows first (0 = keep all; too few is an error).")
    ] = 0,
    seed: Annotated[int, typer.Option(metavar="N", help="Random seed (split, training order, dropout).")] = 0,
    seeds: Seeds = 1,
    columns: Columns = None,
    tracking_uri: TrackingUri = None,
    no_track: NoTrack = False,
) -> None:
    """Fine-tune MiniLM on review stars or product labels (partial fine-tuning, practical on a CPU).

    Example: skulens finetune text reviews --target stars --out runs/ft-minilm-stars
    """
    from skulens.tasks.finetune_text import TextRecipe, finetune_text, label_examples, star_examples

    settings = train_config(locals())

    if target not in ("stars", "label"):
        raise fail(f"--target {target}: choose stars (a 1-5 rating column) or label (a category level or column)")
    default_fields = "title,review_text" if target == "stars" else "title,description"
    fields = [f.strip() for f in (text_fields or default_fields).split(",") if f.strip()]
    catalog = load_source(source, columns, uses=[label] if target == "label" else ["rating"])
    if not any(f in catalog.frame.columns for f in fields):
        raise fail(f"none of the text fields {fields} is a column of {catalog.name}; pick some with --text-fields")
    recipe = TextRecipe(target, freeze_layers, max_length, val_size=val_size, ordinal_weight=ordinal_weight)
    if target == "stars":
        texts, labels, groups = star_examples(catalog, fields)
    else:
        texts, labels, groups = label_examples(catalog, label_value(label), fields, min_class_count)

    def once(seed: int, folder: Path) -> dict[str, float]:
        config = replace(settings, seed=seed)
        params = {"command": "finetune text", "data": source, "label": label, "text_fields": ",".join(fields)}
        outcome = tracked_finetune(
            "finetune-text",
            params | recipe.__dict__ | config.as_dict(),
            folder,
            no_track,
            tracking_uri,
            lambda on_epoch: finetune_text(
                texts, labels, groups, folder, recipe, config, on_epoch=on_epoch, log=note, progress=True
            ),
            lambda outcome: {**{f"val_{k}": v for k, v in outcome.validation.items()}, "best_epoch": outcome.result.best_epoch},
        )
        result = outcome.result
        shown = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in outcome.validation.items())
        console.print(
            f"encoder saved to {folder}: best epoch {result.best_epoch}/{result.epochs_run}; validation ({outcome.n_val} "
            f"texts): {shown}; {outcome.seconds:.0f}s; curves in {folder / 'curves.png'}\n"
            f"use it as: -e finetuned-text:{folder}"
        )
        return {**{f"val_{k}": v for k, v in outcome.validation.items()}, "seconds": outcome.seconds}

    across_seeds(seed, seeds, out, once)


add_commands(finetune_app, image, text)


def register(main: typer.Typer) -> None:
    """Add the ``finetune`` group."""
    main.add_typer(finetune_app, name="finetune", rich_help_panel="Tasks")
