"""Does the photo-vs-text conflict flag find mislabelled listings? Planted title swaps (issue 23).

For each fold of a seeded, grouped ``StratifiedGroupKFold`` (duplicates by title or photo bytes stay on one
side) a fused categorizer (EfficientNet-Lite0 + MiniLM + TF-IDF, the default) is trained on the other folds.
In the test fold, a seeded 5% of the products get the title of a product from another top-level category
(their photo and description stay); every test product is then scored by
:func:`skulens.explain.conflicts.catalog_conflicts` at the library's default threshold. Pooled over folds:
precision and recall of the flag against the planted rows (95% bootstrap over test rows), the flag rate on
the clean rows, and a threshold curve (for reading only: the default is the library's constant, not
chosen here).

    python benchmarks/conflicts.py [--datasets flipkart myntra] [--folds N]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from skulens.catalog import load_catalog
from skulens.catalog.splits import duplicate_groups, grouped_folds
from skulens.explain.conflicts import catalog_conflicts
from skulens.explain.modality import CONFLICT_LOG_RATIO
from skulens.metrics.intervals import bootstrap_ci
from skulens.tasks.categorize import CategoryPredictor

RESULTS = Path(__file__).resolve().parent / "results"
SHARE = 0.05
ENCODERS = ["efficientnet-lite0", "minilm", "tfidf"]
#: (label the model is trained on, top-level column the planted title must differ in, folds)
SETUPS = {"flipkart": (0, 0, 5), "myntra": ("articleType", "masterCategory", 3)}
CURVE = [1.0, 2.0, 3.0, float(np.log(20.0)), 4.0, 5.0, 6.0]


def plant(frame: pd.DataFrame, top: pd.Series, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Give a seeded ``SHARE`` of ``rows`` the title of a random row (of ``rows``) from another top category."""
    chosen = rng.choice(rows, size=max(1, int(round(SHARE * len(rows)))), replace=False)
    for row in chosen:
        donors = rows[(top.iloc[rows] != top.iloc[row]).to_numpy()]
        frame.at[row, "title"] = frame.at[int(rng.choice(donors)), "title"]
    return chosen


def run(name: str, folds: int, seed: int) -> dict:
    catalog = load_catalog(name)
    label, top_level, default_folds = SETUPS[name]
    folds = folds or default_folds
    y, top = catalog.labels(label), catalog.labels(top_level)
    keep = (y.notna() & top.notna()).to_numpy()
    counts = y[keep].value_counts()
    keep = keep & (y.map(counts).fillna(0).to_numpy() >= folds * 2)  # classes every fold can learn
    catalog = catalog.subset(np.flatnonzero(keep))
    y, top = catalog.labels(label), catalog.labels(top_level)
    groups = duplicate_groups(catalog)
    rng = np.random.default_rng(seed)
    scored, planted_all = [], []
    for fold, (train, test) in enumerate(grouped_folds(y.to_numpy(), groups, folds, seed)):
        started = time.perf_counter()
        model = CategoryPredictor(encoders=ENCODERS, label=label, seed=seed).fit(catalog.subset(train))
        frame = catalog.frame.copy()
        planted = plant(frame, top, test, rng)
        swapped = catalog.subset(test)
        swapped.frame["title"] = frame["title"].iloc[test].to_numpy()
        result = catalog_conflicts(model, swapped)
        result["planted"] = np.isin(test, planted)
        result["fold"] = fold
        scored.append(result)
        planted_all.append(planted)
        print(
            f"{name} fold {fold}: {int(result['planted'].sum())} planted, {int(result['conflict'].sum())} flagged, "
            f"{time.perf_counter() - started:.0f}s",
            flush=True,
        )
    pooled = pd.concat(scored, ignore_index=True)
    planted = pooled["planted"].to_numpy()
    score = pooled["conflict_score"].fillna(-np.inf).to_numpy()

    def precision(rows: np.ndarray, threshold: float = CONFLICT_LOG_RATIO) -> float:
        flagged = score[rows] >= threshold
        return float(planted[rows][flagged].mean()) if flagged.any() else float("nan")

    def recall(rows: np.ndarray, threshold: float = CONFLICT_LOG_RATIO) -> float:
        hits = planted[rows]
        return float((score[rows][hits] >= threshold).mean()) if hits.any() else float("nan")

    n = len(pooled)
    curve = [
        {
            "threshold": round(t, 3),
            "precision": precision(np.arange(n), t),
            "recall": recall(np.arange(n), t),
            "clean_flag_rate": float((score[~planted] >= t).mean()),
        }
        for t in CURVE
    ]
    return {
        "rows": n,
        "folds": folds,
        "planted": int(planted.sum()),
        "label": label,
        "planted_across": top_level,
        "precision": bootstrap_ci(precision, n),
        "recall": bootstrap_ci(recall, n),
        "clean_flag_rate": float((score[~planted] >= CONFLICT_LOG_RATIO).mean()),
        "flagged": int((score >= CONFLICT_LOG_RATIO).sum()),
        "threshold_curve": curve,
    }


def markdown(results: dict) -> str:
    lines = [
        "# Photo-vs-text conflicts on planted title swaps",
        "",
        f"`{results['command']}` — {results['created']}",
        "",
        f"Default threshold: ln-ratio {results['threshold']:.3f} (the photo or the text alone prefers its own top class "
        "to the predicted one at least 20 times, with at least 50% on its top class).",
        "",
        "| data | rows | planted | precision [95% CI] | recall [95% CI] | clean rows flagged |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results["datasets"].items():
        p, rc = r["precision"], r["recall"]
        lines.append(
            f"| {name} ({r['label']}) | {r['rows']:,} | {r['planted']} | {p['estimate']:.3f} [{p['ci95'][0]:.3f}, {p['ci95'][1]:.3f}] "
            f"| {rc['estimate']:.3f} [{rc['ci95'][0]:.3f}, {rc['ci95'][1]:.3f}] | {r['clean_flag_rate']:.3%} |"
        )
    for name, r in results["datasets"].items():
        lines += [
            "",
            f"Threshold curve, {name} (reading only):",
            "",
            "| threshold | precision | recall | clean flagged |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {c['threshold']:.3f} | {c['precision']:.3f} | {c['recall']:.3f} | {c['clean_flag_rate']:.3%} |"
            for c in r["threshold_curve"]
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--folds", type=int, default=None, help="Folds for every dataset (default: 5 Flipkart, 3 Myntra).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "conflicts.json")
    args = parser.parse_args()
    datasets = {name: run(name, args.folds, args.seed) for name in args.datasets}
    first = datasets[args.datasets[0]]
    results = {
        "planted": first["planted"],
        "precision": first["precision"]["estimate"],
        "recall": first["recall"]["estimate"],
        "clean_flag_rate": first["clean_flag_rate"],
        "threshold": CONFLICT_LOG_RATIO,
        "headline_dataset": args.datasets[0],
        "datasets": datasets,
        "command": "python " + shlex.join(sys.argv),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
