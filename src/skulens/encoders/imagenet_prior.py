"""The ImageNet-1k vocabulary of the bundled EfficientNet-Lite classifiers: class names (WordNet lemmas and
definitions, shipped as package data) and the classifier that turns 1280-d pooled features into class
probabilities. The training-free vision-language prior (:mod:`skulens.tasks.prior`) is built on them."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

CLASSES_FILE = "imagenet_classes.tsv"


@lru_cache(maxsize=1)
def imagenet_classes() -> pd.DataFrame:
    """The 1,000 classes in classifier order: ``index, synset, lemmas, definition`` (``lemmas`` is a
    comma-separated list, most common name first); ``name`` is the first lemma."""
    with resources.files("skulens.data").joinpath(CLASSES_FILE).open("r", encoding="utf-8") as handle:
        frame = pd.read_csv(handle, sep="\t", dtype=str, keep_default_na=False)
    frame["name"] = frame["lemmas"].str.split(",").str[0].str.strip()
    return frame


@lru_cache(maxsize=3)
def imagenet_head(variant: str = "lite0") -> tuple[np.ndarray, np.ndarray]:
    """The ImageNet classifier of the bundled EfficientNet-Lite ``variant``: weight (1000, 1280), bias (1000,)."""
    from skulens.encoders.efficientnet_lite import load_pretrained

    fc = load_pretrained(variant)._fc
    return fc.weight.detach().numpy().astype(np.float32), fc.bias.detach().numpy().astype(np.float32)


def class_probabilities(features: np.ndarray, variant: str = "lite0", temperature: float = 1.0) -> np.ndarray:
    """Softmax ImageNet probabilities (n, 1000) from pooled EfficientNet-Lite features (n, 1280)."""
    weight, bias = imagenet_head(variant)
    logits = (np.asarray(features, dtype=np.float32) @ weight.T + bias) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)
