"""Captioner speed on Myntra (issue 25): training time, beam-3 captions per second, and their quality.

    python benchmarks/caption_speed.py [--epochs N] [--peer-rows 200] [--out benchmarks/results]

The split is ``caption_myntra.py``'s (a seeded grouped 1,000-row test set; the 7,448 other products with an
image train). Region maps come from the shared embedding cache (warm: this measures the decoder, not the
image encoder). Measured, in one process:

- ``caption_train_s``: ``CaptionModel.fit`` on the training rows (wall and CPU seconds);
- ``caption_beam3_per_s``: beam-3 titles per second over the test rows (incremental decoding, every test
  image in batched steps), with BLEU and its 95% bootstrap interval over the test rows;
- the peer: the same beam-3 search rescoring the whole prefix at every step (``PrefixDecoder``, the former
  way) on the first ``--peer-rows`` test rows: captions per second, the ratio, and whether its titles are
  the same;
- quality check: the BLEU of the same architecture in ``results/caption_myntra.json`` (the committed
  benchmark) against this run's interval.

Writes ``caption_speed.{json,md}``. ``--limit`` trains and tests on fewer rows (a smoke run: numbers mean nothing).
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from caption_myntra import grouped_test_rows  # noqa: E402

from skulens.catalog import load_catalog  # noqa: E402
from skulens.catalog.splits import duplicate_groups  # noqa: E402
from skulens.heads.caption_search import PrefixDecoder, beam_search  # noqa: E402
from skulens.tasks.caption import CaptionModel  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn):
    """(result, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def prefix_search(model: CaptionModel, maps: np.ndarray, rows: np.ndarray, beam: int, chunk: int = 128) -> list[str]:
    """The former search: every step rescores the whole prefix (same settings as ``model``'s own search)."""
    titles = []
    h = model.hyper
    with torch.inference_mode():
        for start in range(0, len(rows), chunk):
            memory = model.model_.memory(torch.from_numpy(model._reduce(maps, rows[start : start + chunk])))
            found = beam_search(PrefixDecoder(model.model_), memory, beam, h["max_len"], h["alpha"], h["no_repeat"])
            titles.extend(model._caption(candidates).title for candidates in found)
    return titles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architecture", default="transformer", choices=["transformer", "lstm"])
    parser.add_argument("--epochs", type=int, default=None, help="most epochs (default: the captioner's default)")
    parser.add_argument("--beam", type=int, default=3)
    parser.add_argument("--peer-rows", type=int, default=200, help="test rows the prefix-rescoring peer decodes")
    parser.add_argument("--limit", type=int, default=0, help="use only this many catalog rows (smoke runs)")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    catalog = load_catalog("myntra")
    if args.limit:
        catalog = catalog.subset(np.arange(args.limit))
    maps, ok = CaptionModel(progress=False).catalog_maps(catalog)
    maps = np.asarray(maps)
    groups = duplicate_groups(catalog)
    test = grouped_test_rows(groups, min(1000, len(catalog) // 8), args.seed)
    train = np.setdiff1d(np.arange(len(catalog)), test)
    settings = {"architecture": args.architecture, "seed": args.seed, "beam": args.beam, "progress": False}
    if args.epochs:
        settings["epochs"] = args.epochs
    model = CaptionModel(**settings)
    _, train_s, train_cpu = timed(lambda: model.fit(catalog.subset(train), maps[train], ok[train]))
    test_catalog = catalog.subset(test)
    evaluation, _, beam_cpu = timed(
        lambda: model.evaluate(test_catalog, maps[test], ok[test], beam=args.beam, resamples=args.resamples)
    )
    rows, _ = model.usable_rows(test_catalog, np.asarray(ok[test], dtype=bool))
    peer_rows = rows[: args.peer_rows]
    test_maps = maps[test]
    peer_titles, peer_s, _ = timed(lambda: prefix_search(model, test_maps, peer_rows, args.beam))
    ours = [e["generated"] for e in evaluation["examples"][: len(peer_rows)]]
    decoder = evaluation["decoder"]
    reference = None
    committed = RESULTS / "caption_myntra.json"
    if committed.is_file():
        variant = json.loads(committed.read_text())["variants"].get(args.architecture)
        if variant:
            low, high = decoder["intervals"]["bleu"]
            reference = {
                "bleu": variant["test"]["bleu"],
                "bleu_interval": variant["test"]["intervals"]["bleu"],
                "train_seconds": variant["train_seconds"],
                "epochs_run": len(variant["fit_report"]["history"]),
                "captions_per_s": variant["captions_per_s"],
                "bleu_within_this_interval": bool(low <= variant["test"]["bleu"] <= high),
            }
    report = {
        "command": shlex.join(["python", "benchmarks/caption_speed.py", *sys.argv[1:]]),
        "dataset": "myntra",
        "n_train": int(len(train)),
        "n_test": int(evaluation["n"]),
        "caption_train_s": round(train_s, 1),
        "caption_train_cpu_s": round(train_cpu, 1),
        "epochs_run": len(model.fit_report_["history"]),
        "best_epoch": model.fit_report_["best_epoch"],
        "history": model.fit_report_["history"],
        "caption_beam3_per_s": round(evaluation["captions_per_s"], 2),
        "beam_cpu_s": round(beam_cpu, 1),
        "peer": {
            "name": "beam search rescoring the whole prefix at every step (PrefixDecoder)",
            "rows": int(len(peer_rows)),
            "captions_per_s": round(len(peer_rows) / peer_s, 2),
            "speedup": round(evaluation["captions_per_s"] / (len(peer_rows) / peer_s), 2),
            "same_titles": peer_titles == ours,
        },
        "quality": {k: decoder[k] for k in ("bleu", "cider", "intervals")},
        "reference": reference,
        "config": model.hyper,
        "machine": {"cpus": os.cpu_count(), "threads": torch.get_num_threads(), "load_start": load_start},
    }
    report["machine"]["load_end"] = os.getloadavg()[0]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "caption_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    ref = reference or {}
    lines = [
        "# Captioner speed on Myntra (issue 25)",
        "",
        f"`{report['command']}`; {report['n_train']:,} training pairs (warm region maps), {report['n_test']:,} test rows; "
        f"load {load_start:.1f} at start, {report['machine']['load_end']:.1f} at end.",
        "",
        "| measurement | value |",
        "|---|---:|",
        f"| caption_train_s (wall; CPU) | {report['caption_train_s']} ({report['caption_train_cpu_s']} CPU s), "
        f"{report['epochs_run']} epochs, best {report['best_epoch']} |",
        f"| caption_beam{args.beam}_per_s | {report['caption_beam3_per_s']} |",
        f"| peer: prefix rescoring, captions/s ({len(peer_rows)} rows) | {report['peer']['captions_per_s']} |",
        f"| speed-up over the peer | {report['peer']['speedup']}x (same titles: {report['peer']['same_titles']}) |",
        f"| test BLEU (95% interval) | {decoder['bleu']:.1f} ({decoder['intervals']['bleu'][0]:.1f}-{decoder['intervals']['bleu'][1]:.1f}) |",
        f"| committed caption_myntra.json BLEU ({args.architecture}) | {ref.get('bleu', float('nan')):.1f} "
        f"(inside this interval: {ref.get('bleu_within_this_interval', '-')}) |",
    ]
    (args.out / "caption_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
