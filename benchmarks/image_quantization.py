"""Accuracy change of the int8 EfficientNet-Lite encoder (ONNX Runtime static quantisation) against the float one.

Embeds a catalog's images with both (embedding cache on), then scores a linear probe on the same grouped,
stratified folds (duplicate titles/images never straddle train and test) and reports both macro-F1s and
the difference in points. Writes (merges into) ``benchmarks/results/image_quantization.{json,md}``; int8
may become a default only if the loss is < 0.3 points on every dataset. The folds compare two encoders on
the same rows; the numbers are not a benchmark of either.

    python benchmarks/image_quantization.py --dataset flipkart --label 0
    python benchmarks/image_quantization.py --dataset myntra --label masterCategory [--limit 4000]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from skulens.catalog import load_catalog
from skulens.catalog.splits import duplicate_groups, grouped_folds
from skulens.embed import embed_catalog
from skulens.encoders import create_encoder
from skulens.heads import LinearProbe

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="flipkart")
    parser.add_argument("--label", default="0", help="category level (0, 1, ...) or label column")
    parser.add_argument("--encoder", default="efficientnet-lite0", help="float encoder; its -int8 twin is compared")
    parser.add_argument("--limit", type=int, default=None, help="first N labelled rows with an image")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    load_start = os.getloadavg()
    catalog = load_catalog(args.dataset)
    labels = catalog.labels(int(args.label) if args.label.isdigit() else args.label)
    has_image = [isinstance(p, str) and (catalog.root / p).is_file() for p in catalog.frame["image"]]
    rows = np.flatnonzero(labels.notna().to_numpy() & np.asarray(has_image))[: args.limit]
    catalog, y = catalog.subset(rows), labels.to_numpy()[rows].astype(str)
    classes, counts = np.unique(y, return_counts=True)
    keep = np.isin(y, classes[counts >= args.folds])
    groups = duplicate_groups(catalog)[keep]
    folds = list(grouped_folds(y[keep], groups, args.folds, seed=0))
    scores, seconds, cpu = {}, {}, {}
    for name in (args.encoder, f"{args.encoder}-int8"):
        start, cpu_start = time.perf_counter(), time.process_time()
        vectors = embed_catalog(catalog, create_encoder(name)).vectors[keep]
        seconds[name], cpu[name] = round(time.perf_counter() - start, 1), round(time.process_time() - cpu_start, 1)
        predicted = np.empty(keep.sum(), dtype=object)
        for train, test in folds:
            predicted[test] = LinearProbe().fit(vectors[train], y[keep][train]).predict(vectors[test])
        scores[name] = float(f1_score(y[keep], predicted.astype(str), average="macro"))
    fp32, int8 = scores[args.encoder], scores[f"{args.encoder}-int8"]
    key = f"{args.dataset}_label{args.label}_{args.encoder}"
    target = RESULTS / "image_quantization.json"
    report = json.loads(target.read_text()) if target.exists() else {}
    report[key] = {
        "rows": int(keep.sum()),
        "classes": int(len(np.unique(y[keep]))),
        "folds": f"{args.folds} grouped stratified folds (duplicate_groups), seed 0",
        "macro_f1_float": round(fp32, 4),
        "macro_f1_int8": round(int8, 4),
        "int8_loss_points": round(100 * (fp32 - int8), 2),
        "embed_seconds_wall": seconds,
        "embed_seconds_cpu": cpu,
        "load_start": [round(v, 2) for v in load_start],
        "load_end": [round(v, 2) for v in os.getloadavg()],
        "command": shlex.join(sys.orig_argv),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    target.write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "image_quantization.md").write_text(markdown(report))
    print(json.dumps(report[key], indent=2))
    return 0


def markdown(report: dict) -> str:
    lines = [
        "# int8 image encoders: accuracy change",
        "",
        "Linear-probe macro-F1 of the float and int8 encoders on the same grouped folds; embedding times include "
        "cache hits (a warm float cache reads in seconds). Loss < 0.3 points on every dataset is the bar for a default.",
        "",
        "| dataset / label / encoder | rows | classes | float macro-F1 | int8 macro-F1 | loss (points) | load (1/5/15 min) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for key, r in report.items():
        lines.append(
            f"| {key} | {r['rows']} | {r['classes']} | {r['macro_f1_float']} | {r['macro_f1_int8']} | "
            f"{r['int8_loss_points']} | {r['load_start']} |"
        )
    lines += ["", "Commands:", "", *[f"- `{r['command']}`" for r in report.values()]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
