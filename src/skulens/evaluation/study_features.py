"""Extra features for the encoder study: bag of words, Word2Vec, GLCM, Gabor and an ORB bag of visual words.

Each is a small fit/transform object. The ones that learn from data (bag of words, Word2Vec, the ORB
codebook) are fitted on training rows only when the study probes them. Image descriptors are computed
once per image (``ImageDescriptors``) and reused across folds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from PIL import Image
from sklearn.cluster import MiniBatchKMeans
from sklearn.feature_extraction.text import CountVectorizer

from skulens.extras import require_extra

TOKEN = re.compile(r"[a-z0-9]+")
GLCM_DISTANCES = (1, 2, 4)
GLCM_ANGLES = (0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
GLCM_PROPS = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
GABOR_FREQUENCIES = (0.1, 0.2, 0.3, 0.4)
GABOR_ANGLES = 4


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


class BagOfWords:
    """Word counts (unigrams), fitted vocabulary."""

    def fit(self, texts: Sequence[str]) -> BagOfWords:
        self.vectorizer = CountVectorizer(dtype=np.float32).fit(texts)
        return self

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self.vectorizer.transform(texts)


class Word2VecMean:
    """Word2Vec (gensim, skip-gram) trained on the given texts; a text is the mean of its word vectors."""

    def __init__(self, dim: int = 100, epochs: int = 20, seed: int = 0) -> None:
        self.dim, self.epochs, self.seed = dim, epochs, seed

    def fit(self, texts: Sequence[str]) -> Word2VecMean:
        require_extra("explore", "gensim", feature="Word2Vec features")
        from gensim.models import Word2Vec

        sentences = [tokens(t) for t in texts]
        self.model = Word2Vec(
            sentences, vector_size=self.dim, window=5, min_count=2, sg=1, epochs=self.epochs, seed=self.seed, workers=1
        )
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.wv
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            known = [w for w in tokens(text) if w in vectors.key_to_index]
            if known:
                out[row] = vectors[known].mean(axis=0)
        return out


def glcm_features(gray: np.ndarray) -> np.ndarray:
    """Grey-level co-occurrence properties (6 props x 3 distances x 4 angles) of a uint8 image, 32 grey levels."""
    from skimage.feature import graycomatrix, graycoprops

    matrix = graycomatrix(gray // 8, GLCM_DISTANCES, GLCM_ANGLES, levels=32, symmetric=True, normed=True)
    return np.concatenate([graycoprops(matrix, prop).ravel() for prop in GLCM_PROPS]).astype(np.float32)


def gabor_features(gray: np.ndarray) -> np.ndarray:
    """Mean and standard deviation of Gabor response magnitudes (4 frequencies x 4 orientations) of a 0-1 image (FFT convolution)."""
    from scipy.signal import fftconvolve
    from skimage.filters import gabor_kernel

    values = []
    for frequency in GABOR_FREQUENCIES:
        for k in range(GABOR_ANGLES):
            kernel = gabor_kernel(frequency, theta=k * np.pi / GABOR_ANGLES)
            magnitude = np.abs(fftconvolve(gray, kernel, mode="same"))
            values += [magnitude.mean(), magnitude.std()]
    return np.asarray(values, dtype=np.float32)


def orb_descriptors(gray: np.ndarray, keypoints: int = 100) -> np.ndarray:
    """ORB binary descriptors (as 0/1 float rows of 256 bits); empty when too few keypoints are found."""
    from skimage.feature import ORB

    detector = ORB(n_keypoints=keypoints, fast_threshold=0.05)
    try:
        detector.detect_and_extract(gray)
    except (RuntimeError, ValueError, IndexError):
        return np.zeros((0, 256), dtype=np.float32)
    return detector.descriptors.astype(np.float32)


class ImageDescriptors:
    """GLCM, Gabor and ORB descriptors of one image each (None rows have no readable image)."""

    def __init__(self, images: Sequence[Image.Image | None], size: int = 128) -> None:
        from skimage.color import rgb2gray

        self.present = np.array([image is not None for image in images])
        self.glcm = np.zeros((len(images), len(GLCM_PROPS) * len(GLCM_DISTANCES) * len(GLCM_ANGLES)), dtype=np.float32)
        self.gabor = np.zeros((len(images), 2 * len(GABOR_FREQUENCIES) * GABOR_ANGLES), dtype=np.float32)
        self.orb: list[np.ndarray] = []
        for row, image in enumerate(images):
            if image is None:
                self.orb.append(np.zeros((0, 256), dtype=np.float32))
                continue
            gray = rgb2gray(np.asarray(image.convert("RGB").resize((size, size)), dtype=np.float32) / 255.0)
            self.glcm[row] = glcm_features((gray * 255).astype(np.uint8))
            self.gabor[row] = gabor_features(gray[::2, ::2])
            self.orb.append(orb_descriptors(gray))


class OrbBagOfVisualWords:
    """A k-word codebook (k-means on ORB descriptors of the training images); an image is its word histogram."""

    def __init__(self, descriptors: Sequence[np.ndarray], words: int = 64, seed: int = 0) -> None:
        self.descriptors, self.words, self.seed = descriptors, words, seed

    def fit(self, rows: Sequence[int]) -> OrbBagOfVisualWords:
        stacked = np.vstack([self.descriptors[r] for r in rows if len(self.descriptors[r])])
        self.codebook = MiniBatchKMeans(n_clusters=self.words, random_state=self.seed, n_init=3, batch_size=2048).fit(stacked)
        return self

    def transform(self, rows: Sequence[int]) -> np.ndarray:
        out = np.zeros((len(rows), self.words), dtype=np.float32)
        for index, row in enumerate(rows):
            if len(self.descriptors[row]):
                counts = np.bincount(self.codebook.predict(self.descriptors[row]), minlength=self.words)
                out[index] = counts / counts.sum()
        return out
