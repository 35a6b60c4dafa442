"""Label-shift adaptation on real shifts (a script, not a test).

    SKULENS_THREADS=2 python benchmarks/label_shift.py      # writes benchmarks/results/label_shift.{json,md}

Reviews. The review model (``--encoders``, default the CLI's ``reviews train`` default: TF-IDF and MiniLM, one
logistic-regression head each, late fusion; ``review_text`` only, because the other shop has no titles worth reading; class weighting and prior correction chosen for star accuracy on its own
validation split, where label-shift adaptation is fitted too) is trained on the training part of the clothing
reviews (one seeded group-aware 80/20 split). It is then scored, with and without ``adapt_priors``, on
``reviews/amazon_fashion_2018.csv`` (``reviewText`` only): nothing of that file is used to train or choose
anything. MAE is that of the median star of each distribution (the MAE-optimal point estimate); the MAE of the
displayed stars and of the expected rating are reported beside it. 95% percentile-bootstrap intervals over the
439 reviews.

Simulated shifts. ``--shifts`` class mixes drawn from Dirichlet(1) resample (with replacement, ``--rows`` rows) the
clothing test part and the test part of a Myntra articleType categorizer (TF-IDF of the product titles, trained on
``myntra/`` ids below 18000, tested on the others, classes with at least 30 training products): the estimated mix
is compared with the realised one and the accuracy of the adapted predictions with the unadapted ones. The Myntra
headline case is the test part resampled to the reverse of the training class mix (rare classes frequent).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from skulens.catalog import load_catalog, read_reviews
from skulens.catalog.splits import group_split
from skulens.heads.prior_shift import reweight, shifted_rows
from skulens.metrics.intervals import bootstrap_ci
from skulens.tasks.categorize import CategoryPredictor
from skulens.tasks.reviews import ReviewPredictor, labelled_stars, median_rating, prior_corrected_stars

RESULTS = Path(__file__).parent / "results"
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"
ENCODER_PARAMS = {"tfidf": {"Cs": (1.0, 3.0, 10.0)}, "minilm": {"Cs": (0.01, 0.03, 0.1)}}
MYNTRA_SPLIT_ID = 18000
MIN_CLASS = 30
#: The keys each part writes (a run of one part replaces only its own keys).
PART_KEYS = {"reviews": ("fashion_", "clothing_", "estimator", "review_"), "myntra": ("myntra_",)}


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def _interval(values: np.ndarray, seed: int) -> list[float]:
    return bootstrap_ci(lambda rows: float(values[rows].mean()), len(values), 1000, seed)["ci95"]


def review_scores(model: ReviewPredictor, features, stars: np.ndarray, adapt: bool) -> dict:
    """Accuracy and MAEs of the model's outputs on feature rows with true ``stars``."""
    out = model.outputs_from_features(features, adapt_priors=adapt)
    return {
        "accuracy": (out["stars"] == stars).astype(float),
        "median_error": np.abs(median_rating(out["star_proba"]) - stars).astype(float),
        "star_error": np.abs(out["stars"] - stars).astype(float),
        "expected_error": np.abs(out["expected_rating"] - stars),
        "shift": model.last_prior_shift_,
    }


def gate_open_scores(model: ReviewPredictor, features, stars: np.ndarray, shift) -> dict:
    """A diagnostic, chosen by nothing: accuracy and median-star MAE had the estimated star mix been applied
    whatever the guards said (what the guards cost or saved here)."""
    priors = np.asarray(shift.estimated_priors)
    calibrated = model.label_shift_.calibration.apply(model._star_proba(model.stars_model_, features))
    proba = reweight(calibrated, np.asarray(model.label_shift_.source_priors), priors)
    decided = prior_corrected_stars(proba, priors, model.selection_["alpha"])
    return {"accuracy": float((decided == stars).mean()), "mae": float(np.abs(median_rating(proba) - stars).mean())}


def simulate(predict, y_index: np.ndarray, n_classes: int, shifts: int, rows: int, seed: int) -> dict:
    """``shifts`` Dirichlet(1) class mixes of the rows: ``predict(rows, adapt)`` -> (decisions, PriorShift)."""
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(shifts):
        picked = shifted_rows(y_index, rng.dirichlet(np.ones(n_classes)), rows, rng)
        realised = np.bincount(y_index[picked], minlength=n_classes) / len(picked)
        plain, _ = predict(picked, False)
        adapted, shift = predict(picked, True)
        records.append(
            {
                "prior_mae": float(np.abs(np.asarray(shift.estimated_priors) - realised).mean()),
                "accuracy_change": float((adapted == y_index[picked]).mean() - (plain == y_index[picked]).mean()),
                "applied": bool(shift.applied),
                "reason": shift.reason,
            }
        )
    changes = np.array([r["accuracy_change"] for r in records])
    return {
        "shifts": shifts,
        "rows_per_shift": rows,
        "simulated_prior_mae": float(np.mean([r["prior_mae"] for r in records])),
        "simulated_worst_accuracy_change": float(changes.min()),
        "simulated_mean_accuracy_change": float(changes.mean()),
        "shifts_adapted": int(sum(r["applied"] for r in records)),
        "shifts_worse_by_more_than_0.01": int((changes < -0.01).sum()),
        "records": records,
    }


def reviews_part(args) -> dict:
    reviews = load_catalog("reviews")
    keep = np.array([bool(str(t).strip()) and t == t for t in reviews.frame["review_text"]]) & ~np.isnan(labelled_stars(reviews))
    reviews = reviews.subset(np.flatnonzero(keep))
    train, test = group_split(reviews, 0.2, label="rating", seed=args.seed)
    log(f"clothing reviews: train {len(train)}, test {len(test)}")
    model = ReviewPredictor(
        encoders=tuple(args.encoders.split(",")),
        text_fields=("review_text",),
        criterion="accuracy",
        seed=args.seed,
        encoder_params=ENCODER_PARAMS,
        progress=True,
    ).fit(train)
    log(
        f"trained; selection {model.selection_['class_weight']}, alpha {model.selection_['alpha']}; "
        f"label shift: {model.label_shift_.estimator}"
    )
    amazon = read_reviews(DATA / "reviews" / "amazon_fashion_2018.csv")
    amazon = amazon.subset(np.flatnonzero(~np.isnan(labelled_stars(amazon))))
    readable, _ = model._readable(amazon)
    amazon = amazon.subset(np.flatnonzero(readable))
    stars = labelled_stars(amazon).astype(int)
    features = model.extractor.transform(amazon)
    plain, adapted = review_scores(model, features, stars, False), review_scores(model, features, stars, True)
    shift = adapted["shift"]
    gate_open = gate_open_scores(model, features, stars, shift)
    majority = int(np.argmax(model.prior_)) + 1
    true_mix = np.bincount(stars, minlength=6)[1:] / len(stars)
    fashion = {
        "fashion_rows": int(len(stars)),
        "fashion_unreadable_rows": int((~readable).sum()),
        "fashion_star_accuracy": float(adapted["accuracy"].mean()),
        "fashion_star_accuracy_ci95": _interval(adapted["accuracy"], args.seed),
        "fashion_mae": float(adapted["median_error"].mean()),
        "fashion_mae_ci95": _interval(adapted["median_error"], args.seed),
        "fashion_star_accuracy_unadapted": float(plain["accuracy"].mean()),
        "fashion_mae_unadapted": float(plain["median_error"].mean()),
        "fashion_displayed_star_mae": float(adapted["star_error"].mean()),
        "fashion_expected_rating_mae": float(adapted["expected_error"].mean()),
        "fashion_expected_rating_mae_unadapted": float(plain["expected_error"].mean()),
        "fashion_majority_accuracy": float((stars == majority).mean()),
        "fashion_star_accuracy_gate_open": gate_open["accuracy"],
        "fashion_mae_gate_open": gate_open["mae"],
        "fashion_majority_mae": float(np.abs(stars - majority).mean()),
        "fashion_estimated_prior": {
            "stars": [1, 2, 3, 4, 5],
            "estimate": [round(p, 4) for p in shift.estimated_priors],
            "interval": shift.interval,
            "applied": shift.applied,
            "reason": shift.reason,
            "true_mix": [round(float(p), 4) for p in true_mix],
            "training_mix": [round(float(p), 4) for p in model.prior_],
        },
        "estimator": model.label_shift_.estimator,
        "estimator_selection": model.label_shift_.simulation,
        "review_model_selection": {k: v for k, v in model.selection_.items() if k != "candidates"},
        "review_model_encoders": list(model.encoders),
    }
    test_features = model.extractor.transform(test)
    test_stars = labelled_stars(test).astype(int)

    def predict(rows: np.ndarray, adapt: bool):
        out = model.outputs_from_features(test_features.subset(rows), adapt_priors=adapt)
        return out["stars"] - 1, model.last_prior_shift_

    log("clothing test part: simulated shifts")
    fashion["clothing_simulation"] = simulate(predict, test_stars - 1, 5, args.shifts, args.rows, args.seed)
    return fashion


def myntra_part(args) -> dict:
    myntra = load_catalog("myntra")
    ids = myntra.frame["id"].astype(int).to_numpy()
    train, test = myntra.subset(np.flatnonzero(ids < MYNTRA_SPLIT_ID)), myntra.subset(np.flatnonzero(ids >= MYNTRA_SPLIT_ID))
    model = CategoryPredictor(encoders=("tfidf",), label="articleType", min_class_count=MIN_CLASS, seed=args.seed)
    model.fit(train)
    labels = test.labels("articleType").astype(str).to_numpy()
    known = np.isin(labels, model.classes_)
    test, labels = test.subset(np.flatnonzero(known)), labels[known]
    y_index = np.searchsorted(model.classes_, labels)
    log(
        f"myntra: train {len(train)}, test {len(test)}, {len(model.classes_)} articleTypes; label shift: {model.label_shift_.estimator}"
    )
    features = model.extractor.transform(test)
    proba = model.proba_from_features(features)

    def predict(rows: np.ndarray, adapt: bool):
        if not adapt:
            return proba[rows].argmax(1), None
        adapted, shift = model.adapted_proba(proba[rows], features.subset(rows))
        return adapted.argmax(1), shift

    rng = np.random.default_rng(args.seed + 1)
    reverse = 1 / np.clip(np.asarray(model.class_prior_), 1e-6, None)
    picked = shifted_rows(y_index, reverse / reverse.sum(), args.rows, rng)
    plain, _ = predict(picked, False)
    adapted, shift = predict(picked, True)
    realised = np.bincount(y_index[picked], minlength=len(model.classes_)) / len(picked)
    result = {
        "myntra_classes": int(len(model.classes_)),
        "myntra_test_rows": int(len(test)),
        "myntra_estimator": model.label_shift_.estimator,
        "myntra_estimator_selection": model.label_shift_.simulation,
        "myntra_reversed_mix_accuracy_unadapted": float((plain == y_index[picked]).mean()),
        "myntra_reversed_mix_accuracy": float((adapted == y_index[picked]).mean()),
        "myntra_reversed_mix_prior_mae": float(np.abs(np.asarray(shift.estimated_priors) - realised).mean()),
        "myntra_reversed_mix_applied": shift.applied,
        "myntra_reversed_mix_reason": shift.reason,
    }
    log("myntra test part: simulated shifts")
    result["myntra_simulation"] = simulate(predict, y_index, len(model.classes_), args.shifts, args.rows, args.seed)
    return result


def to_markdown(report: dict) -> str:
    r = report
    prior = r.get("fashion_estimated_prior", {})
    lines = [
        "# Label-shift adaptation on real shifts",
        "",
        f"Command: `{r['command']}`",
        "",
    ]
    if "fashion_star_accuracy" in r:
        lines += [
            f"## Another shop: amazon_fashion_2018.csv ({r['fashion_rows']} reviews, `reviewText` only; "
            f"model: {' + '.join(r.get('review_model_encoders', ['tfidf']))}, trained on clothing reviews only)",
            "",
            "| model | star accuracy | MAE (median star) | MAE (expected rating) |",
            "|---|---|---|---|",
            f"| always {int(np.argmax(prior['training_mix'])) + 1} stars | {r['fashion_majority_accuracy']:.3f} | {r['fashion_majority_mae']:.3f} | – |",
            f"| model | {r['fashion_star_accuracy_unadapted']:.3f} | {r['fashion_mae_unadapted']:.3f} | "
            f"{r['fashion_expected_rating_mae_unadapted']:.3f} |",
            f"| model + adapt_priors | {r['fashion_star_accuracy']:.3f} [{r['fashion_star_accuracy_ci95'][0]:.3f}, "
            f"{r['fashion_star_accuracy_ci95'][1]:.3f}] | {r['fashion_mae']:.3f} [{r['fashion_mae_ci95'][0]:.3f}, "
            f"{r['fashion_mae_ci95'][1]:.3f}] | {r['fashion_expected_rating_mae']:.3f} |",
            "",
            f"Estimator chosen at fit time: **{r['estimator']}**. Adaptation applied: {prior['applied']} ({prior['reason']}).",
            "",
            f"Diagnostic (chooses nothing): had the estimated mix been applied whatever the guards said, star accuracy "
            f"{r.get('fashion_star_accuracy_gate_open', float('nan')):.3f}, MAE {r.get('fashion_mae_gate_open', float('nan')):.3f}.",
            "",
            "| stars | training mix | true mix here | estimated | 95% interval |",
            "|---|---|---|---|---|",
        ]
        for k in range(5):
            low_high = prior["interval"][k] if prior.get("interval") else ["–", "–"]
            interval = "–" if prior.get("interval") is None else f"{low_high[0]:.3f}-{low_high[1]:.3f}"
            lines.append(
                f"| {k + 1} | {prior['training_mix'][k]:.3f} | {prior['true_mix'][k]:.3f} | {prior['estimate'][k]:.3f} | {interval} |"
            )
        lines.append("")
    lines += [
        "## Simulated Dirichlet(1) shifts of test parts",
        "",
        "| test part | shifts | rows each | prior MAE | "
        "mean accuracy change | worst accuracy change | adapted | worse by > 0.01 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, key in (("clothing reviews (stars)", "clothing_simulation"), ("Myntra articleType", "myntra_simulation")):
        if key in r:
            s = r[key]
            lines.append(
                f"| {name} | {s['shifts']} | {s['rows_per_shift']} | {s['simulated_prior_mae']:.4f} | "
                f"{s['simulated_mean_accuracy_change']:+.4f} | {s['simulated_worst_accuracy_change']:+.4f} | "
                f"{s['shifts_adapted']} | {s['shifts_worse_by_more_than_0.01']} |"
            )
    if "myntra_reversed_mix_accuracy" in r:
        lines += [
            "",
            f"Myntra articleType ({r['myntra_classes']} classes), test part resampled to the reverse of the training mix: "
            f"accuracy {r['myntra_reversed_mix_accuracy_unadapted']:.3f} unadapted -> {r['myntra_reversed_mix_accuracy']:.3f} "
            f"adapted ({r['myntra_estimator']}; {r['myntra_reversed_mix_reason']}).",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shifts", type=int, default=50)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", default="reviews,myntra", help="reviews, myntra or both (comma-separated)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--encoders",
        default="tfidf,minilm",
        help="review model encoders (comma-separated; default: the CLI's reviews train default)",
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parts = args.parts.split(",")
    threads = f"SKULENS_THREADS={os.environ['SKULENS_THREADS']} " if os.environ.get("SKULENS_THREADS") else ""
    command = threads + "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    results: dict = {}
    if "reviews" in parts:
        results.update(reviews_part(args))
    if "myntra" in parts:
        results.update(myntra_part(args))
    # a run of some parts keeps the other parts' results (and their commands) from an earlier run
    path = args.out / "label_shift.json"
    earlier = json.loads(path.read_text()) if path.exists() else {}
    rerun = tuple(prefix for part in parts for prefix in PART_KEYS[part])
    report = {k: v for k, v in earlier.items() if not k.startswith(rerun) and k not in ("command", "commands")} | results
    report["commands"] = {k: v for k, v in earlier.get("commands", {}).items() if k not in parts} | dict.fromkeys(parts, command)
    report["command"] = " && ".join(dict.fromkeys(report["commands"].values()))
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "label_shift.md").write_text(to_markdown(report))
    log(f"written to {path}")


if __name__ == "__main__":
    main()
