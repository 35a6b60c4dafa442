"""Hard negatives from the same family (issue #21): does filling part of each contrastive batch with whole
product families (colour variants of one style) help the image-text space on new products?

    python benchmarks/generalize_hard_negatives.py --variants random,family:0.5,family:1.0 --fit-seeds 0,1,2

Same protocol, features and variant as ``generalize.py`` (new-products split, 1,000-product gallery from
``myntra/`` ids >= 18000; the 'contrastive: lite0+classical | minilm+tfidf' space, epochs 20, patience 3).
Variants: ``random`` is today's default (random batches); ``random+mask`` adds the identical-title mask (rows
with the same normalised title are not each other's negatives); ``family:S`` sets
``AlignConfig.hard_negatives = S`` with families = ``family_keys`` (title without colour words) and the
title mask. Each variant trains once per fit seed (the split stays seed
``--seed``); the variant is chosen on the family-grouped validation part of the training pool (mean R@1 + R@10
over fit seeds); gallery numbers are only reported, with bootstrap 95% intervals over the 1,000 gallery
queries. Writes results/generalize_hard_negatives.{json,md}.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generalize import ARTICLE, CLASSICAL, LITE0, MINILM, RESULTS, Blocks, log, pair_recall, retrieval_report  # noqa: E402

from skulens.catalog import load_catalog  # noqa: E402
from skulens.catalog.splits import family_keys, group_split, new_products_split, normalise_title  # noqa: E402
from skulens.encoders.text import TfidfEncoder  # noqa: E402
from skulens.heads.align import AlignConfig, AlignmentHeads  # noqa: E402
from skulens.tasks.features import FeatureExtractor  # noqa: E402
from skulens.tasks.prior import VisionLanguagePrior  # noqa: E402

IMAGE_BLOCKS = (LITE0, CLASSICAL)


def titles_of(blocks: Blocks) -> np.ndarray:
    """Normalised titles (a row without one gets its id, so it never matches another row)."""
    return np.array(
        [normalise_title(t) or f"id:{i}" for t, i in zip(blocks.catalog.texts(("title",)), blocks.catalog.ids)], dtype=object
    )


def to_markdown(report: dict) -> str:
    lines = [
        "# Hard negatives from the same family (issue #21)",
        "",
        f"Command: `{report['command']}`  ",
        f"Protocol: as generalize.py ({report['protocol']['gallery']}); space {report['space']}, epochs "
        f"{report['config']['epochs']}, patience {report['config']['patience']}, seed {report['config']['seed']}; "
        f"{report['fit_rows']} fit rows ({report['fit_rows_in_families']} in families of 2+), {report['val_rows']} validation "
        "rows (family-grouped part of the pool). [95% bootstrap interval over gallery queries].  ",
        f"Chosen on validation (mean R@1 + R@10 over fit seeds): **{report['chosen_variant']}**.  ",
        f"Machine: {report['machine']['cpus']} CPUs, load {report['machine']['loadavg_start'][0]:.1f} at start; "
        f"runtime {report['runtime_s']:.0f} s.",
        "",
        "| variant | fit seed | best epoch | fit s | val R@1 | val R@10 | gallery t2i R@1 | gallery t2i R@5 | "
        "gallery t2i R@10 | gallery i2t R@1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in report["variants"]:
        g = v["gallery"]
        cells = [
            f"{g[k]['estimate']:.3f} [{g[k]['ci95'][0]:.3f}, {g[k]['ci95'][1]:.3f}]"
            for k in ("t2i_r1", "t2i_r5", "t2i_r10", "i2t_r1")
        ]
        lines.append(
            f"| {v['variant']} | {v['fit_seed']} | {v['best_epoch']} | {v['fit_s']:.0f} | "
            f"{v['val'][1]:.3f} | {v['val'][10]:.3f} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "| variant (mean over fit seeds) | val R@1 | val R@10 | gallery t2i R@1 | gallery t2i R@10 |",
        "|---|---|---|---|---|",
    ]
    for name, m in report["means"].items():
        lines.append(
            f"| {name} | {m['val_r1']:.3f} | {m['val_r10']:.3f} | {m['gallery_t2i_r1']:.3f} | {m['gallery_t2i_r10']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default="random,family:0.5", help="comma-separated: random, random+mask, family:S")
    parser.add_argument("--fit-seeds", default="0", help="comma-separated AlignConfig seeds (the split keeps --seed)")
    parser.add_argument("--gallery", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--out", default=str(RESULTS / "generalize_hard_negatives"))
    args = parser.parse_args()
    started, load_start = time.perf_counter(), os.getloadavg()
    variants = [v for v in args.variants.split(",") if v]
    fit_seeds = [int(s) for s in args.fit_seeds.split(",") if s]
    base = AlignConfig(epochs=args.epochs, patience=3, seed=args.seed)

    # the blocks exactly as generalize.py builds them
    myntra, more = load_catalog("myntra"), load_catalog("myntra_more")
    split = new_products_split(myntra, [more], gallery_size=args.gallery, seed=args.seed)
    extractor = FeatureExtractor([*IMAGE_BLOCKS, MINILM], ("title",), progress=True)
    prior = VisionLanguagePrior()
    fit_cat, val_cat = group_split(split.train, 0.1, groups=family_keys(split.train), seed=args.seed)
    tfidf = TfidfEncoder(max_features=4096, min_df=2).fit(fit_cat.texts(("title",)))
    fit, val_all = (Blocks(c, extractor, list(IMAGE_BLOCKS), prior, tfidf) for c in (fit_cat, val_cat))
    fit, val_all = fit.subset(np.flatnonzero(fit.ok)), val_all.subset(np.flatnonzero(val_all.ok))
    rng = np.random.default_rng(args.seed)
    val = val_all.subset(np.sort(rng.choice(len(val_all.ok), min(1000, len(val_all.ok)), replace=False)))
    gallery = Blocks(split.gallery, extractor, list(IMAGE_BLOCKS), prior, tfidf)
    titles = titles_of(fit)
    _, family_of, family_size = np.unique(family_keys(fit.catalog), return_inverse=True, return_counts=True)
    in_families = int((family_size[family_of] >= 2).sum())
    log(f"fit {len(fit.ok)} rows ({in_families} in families of 2+), validation {len(val.ok)}, gallery {len(gallery.ok)}")

    x_fit, t_fit = fit.image_input(IMAGE_BLOCKS), fit.text_input(True)
    x_val, t_val = val.image_input(IMAGE_BLOCKS), val.text_input(True)
    labels = gallery.catalog.labels(ARTICLE).astype(str).to_numpy()
    out = Path(args.out)
    report = {
        "space": "contrastive: lite0+classical | minilm+tfidf",
        "config": base.to_dict(),
        "protocol": split.protocol,
        "fit_rows": len(fit.ok),
        "fit_rows_in_families": in_families,
        "val_rows": len(val.ok),
        "variants": [],
        "command": shlex.join(["python", Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
    }
    for variant in variants:
        key, _, share_text = variant.partition(":")
        share = float(share_text or 0)
        families = family_keys(fit.catalog) if key == "family" else None
        mask = key != "random" or variant == "random+mask"
        for fit_seed in fit_seeds:
            t = time.perf_counter()
            heads = AlignmentHeads(x_fit.shape[1], t_fit.shape[1], replace(base, hard_negatives=share, seed=fit_seed))
            heads.fit(x_fit, t_fit, x_val, t_val, families=families, titles=titles if mask else None)
            sim_val = heads.encode_text(t_val) @ heads.encode_image(x_val).T
            sim_test = heads.encode_text(gallery.text_input(True)) @ heads.encode_image(gallery.image_input(IMAGE_BLOCKS)).T
            entry = {
                "variant": variant,
                "fit_seed": fit_seed,
                "share": share,
                "title_mask": mask,
                "best_epoch": heads.best_epoch,
                "fit_s": round(time.perf_counter() - t, 1),
                "val": pair_recall(sim_val),
                "gallery": retrieval_report(sim_test, labels, args.resamples),
                "history": heads.history,
            }
            report["variants"].append(entry)
            log(f"{variant} seed {fit_seed}: val {entry['val']}, gallery t2i R@1 {entry['gallery']['t2i_r1']['estimate']:.3f}")
            report["means"] = means(report["variants"])
            report.update(
                chosen_variant=max(report["means"], key=lambda n: report["means"][n]["val_r1"] + report["means"][n]["val_r10"]),
                machine={"cpus": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": os.getloadavg()},
                runtime_s=round(time.perf_counter() - started, 1),
            )
            out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")  # after every fit
            out.with_suffix(".md").write_text(to_markdown(report))


def means(entries: list[dict]) -> dict:
    """Per variant: validation and gallery recall averaged over its fit seeds."""
    out = {}
    for name in dict.fromkeys(e["variant"] for e in entries):
        rows = [e for e in entries if e["variant"] == name]
        out[name] = {
            "fit_seeds": len(rows),
            "val_r1": float(np.mean([e["val"][1] for e in rows])),
            "val_r10": float(np.mean([e["val"][10] for e in rows])),
            "gallery_t2i_r1": float(np.mean([e["gallery"]["t2i_r1"]["estimate"] for e in rows])),
            "gallery_t2i_r10": float(np.mean([e["gallery"]["t2i_r10"]["estimate"] for e in rows])),
        }
    return out


if __name__ == "__main__":
    main()
