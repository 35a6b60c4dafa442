"""Encoder-study features (bag of words, Word2Vec, GLCM, Gabor, ORB bag of visual words) and the probe."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from skulens.evaluation.encoder_study import probe_scores
from skulens.evaluation.study_features import (
    BagOfWords,
    ImageDescriptors,
    OrbBagOfVisualWords,
    Word2VecMean,
    gabor_features,
    glcm_features,
)

TEXTS = ["red running shoe with laces", "blue running shoe", "steel analog watch", "gold analog watch dial"] * 5


def test_bag_of_words_counts_training_vocabulary_only():
    model = BagOfWords().fit(TEXTS[:2])
    matrix = model.transform(["running running watch"])
    assert matrix.shape == (1, len(model.vectorizer.vocabulary_)) and matrix.sum() == 2  # 'watch' unseen


def test_word2vec_mean_vectors():
    pytest.importorskip("gensim")
    model = Word2VecMean(dim=16, epochs=5).fit(TEXTS)
    vectors = model.transform(["running shoe", "unknownword", ""])
    assert vectors.shape == (3, 16) and np.abs(vectors[0]).sum() > 0 and not vectors[1:].any()


def _checker(size: int = 128, cell: int = 16) -> Image.Image:
    grid = (np.indices((size, size)) // cell).sum(axis=0) % 2
    return Image.fromarray((grid * 255).astype(np.uint8)).convert("RGB")


def test_texture_features_tell_a_checkerboard_from_a_flat_image():
    flat = np.full((64, 64), 128, dtype=np.uint8)
    checker = np.asarray(_checker(64, 8).convert("L"))
    assert glcm_features(flat).shape == (72,) and glcm_features(checker)[0] > glcm_features(flat)[0]  # contrast
    gabor_flat, gabor_checker = gabor_features(flat / 255.0), gabor_features(checker / 255.0)
    assert gabor_flat.shape == (32,) and gabor_checker.std() > gabor_flat.std()


def test_image_descriptors_and_orb_bag_of_visual_words():
    images = [_checker(), None, _checker(cell=8), Image.new("RGB", (128, 128), (90, 90, 90))]
    descriptors = ImageDescriptors(images)
    assert descriptors.present.tolist() == [True, False, True, True]
    assert len(descriptors.orb[0]) > 0 and len(descriptors.orb[1]) == 0
    words = OrbBagOfVisualWords(descriptors.orb, words=4).fit([0, 2])
    histograms = words.transform([0, 1, 3])
    assert histograms.shape == (3, 4) and histograms[0].sum() == pytest.approx(1.0) and not histograms[1].any()


def test_probe_scores_separable_and_random():
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b"], 30)
    separable = np.where(labels[:, None] == "a", 1.0, -1.0) + rng.normal(scale=0.2, size=(60, 3))
    assert min(probe_scores(lambda train, rows: separable[rows], labels, 3, 0)) == 1.0
    noise = rng.normal(size=(60, 3))
    assert np.mean(probe_scores(lambda train, rows: noise[rows], labels, 3, 0)) < 0.8
