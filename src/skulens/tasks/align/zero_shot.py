"""Zero-shot and few-shot categories from label names: prompt-ensembled label embeddings scored against products."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from skulens.catalog.schema import Catalog
from skulens.tasks.align.common import DEFAULT_TEMPLATES, AlignmentError, normalise_rows
from skulens.tasks.features import Features
from skulens.tasks.inputs import Data, as_catalog

LOG = logging.getLogger(__name__)


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
        # Plain substitution of '{label}' only: a template is user text, never a format string.
        prompts = [t.replace("{label}", label) for label in labels for t in templates]
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
        data: Data | str | Path,
        labels: Sequence[str],
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        use: str = "image",
        class_embeddings: np.ndarray | None = None,
        features: Features | None = None,
        root: str | Path | None = None,
    ) -> np.ndarray:
        """Probabilities (rows x labels) from ``use`` = ``image``, ``text`` or ``both`` (mean of the two
        embeddings; a row missing one modality uses the other); ``features``: the catalog's, if already
        extracted. ``data`` is read by :func:`~skulens.tasks.inputs.as_catalog` (image paths under ``root``).
        A row with nothing usable (no readable image for ``use="image"``...) gets NaN probabilities, never
        an invented answer, and the count is logged."""
        if use not in ("image", "text", "both"):
            raise AlignmentError(f"use must be 'image', 'text' or 'both', not '{use}'")
        catalog = as_catalog(data, root=root)
        if class_embeddings is None and self.zero_shot_blended(use):
            score, image_ok, text_ok = self._blended_scores(catalog, labels, templates, use, features)
        else:
            with self.learned_only():
                classes = class_embeddings if class_embeddings is not None else self.label_embeddings(labels, templates)
                image, image_ok, text, text_ok = self.encode_catalog(catalog, features)
            if use == "image":
                query = image
            elif use == "text":
                query = text
            else:
                query = normalise_rows(image * image_ok[:, None] + text * text_ok[:, None])
            score = query @ classes.T
        usable = {"image": image_ok, "text": text_ok, "both": image_ok | text_ok}[use]
        logits = self.logit_scale * score
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        probs[~usable] = np.nan
        if not usable.all():
            LOG.warning(
                "%d of %d products of '%s' have no usable %s: no label given (see catalog.issues)",
                int((~usable).sum()),
                len(catalog),
                catalog.name,
                "image or text" if use == "both" else use,
            )
        return probs

    def zero_shot_blended(self, use: str) -> bool:
        """Whether zero-shot from ``use`` mixes in the training-free prior (a blend weight above 0)."""
        keys = {"image": ("zero_shot_image",), "text": ("zero_shot_text",), "both": ("zero_shot_image", "zero_shot_text")}[use]
        return any(self.blend_weights_.get(key, 0.0) > 0 for key in keys)

    def unplaced_labels(self, labels: Sequence[str]) -> list[tuple[str, str, float]]:
        """Labels the prior's ImageNet vocabulary cannot place: (label, closest class, cosine)."""
        return [(label, best, score) for label, best, score, ok in self.prior.placement(labels) if not ok]

    def _blended_scores(
        self, catalog: Catalog, labels: Sequence[str], templates: Sequence[str], use: str, features: Features | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cosines, image present, text present): the learned space's and the prior's cosines mixed by the
        zero-shot blend weights. The photo part drops the prior when some label is one its vocabulary cannot
        place (see :meth:`unplaced_labels`; ``zero_shot_note`` says so)."""
        with self.learned_only():
            classes = self.label_embeddings(labels, templates)
            image, image_ok, text, text_ok = self.encode_catalog(catalog, features)
        prior = self.prior
        prior_labels = prior.label_embeddings(list(labels))
        unplaced = self.unplaced_labels(labels) if use != "text" else []
        self.zero_shot_note = (
            "the ImageNet vocabulary cannot place "
            + ", ".join(f"'{label}' (closest '{best}', {score:.2f})" for label, best, score in unplaced)
            + "; photos are scored with the learned space alone"
            if unplaced
            else None
        )
        w_image = 0.0 if unplaced else self.blend_weights_.get("zero_shot_image", 0.0)
        w_text = self.blend_weights_.get("zero_shot_text", 0.0)
        score = np.zeros((len(catalog), len(labels)), dtype=np.float32)
        if use in ("image", "both"):
            part = (1 - w_image) * image @ classes.T
            if w_image > 0:
                part += w_image * prior.catalog_images(catalog)[0] @ prior_labels.T
            score += part * image_ok[:, None]
        if use in ("text", "both"):
            part = (1 - w_text) * text @ classes.T
            if w_text > 0:
                part += w_text * prior.catalog_texts(catalog, self.text_fields)[0] @ prior_labels.T
            score += part * text_ok[:, None]
        if use == "both":
            score /= np.maximum(image_ok.astype(np.float32) + text_ok, 1)[:, None]
        return score, image_ok, text_ok

    def zero_shot(
        self,
        data: Data | str | Path,
        labels: Sequence[str],
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        k: int = 5,
        use: str = "image",
        root: str | Path | None = None,
    ) -> list[list[tuple[str, float]]]:
        """Top-``k`` (label, probability) for every row, from label names alone; an empty list for a row
        with nothing usable (see :meth:`zero_shot_scores`)."""
        probs = self.zero_shot_scores(data, labels, templates, use, root=root)
        order = np.argsort(-np.nan_to_num(probs, nan=-1.0), axis=1)[:, : min(k, len(labels))]
        return [[] if np.isnan(p).any() else [(str(labels[j]), float(p[j])) for j in row] for row, p in zip(order, probs)]

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
