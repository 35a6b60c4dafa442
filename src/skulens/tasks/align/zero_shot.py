"""Zero-shot and few-shot categories from label names: prompt-ensembled label embeddings scored against products."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from skulens.catalog.schema import Catalog
from skulens.tasks.align.common import DEFAULT_TEMPLATES, AlignmentError, as_catalog, normalise_rows


class ZeroShotMixin:
    """Zero-shot methods of ``AlignmentModel`` (they use its ``encode_*`` methods and ``logit_scale``)."""

    def label_embeddings(self, labels: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES) -> np.ndarray:
        """One normalised embedding per label: the mean of its prompts (prompt ensembling)."""
        labels = [str(label).strip() for label in labels]
        if len(labels) < 2 or any(not label for label in labels):
            raise AlignmentError("zero-shot needs at least two non-empty label names")
        if len(set(labels)) != len(labels):
            raise AlignmentError("label names must be unique")
        if not templates or any("{label}" not in t for t in templates):
            raise AlignmentError("every prompt template must contain '{label}', e.g. 'a photo of {label}'")
        prompts = [t.format(label=label) for label in labels for t in templates]
        emb = self.encode_texts(prompts).reshape(len(labels), len(templates), -1).mean(axis=1)
        return normalise_rows(emb)

    def prototypes(
        self,
        labels: Sequence[str],
        examples: Catalog,
        example_labels: Sequence[str],
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        prompt_weight: float = 0.5,
    ) -> np.ndarray:
        """Few-shot class embeddings: ``prompt_weight`` x the prompt embedding + the rest x the mean image
        embedding of the labelled examples (labels without examples keep their prompt embedding)."""
        prompt = self.label_embeddings(labels, templates)
        image, ok, _, _ = self.encode_catalog(examples)
        example_labels = np.asarray([str(x) for x in example_labels])
        out = prompt.copy()
        for i, label in enumerate(labels):
            rows = np.flatnonzero((example_labels == str(label)) & ok)
            if len(rows):
                mean = normalise_rows(image[rows].mean(axis=0, keepdims=True))[0]
                out[i] = prompt_weight * prompt[i] + (1 - prompt_weight) * mean
        return normalise_rows(out)

    def zero_shot_scores(
        self,
        data: Catalog | pd.DataFrame,
        labels: Sequence[str],
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        use: str = "image",
        class_embeddings: np.ndarray | None = None,
    ) -> np.ndarray:
        """Probabilities (rows x labels) from ``use`` = ``image``, ``text`` or ``both`` (mean of the two
        embeddings; a row missing one modality uses the other)."""
        if use not in ("image", "text", "both"):
            raise AlignmentError(f"use must be 'image', 'text' or 'both', not '{use}'")
        catalog = as_catalog(data)
        classes = class_embeddings if class_embeddings is not None else self.label_embeddings(labels, templates)
        image, image_ok, text, text_ok = self.encode_catalog(catalog)
        if use == "image":
            query = image
        elif use == "text":
            query = text
        else:
            query = normalise_rows(image * image_ok[:, None] + text * text_ok[:, None])
        logits = self.logit_scale * query @ classes.T
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

    def zero_shot(
        self,
        data: Catalog | pd.DataFrame,
        labels: Sequence[str],
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        k: int = 5,
        use: str = "image",
    ) -> list[list[tuple[str, float]]]:
        """Top-``k`` (label, probability) for every row, from label names alone."""
        probs = self.zero_shot_scores(data, labels, templates, use)
        order = np.argsort(-probs, axis=1)[:, : min(k, len(labels))]
        return [[(str(labels[j]), float(p[j])) for j in row] for row, p in zip(order, probs)]

    def zero_shot_inputs(
        self,
        labels: Sequence[str],
        image: Image.Image | bytes | str | Path | None = None,
        text: str | None = None,
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        k: int = 5,
    ) -> list[tuple[str, float]]:
        """Top-``k`` (label, probability) for one product given in memory: a photo, a text or both."""
        if image is None and (text is None or not text.strip()):
            raise AlignmentError("give a product photo or a title to categorise")
        classes = self.label_embeddings(labels, templates)
        parts = []
        if image is not None:
            parts.append(self.encode_images([image])[0])
        if text is not None and text.strip():
            parts.append(self.encode_texts([text])[0])
        query = normalise_rows(np.sum(parts, axis=0, keepdims=True))[0]
        logits = self.logit_scale * classes @ query
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        order = np.argsort(-probs)[: min(k, len(labels))]
        return [(str(labels[j]), float(probs[j])) for j in order]
