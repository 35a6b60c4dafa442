"""Classical image features (no learned weights): colour histogram + HOG + LBP, via scikit-image.

The baseline every report shows next to the pretrained encoders, so users see what learning adds.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Sequence

import numpy as np
import skimage
from PIL import Image
from skimage.color import rgb2gray, rgb2hsv
from skimage.feature import hog, local_binary_pattern

from skulens.encoders.base import Encoder
from skulens.encoders.pixels import to_square_array

SIZE = 64
HUE_BINS, SAT_BINS, VAL_BINS = 8, 4, 4
LBP_POINTS = 8
HOG_DIM = 9 * 7 * 7 * 2 * 2  # orientations x blocks (7x7 for 64px, 8px cells, 2x2 cells per block)
DIM = HUE_BINS * SAT_BINS * VAL_BINS + HOG_DIM + LBP_POINTS + 2


def classical_features(image: Image.Image) -> np.ndarray:
    """Concatenated HSV histogram, HOG descriptor and uniform-LBP histogram of one image."""
    rgb = to_square_array(image, SIZE).astype(np.float32) / 255.0
    hsv = rgb2hsv(rgb).reshape(-1, 3)
    colour, _ = np.histogramdd(hsv, bins=(HUE_BINS, SAT_BINS, VAL_BINS), range=((0, 1), (0, 1), (0, 1)))
    gray = rgb2gray(rgb)
    shape = hog(gray, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), feature_vector=True)
    lbp = local_binary_pattern((gray * 255).astype(np.uint8), LBP_POINTS, 1, method="uniform")
    texture, _ = np.histogram(lbp, bins=LBP_POINTS + 2, range=(0, LBP_POINTS + 2))
    return np.concatenate([colour.ravel() / hsv.shape[0], shape, texture / lbp.size]).astype(np.float32)


def feature_code_version() -> str:
    """A short hash of the feature code (:func:`classical_features` and the resize it uses) and of
    scikit-image's version: this encoder has no weights, so its code is what the cache must key on."""
    try:
        source = inspect.getsource(classical_features) + inspect.getsource(to_square_array)
    except OSError:  # no source shipped: fall back to this file's compiled form
        source = classical_features.__code__.co_code.hex() + to_square_array.__code__.co_code.hex()
    return hashlib.sha256(f"{source}|skimage {skimage.__version__}".encode()).hexdigest()[:12]


class ClassicalImageEncoder(Encoder):
    name = "classical-image"
    modality = "image"
    dim = DIM
    batch_size = 64
    resolution = SIZE * 2

    def __init__(self) -> None:
        self.version = f"hsv{HUE_BINS}{SAT_BINS}{VAL_BINS}-hog-lbp{LBP_POINTS}-{SIZE}px-code{feature_code_version()}"

    def encode(self, batch: Sequence[Image.Image]) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([classical_features(image) for image in batch])
