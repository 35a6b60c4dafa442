"""Alignment training speed (issue 25): ``AlignmentModel.fit`` on Myntra and on Myntra + myntra_more, warm cache.

    python benchmarks/align_speed.py [--image-encoders ...] [--text-encoders ...] [--no-peer] [--no-43k]

The gallery is ``align_myntra.py``'s (1,000 Myntra products with distinct titles, seed 0); every product
sharing a normalised title with it is left out of training. Embeddings come from the shared cache (warm:
this measures the heads' training and the cache reads, not the encoders). Measured in one process:

- ``align_train_s``: fit on the Myntra training pairs, wall and CPU seconds; text->image R@10 on the gallery
  with a 95% bootstrap interval over gallery queries;
- the peer (``--no-peer`` skips it): the same fit with every input column dense (the former training path,
  no sparse first layer), its seconds, the ratio and its R@10;
- ``align_train_43k_s``: the same fit on Myntra's training pairs plus every ``myntra_more`` product whose title
  is not in the gallery (``--no-43k`` skips it), with its gallery R@10.

Writes ``align_speed.{json,md}``. ``--limit`` uses fewer rows of each catalog (a smoke run: numbers mean nothing).
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
from unittest import mock  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from align_myntra import gallery_split  # noqa: E402

from skulens.catalog import Catalog, load_catalog  # noqa: E402
from skulens.catalog.splits import text_groups  # noqa: E402
from skulens.heads import align as align_heads  # noqa: E402
from skulens.metrics.retrieval import pair_ranks  # noqa: E402
from skulens.tasks.align import AlignmentModel  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def combined_catalog(first: Catalog, second: Catalog) -> Catalog:
    """Both catalogs' rows in one (image paths made absolute; both image folders allowed)."""
    frames = []
    for catalog in (first, second):
        frame = catalog.frame.copy()
        frame["image"] = [None if p is None else str(catalog.root / p) for p in frame["image"]]
        frames.append(frame)
    return Catalog(pd.concat(frames, ignore_index=True), name="myntra+myntra_more", image_roots=(first.root, second.root))


def gallery_recall(model: AlignmentModel, gallery: Catalog, resamples: int = 1000, seed: int = 0) -> dict:
    """Text->image R@10 on the gallery with a 95% percentile bootstrap interval over queries."""
    image, image_ok, text, text_ok = model.encode_catalog(gallery)
    hits = (pair_ranks(text, image) < 10).astype(float)
    rng = np.random.default_rng(seed)
    means = [hits[rng.integers(0, len(hits), len(hits))].mean() for _ in range(resamples)]
    return {"r10": float(hits.mean()), "r10_ci95": [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]}


def fit_timed(catalog: Catalog, rows: np.ndarray, args, dense: bool = False) -> tuple[AlignmentModel, dict]:
    model = AlignmentModel(args.image_encoders, args.text_encoders)
    wall, cpu = time.perf_counter(), time.process_time()
    if dense:  # the peer: every text column through the dense first layer, as before
        with mock.patch.object(align_heads.SparseColumns, "of", staticmethod(lambda x: None)):
            model.fit(catalog.subset(rows))
    else:
        model.fit(catalog.subset(rows))
    seconds = {"seconds": round(time.perf_counter() - wall, 1), "cpu_seconds": round(time.process_time() - cpu, 1)}
    seconds["epochs"] = len(model.heads_.history) - 1
    return model, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-encoders", nargs="+", default=list(AlignmentModel().image_encoders))
    parser.add_argument("--text-encoders", nargs="+", default=list(AlignmentModel().text_encoders))
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--no-43k", action="store_true")
    parser.add_argument("--gallery", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    myntra = load_catalog("myntra")
    if args.limit:
        myntra = myntra.subset(np.arange(args.limit))
    train, gallery_rows = gallery_split(myntra, min(args.gallery, len(myntra) // 8), args.seed)
    gallery = myntra.subset(gallery_rows)
    report: dict = {
        "command": shlex.join(["python", "benchmarks/align_speed.py", *sys.argv[1:]]),
        "encoders": {"image": args.image_encoders, "text": args.text_encoders},
        "n_gallery": int(len(gallery_rows)),
        "n_train": int(len(train)),
    }
    fit_timed(myntra, train[:200], args)  # untimed: loads the encoders' files and the libraries first
    model, timing = fit_timed(myntra, train, args)
    report["align_train_s"] = timing["seconds"]
    report["myntra"] = {**timing, **gallery_recall(model, gallery)}
    if not args.no_peer:
        peer, timing = fit_timed(myntra, train, args, dense=True)
        report["peer"] = {
            "name": "the same fit with every input column dense (former path)",
            **timing,
            **gallery_recall(peer, gallery),
        }
        report["peer"]["speedup"] = round(timing["seconds"] / max(report["align_train_s"], 1e-9), 2)
        low, high = report["myntra"]["r10_ci95"]
        report["peer"]["r10_within_interval"] = bool(low <= report["peer"]["r10"] <= high)
    if not args.no_43k:
        more = load_catalog("myntra_more")
        if args.limit:
            more = more.subset(np.arange(args.limit))
        both = combined_catalog(myntra, more)
        groups = text_groups(both, ("title",))
        rows = np.flatnonzero(~np.isin(groups, groups[gallery_rows]))  # myntra's first rows keep their positions
        model, timing = fit_timed(both, rows, args)
        report["align_train_43k_s"] = timing["seconds"]
        report["myntra_43k"] = {**timing, "n_train": int(len(rows)), **gallery_recall(model, gallery)}
    report["machine"] = {"cpus": os.cpu_count(), "load_start": load_start, "load_end": os.getloadavg()[0]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "align_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Alignment training speed (issue 25)",
        "",
        f"`{report['command']}`; encoders {' + '.join(args.image_encoders)} | {' + '.join(args.text_encoders)}; "
        f"gallery {report['n_gallery']:,} Myntra products; load {load_start:.1f} at start, {report['machine']['load_end']:.1f} at end.",
        "",
        "| run | training pairs | seconds (CPU) | epochs | gallery R@10 (95% interval) |",
        "|---|---:|---:|---:|---|",
    ]
    for name, key, pairs in (
        ("align_train_s (Myntra)", "myntra", report["n_train"]),
        ("peer: dense inputs", "peer", report["n_train"]),
        ("align_train_43k_s", "myntra_43k", report.get("myntra_43k", {}).get("n_train")),
    ):
        if key in report:
            r = report[key]
            lines.append(
                f"| {name} | {pairs:,} | {r['seconds']} ({r['cpu_seconds']}) | {r['epochs']} | "
                f"{r['r10']:.3f} ({r['r10_ci95'][0]:.3f}-{r['r10_ci95'][1]:.3f}) |"
            )
    if "peer" in report:
        lines += [
            "",
            f"Speed-up over the peer: {report['peer']['speedup']}x; peer R@10 inside the interval: {report['peer']['r10_within_interval']}.",
        ]
    (args.out / "align_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
