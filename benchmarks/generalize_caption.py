"""Captions for new products (issue #21, item 6): a script, not a test.

    python benchmarks/generalize_caption.py --max-train 8000 --epochs 30

Split: the new-products protocol (:func:`skulens.catalog.splits.new_products_split`): the test set is the
seeded 1,000-product gallery of ``myntra/`` ids >= 18000; training is ``myntra/`` ids < 18000 plus all of
``myntra_more/``, minus every product of a gallery product's family (title without colour words).
``--max-train`` draws a seeded subsample of that pool to keep CPU time in reason. Early stopping uses a
family-grouped validation part of the training rows (never the gallery). Reported: ``caption_bleu_new``
(the default captioner, beam search) and ``caption_retrieval_bleu_new`` (the title of the nearest training
photo on the same gallery), corpus BLEU with 95% bootstrap intervals over gallery products.
Writes ``results/generalize_caption.json`` and ``.md``; ``benchmarks/generalize.py`` reads the keys from it.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from skulens.catalog import load_catalog  # noqa: E402
from skulens.catalog.splits import new_products_split  # noqa: E402
from skulens.metrics.captioning import caption_metrics  # noqa: E402
from skulens.tasks.caption import CaptionModel, _pooled  # noqa: E402

RESULTS = Path(__file__).parent / "results"
METRICS = ("bleu", "cider", "rouge_l", "word_overlap", "jaccard", "length_ratio")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30, help="most epochs (early stopping on validation rows)")
    parser.add_argument("--beam", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--max-train", type=int, default=8000, help="seeded subsample of the training pool (0: all of it)")
    parser.add_argument("--out", type=Path, default=RESULTS / "generalize_caption.json")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    split = new_products_split(load_catalog("myntra"), [load_catalog("myntra_more")], seed=args.seed)
    pool = split.train
    if args.max_train and len(pool) > args.max_train:
        pool = pool.subset(np.sort(np.random.default_rng(args.seed).choice(len(pool), args.max_train, replace=False)))
    torch.manual_seed(args.seed)
    model = CaptionModel(epochs=args.epochs, beam=args.beam, seed=args.seed)
    started = time.perf_counter()
    model.fit(pool)
    train_seconds = time.perf_counter() - started
    maps, ok = model.catalog_maps(split.gallery)
    result = model.evaluate(split.gallery, maps, ok, beam=args.beam, resamples=args.resamples)
    references = [e["reference"] for e in result["examples"]]
    rows, _ = model.usable_rows(split.gallery, ok)
    retrieval = caption_metrics(model.retrieval_titles(_pooled(maps, rows)), references, args.resamples)
    decoder = result["decoder"]
    report = {
        "caption_bleu_new": round(decoder["bleu"], 2),
        "caption_bleu_new_ci95": [round(v, 2) for v in decoder["intervals"]["bleu"]],
        "caption_retrieval_bleu_new": round(retrieval["bleu"], 2),
        "caption_retrieval_bleu_new_ci95": [round(v, 2) for v in retrieval["intervals"]["bleu"]],
        "decoder": {k: decoder[k] for k in METRICS},
        "retrieval": {k: retrieval[k] for k in METRICS},
        "template": {k: result["template"][k] for k in METRICS} if "template" in result else None,
        "attribute_accuracy": result.get("attribute_accuracy", {}),
        "n_test": result["n"],
        "n_train": len(pool),
        "protocol": {**split.protocol, "subsampled_to": len(pool) if len(pool) < len(split.train) else None},
        "config": model.hyper,
        "fit_report": model.fit_report_,
        "train_seconds": round(train_seconds, 1),
        "captions_per_s": round(result["captions_per_s"], 1),
        "examples": result["examples"][:20],
        "command": shlex.join(["python", Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "threads": torch.get_num_threads(), "load_start": round(load_start, 2)},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(json.dumps({k: report[k] for k in ("caption_bleu_new", "caption_retrieval_bleu_new", "n_test", "n_train")}))


def markdown(r: dict) -> str:
    def row(name: str, m: dict) -> str:
        return f"| {name} | {m['bleu']:.1f} | {m['cider']:.2f} | {m['rouge_l']:.1f} | {m['word_overlap']:.1f} | {m['length_ratio']:.2f} |"

    lo, hi = r["caption_bleu_new_ci95"]
    rlo, rhi = r["caption_retrieval_bleu_new_ci95"]
    lines = [
        "# Captions for new products (issue #21)",
        "",
        f"Command: `{r['command']}` ({r['date']}; load {r['machine']['load_start']} at start; training {r['train_seconds']:.0f} s)  ",
        f"Split: {r['protocol'].get('gallery', r['protocol'])}; {r['n_train']} training rows"
        + (" (seeded subsample of the pool)" if r["protocol"].get("subsampled_to") else "")
        + f"; {r['n_test']} gallery products captioned.",
        "",
        f"**caption_bleu_new = {r['caption_bleu_new']:.1f}** [{lo:.1f}, {hi:.1f}]; nearest training photo's title "
        f"**caption_retrieval_bleu_new = {r['caption_retrieval_bleu_new']:.1f}** [{rlo:.1f}, {rhi:.1f}] "
        "(targets: BLEU >= 20 and 5 points above the nearest-photo title).",
        "",
        "| captions | BLEU | CIDEr-D | ROUGE-L | word overlap | length ratio |",
        "|---|---|---|---|---|---|",
        row(f"captioner (beam {r['config']['beam']})", r["decoder"]),
        row("nearest training photo's title", r["retrieval"]),
    ]
    if r["template"]:
        lines.append(row("template (predicted attributes)", r["template"]))
    lines += ["", "| id | reference | generated |", "|---|---|---|"]
    lines += [f"| {e['id']} | {e['reference']} | {e['generated']} |" for e in r["examples"][:10]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
