"""In-memory products are encoded by several encoders side by side with the same result as one by one."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from skulens.tasks.features import FeatureExtractor


def _image(colour: str, seed: int) -> Image.Image:
    image = Image.new("RGB", (64, 48), "white")
    ImageDraw.Draw(image).ellipse((4 + seed, 4, 40 + seed, 40), fill=colour)
    return image


def test_parallel_encoders_give_the_sequential_features(monkeypatch):
    texts = ["red cotton shirt", "", "blue analog watch", "green ceramic mug"]
    images = [_image("red", 1), _image("blue", 5), None, _image("green", 9)]
    extractor = FeatureExtractor(["classical-image", "tfidf"], use_cache=False)
    extractor.encoder("tfidf").fit(texts + ["white sneakers"])
    monkeypatch.setenv("SKULENS_THREADS", "1")
    sequential = extractor.transform_inputs(images, texts)
    monkeypatch.setenv("SKULENS_THREADS", "2")
    parallel = extractor.transform_inputs(images, texts)
    assert list(parallel.blocks) == ["classical-image", "tfidf"]
    np.testing.assert_array_equal(parallel.present["classical-image"], [True, True, False, True])
    np.testing.assert_array_equal(parallel.present["tfidf"], [True, False, True, True])
    np.testing.assert_allclose(parallel.blocks["classical-image"], sequential.blocks["classical-image"])
    assert abs(parallel.blocks["classical-image"][0]).sum() > 0 and abs(parallel.blocks["classical-image"][2]).sum() == 0
    np.testing.assert_allclose(parallel.blocks["tfidf"].toarray(), sequential.blocks["tfidf"].toarray())
