"""The training-free vision-language prior (ConSE, Norouzi et al. 2014, "Zero-Shot Learning by Convex
Combination of Semantic Embeddings").

A photo's embedding is the probability-weighted mean of the text embeddings (MiniLM) of its ``top_k``
ImageNet class names, so photos and texts meet in the text encoder's space with no training at all:
zero-shot categories from photos, photo tags ("looks like: running shoe, sandal") and cold-start search on
a catalog nobody trained on. Labels the ImageNet vocabulary cannot place (no class name is close to them)
are reported so callers can fall back to a learned space.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from skulens.catalog.schema import Catalog
from skulens.encoders.imagenet_prior import class_probabilities, imagenet_classes
from skulens.tasks.features import FeatureExtractor

#: Phrasings averaged into one label embedding (the prior's text side is a sentence encoder, not CLIP).
PRIOR_TEMPLATES = ("{label}", "a photo of {label}", "a product photo of {label}")
#: Cosines are multiplied by this before the zero-shot softmax (probabilities rank labels of one product;
#: they are not calibrated).
ZERO_SHOT_SCALE = 50.0
#: What describes an ImageNet class in the text space: its names, or its names and WordNet definition.
CLASS_TEXTS = ("lemmas", "definition")


def _unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class PhotoTags:
    """What a photo looks like to the ImageNet classifier: ``tags`` are class names at or above the
    confidence threshold (best first); ``confident`` is False when no class reached it (then ``tags``
    is empty and ``best`` / ``best_probability`` show the closest guess, for information only)."""

    tags: list[str]
    confident: bool
    best: str
    best_probability: float

    def text(self) -> str:
        if not self.confident:
            return f"no confident ImageNet class (best guess {self.best!r}, p={self.best_probability:.2f})"
        return "looks like: " + ", ".join(self.tags)


class VisionLanguagePrior:
    """Photos and texts in MiniLM's space through ImageNet class names (see the module docstring).

    ``image_encoder`` must be an EfficientNet-Lite variant (its pooled features feed the ImageNet
    classifier); ``text_encoder`` embeds class names, labels and queries.
    """

    def __init__(
        self,
        image_encoder: str = "efficientnet-lite0",
        text_encoder: str = "minilm",
        top_k: int = 10,
        temperature: float = 1.0,
        min_confidence: float = 0.2,
        place_threshold: float = 0.5,
        class_text: str = "definition",
        cache_dir=None,
        progress: bool = False,
    ) -> None:
        if not image_encoder.startswith("efficientnet-lite"):
            raise ValueError(f"the prior needs an EfficientNet-Lite image encoder with its ImageNet head, not '{image_encoder}'")
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.variant = image_encoder.removeprefix("efficientnet-")
        self.top_k, self.temperature = top_k, temperature
        self.min_confidence, self.place_threshold = min_confidence, place_threshold
        if class_text not in CLASS_TEXTS:
            raise ValueError(f"class_text must be one of {', '.join(CLASS_TEXTS)}, not '{class_text}'")
        self.class_text = class_text
        self.features = FeatureExtractor([image_encoder, text_encoder], ("title",), cache_dir=cache_dir, progress=progress)
        self._class_text: dict[str, np.ndarray] = {}

    # ---- the vocabulary ---------------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return imagenet_classes()["name"].tolist()

    def class_text_embeddings(self, kind: str | None = None) -> np.ndarray:
        """Unit text embeddings (1000, dim) of the ImageNet classes: all lemmas of each class, followed by its
        WordNet definition for ``kind="definition"`` (default: ``class_text``). Computed through the
        embedding cache, so once per install."""
        kind = kind or self.class_text
        if kind not in self._class_text:
            classes = imagenet_classes()
            text = classes["lemmas"].str.replace(",", " /")
            if kind == "definition":
                text = text + ": " + classes["definition"]
            names = Catalog(pd.DataFrame({"id": classes["synset"], "title": text}), name="imagenet")
            self._class_text[kind] = self.catalog_texts(names)[0]
        return self._class_text[kind]

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit text embeddings of queries or titles in the prior's space."""
        texts = list(texts)
        block = self.features.transform_inputs([None] * len(texts), texts, [self.text_encoder]).blocks[self.text_encoder]
        return _unit(np.asarray(block, dtype=np.float32))

    def label_embeddings(self, labels: Sequence[str], templates: Sequence[str] = PRIOR_TEMPLATES) -> np.ndarray:
        """One unit embedding per label: the mean of its templated phrasings."""
        phrases = [t.format(label=label) for label in labels for t in templates]
        vectors = self.embed_texts(phrases).reshape(len(labels), len(templates), -1).mean(axis=1)
        return _unit(vectors)

    def placement(self, labels: Sequence[str]) -> list[tuple[str, str, float, bool]]:
        """For each label: (label, closest ImageNet class, cosine, placeable). A label is placeable when
        some class's names are at least ``place_threshold`` close in the text space."""
        similarity = self.embed_texts(list(labels)) @ self.class_text_embeddings("lemmas").T
        best = similarity.argmax(axis=1)
        names = self.class_names
        return [
            (label, names[b], float(similarity[i, b]), bool(similarity[i, b] >= self.place_threshold))
            for i, (label, b) in enumerate(zip(labels, best))
        ]

    # ---- photos -----------------------------------------------------------------------------------
    def probabilities(self, image_features: np.ndarray) -> np.ndarray:
        """ImageNet class probabilities (n, 1000) from pooled image features."""
        return class_probabilities(image_features, self.variant, self.temperature)

    def embed_probabilities(self, probabilities: np.ndarray) -> np.ndarray:
        """ConSE: unit probability-weighted means of the top-``top_k`` class-name embeddings."""
        k = min(self.top_k, probabilities.shape[1])
        top = np.argpartition(-probabilities, k - 1, axis=1)[:, :k]
        weights = np.take_along_axis(probabilities, top, axis=1)
        weights = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
        vectors = np.einsum("nk,nkd->nd", weights, self.class_text_embeddings()[top])
        return _unit(vectors.astype(np.float32))

    def embed_image_features(self, image_features: np.ndarray) -> np.ndarray:
        return self.embed_probabilities(self.probabilities(image_features))

    def catalog_images(self, catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
        """(prior image embeddings, image present) for every row, through the embedding cache."""
        features = self.features.transform(catalog, [self.image_encoder])
        image = np.asarray(features.blocks[self.image_encoder], dtype=np.float32)
        return self.embed_image_features(image), np.asarray(features.present[self.image_encoder], dtype=bool)

    def tags(self, image_features: np.ndarray, k: int = 3) -> list[PhotoTags]:
        """Up to ``k`` confident class names per photo; a low-confidence flag instead of a made-up tag."""
        names = self.class_names
        out = []
        for row in self.probabilities(image_features):
            order = np.argsort(-row)[:k]
            tags = [names[c] for c in order if row[c] >= self.min_confidence]
            out.append(PhotoTags(tags, bool(tags), names[order[0]], float(row[order[0]])))
        return out

    # ---- zero-shot --------------------------------------------------------------------------------
    def zero_shot_scores(
        self, image_embeddings: np.ndarray, labels: Sequence[str], templates: Sequence[str] = PRIOR_TEMPLATES
    ) -> np.ndarray:
        """Cosine (n, labels) between prior photo embeddings and label embeddings."""
        return image_embeddings @ self.label_embeddings(labels, templates).T

    def catalog_texts(self, catalog: Catalog, fields: Sequence[str] = ("title",)) -> tuple[np.ndarray, np.ndarray]:
        """(unit text embeddings, text present) for every row, through the embedding cache."""
        extractor = self.features if tuple(fields) == ("title",) else FeatureExtractor([self.text_encoder], tuple(fields))
        features = extractor.transform(catalog, [self.text_encoder])
        return _unit(np.asarray(features.blocks[self.text_encoder], dtype=np.float32)), np.asarray(
            features.present[self.text_encoder], dtype=bool
        )

    def zero_shot_probabilities(
        self, catalog: Catalog, labels: Sequence[str], use: str = "image", templates: Sequence[str] = PRIOR_TEMPLATES
    ) -> np.ndarray:
        """Softmax over ``ZERO_SHOT_SCALE`` x cosine (rows x labels) from the photo (ConSE), the title or
        both (mean of the two embeddings; a row missing one uses the other)."""
        if use not in ("image", "text", "both"):
            raise ValueError(f"use must be 'image', 'text' or 'both', not '{use}'")
        query = np.zeros((len(catalog), self.class_text_embeddings().shape[1]), dtype=np.float32)
        if use in ("image", "both"):
            image, image_ok = self.catalog_images(catalog)
            query += image * image_ok[:, None]
        if use in ("text", "both"):
            text, text_ok = self.catalog_texts(catalog)
            query += text * text_ok[:, None]
        logits = ZERO_SHOT_SCALE * _unit(query) @ self.label_embeddings(labels, templates).T
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)
