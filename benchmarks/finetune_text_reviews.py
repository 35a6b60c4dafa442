"""Fine-tuned MiniLM on review stars vs frozen MiniLM, in the review model (a script, not a test).

    OMP_NUM_THREADS=1 SKULENS_THREADS=1 python benchmarks/finetune_text_reviews.py \
        --n-finetune 3000 --n-train 6000 --epochs 4        # writes benchmarks/results/finetune_text_reviews.{json,md}

The split is the review benchmark's (``benchmarks/reviews.py``): reviews with text, one seeded group-aware 80/20
split (duplicate normalised texts never cross it). From the training part only, a seeded subset of
``--n-finetune`` reviews fine-tunes MiniLM's last layer on the stars (``skulens finetune text --target stars``:
early stopping on a grouped 20% of that subset). Then the review model (TF-IDF LR + MiniLM linear head, late
fusion, class weighting and prior correction chosen on its own validation split) is trained on a seeded subset
of ``--n-train`` training reviews that contains the fine-tuning subset, once with the fine-tuned encoder and once
with the frozen MiniLM, and both are scored on the whole test part (95% bootstrap intervals). Subsets keep the
run within ~10 minutes on one CPU thread; the full-data frozen numbers are in ``results/reviews/report.md``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "SKULENS_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from skulens.catalog import load_catalog  # noqa: E402
from skulens.catalog.splits import group_split, text_groups  # noqa: E402
from skulens.evaluation.review_benchmark import ENCODER_PARAMS, HEADLINE, TARGETS, _outputs  # noqa: E402
from skulens.metrics import review_intervals  # noqa: E402
from skulens.tasks.finetune_text import TextRecipe, finetune_text, star_examples  # noqa: E402
from skulens.tasks.reviews import TEXT_FIELDS, ReviewPredictor, review_metrics  # noqa: E402
from skulens.training.finetune import TrainConfig  # noqa: E402

RESULTS = Path(__file__).parent / "results"
#: Frozen MiniLM rows of ``results/reviews/metrics.json`` (trained on all 18,111 training reviews), for context.
FULL_DATA_MODELS = ("minilm", "tfidf+minilm", "tfidf")


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def score(name: str, encoders: tuple[str, ...], train, test, seed: int, resamples: int) -> dict:
    """Fit the review model on ``train`` with ``encoders`` and score it on ``test``."""
    started, load = time.perf_counter(), _load()
    params = {enc: dict(ENCODER_PARAMS.get("minilm" if enc != "tfidf" else "tfidf", {})) for enc in encoders}
    model = ReviewPredictor(encoders=encoders, seed=seed, encoder_params=params, progress=True).fit(train)
    out = _outputs(model, test)
    metrics = review_metrics(out["true"], out["proba"], out["pred"], out["recommend_true"], out["recommend_proba"])
    expected = (out["proba"] * np.arange(1, 6)).sum(axis=1)
    intervals = review_intervals(
        out["true"], out["pred"], expected, out["recommend_true"], out["recommend_proba"], resamples=resamples, seed=seed
    )
    entry = {"name": name, "encoders": list(encoders), **{k: metrics.get(k) for k in HEADLINE}}
    entry["ci95"] = {k: intervals[k]["ci95"] for k in HEADLINE if k in intervals}
    entry["star_decision_mae"] = metrics.get("star_decision_mae")
    entry["choices"] = {k: v for k, v in model.selection_.items() if k != "candidates"}
    entry["fit_predict_seconds"] = round(time.perf_counter() - started, 1)
    entry["load_average_start"], entry["load_average_end"] = load, _load()
    print(name, {k: entry[k] for k in HEADLINE}, flush=True)
    return entry


def full_data_rows() -> list[dict]:
    path = RESULTS / "reviews" / "metrics.json"
    if not path.exists():
        return []
    report = json.loads(path.read_text())
    return [
        {"name": f"{r['name']} (all {report['split']['n_train']:,} training reviews)", **{k: r[k] for k in HEADLINE}}
        for r in report["results"]
        if r["model"] in FULL_DATA_MODELS
    ]


def write_markdown(report: dict, path: Path) -> None:
    ft = report["finetune"]
    lines = [
        "# Fine-tuned MiniLM on review stars (reviews benchmark split)",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Split: {report['split']['kind']}, seed {report['split']['seed']}: {report['split']['n_train']:,} training / "
        f"{report['split']['n_test']:,} test reviews. Fine-tuning used {ft['n_rows']:,} training reviews "
        f"({ft['n_train']:,} to learn, {ft['n_val']:,} grouped for early stopping); both review models below were "
        f"trained on the same {report['n_review_train']:,} training reviews (a superset of those) and scored on all "
        f"{report['split']['n_test']:,} test reviews.",
        "",
        f"Fine-tuning: MiniLM layer {ft['frozen_layers']} (of 0-5) + mean pooling + head, loss {ft['loss']}, "
        f"max {ft['max_length']} tokens, {ft['epochs_run']} epoch(s), best epoch {ft['best_epoch']}, "
        f"{ft['seconds']:.0f} s on {ft['threads']} thread(s), load average {ft['load_average']}. "
        "Validation (grouped part of the fine-tuning rows): "
        + ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in ft["validation"].items())
        + ".",
        "",
        "| model | star accuracy | star macro-F1 | rating MAE (expected) | recommend ROC-AUC | fit + predict s |",
        "|---|---|---|---|---|---|",
    ]

    def cell(entry: dict, key: str) -> str:
        value, ci = entry.get(key), entry.get("ci95", {}).get(key)
        if value is None:
            return "–"
        return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{value:.3f}"

    for entry in report["results"]:
        lines.append(
            f"| {entry['name']} | " + " | ".join(cell(entry, k) for k in HEADLINE) + f" | {entry['fit_predict_seconds']} |"
        )
    for entry in report["full_data_frozen"]:
        lines.append(f"| {entry['name']} | " + " | ".join(cell(entry, k) for k in HEADLINE) + " | |")
    t = report["targets"]
    lines.append(
        f"| *target* | ≥ {t['star_accuracy']} | ≥ {t['star_macro_f1']} | ≤ {t['rating_mae']} | ≥ {t['recommend_auc']} | |"
    )
    lines += ["", "Intervals: 95% percentile bootstrap over the test reviews. " + report["note"], ""]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-finetune", type=int, default=3000, help="training reviews used to fine-tune (20%% early stopping)")
    parser.add_argument("--n-train", type=int, default=6000, help="training reviews for the review models (>= --n-finetune)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--max-length", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--test-limit", type=int, default=None, help="score only the first N test reviews (smoke runs)")
    parser.add_argument("--work", type=Path, default=Path("runs/finetune_text_reviews"), help="encoder folder (not committed)")
    parser.add_argument("--out", type=Path, default=RESULTS / "finetune_text_reviews")
    args = parser.parse_args()
    started = time.perf_counter()
    catalog = load_catalog("reviews")
    with_text = catalog.frame["review_text"].astype("string").fillna("").str.strip() != ""
    catalog = catalog.subset(np.flatnonzero(with_text.to_numpy()))
    train, test = group_split(catalog, test_size=0.2, label="rating", seed=args.seed)
    test = test.head(args.test_limit) if args.test_limit else test
    order = np.random.default_rng(args.seed).permutation(len(train))
    ft_rows = train.subset(np.sort(order[: args.n_finetune]))
    review_rows = train.subset(np.sort(order[: max(args.n_train, args.n_finetune)]))
    texts, labels, groups = star_examples(ft_rows, TEXT_FIELDS)
    recipe = TextRecipe(target="stars", max_length=args.max_length, val_size=0.2)
    config = TrainConfig(epochs=args.epochs, batch_size=32, lr=args.lr, weight_decay=0.01, patience=2, seed=args.seed)
    outcome = finetune_text(texts, labels, groups, args.work, recipe, config, progress=True)
    spec = json.loads((args.work / "encoder.json").read_text())
    report = {
        "command": "OMP_NUM_THREADS=1 SKULENS_THREADS=1 python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "dataset": "reviews (Women's clothing e-commerce reviews, rows with review text)",
        "split": {
            "kind": "group-aware 80/20 as benchmarks/reviews.py (groups = normalised review text, stratified by rating)",
            "seed": args.seed,
            "n_train": len(train),
            "n_test": len(test),
            "duplicate_text_groups_across_split": len(set(text_groups(train)) & set(text_groups(test))),
        },
        "finetune": {
            "n_rows": len(ft_rows),
            "n_train": outcome.n_train,
            "n_val": outcome.n_val,
            "frozen_layers": spec["frozen_layers"],
            "loss": "label-smoothed cross-entropy + |expected rating - stars| (OrdinalStarLoss, weight 1)",
            "max_length": args.max_length,
            "truncated_texts": spec["truncated_texts"],
            "epochs_run": outcome.result.epochs_run,
            "best_epoch": outcome.result.best_epoch,
            "history": outcome.result.history,
            "validation": outcome.validation,
            "seconds": round(outcome.seconds, 1),
            "threads": spec["threads"],
            "load_average": spec["load_average"],
            "recipe": spec["recipe"],
            "training": spec["training"],
        },
        "n_review_train": len(review_rows),
        "targets": TARGETS,
        "results": [],
        "full_data_frozen": full_data_rows(),
        "note": (
            "The first four rows share their training reviews and test reviews, so they compare fine-tuned with frozen "
            "MiniLM directly; the rows marked 'all ... training reviews' come from benchmarks/reviews.py (frozen encoders, "
            "full training part) for context. One seed; no configuration was chosen on the test part."
        ),
    }
    finetuned = f"finetuned-text:{args.work}"
    models = [
        ("TF-IDF LR + fine-tuned MiniLM linear (late fusion)", (finetuned, "tfidf")),
        ("TF-IDF LR + frozen MiniLM linear (late fusion)", ("minilm", "tfidf")),
        ("fine-tuned MiniLM linear", (finetuned,)),
        ("frozen MiniLM linear", ("minilm",)),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name, encoders in models:  # the files are rewritten after each model, so an interrupted run keeps what it did
        report["results"].append(score(name, encoders, review_rows, test, args.seed, args.resamples))
        report["seconds_total"], report["load_average_end"] = round(time.perf_counter() - started, 1), _load()
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str))
        write_markdown(report, args.out.with_suffix(".md"))
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
