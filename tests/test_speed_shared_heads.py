"""Block heads shared between the configurations of one fold give the predictions of separate fits."""

from __future__ import annotations

import numpy as np

from skulens.encoders.text import TfidfEncoder
from skulens.evaluation.categorize_benchmark import Config, FoldFitter
from skulens.heads.base import align_proba
from skulens.heads.fusion import EarlyFusion, LateFusion
from skulens.tasks.categorize import CategoryPredictor
from skulens.tasks.features import Features

WORDS = {"shirt": "cotton shirt collar sleeve", "watch": "analog watch strap dial", "mug": "ceramic mug coffee handle"}


def _fold_data(n: int = 90, seed: int = 0) -> tuple[Features, list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    names = sorted(WORDS)
    y = np.array([names[i % 3] for i in range(n)])
    centres = {name: rng.normal(size=16) for name in names}
    image = np.stack([centres[c] + rng.normal(scale=2.0, size=16) for c in y]).astype(np.float32)
    text = np.stack([centres[c][:8] + rng.normal(scale=2.0, size=8) for c in y]).astype(np.float32)
    present = {"img": np.ones(n, dtype=bool), "txt": rng.random(n) > 0.1}
    texts = [" ".join(rng.choice(WORDS[c].split(), size=3)) + f" item{i}" for i, c in enumerate(y)]
    return Features({"img": image, "txt": text}, present), texts, y


def test_late_fusion_reuses_a_block_head_fitted_on_the_same_rows():
    features, _, y = _fold_data()
    shared: dict = {}
    both = LateFusion(seed=0).fit(features.blocks, features.present, y, fitted_heads=shared)
    assert len(shared) == 2
    alone_shared = LateFusion(seed=0).fit(
        {"img": features.blocks["img"]}, {"img": features.present["img"]}, y, fitted_heads=shared
    )
    alone_fresh = LateFusion(seed=0).fit({"img": features.blocks["img"]}, {"img": features.present["img"]}, y)
    assert len(shared) == 2 and alone_shared.heads_["img"] is both.heads_["img"]
    blocks, present = {"img": features.blocks["img"]}, {"img": features.present["img"]}
    np.testing.assert_allclose(alone_shared.predict_proba(blocks, present), alone_fresh.predict_proba(blocks, present), atol=1e-6)
    other = LateFusion(seed=1).fit(blocks, present, y, fitted_heads=shared)  # another seed: another split, a new fit
    assert len(shared) == 3 and other.heads_["img"] is not both.heads_["img"]


def test_early_fusion_reuses_its_head():
    features, _, y = _fold_data()
    shared: dict = {}
    first = EarlyFusion(seed=0).fit(features.blocks, features.present, y, fitted_heads=shared)
    second = EarlyFusion(seed=0).fit(features.blocks, features.present, y, fitted_heads=shared)
    assert len(shared) == 1 and second.head_ is first.head_
    np.testing.assert_allclose(
        second.predict_proba(features.blocks, features.present),
        EarlyFusion(seed=0).fit(features.blocks, features.present, y).predict_proba(features.blocks, features.present),
        atol=1e-6,
    )


def _separate_fit(features: Features, texts: list[str], y: np.ndarray, classes, config: Config, train, rows) -> np.ndarray:
    """The former per-configuration fit: TF-IDF refitted and every head fitted anew."""
    train_f, rows_f = features.subset(train), features.subset(rows)
    if "tfidf" in config.encoders:
        tfidf = TfidfEncoder().fit([texts[i] for i in train])
        for part, idx in ((train_f, train), (rows_f, rows)):
            part.blocks["tfidf"] = tfidf.encode([texts[i] for i in idx])
            part.present["tfidf"] = np.array([bool(texts[i].strip()) for i in idx])
    keep = list(config.encoders)
    model = CategoryPredictor(keep, head=config.head, fusion=config.fusion, seed=0)
    model.fit_features(Features({k: train_f.blocks[k] for k in keep}, {k: train_f.present[k] for k in keep}), y[train])
    proba = model.proba_from_features(Features({k: rows_f.blocks[k] for k in keep}, {k: rows_f.present[k] for k in keep}))
    return align_proba(proba, np.asarray(model.classes_), classes)


def test_fold_fitter_predicts_as_separate_fits():
    features, texts, y = _fold_data(120, seed=3)
    classes = np.unique(y)
    configs = [
        Config("img", "image", ("img",)),
        Config("tfidf", "baseline-text", ("tfidf",)),
        Config("img+tfidf late", "fused", ("img", "tfidf")),
        Config("img+txt+tfidf late", "fused", ("img", "txt", "tfidf")),
        Config("img+txt early", "fused", ("img", "txt"), fusion="early"),
    ]
    train, rows = np.arange(0, 90), np.arange(90, 120)
    fitter = FoldFitter(features, texts, y, classes, seed=0)
    for config in configs:
        shared = fitter(config, train, rows)
        assert shared.shape == (30, 3)
        np.testing.assert_allclose(shared, _separate_fit(features, texts, y, classes, config, train, rows), atol=1e-6)
    ((_, _, heads),) = fitter._parts.values()
    assert len(heads) == 4  # img, tfidf, txt and the early head: each fitted once for five configurations


def test_benchmark_fits_skip_the_label_shift_fit_and_predict_the_same():
    """A fit whose priors are never adapted (the benchmark's) leaves the label-shift estimator out; its
    probabilities equal those of a full fit."""
    features, _, y = _fold_data(n=400)
    full = CategoryPredictor(["img", "txt"], seed=0).fit_features(features, y)
    lean = CategoryPredictor(["img", "txt"], seed=0).fit_features(features, y, label_shift=False)
    assert full.label_shift_ is not None and lean.label_shift_ is None
    np.testing.assert_allclose(lean.proba_from_features(features), full.proba_from_features(features), atol=1e-12)
