"""Captioning benchmark: product titles written from images (a script, not a test).

    python benchmarks/caption_myntra.py --variants transformer          # Myntra, grouped 1,000-row test set
    python benchmarks/caption_myntra.py --variants lstm                 # adds a variant to the same file
    python benchmarks/caption_myntra.py --dataset flipkart --folds 5    # Flipkart, 5-fold grouped CV

Myntra: the 8,448 products with images. Rows sharing a normalised title or identical image bytes form one
group (``duplicate_groups``); seeded whole groups are drawn into the test set until it holds 1,000 rows,
so no test title occurs in training. Each variant trains on the rest; its early stopping uses a grouped
validation split of those training rows. The reported model (top-level keys) is the variant with the best
*validation* CIDEr-D, never chosen on the test rows; every variant's test numbers are listed under
``variants``. Baselines: title of the nearest training image (pooled Lite0 features, cosine) and a template
of predicted gender + colour + articleType (linear probes). Intervals: 95% bootstrap over test rows.
Region maps come from a memory-mapped cache (``--cache-dir``; the first run encodes the images, about 4
minutes on one core). Each run merges its variants into ``results/caption_<dataset>.json`` and rewrites
the markdown table.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from skulens.catalog import load_catalog  # noqa: E402
from skulens.catalog.splits import duplicate_groups, grouped_folds, grouping_summary  # noqa: E402
from skulens.tasks.caption import CaptionModel  # noqa: E402

RESULTS = Path(__file__).parent / "results"
#: Named configurations (CaptionModel keyword arguments) a run can train.
VARIANTS: dict[str, dict] = {
    "transformer": {},
    "transformer-3layer": {"layers": 3},
    "transformer-no-smoothing": {"label_smoothing": 0.0},
    "transformer-dropout0.3": {"dropout": 0.3},
    "lstm": {"architecture": "lstm", "lr": 1e-3},
}
METRIC_KEYS = ("bleu", "cider", "rouge_l", "word_overlap", "jaccard", "length_ratio")


def grouped_test_rows(groups: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Whole groups, in seeded order, until ``size`` rows are in the test set."""
    rng = np.random.default_rng(seed)
    chosen, count = [], 0
    members = {g: np.flatnonzero(groups == g) for g in np.unique(groups)}
    for g in rng.permutation(list(members)):
        if count >= size:
            break
        chosen.append(members[g])
        count += len(members[g])
    return np.sort(np.concatenate(chosen))


def run_variant(name: str, catalog, maps, ok, train: np.ndarray, test: np.ndarray, args) -> dict:
    torch.manual_seed(args.seed)
    model = CaptionModel(epochs=args.epochs, seed=args.seed, beam=args.beam, progress=not args.quiet, **VARIANTS[name])
    started = time.perf_counter()
    model.fit(catalog.subset(train), maps[train], ok[train])
    train_seconds = time.perf_counter() - started
    test_catalog = catalog.subset(test)
    beam = model.evaluate(test_catalog, maps[test], ok[test], beam=args.beam, resamples=args.resamples)
    greedy = model.evaluate(test_catalog, maps[test], ok[test], beam=1, resamples=0)
    return {
        "config": {**model.hyper},
        "validation_cider": max(e["val_cider"] for e in model.fit_report_["history"]),
        "fit_report": model.fit_report_,
        "train_seconds": train_seconds,
        "test": {k: beam["decoder"][k] for k in (*METRIC_KEYS, "intervals")},
        "test_greedy": {k: greedy["decoder"][k] for k in METRIC_KEYS},
        "captions_per_s": {f"beam{args.beam}": beam["captions_per_s"], "greedy": greedy["captions_per_s"]},
        "retrieval": beam["retrieval"],
        "template": beam.get("template"),
        "attribute_accuracy": beam.get("attribute_accuracy", {}),
        "n_test": beam["n"],
        "examples": beam["examples"][:20],
        "loadavg_end": os.getloadavg(),
    }


def write_markdown(report: dict, path: Path) -> None:
    lines = [
        f"# Captioning on {report['dataset']}",
        "",
        f"Command: `{report['command']}`  ",
        f"Test rows: {report['n_test']} ({report['split']}). Reported variant (best validation CIDEr-D): "
        f"**{report['chosen']}**. BLEU, ROUGE-L, word overlap and Jaccard in %, CIDEr-D on its 0-10 scale.",
        "",
        "| model | BLEU | CIDEr-D | ROUGE-L | word overlap | Jaccard | length ratio | val CIDEr-D | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in report["variants"].items():
        for label, scores in ((f"{name} (beam {v['config']['beam']})", v["test"]), (f"{name} (greedy)", v["test_greedy"])):
            lines.append(
                f"| {label} | {scores['bleu']:.1f} | {scores['cider']:.2f} | {scores['rouge_l']:.1f} | {scores['word_overlap']:.1f} | "
                f"{scores['jaccard']:.1f} | {scores['length_ratio']:.2f} | {v['validation_cider']:.2f} | {v['train_seconds']:.0f} |"
            )
    chosen = report["variants"][report["chosen"]]
    for label, scores in (("nearest-image title", chosen["retrieval"]), ("attribute template", chosen["template"])):
        if scores:
            lines.append(
                f"| {label} | {scores['bleu']:.1f} | {scores['cider']:.2f} | {scores['rouge_l']:.1f} | {scores['word_overlap']:.1f} | "
                f"{scores['jaccard']:.1f} | {scores['length_ratio']:.2f} | | |"
            )
    ci = chosen["test"]["intervals"]
    lines += [
        "",
        f"95% bootstrap intervals of the reported variant: BLEU {ci['bleu'][0]:.1f}-{ci['bleu'][1]:.1f}, "
        f"CIDEr-D {ci['cider'][0]:.2f}-{ci['cider'][1]:.2f}.  ",
        "Attribute accuracy (linear probes on pooled Lite0 features): "
        + ", ".join(f"{k} {v:.3f}" for k, v in report["attribute_accuracy"].items()),
        f"  \nThroughput: {', '.join(f'{k} {v:.1f} captions/s' for k, v in report['captions_per_s'].items())}; "
        f"load average {report['machine']['loadavg_start'][0]:.1f} at start.",
        "",
        "## Examples (first test rows)",
        "",
        "| id | reference | generated |",
        "|---|---|---|",
        *(f"| {e['id']} | {e['reference']} | {e['generated']} |" for e in chosen["examples"][:10]),
    ]
    path.write_text("\n".join(lines) + "\n")


def cross_validate(args, catalog, maps, ok, groups: np.ndarray, load_start) -> None:
    """Grouped, category-stratified k-fold CV of the first variant; per-fold metrics and their mean."""
    name = args.variants.split(",")[0]
    folds = []
    y = catalog.labels(0).fillna("<none>").astype(str).to_numpy()
    for train, test in grouped_folds(y, groups, args.folds, args.seed):
        result = run_variant(name, catalog, maps, ok, np.sort(train), np.sort(test), args)
        folds.append(
            {
                k: result[k]
                for k in ("test", "test_greedy", "retrieval", "train_seconds", "captions_per_s", "n_test", "fit_report")
            }
        )
        folds[-1]["examples"] = result["examples"][:5]

    def mean(part: str, key: str) -> float:
        return float(np.mean([f[part][key] for f in folds]))

    report = {
        "dataset": args.dataset,
        "variant": name,
        "split": f"{args.folds}-fold grouped CV stratified on category level 0 (seed {args.seed}); groups = same normalised title or image bytes",
        "grouping": grouping_summary(groups, ["title", "image bytes"]),
        **{k: mean("test", k) for k in METRIC_KEYS},
        "bleu_greedy": mean("test_greedy", "bleu"),
        "retrieval_bleu": mean("retrieval", "bleu"),
        "template_bleu": None,
        "train_seconds": float(np.mean([f["train_seconds"] for f in folds])),
        "n_test": int(sum(f["n_test"] for f in folds)),
        "folds": folds,
        "command": "python " + shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
        },
    }
    out = RESULTS / f"caption_{args.dataset}.json"
    out.write_text(json.dumps(report, indent=2))
    lines = [
        f"# Captioning on {args.dataset} ({report['split']})",
        "",
        f"Command: `{report['command']}`  ",
        f"Mean over folds ({report['n_test']} test rows in all): BLEU {report['bleu']:.1f} (greedy {report['bleu_greedy']:.1f}), "
        f"CIDEr-D {report['cider']:.2f}, ROUGE-L {report['rouge_l']:.1f}, word overlap {report['word_overlap']:.1f}%, "
        f"Jaccard {report['jaccard']:.1f}%, length ratio {report['length_ratio']:.2f}; nearest-image title BLEU "
        f"{report['retrieval_bleu']:.1f}. Load average {load_start[0]:.1f} at start.",
        "",
        "| id | reference | generated |",
        "|---|---|---|",
        *(f"| {e['id']} | {e['reference']} | {e['generated']} |" for e in folds[0]["examples"]),
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(json.dumps({k: report[k] for k in ("bleu", "cider", "retrieval_bleu", "n_test")}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="myntra", choices=["myntra", "flipkart"])
    parser.add_argument("--variants", default="transformer", help=f"comma-separated, from {list(VARIANTS)}")
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--folds", type=int, default=0, help="> 1: grouped cross-validation instead of one test set")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--beam", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--cache-dir", default=None, help="embedding cache (default: the shared one, $SKULENS_CACHE)")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--merge-from", nargs="*", metavar="JSON", help="add the variants of these result files (no training)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    load_start = os.getloadavg()
    catalog = load_catalog(args.dataset)
    maps, ok = CaptionModel(progress=not args.quiet).catalog_maps(catalog, cache_dir=args.cache_dir)
    maps = np.asarray(maps)
    groups = duplicate_groups(catalog)
    if args.folds > 1:
        cross_validate(args, catalog, maps, ok, groups, load_start)
        return
    test = grouped_test_rows(groups, args.test_size, args.seed)
    train = np.setdiff1d(np.arange(len(catalog)), test)
    assert not set(groups[test]) & set(groups[train])
    out = RESULTS / f"caption_{args.dataset}.json"
    trained = {}
    for name in filter(None, args.variants.split(",")):
        trained[name] = run_variant(name, catalog, maps, ok, train, test, args)
        trained[name]["command"] = "python " + shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    # Read the file only now: another run may have added its variants meanwhile.
    report = json.loads(out.read_text()) if out.is_file() else {"variants": {}}
    for path in args.merge_from or []:  # variants another run wrote to a copy of this file
        for name, variant in json.loads(Path(path).read_text())["variants"].items():
            report["variants"].setdefault(name, variant)
    report["variants"].update(trained)
    if not report["variants"]:
        raise SystemExit("no variant trained or merged: give --variants or --merge-from")
    chosen_name = max(report["variants"], key=lambda n: report["variants"][n]["validation_cider"])
    chosen = report["variants"][chosen_name]
    report.update(
        {
            "dataset": args.dataset,
            "split": f"seeded grouped test set (seed {args.seed}); groups = same normalised title or image bytes",
            "grouping": grouping_summary(groups, ["title", "image bytes"]),
            "chosen": chosen_name,
            **{
                k: chosen["test"][k] for k in ("bleu", "cider", "rouge_l", "word_overlap", "jaccard", "length_ratio", "intervals")
            },
            "bleu_greedy": chosen["test_greedy"]["bleu"],
            "retrieval_bleu": chosen["retrieval"]["bleu"],
            "template_bleu": chosen["template"]["bleu"] if chosen["template"] else None,
            "attribute_accuracy": chosen["attribute_accuracy"],
            "train_seconds": chosen["train_seconds"],
            "captions_per_s": chosen["captions_per_s"],
            "n_test": chosen["n_test"],
            "n_train": int(len(train)),
            "command": chosen["command"],
            "machine": {
                "cpus": os.cpu_count(),
                "threads": torch.get_num_threads(),
                "loadavg_start": load_start,
                "loadavg_end": os.getloadavg(),
            },
        }
    )
    RESULTS.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    write_markdown(report, out.with_suffix(".md"))
    print(json.dumps({k: report[k] for k in ("chosen", "bleu", "cider", "retrieval_bleu", "template_bleu", "n_test")}, indent=2))


if __name__ == "__main__":
    main()
