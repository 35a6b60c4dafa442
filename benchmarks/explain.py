"""Are the Grad-CAM maps faithful? A deletion test on Flipkart (issue 12), plus the README's example figures.

A grouped split of Flipkart (level 0; duplicates by title or image bytes stay on one side; the first
fold of a seeded 5-fold ``StratifiedGroupKFold``) trains an image-only EfficientNet-Lite0 linear probe
on the training rows. For every test image the predicted class ``c`` and its Grad-CAM map are computed;
then the image (at the network's input resolution) is masked three ways and ``p_c`` re-predicted:

- the top 20% pixels of the Grad-CAM map;
- random 20% of the cells of the map's own grid (7x7 for Lite0, each cell 32x32 px: blobs of the same
  granularity as the map), averaged over ``--random-masks`` draws;
- random 20% of the pixels, averaged over the same number of draws.

Masked pixels are filled with the image's mean colour (``fill=mean``) and, as a second reading, with a
strongly blurred copy of the image (``fill=blur``). A faithful map gives ``gradcam_deletion_drop`` (mean
drop of ``p_c``) larger than ``random_deletion_drop``. Intervals: 95% bootstrap over test images.

With ``--figures DIR`` it also trains the default fused model (Lite0 + MiniLM + TF-IDF) on the same
training rows and writes the README's figures from one test watch: ``explain_gradcam.png`` (Grad-CAM
overlay) and ``explain_text.png`` / ``explain_text.html`` (its title's word scores); the results record
what the same photo gives titled "Baby diaper pack".

    python benchmarks/explain.py [--random-masks 5] [--limit N] [--figures docs]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from skulens.catalog import load_catalog
from skulens.catalog.splits import duplicate_groups, grouped_folds
from skulens.evaluation.html_page import page
from skulens.explain import explain_product
from skulens.explain.render import overlay, text_html, text_png
from skulens.metrics.intervals import bootstrap_ci
from skulens.progress import progress_bar
from skulens.tasks.categorize import CategoryPredictor
from skulens.tasks.inputs import load_product_image

RESULTS = Path(__file__).resolve().parent / "results"
SHARE = 0.2
BLUR_RADIUS = 12


def masks_for(cam: np.ndarray, grid: tuple[int, int], draws: int, rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    """Boolean (r, r) masks: the top ``SHARE`` of the map's pixels, random grid cells, random pixels."""
    r = cam.shape[0]
    k = int(round(SHARE * cam.size))
    top = np.zeros(cam.size, dtype=bool)
    top[np.argsort(-cam.ravel(), kind="stable")[:k]] = True
    cells = int(round(SHARE * grid[0] * grid[1]))
    random_cells, random_pixels = [], []
    for _ in range(draws):
        chosen = np.zeros(grid[0] * grid[1], dtype=bool)
        chosen[rng.choice(chosen.size, cells, replace=False)] = True
        up = Image.fromarray(chosen.reshape(grid).astype(np.uint8) * 255).resize((r, r), Image.NEAREST)
        random_cells.append(np.asarray(up) > 127)
        pixels = np.zeros(cam.size, dtype=bool)
        pixels[rng.choice(cam.size, k, replace=False)] = True
        random_pixels.append(pixels.reshape(cam.shape))
    return {"gradcam": [top.reshape(cam.shape)], "random_cells": random_cells, "random_pixels": random_pixels}


def masked(pixels: np.ndarray, mask: np.ndarray, fill: np.ndarray) -> np.ndarray:
    out = pixels.copy()
    out[mask] = fill[mask]
    return out


def deletion_test(predictor: CategoryPredictor, images: list[Image.Image], draws: int, seed: int) -> dict:
    """Per image: drop of the predicted class's probability for each mask kind and fill."""
    rng = np.random.default_rng(seed)
    drops: dict[str, list[float]] = {}
    fractions: dict[str, list[float]] = {}
    with progress_bar(len(images), "deletion test (images)") as bar:
        for image in images:
            _delete_one(predictor, image, draws, rng, drops, fractions)
            bar.advance(1)
    return {
        "drops": {k: np.array(v) for k, v in drops.items()},
        "masked_share": {k: float(np.mean(v)) for k, v in fractions.items()},
    }


def _delete_one(
    predictor: CategoryPredictor,
    image: Image.Image,
    draws: int,
    rng: np.random.Generator,
    drops: dict[str, list[float]],
    fractions: dict[str, list[float]],
) -> None:
    """Explain one image, mask it every way, and append the drops of the predicted class's probability."""
    explanation = explain_product(predictor, image=image)
    [image_map] = explanation.image_maps
    pixels = image_map.pixels
    target = explanation.classes.index(explanation.target)
    fills = {
        "mean": np.broadcast_to(pixels.reshape(-1, 3).mean(axis=0).astype(np.uint8), pixels.shape),
        "blur": np.asarray(Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(BLUR_RADIUS))),
    }
    kinds = masks_for(image_map.cam, image_map.grid.shape, draws, rng)
    variants, keys = [pixels], []
    for fill_name, fill in fills.items():
        for kind, masks in kinds.items():
            for mask in masks:
                variants.append(masked(pixels, mask, fill))
                keys.append(f"{kind}_{fill_name}")
    for kind, masks in kinds.items():
        fractions.setdefault(kind, []).append(float(np.mean([m.mean() for m in masks])))
    p = predictor.predict_inputs(variants, [""] * len(variants))[:, target]
    for key in dict.fromkeys(keys):
        values = [p[0] - p[1 + i] for i, k in enumerate(keys) if k == key]
        drops.setdefault(key, []).append(float(np.mean(values)))


def summary(drops: dict[str, np.ndarray]) -> dict:
    def mean_ci(values: np.ndarray) -> dict:
        result = bootstrap_ci(lambda rows: float(values[rows].mean()), len(values))
        return {"mean": round(result["estimate"], 4), "ci95": [round(v, 4) for v in result["ci95"]]}

    out = {}
    for fill in ("mean", "blur"):
        cam, cells, pixels = drops[f"gradcam_{fill}"], drops[f"random_cells_{fill}"], drops[f"random_pixels_{fill}"]
        out[fill] = {
            "gradcam": mean_ci(cam),
            "random_cells": mean_ci(cells),
            "random_pixels": mean_ci(pixels),
            "gradcam_minus_random_cells": mean_ci(cam - cells),
            "gradcam_minus_random_pixels": mean_ci(cam - pixels),
            "images_where_gradcam_drop_exceeds_random_cells": round(float((cam > cells).mean()), 4),
            "images_where_gradcam_drop_exceeds_random_pixels": round(float((cam > pixels).mean()), 4),
        }
    return out


def figures(train, test, folder: Path) -> dict:
    """The README's figures from the default fused model: a test watch's Grad-CAM, its title's words, and
    the same photo under a wrong title."""
    model = CategoryPredictor(label=0).fit(train)
    labels = test.labels(0).to_numpy()
    watches = [i for i in np.flatnonzero(labels == "Watches") if isinstance(test.frame["image"].iloc[i], str)]
    row = test.frame.iloc[watches[0]]
    photo = load_product_image(test.root / row["image"], draft_size=model.image_resolution())
    folder.mkdir(parents=True, exist_ok=True)
    right = explain_product(model, image=photo, title=row["title"])
    overlay(photo, right.image_maps[0].cam).save(folder / "explain_gradcam.png")
    text_png(right.text).save(folder / "explain_text.png")
    (folder / "explain_text.html").write_text(page(f"Words for {right.target}", text_html(right.text)), encoding="utf-8")
    wrong = explain_product(model, image=photo, title="Baby diaper pack")
    conflict = {
        "product": str(row["id"]),
        "image": str(row["image"]),
        "true_title": str(row["title"]),
        "with_true_title": {"predicted": right.predicted, "words": right.text.ranked()[:5], **right.modality.to_dict()},
        "titled_baby_diaper_pack": {"predicted": wrong.predicted, "words": wrong.text.ranked(), **wrong.modality.to_dict()},
    }
    return conflict


def markdown(r: dict) -> str:
    lines = [
        "# Grad-CAM deletion test (Flipkart level 0, image-only EfficientNet-Lite0 probe)",
        "",
        f"{r['n_images']} test images of a grouped split (trained on {r['n_train']} other products). Mean drop of the "
        "predicted class's probability when 20% of the image is masked; 95% bootstrap interval over images.",
        "",
        "| fill | top-20% Grad-CAM pixels | random 20% of grid cells | random 20% of pixels | Grad-CAM minus random cells "
        "| Grad-CAM minus random pixels | images where Grad-CAM drops more (vs cells / vs pixels) |",
        "|---|---|---|---|---|---|---|",
    ]
    for fill, s in r["by_fill"].items():
        cell = {key: f"{v['mean']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]" for key, v in s.items() if isinstance(v, dict)}
        lines.append(
            f"| {fill} | {cell['gradcam']} | {cell['random_cells']} | {cell['random_pixels']} | "
            f"{cell['gradcam_minus_random_cells']} | {cell['gradcam_minus_random_pixels']} | "
            f"{s['images_where_gradcam_drop_exceeds_random_cells']:.1%} / {s['images_where_gradcam_drop_exceeds_random_pixels']:.1%} |"
        )
    lines += [
        "",
        f"`gradcam_deletion_drop` = {r['gradcam_deletion_drop']}, `random_deletion_drop` = {r['random_deletion_drop']} "
        f"(mean fill, random grid cells, {r['random_masks']} draws per image); top-1 accuracy of the probe on these images: "
        f"{r['test_accuracy']:.3f}.",
        "",
        f"Grad-CAM time per image (explain_product on a photo: forward + backward, 1 thread; mean of the first 10): {r['gradcam_seconds_mean']} s.",
        "",
    ]
    if r.get("figures"):
        f = r["figures"]
        lines += [
            f"Figures (`--figures`): Grad-CAM overlay and word scores of test product {f['product']} "
            f'("{f["true_title"]}") with the fused Lite0 + MiniLM + TF-IDF model; titled "Baby diaper pack", '
            f"the same photo gives: {f['titled_baby_diaper_pack']['statement']} (conflict: {f['titled_baby_diaper_pack']['conflict']}).",
            "",
        ]
    lines.append(
        f"Machine: {r['machine']['cpu_count']} CPUs; load average {r['load_average_at_start_1m']} (1 min) at the start, "
        f"{' / '.join(map(str, r['machine']['load_average_1m_5m_15m']))} (1/5/15 min) at the end. "
        f"Command: `{r['command']}` ({r['date']})"
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--random-masks", type=int, default=5, help="random masks per image and kind")
    parser.add_argument("--limit", type=int, default=0, help="explain at most this many test images (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figures", type=Path, default=None, help="also write the README's figures into this folder")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_at_start = round(os.getloadavg()[0], 2)
    catalog = load_catalog("flipkart")
    y = catalog.labels(0).astype(str).to_numpy()
    train_rows, test_rows = next(grouped_folds(y, duplicate_groups(catalog), 5, args.seed))
    train, test = catalog.subset(train_rows), catalog.subset(test_rows)
    predictor = CategoryPredictor(["efficientnet-lite0"], label=0, progress=True).fit(train)
    images, labels = [], []
    for i, name in enumerate(test.frame["image"]):
        if isinstance(name, str) and (test.root / name).is_file():
            images.append(load_product_image(test.root / name, draft_size=predictor.image_resolution()))
            labels.append(y[test_rows[i]])
    if args.limit:
        images, labels = images[: args.limit], labels[: args.limit]
    started = time.perf_counter()
    timing = [explain_product(predictor, image=image) for image in images[:10]]  # warm and time Grad-CAM alone
    gradcam_seconds = (time.perf_counter() - started) / max(len(timing), 1)
    predicted = predictor.predict_inputs(images, [""] * len(images)).argmax(axis=1)
    accuracy = float(np.mean(predictor.classes_[predicted] == np.array(labels)))
    result = deletion_test(predictor, images, args.random_masks, args.seed)
    by_fill = summary(result["drops"])
    report = {
        "gradcam_deletion_drop": by_fill["mean"]["gradcam"]["mean"],
        "random_deletion_drop": by_fill["mean"]["random_cells"]["mean"],
        "n_images": len(images),
        "n_train": len(train),
        "random_masks": args.random_masks,
        "masked_share": result["masked_share"],
        "by_fill": by_fill,
        "test_accuracy": round(accuracy, 4),
        "gradcam_seconds_mean": round(gradcam_seconds, 3),
        "model": "efficientnet-lite0 linear probe (image only), Flipkart level 0, grouped split fold 1 of 5",
        "split": {"folds": 5, "fold": 0, "seed": args.seed, "grouped_by": ["title", "image bytes"]},
        "load_average_at_start_1m": load_at_start,
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m_5m_15m": [round(x, 2) for x in os.getloadavg()],
        },
        "command": shlex.join(sys.orig_argv),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if args.figures is not None:
        report["figures"] = figures(train, test, args.figures)
    report["machine"]["load_average_1m_5m_15m"] = [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "explain.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "explain.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
