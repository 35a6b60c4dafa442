"""Encoder study on Flipkart: probe macro-F1 and clustering ARI of every text and image representation (a script).

    python benchmarks/encoder_study_flipkart.py   # writes benchmarks/results/encoder_study_flipkart.json and .md

See ``skulens.evaluation.encoder_study`` for the protocol (same folds and probe for all; fitted
representations fitted inside each training fold). mpnet is not included: no PyPI package ships its
weights in a form this project can depend on.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from skulens.catalog import load_catalog  # noqa: E402
from skulens.evaluation.encoder_study import run_encoder_study  # noqa: E402


def to_markdown(report: dict) -> str:
    lines = [
        f"# Encoder study — {report['dataset']}, level {report['label']} ({report['classes']} classes, {report['rows']} products)",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Linear probe: logistic regression (C = 1, standardised dense features), {report['folds']}-fold stratified CV, "
        "macro-F1 mean ± std over folds; representations that learn from data are fitted on each training fold only. "
        "Clustering: KMeans (k = number of classes) on 50 principal directions of the L2-normalised features, "
        "ARI/NMI against the true categories, silhouette (cosine) of the clusters.",
        "",
        "| representation | modality | probe macro-F1 | ARI | NMI | silhouette | what it is |",
        "|---|---|---|---|---|---|---|",
    ]
    ordered = sorted(report["representations"].items(), key=lambda item: (item[1]["modality"], -item[1]["probe_macro_f1"]))
    for name, r in ordered:
        lines.append(
            f"| {name} | {r['modality']} | {r['probe_macro_f1']:.3f} ± {r['probe_macro_f1_std']:.3f} | {r['ari']:.3f} | "
            f"{r['nmi']:.3f} | {r['silhouette']:.3f} | {r['description']} |"
        )
    lines += ["", f"Total time {report['seconds']:.0f} s (pretrained embeddings from the cache where present)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="flipkart")
    parser.add_argument("--label", default="0")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    started = time.perf_counter()
    catalog = load_catalog(args.dataset)
    label = int(args.label) if args.label.isdigit() else args.label
    report = {
        "dataset": args.dataset,
        **run_encoder_study(catalog, label, args.folds, args.seed, log=lambda m: print(m, flush=True)),
    }
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["command"] = "python " + shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"encoder_study_{args.dataset}"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(to_markdown(report))
    print(f"wrote {args.out / stem}.json and .md")


if __name__ == "__main__":
    main()
