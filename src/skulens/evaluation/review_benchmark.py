"""The review benchmark: Women's clothing reviews with text, one seeded group-aware 80/20 split.

Models compared on the same test rows: the VADER lexicon baseline, TF-IDF + logistic regression, a
MiniLM linear probe, and TF-IDF + MiniLM (weighted late fusion). Duplicate review texts never cross the
train/test boundary (:func:`skulens.catalog.splits.group_split`). Optionally also the product-rating
regression on the 161 rated Flipkart products (:func:`skulens.tasks.product_rating.product_rating_cv`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from skulens.catalog import load_catalog
from skulens.catalog.splits import group_split, text_groups

log = logging.getLogger(__name__)

MODELS = ("vader", "tfidf", "minilm", "minilm:mlp", "tfidf+minilm", "tfidf+minilm:mlp")
LABELS = {
    "tfidf": "TF-IDF + logistic regression",
    "minilm": "MiniLM linear probe",
    "minilm:mlp": "MiniLM MLP probe",
    "tfidf+minilm": "TF-IDF LR + MiniLM linear (weighted late fusion)",
    "tfidf+minilm:mlp": "TF-IDF LR + MiniLM MLP (weighted late fusion)",
}
#: C grids per encoder (TF-IDF rows are L2-normalised and sparse; MiniLM features are standardised).
ENCODER_PARAMS = {"tfidf": {"Cs": (1.0, 3.0, 10.0)}, "minilm": {"Cs": (0.01, 0.03, 0.1)}}
HEADLINE = ("star_accuracy", "star_macro_f1", "rating_mae", "recommend_auc")
TARGETS = {"star_accuracy": 0.70, "star_macro_f1": 0.55, "rating_mae": 0.38, "recommend_auc": 0.97}


def _entry(name: str, metrics: dict, seconds: float, extra: dict | None = None) -> dict:
    entry = {"name": name, **{k: metrics.get(k) for k in HEADLINE}}
    for key in (
        "median_rating_mae",
        "rating_rmse",
        "rating_r2",
        "star_decision_mae",
        "star_ece",
        "sentiment_accuracy",
        "sentiment_macro_f1",
        "recommend_pr_auc",
        "recommend_pr_auc_not_recommended",
        "recommend_accuracy",
        "n",
    ):
        entry[key] = metrics.get(key)
    entry["star_per_class"] = metrics["stars"]["per_class"]
    entry["star_confusion_matrix"] = metrics["stars"]["confusion_matrix"]
    entry["sentiment_per_class"] = metrics["sentiment"]["per_class"]
    entry["fit_predict_seconds"] = round(seconds, 1)
    entry.update(extra or {})
    return entry


def run_review_benchmark(
    models: Sequence[str] = MODELS,
    seed: int = 0,
    test_size: float = 0.2,
    limit: int | None = None,
    product_rating: bool = True,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> dict:
    """Fit every model on the training part and evaluate on the test part; returns the report dict."""
    from skulens.tasks.review_lexicon import VaderBaseline
    from skulens.tasks.reviews import ReviewPredictor

    catalog = load_catalog("reviews")
    with_text = catalog.frame["review_text"].astype("string").fillna("").str.strip() != ""
    catalog = catalog.subset(np.flatnonzero(with_text.to_numpy()))
    if limit:
        catalog = catalog.head(limit)
    train, test = group_split(catalog, test_size=test_size, label="rating", seed=seed)
    groups_train, groups_test = set(text_groups(train)), set(text_groups(test))
    report = {
        "dataset": "reviews (Women's clothing e-commerce reviews, rows with review text)",
        "split": {
            "kind": "group-aware 80/20 (groups = normalised review text, drawn over groups stratified by rating)",
            "seed": seed,
            "n_train": len(train),
            "n_test": len(test),
            "duplicate_text_groups_across_split": len(groups_train & groups_test),
        },
        "targets": TARGETS,
        "metric_notes": {
            "rating_mae": "MAE of the expected rating sum_k k*p(k) (what the issue asks for)",
            "star_decision_mae": "MAE of the predicted star class (prior-corrected argmax)",
            "median_rating_mae": "MAE of the median of the star distribution (the MAE-optimal point estimate)",
            "sentiment": "derived from stars: 1-2 negative, 3 neutral, 4-5 positive",
        },
        "results": [],
    }
    for name in models:
        start = time.time()
        log.info("fitting %s on %d reviews", name, len(train))
        if name == "vader":
            model = VaderBaseline().fit(train)
            metrics = model.evaluate(test)
            report["results"].append(
                _entry("VADER lexicon (compound score -> stars by training quantiles)", metrics, time.time() - start)
            )
        else:
            # "a+b:mlp": encoders a and b, b with an MLP head (linear otherwise)
            parts = [part.partition(":") for part in name.split("+")]
            encoders = tuple(enc for enc, _, _ in parts)
            params = {enc: ({"head": kind} if kind else dict(ENCODER_PARAMS.get(enc, {}))) for enc, _, kind in parts}
            predictor = ReviewPredictor(
                encoders=encoders, seed=seed, cache_dir=cache_dir, progress=progress, encoder_params=params
            )
            predictor.fit(train)
            metrics = predictor.evaluate(test)
            selection = {k: v for k, v in predictor.selection_.items() if k != "candidates"}
            label = LABELS.get(name, name)
            report["results"].append(
                _entry(
                    label,
                    metrics,
                    time.time() - start,
                    {
                        "model": name,
                        "encoders": list(encoders),
                        "selection": selection,
                        "validation_candidates": predictor.selection_.get("candidates", []),
                    },
                )
            )
        log.info("%s: %s", name, {k: report["results"][-1][k] for k in HEADLINE})
    best = max(report["results"], key=lambda r: r["star_accuracy"] + r["star_macro_f1"])
    report["best"] = {
        "name": best["name"],
        "targets_met": {
            k: (best[k] <= v if k == "rating_mae" else best[k] >= v) if best[k] is not None else False for k, v in TARGETS.items()
        },
    }
    if product_rating:
        from skulens.tasks.product_rating import product_rating_cv

        start = time.time()
        report["product_rating"] = product_rating_cv(load_catalog("flipkart"), seed=seed, cache_dir=cache_dir, progress=progress)
        report["product_rating"]["seconds"] = round(time.time() - start, 1)
    return report


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def to_markdown(report: dict) -> str:
    """The comparison table (and the product-rating table) as markdown."""
    split = report["split"]
    lines = [
        "# Review intelligence benchmark",
        "",
        f"Dataset: {report['dataset']}; {split['kind']}, seed {split['seed']}: {split['n_train']:,} train / "
        f"{split['n_test']:,} test reviews; duplicate-text groups across the split: {split['duplicate_text_groups_across_split']}.",
        "",
        f"Command: `{report.get('command', '')}`",
        "",
        "| model | star accuracy | star macro-F1 | rating MAE (expected) | star-class MAE | median-star MAE | recommend ROC-AUC | recommend PR-AUC | class weight / alpha / fusion weights |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        sel = r.get("selection") or {}
        choice = f"{sel.get('class_weight')} / {sel.get('alpha')} / {sel.get('weights')}" if sel else "–"
        lines.append(
            f"| {r['name']} | {_fmt(r['star_accuracy'])} | {_fmt(r['star_macro_f1'])} | {_fmt(r['rating_mae'])} | "
            f"{_fmt(r['star_decision_mae'])} | {_fmt(r.get('median_rating_mae'))} | {_fmt(r['recommend_auc'])} | {_fmt(r['recommend_pr_auc'])} | {choice} |"
        )
    targets = report["targets"]
    lines += [
        f"| *target (best model)* | ≥ {targets['star_accuracy']} | ≥ {targets['star_macro_f1']} | ≤ {targets['rating_mae']} | | | ≥ {targets['recommend_auc']} | | |",
        "",
        f"Best model: {report['best']['name']}; targets met: "
        + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in report["best"]["targets_met"].items()),
        "",
        "rating MAE is the MAE of the expected rating sum_k k·p(k) (the headline `rating_mae`); star-class MAE is the",
        "MAE of the predicted star; median-star MAE uses the median of the predicted distribution. The issue's",
        "TF-IDF reference (MAE 0.42) does not say which point estimate it used; compare it with all three.",
        "Class weight (None/balanced) and the prior-correction exponent alpha of the star decision",
        "(argmax p(k)/prior(k)^alpha) are chosen on a group-aware 15% validation split of the training rows.",
    ]
    pr = report.get("product_rating")
    if pr:
        lines += [
            "",
            f"## Product rating from image + text (Flipkart, {pr['n_rated']} rated products, {pr['folds']}-fold CV)",
            "",
            f"Ratings: mean {pr['rating_mean']:.2f}, std {pr['rating_std']:.2f}. Huber-loss heads on frozen embeddings.",
            "",
            "| model | MAE | RMSE | R² | MAE per fold (mean ± std) |",
            "|---|---|---|---|---|",
        ]
        for r in pr["results"]:
            fold = r["per_fold"]["mae"]
            lines.append(
                f"| {r['name']} | {r['mae']:.3f} | {r['rmse']:.3f} | {r['r2']:.3f} | {fold['mean']:.3f} ± {fold['std']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def write_report(report: dict, json_path: Path, md_path: Path | None = None) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, default=str))
    if md_path is not None:
        md_path.write_text(to_markdown(report))
