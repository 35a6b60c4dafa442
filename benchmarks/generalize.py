"""New products, new shops (issue #21): how skulens' image-text space does on products and shops it was
not trained on (a script, not a test).

    python benchmarks/generalize.py     # writes benchmarks/results/generalize.json and generalize.md

Protocol (``skulens.catalog.splits.new_products_split``): the test gallery is a seeded 1,000-product draw
from ``myntra/`` ids >= 18000 (listed after everything trained on); the training pool is ``myntra/`` ids <
18000 plus all of ``myntra_more/`` (60x80 photos) minus every product whose family key (title without
colour words) equals a gallery product's. Every choice (space variant, ridge strength, blend weights, the
prior's class texts) is made on a family-grouped 10% validation part of the training pool; the gallery is
only scored. Intervals: bootstrap 95% over gallery queries (1,000 resamples).

Spaces compared (frozen features from the shared embedding cache: EfficientNet-Lite0 photos, MiniLM
titles, optionally TF-IDF and colour/HOG/LBP): contrastive projection heads (``AlignmentHeads``, the
``skulens search train`` machinery) and a closed-form ridge map from photo features into MiniLM's text
space; each alone and blended with the training-free ImageNet-vocabulary prior (ConSE).
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
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from skulens.catalog import Catalog, load_catalog  # noqa: E402
from skulens.catalog.splits import family_keys, group_split, new_products_split  # noqa: E402
from skulens.encoders.text import TfidfEncoder  # noqa: E402
from skulens.heads.align import AlignConfig, AlignmentHeads  # noqa: E402
from skulens.heads.align_ridge import ridge_path  # noqa: E402
from skulens.metrics.intervals import bootstrap_ci  # noqa: E402
from skulens.tasks.align import DEFAULT_TEMPLATES  # noqa: E402
from skulens.tasks.features import FeatureExtractor  # noqa: E402
from skulens.tasks.prior import VisionLanguagePrior  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LITE0, CLASSICAL, MINILM = "efficientnet-lite0", "classical-image", "minilm"
ARTICLE = "articleType"
MIN_CLASS = 30
WEIGHTS = np.round(np.linspace(0, 1, 21), 2)
RIDGE_ALPHAS = (1e2, 1e3, 3e3, 1e4, 3e4)


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class Blocks:
    """Frozen features of one catalog (rows aligned with it): photo blocks, MiniLM titles, TF-IDF, ConSE."""

    def __init__(self, catalog: Catalog, extractor: FeatureExtractor, image_names: list[str], prior: VisionLanguagePrior, tfidf):
        features = extractor.transform(catalog)
        self.catalog = catalog
        self.image = {n: np.asarray(features.blocks[n], dtype=np.float32) for n in image_names}
        self.ok = np.logical_and.reduce([features.present[n] for n in image_names]) & features.present[MINILM]
        self.text = unit(np.asarray(features.blocks[MINILM], dtype=np.float32))
        self.tfidf = tfidf.encode(catalog.texts(("title",))).toarray() if tfidf is not None else None
        self.tfidf_encoder = tfidf
        self.probs = prior.probabilities(self.image[LITE0])
        self.prior = prior.embed_probabilities(self.probs)

    def subset(self, rows: np.ndarray) -> Blocks:
        out = object.__new__(Blocks)
        out.catalog = self.catalog.subset(rows)
        out.image = {k: v[rows] for k, v in self.image.items()}
        out.ok, out.text, out.probs, out.prior = self.ok[rows], self.text[rows], self.probs[rows], self.prior[rows]
        out.tfidf = self.tfidf[rows] if self.tfidf is not None else None
        out.tfidf_encoder = self.tfidf_encoder
        return out

    def image_input(self, names: tuple[str, ...], with_prior: bool = False) -> np.ndarray:
        parts = [self.image[n] for n in names] + ([self.prior] if with_prior else [])
        return np.hstack(parts)

    def text_input(self, tfidf: bool) -> np.ndarray:
        return np.hstack([self.text, self.tfidf]) if tfidf else self.text


#: name -> (method, image blocks, prior photo embedding as an extra input, TF-IDF on the text side)
VARIANTS = {
    "contrastive: lite0 | minilm": ("contrastive", (LITE0,), False, False),
    "contrastive: lite0 | minilm+tfidf": ("contrastive", (LITE0,), False, True),
    "contrastive: lite0+prior | minilm+tfidf": ("contrastive", (LITE0,), True, True),
    "ridge: lite0 -> minilm": ("ridge", (LITE0,), False, False),
    "ridge: lite0+prior -> minilm": ("ridge", (LITE0,), True, False),
    "contrastive: lite0+classical | minilm+tfidf": ("contrastive", (LITE0, CLASSICAL), False, True),
    "ridge: lite0+classical -> minilm": ("ridge", (LITE0, CLASSICAL), False, False),
}


class Space:
    """A fitted variant: ``image(blocks)`` / ``text(blocks)`` give unit embeddings in one space."""

    def __init__(self, name: str, fit: Blocks, val: Blocks, config: AlignConfig) -> None:
        self.name = name
        self.method, self.names, self.with_prior, self.tfidf = VARIANTS[name]
        x_fit, x_val = fit.image_input(self.names, self.with_prior), val.image_input(self.names, self.with_prior)
        if self.method == "contrastive":
            self.heads = AlignmentHeads(x_fit.shape[1], fit.text_input(self.tfidf).shape[1], config)
            self.heads.fit(x_fit, fit.text_input(self.tfidf), x_val, val.text_input(self.tfidf))
            self.detail = {"best_epoch": self.heads.best_epoch}
        else:
            best = None
            for alpha, heads in zip(RIDGE_ALPHAS, ridge_path(x_fit, fit.text, RIDGE_ALPHAS)):  # chosen on validation R@1 + R@10
                r = pair_recall(val.text @ heads.encode_image(x_val).T)
                if best is None or r[1] + r[10] > best[0]:
                    best = (r[1] + r[10], alpha, heads)
            _, alpha, self.heads = best
            self.detail = {"alpha": alpha}

    def image(self, blocks: Blocks) -> np.ndarray:
        return self.heads.encode_image(blocks.image_input(self.names, self.with_prior))

    def text(self, blocks: Blocks) -> np.ndarray:
        return self.heads.encode_text(blocks.text_input(self.tfidf))

    def texts(self, prior: VisionLanguagePrior, strings: list[str], tfidf) -> np.ndarray:
        minilm = prior.embed_texts(strings)
        x = np.hstack([minilm, tfidf.encode(strings).toarray()]) if self.tfidf else minilm
        return self.heads.encode_text(x)


def pair_recall(similarity: np.ndarray, ks=(1, 5, 10)) -> dict[int, float]:
    """Rows are queries, columns the gallery; the diagonal is each query's own item."""
    rank = (similarity > np.diag(similarity)[:, None]).sum(axis=1)
    return {k: float((rank < k).mean()) for k in ks}


def ranks(similarity: np.ndarray) -> np.ndarray:
    return (similarity > np.diag(similarity)[:, None]).sum(axis=1)


def blended(learned: np.ndarray, prior: np.ndarray, weight: float) -> np.ndarray:
    return (1 - weight) * learned + weight * prior


def choose_weight(score) -> tuple[float, float]:
    """The weight in WEIGHTS with the best validation ``score(weight)`` (ties: the smaller weight)."""
    values = [(score(w), -w) for w in WEIGHTS]
    best = max(values)
    return float(-best[1]), float(best[0])


def retrieval_report(t2i: np.ndarray, labels: np.ndarray, resamples: int) -> dict:
    r = ranks(t2i)
    i2t = ranks(t2i.T)
    top = t2i.argmax(axis=1)
    consistent = labels[top] == labels
    out = {}
    for key, hits in (
        ("t2i_r1", r < 1),
        ("t2i_r5", r < 5),
        ("t2i_r10", r < 10),
        ("i2t_r1", i2t < 1),
        ("category_consistent_r1", consistent),
    ):
        out[key] = bootstrap_ci(lambda rows, h=hits: float(h[rows].mean()), len(hits), resamples=resamples)
    return out


def zero_shot_accuracy(scores: np.ndarray, truth: np.ndarray, labels: list[str]) -> float:
    return float((np.asarray(labels)[scores.argmax(axis=1)] == truth).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gallery", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated variant names")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--out", default=str(RESULTS / "generalize"))
    parser.add_argument(
        "--base-only",
        action="store_true",
        help="Only re-measure the packaged base space (base_space_500_r10) into an existing JSON.",
    )
    parser.add_argument(
        "--gallery-density",
        action="store_true",
        help="Only add gallery_density (look-alikes in the gallery) to an existing JSON.",
    )
    parser.add_argument(
        "--captions-only",
        action="store_true",
        help="Only copy the caption keys of results/generalize_caption.json (benchmarks/generalize_caption.py) into an existing JSON.",
    )
    args = parser.parse_args()
    if args.captions_only:
        rerun_captions(args)
        return
    if args.base_only:
        rerun_base_space(args)
        return
    if args.gallery_density:
        rerun_gallery_density(args)
        return
    started, load_start = time.perf_counter(), os.getloadavg()
    names = [n for n in args.variants.split(",") if n]
    config = AlignConfig(epochs=args.epochs, patience=3, seed=args.seed)

    myntra, more, flipkart = load_catalog("myntra"), load_catalog("myntra_more"), load_catalog("flipkart")
    split = new_products_split(myntra, [more], gallery_size=args.gallery, seed=args.seed)
    plain = new_products_split(myntra, [more], gallery_size=args.gallery, seed=args.seed, remove_families=False)
    log(f"split: {split.protocol}")
    use_classical = any(CLASSICAL in VARIANTS[n][1] for n in names)
    image_names = [LITE0] + ([CLASSICAL] if use_classical else [])
    extractor = FeatureExtractor(image_names + [MINILM], ("title",), progress=True)
    prior = VisionLanguagePrior()

    # the prior's class texts are chosen on validation zero-shot (articleType of training-pool photos)
    pool = split.train
    fit_cat, val_cat = group_split(pool, 0.1, groups=family_keys(pool), seed=args.seed)
    tfidf = TfidfEncoder(max_features=4096, min_df=2).fit(fit_cat.texts(("title",)))
    fit, val_all = (Blocks(c, extractor, image_names, prior, tfidf) for c in (fit_cat, val_cat))
    fit, val_all = fit.subset(np.flatnonzero(fit.ok)), val_all.subset(np.flatnonzero(val_all.ok))
    rng = np.random.default_rng(args.seed)
    val = val_all.subset(np.sort(rng.choice(len(val_all.ok), min(1000, len(val_all.ok)), replace=False)))
    gallery = Blocks(split.gallery, extractor, image_names, prior, tfidf)
    assert gallery.ok.all(), "every gallery product has a photo and a title"
    log(f"features: fit {len(fit.ok)}, validation {len(val.ok)} (of {len(val_all.ok)}), gallery {len(gallery.ok)}")

    # ---- spaces, chosen on validation ----
    spaces, table = {}, {}
    prior_val, prior_test = val.text @ val.prior.T, gallery.text @ gallery.prior.T
    table["prior only (no training)"] = {"val": pair_recall(prior_val), "test": pair_recall(prior_test)}
    for name in names:
        t = time.perf_counter()
        space = Space(name, fit, val, config)
        learned_val = space.text(val) @ space.image(val).T
        learned_test = space.text(gallery) @ space.image(gallery).T
        w, _ = choose_weight(lambda w, lv=learned_val: sum(pair_recall(blended(lv, prior_val, w), (1, 10)).values()))
        table[name] = {
            "val": pair_recall(learned_val),
            "test": pair_recall(learned_test),
            "blend_weight": w,
            "val_blended": pair_recall(blended(learned_val, prior_val, w)),
            "test_blended": pair_recall(blended(learned_test, prior_test, w)),
            "fit_s": round(time.perf_counter() - t, 1),
            **space.detail,
        }
        spaces[name] = space
        log(f"{name}: {table[name]}")
    chosen = max(names, key=lambda n: table[n]["val_blended"][1] + table[n]["val_blended"][10])
    space, w_search = spaces[chosen], table[chosen]["blend_weight"]
    log(f"chosen on validation: {chosen}, search blend weight {w_search}")
    sim_test = blended(space.text(gallery) @ space.image(gallery).T, prior_test, w_search)
    labels = gallery.catalog.labels(ARTICLE).astype(str).to_numpy()
    new = retrieval_report(sim_test, labels, args.resamples)
    learned_only = retrieval_report(space.text(gallery) @ space.image(gallery).T, labels, args.resamples)

    # ---- baseline: today's default heads trained on myntra/ ids < 18000 alone ----
    base_fit = fit.subset(np.flatnonzero(np.isin(fit.catalog.ids, myntra.ids)))
    baseline = Space("contrastive: lite0 | minilm+tfidf", base_fit, val, config)
    baseline_report = retrieval_report(baseline.text(gallery) @ baseline.image(gallery).T, labels, args.resamples)
    log(f"baseline (default heads, lite0 | minilm+tfidf, {len(base_fit.ok)} myntra/ pairs): {baseline_report}")

    # ---- the plain protocol (no family removal) and the old title-grouped split ----
    plain_train = plain.train
    plain_extra = len(plain_train) - len(pool)
    log(f"plain protocol keeps {plain_extra} family rows the new-products protocol removes")

    # ---- zero-shot: weights chosen on validation with a quarter of the articleTypes held out ----
    counts = fit.catalog.labels(ARTICLE).astype(str).value_counts()
    classes = sorted(counts[counts >= MIN_CLASS].index)
    zs = zero_shot_block(args.seed, prior, fit, val, gallery, classes, config, chosen)
    log(f"zero-shot: {zs}")

    # ---- Flipkart level 0: nothing trained on Flipkart ----
    flip = Blocks(flipkart, extractor, image_names, prior, tfidf)
    flip_rows = np.flatnonzero(flip.ok)
    flip = flip.subset(flip_rows)
    flip_truth = flip.catalog.labels(0).astype(str).to_numpy()
    flip_labels = sorted(set(flip_truth))
    flipkart_scores = flipkart_zero_shot(prior, space, flip, flip_labels, zs["weights"])
    flip_result = {k: zero_shot_accuracy(v, flip_truth, flip_labels) for k, v in flipkart_scores.items()}
    log(f"flipkart: {flip_result}")

    # ---- image-only articleType accuracy on the split, with and without the prior's features ----
    article = article_probe(fit, gallery, args.seed)
    log(f"image articleType: {article}")

    # ---- a 500-product catalog never trained on, searched with the base space ----
    base500 = base_space_500(gallery, args.seed)
    log(f"base space 500: {base500}")

    report = {
        "new_t2i_r1": new["t2i_r1"]["estimate"],
        "new_t2i_r5": new["t2i_r5"]["estimate"],
        "new_t2i_r10": new["t2i_r10"]["estimate"],
        "new_i2t_r1": new["i2t_r1"]["estimate"],
        "new_category_consistent_r1": new["category_consistent_r1"]["estimate"],
        "new_intervals": new,
        "new_learned_space_only": learned_only,
        "baseline_default_train_myntra_only": baseline_report,
        "unseen_zero_shot_accuracy": zs["unseen_blended"],
        "flipkart_zero_shot_image": flip_result["image"],
        "flipkart_zero_shot_text": flip_result["text"],
        "flipkart_zero_shot_both": flip_result["both"],
        "flipkart_zero_shot_detail": flip_result,
        "image_article_accuracy_new": article,
        "base_space_500_r10": base500,
        "blend_weights": {"search": w_search, **zs["weights"]},
        "chosen_space": chosen,
        "variants": table,
        "zero_shot": zs,
        "protocol": split.protocol,
        "plain_protocol_extra_training_rows": plain_extra,
        "command": shlex.join(["python", Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": os.getloadavg()},
        "runtime_s": round(time.perf_counter() - started, 1),
    }
    report.update(old_split_numbers(myntra, extractor, image_names, prior, args.seed, chosen, config, w_search, args.resamples))
    captions = caption_numbers()
    report.setdefault("part_commands", {}).update(captions.pop("part_commands", {}))
    report.update(captions)
    report = json.loads(json.dumps(report))  # int keys (recall@k) become strings, as in the file
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(to_markdown(report))
    log(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


def label_scores(space: Space, prior: VisionLanguagePrior, tfidf, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(learned, prior) unit label embeddings: each the mean over its own prompt templates."""
    prompts = [t.format(label=label) for label in labels for t in DEFAULT_TEMPLATES]
    learned = unit(space.texts(prior, prompts, tfidf).reshape(len(labels), len(DEFAULT_TEMPLATES), -1).mean(axis=1))
    return learned, prior.label_embeddings(labels)


def harmonic(a: float, b: float) -> float:
    return 2 * a * b / (a + b) if a + b > 0 else 0.0


def zero_shot_block(seed, prior, fit, val, gallery, classes, config, chosen) -> dict:
    """Generalised zero-shot articleType (all frequent classes are candidates; a quarter never trained on).

    Weights: on validation rows, with a space trained without a seeded quarter of the classes (seed + 1),
    the photo (and title) blend weight maximising the harmonic mean of seen- and unseen-class accuracy.
    Test: a space trained without another seeded quarter (seed), scored on gallery products of those classes.
    """
    tfidf = fit.tfidf_encoder

    def trained_without(held: list[str]) -> Space:
        keep = ~np.isin(fit.catalog.labels(ARTICLE).astype(str).to_numpy(), held)
        return Space(chosen, fit.subset(np.flatnonzero(keep)), val, config)

    def scores(space: Space, blocks: Blocks) -> dict:
        learned_labels, prior_labels = label_scores(space, prior, tfidf, classes)
        return {
            "image": (space.image(blocks) @ learned_labels.T, blocks.prior @ prior_labels.T),
            "text": (space.text(blocks) @ learned_labels.T, blocks.text @ prior_labels.T),
        }

    quarter = max(1, round(0.25 * len(classes)))
    held_val = sorted(np.random.default_rng(seed + 1).choice(classes, quarter, replace=False).tolist())
    held_test = sorted(np.random.default_rng(seed).choice(classes, quarter, replace=False).tolist())
    val_truth = val.catalog.labels(ARTICLE).astype(str).to_numpy()
    in_classes = np.isin(val_truth, classes)
    unseen_rows, seen_rows = in_classes & np.isin(val_truth, held_val), in_classes & ~np.isin(val_truth, held_val)
    val_scores = scores(trained_without(held_val), val)
    weights = {}
    for use in ("image", "text"):
        learned, from_prior = val_scores[use]

        def h(w, learned=learned, from_prior=from_prior) -> float:
            s = blended(learned, from_prior, w)
            return harmonic(
                zero_shot_accuracy(s[seen_rows], val_truth[seen_rows], classes),
                zero_shot_accuracy(s[unseen_rows], val_truth[unseen_rows], classes),
            )

        weights[f"zero_shot_{use}"], _ = choose_weight(h)
    truth = gallery.catalog.labels(ARTICLE).astype(str).to_numpy()
    unseen, seen = np.isin(truth, held_test), np.isin(truth, classes) & ~np.isin(truth, held_test)
    learned, from_prior = scores(trained_without(held_test), gallery)["image"]
    w = weights["zero_shot_image"]
    out = {
        "classes": len(classes),
        "held_out_validation": held_val,
        "held_out_test": held_test,
        "weights": weights,
        "unseen_rows": int(unseen.sum()),
        "seen_rows": int(seen.sum()),
    }
    for name, s in (("learned", learned), ("prior", from_prior), ("blended", blended(learned, from_prior, w))):
        out[f"unseen_{name}"] = zero_shot_accuracy(s[unseen], truth[unseen], classes)
        out[f"seen_{name}"] = zero_shot_accuracy(s[seen], truth[seen], classes)
    return out


def flipkart_zero_shot(prior, space, flip, labels, weights) -> dict:
    learned_labels, prior_labels = label_scores(space, prior, flip.tfidf_encoder, labels)
    image = (space.image(flip) @ learned_labels.T, flip.prior @ prior_labels.T)
    text = (space.text(flip) @ learned_labels.T, flip.text @ prior_labels.T)
    wi, wt = weights["zero_shot_image"], weights["zero_shot_text"]
    image_s, text_s = blended(*image, wi), blended(*text, wt)
    return {
        "image": image_s,
        "text": text_s,
        "both": image_s + text_s,
        "image_prior_only": image[1],
        "image_learned_only": image[0],
        "text_prior_only": text[1],
        "text_learned_only": text[0],
    }


def article_probe(fit: Blocks, gallery: Blocks, seed: int) -> dict:
    """Image-only articleType accuracy on the gallery: a softmax probe on Lite0 features, with and without
    the prior's ImageNet probabilities + ConSE embedding appended (trained on the training pool)."""
    import torch

    truth_fit = fit.catalog.labels(ARTICLE).astype(str).to_numpy()
    truth = gallery.catalog.labels(ARTICLE).astype(str).to_numpy()
    classes = sorted(set(truth_fit))
    keep = np.isin(truth, classes)
    index = {c: i for i, c in enumerate(classes)}
    y = torch.as_tensor([index[c] for c in truth_fit])
    out = {"rows": int(keep.sum()), "classes": len(classes)}
    for name, fx, gx in (
        ("lite0", fit.image[LITE0], gallery.image[LITE0]),
        (
            "lite0+prior",
            np.hstack([fit.image[LITE0], np.log(fit.probs + 1e-6), fit.prior]),
            np.hstack([gallery.image[LITE0], np.log(gallery.probs + 1e-6), gallery.prior]),
        ),
    ):
        mean, std = fx.mean(0), fx.std(0) + 1e-6
        x = torch.as_tensor((fx - mean) / std, dtype=torch.float32)
        torch.manual_seed(seed)
        layer = torch.nn.Linear(x.shape[1], len(classes))
        optimiser = torch.optim.AdamW(layer.parameters(), lr=1e-3, weight_decay=1e-2)
        generator = torch.Generator().manual_seed(seed)
        for _ in range(3):
            for rows in torch.randperm(len(x), generator=generator).split(512):
                loss = torch.nn.functional.cross_entropy(layer(x[rows]), y[rows])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        with torch.no_grad():
            pred = layer(torch.as_tensor((gx - mean) / std, dtype=torch.float32)).argmax(1).numpy()
        out[name] = float((np.asarray(classes)[pred][keep] == truth[keep]).mean())
    return out


def base_space_500(gallery: Blocks, seed: int) -> dict:
    rows = np.sort(np.random.default_rng(seed).choice(len(gallery.ok), 500, replace=False))
    return base_space_500_catalog(gallery.catalog.subset(rows))


def base_space_500_catalog(catalog: Catalog) -> dict:
    """R@10 (text -> image) of the packaged base space on 500 gallery products (never trained on), through
    the public API with no training; ``None`` when no base space is packaged."""
    from skulens.tasks.align import AlignmentModel
    from skulens.tasks.align.common import AlignmentError

    try:
        model = AlignmentModel.load("base")
    except AlignmentError as exc:
        return {"r10": None, "why": str(exc)}
    image, _, text, _ = model.encode_catalog(catalog)
    r = pair_recall(text @ image.T)
    return {"r10": r[10], "r1": r[1], "products": len(catalog), "model": model.identity, "blend_weights": model.blend_weights_}


def rerun_base_space(args) -> None:
    """Re-measure ``base_space_500_r10`` with the base space packaged now (after its blend weights were set
    from this benchmark's validation choices) and record that command beside the main one."""
    out = Path(args.out)
    report = json.loads(out.with_suffix(".json").read_text())
    split = new_products_split(load_catalog("myntra"), [load_catalog("myntra_more")], gallery_size=args.gallery, seed=args.seed)
    rows = np.sort(np.random.default_rng(args.seed).choice(len(split.gallery), 500, replace=False))
    report["base_space_500_r10"] = base_space_500_catalog(split.gallery.subset(rows))
    report.setdefault("part_commands", {})["base_space_500_r10"] = shlex.join(
        ["python", Path(sys.argv[0]).as_posix(), *sys.argv[1:]]
    )
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(to_markdown(report))
    log(f"base space 500: {report['base_space_500_r10']}")


def gallery_density(gallery: Catalog, pool: Catalog, seed: int) -> dict:
    """How crowded with look-alikes the gallery is, beside a random draw of the same size from the training
    pool: rows whose exact title another gallery product shares (their text query cannot single out one
    photo, so R@1 is capped at distinct titles / rows) and rows in a product family (title without colour
    words) of more than one product."""

    def density(catalog: Catalog) -> dict:
        titles = pd.Series([t.strip().lower() for t in catalog.texts(("title",))])
        families = pd.Series(family_keys(catalog))
        return {
            "rows": len(catalog),
            "rows_sharing_their_title": int(titles.duplicated(keep=False).sum()),
            "distinct_titles": int(titles.nunique()),
            "rows_in_families_of_2_or_more": int(families.duplicated(keep=False).sum()),
        }

    sample = pool.subset(np.sort(np.random.default_rng(seed).choice(len(pool), len(gallery), replace=False)))
    out = {"gallery": density(gallery), "pool_sample": density(sample)}
    out["t2i_r1_ceiling"] = out["gallery"]["distinct_titles"] / out["gallery"]["rows"]
    return out


def rerun_gallery_density(args) -> None:
    """Add ``gallery_density`` to an existing JSON (a fast part: titles only)."""
    out = Path(args.out)
    report = json.loads(out.with_suffix(".json").read_text())
    split = new_products_split(load_catalog("myntra"), [load_catalog("myntra_more")], gallery_size=args.gallery, seed=args.seed)
    report["gallery_density"] = gallery_density(split.gallery, split.train, args.seed)
    report.setdefault("part_commands", {})["gallery_density"] = shlex.join(
        ["python", Path(sys.argv[0]).as_posix(), *sys.argv[1:]]
    )
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(to_markdown(report))
    log(f"gallery density: {report['gallery_density']}")


def old_split_numbers(myntra, extractor, image_names, prior, seed, chosen, config, weight, resamples) -> dict:
    """The old benchmark's split (align_myntra.py: 1,000 products with distinct titles, nothing sharing a title
    in training; families do straddle it), trained on its myntra/ rows with the chosen space + blend."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from align_myntra import gallery_split

    train_rows, gallery_rows = gallery_split(myntra, 1000, seed)
    train_cat = myntra.subset(train_rows)
    fit_cat, val_cat = group_split(train_cat, 0.1, groups=family_keys(train_cat), seed=seed)
    tfidf = TfidfEncoder(max_features=4096, min_df=2).fit(fit_cat.texts(("title",)))
    fit, val, gal = (Blocks(c, extractor, image_names, prior, tfidf) for c in (fit_cat, val_cat, myntra.subset(gallery_rows)))
    fit, val = fit.subset(np.flatnonzero(fit.ok)), val.subset(np.flatnonzero(val.ok))
    gal = gal.subset(np.flatnonzero(gal.ok))
    space = Space(chosen, fit, val, config)
    sim = blended(space.text(gal) @ space.image(gal).T, gal.text @ gal.prior.T, weight)
    r = retrieval_report(sim, gal.catalog.labels(ARTICLE).astype(str).to_numpy(), resamples)
    return {"old_split_t2i_r1": r["t2i_r1"]["estimate"], "old_split_t2i_r10": r["t2i_r10"]["estimate"], "old_split_intervals": r}


def caption_numbers() -> dict:
    """The caption keys from ``benchmarks/generalize_caption.py``'s results (results/generalize_caption.json)."""
    path = RESULTS / "generalize_caption.json"
    if not path.is_file():
        return {"caption_bleu_new": None, "caption_retrieval_bleu_new": None}
    part = json.loads(path.read_text())
    return {
        "caption_bleu_new": part.get("caption_bleu_new"),
        "caption_bleu_new_ci95": part.get("caption_bleu_new_ci95"),
        "caption_retrieval_bleu_new": part.get("caption_retrieval_bleu_new"),
        "caption_retrieval_bleu_new_ci95": part.get("caption_retrieval_bleu_new_ci95"),
        "part_commands": {"caption": part.get("command")},
    }


def rerun_captions(args) -> None:
    """Copy the caption keys (measured by generalize_caption.py) into the existing JSON and its markdown."""
    out = Path(args.out)
    report = json.loads(out.with_suffix(".json").read_text())
    numbers = caption_numbers()
    report.setdefault("part_commands", {}).update(numbers.pop("part_commands", {}))
    report.update(numbers)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(to_markdown(report))
    log(f"captions: {numbers}")


def _ci(entry: dict) -> str:
    low, high = entry["ci95"]
    return f"{entry['estimate']:.3f} [{low:.3f}, {high:.3f}]"


def to_markdown(r: dict) -> str:
    n, b, lo = r["new_intervals"], r["baseline_default_train_myntra_only"], r["new_learned_space_only"]
    z = r["zero_shot"]
    lines = [
        "# New products, new shops (issue #21)",
        "",
        f"Command: `{r['command']}`  ",
        f"Protocol: {r['protocol']['gallery']}; training pool {r['protocol']['train_rows']} products "
        f"({', '.join(r['protocol']['train_sources'])}), {r['protocol']['family_rows_removed']} removed for sharing a family "
        "with the gallery. Choices on a family-grouped validation part of the pool; [95% bootstrap interval].  ",
        f"Chosen space: **{r['chosen_space'].replace('|', '/')}**; blend weights (prior share): {r['blend_weights']}.  ",
        f"Machine: {r['machine']['cpus']} CPUs, load {r['machine']['loadavg_start'][0]:.1f} at start; runtime {r['runtime_s']:.0f} s.",
        "",
        "| metric (new products, 1,000-product gallery) | skulens now | learned space alone | baseline (default heads, myntra/ < 18000 only) | target |",
        "|---|---|---|---|---|",
    ]
    for key, label, target in (
        ("t2i_r1", "text -> image R@1", ">= 0.35"),
        ("t2i_r5", "text -> image R@5", ""),
        ("t2i_r10", "text -> image R@10", ">= 0.80"),
        ("i2t_r1", "image -> text R@1", ""),
        ("category_consistent_r1", "category-consistent R@1", ""),
    ):
        lines.append(f"| {label} | {_ci(n[key])} | {lo[key]['estimate']:.3f} | {_ci(b[key])} | {target} |")
    flip = r["flipkart_zero_shot_detail"]
    art = r["image_article_accuracy_new"]
    base = r["base_space_500_r10"]
    lines += [
        "",
        "| other measure | value | target |",
        "|---|---|---|",
        f"| old (title-grouped) split t2i R@1 / R@10 | {r['old_split_t2i_r1']:.3f} / {r['old_split_t2i_r10']:.3f} | |",
        f"| unseen-class zero-shot articleType from photos ({z['classes']} candidates, {z['unseen_rows']} products) | "
        f"{z['unseen_blended']:.3f} (learned {z['unseen_learned']:.3f}, prior {z['unseen_prior']:.3f}) | >= 0.60 |",
        f"| seen-class zero-shot on the same model | {z['seen_blended']:.3f} (learned {z['seen_learned']:.3f}) | |",
        f"| Flipkart level-0 zero-shot, photos | {flip['image']:.3f} (prior alone {flip['image_prior_only']:.3f}, "
        f"learned alone {flip['image_learned_only']:.3f}) | >= 0.75 |",
        f"| Flipkart level-0 zero-shot, titles / both | {flip['text']:.3f} / {flip['both']:.3f} | |",
        f"| image-only articleType accuracy (probe), without / with the prior's features | {art['lite0']:.3f} / {art['lite0+prior']:.3f} | |",
        f"| base space, 500 products never trained on, t2i R@10 | {base['r10'] if base['r10'] is None else f'{base[chr(114) + chr(49) + chr(48)]:.3f}'} | |",
        f"| captions BLEU (new products) / nearest-photo title BLEU | {r['caption_bleu_new']} / {r['caption_retrieval_bleu_new']} | >= 20, +5 |",
    ]
    if "gallery_density" in r:
        g, p = r["gallery_density"]["gallery"], r["gallery_density"]["pool_sample"]
        lines.append(
            f"| look-alikes: rows sharing their exact title / in families of 2+, gallery vs a same-size pool draw | "
            f"{g['rows_sharing_their_title']} / {g['rows_in_families_of_2_or_more']} vs {p['rows_sharing_their_title']} / "
            f"{p['rows_in_families_of_2_or_more']} (t2i R@1 ceiling {r['gallery_density']['t2i_r1_ceiling']:.2f}) | |"
        )
    lines += [
        "",
        "## Variants (validation chooses; gallery numbers shown for information)",
        "",
        "| variant | val R@1 | val R@10 | blend w | val blended R@1 / R@10 | test R@1 / R@10 | test blended R@1 / R@10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, v in r["variants"].items():
        name = name.replace("|", "\\|")  # a variant's "image | text" must not split the table cell
        if "blend_weight" not in v:
            lines.append(
                f"| {name} | {v['val']['1']:.3f} | {v['val']['10']:.3f} | | | {v['test']['1']:.3f} / {v['test']['10']:.3f} | |"
            )
            continue
        lines.append(
            f"| {name} | {v['val']['1']:.3f} | {v['val']['10']:.3f} | {v['blend_weight']} | "
            f"{v['val_blended']['1']:.3f} / {v['val_blended']['10']:.3f} | {v['test']['1']:.3f} / {v['test']['10']:.3f} | "
            f"{v['test_blended']['1']:.3f} / {v['test_blended']['10']:.3f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
