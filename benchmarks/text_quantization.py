"""Accuracy change of int8 MiniLM (ONNX Runtime dynamic quantisation) against the float ONNX model.

Embeds a catalog's texts with both (embedding cache on), then scores a linear probe with the same
stratified folds on each and reports macro-F1 of both and the difference in points. Writes (merges
into) ``benchmarks/results/text_quantization.json``; int8 becomes a default only if the loss is < 0.3
points. Folds here are plain stratified (not grouped): the number compares two encoders on the same
folds, it is not a benchmark of either.

    python benchmarks/text_quantization.py --dataset myntra --label 0 [--limit 3000] [--max-lengths 32 64 128]
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
from sklearn.model_selection import StratifiedKFold

from skulens.catalog import load_catalog
from skulens.embed import embed_catalog
from skulens.encoders import create_encoder
from skulens.heads import LinearProbe

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="myntra")
    parser.add_argument("--label", default="0")
    parser.add_argument("--limit", type=int, default=None, help="first N labelled rows")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--max-lengths",
        nargs="*",
        type=int,
        default=[],
        metavar="N",
        help="also score the float model cut at these token lengths (the accuracy-vs-length curve for a serving max length)",
    )
    args = parser.parse_args()
    load_start = round(os.getloadavg()[0], 2)
    catalog = load_catalog(args.dataset)
    labels = catalog.labels(int(args.label) if args.label.isdigit() else args.label)
    rows = np.flatnonzero(labels.notna().to_numpy())[: args.limit]
    catalog, y = catalog.subset(rows), labels.to_numpy()[rows].astype(str)
    classes, counts = np.unique(y, return_counts=True)
    keep = np.isin(y, classes[counts >= args.folds])
    scores, seconds = {}, {}
    variants = [("float", {}), ("int8", {"quantize": True})] + [
        (f"float_len{n}", {"max_seq_length": n}) for n in args.max_lengths
    ]
    for name, params in variants:
        start = time.perf_counter()
        vectors = embed_catalog(catalog, create_encoder("minilm", **params)).vectors[keep]
        seconds[name] = round(time.perf_counter() - start, 1)
        predicted = np.empty(keep.sum(), dtype=object)
        for train, test in StratifiedKFold(args.folds, shuffle=True, random_state=0).split(vectors, y[keep]):
            predicted[test] = LinearProbe().fit(vectors[train], y[keep][train]).predict(vectors[test])
        scores[name] = float(f1_score(y[keep], predicted.astype(str), average="macro"))
    key = f"{args.dataset}_label{args.label}"
    target = RESULTS / "text_quantization.json"
    report = json.loads(target.read_text()) if target.exists() else {}
    report[key] = {
        "rows": int(keep.sum()),
        "classes": int(len(np.unique(y[keep]))),
        "macro_f1_float": round(scores["float"], 4),
        "macro_f1_int8": round(scores["int8"], 4),
        "int8_loss_points": round(100 * (scores["float"] - scores["int8"]), 2),
        "embed_seconds": seconds,
        **(
            {"macro_f1_by_max_length": {str(n): round(scores[f"float_len{n}"], 4) for n in args.max_lengths}}
            if args.max_lengths
            else {}
        ),
        "load_start": load_start,
        "load_end": round(os.getloadavg()[0], 2),
        "command": shlex.join(sys.orig_argv),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report[key], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
