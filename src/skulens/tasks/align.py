"""skulens' own image-text space: contrastive projection heads on frozen encoders, trained on a catalog's
image-title pairs (LiT-style), and what it gives: zero-shot categories, text/image search, similar
products and near-duplicate listings.

The frozen features are the concatenation of the chosen image encoders (default EfficientNet-Lite0 + Lite2 +
the colour/HOG/LBP classical features) and text encoders (default MiniLM + a TF-IDF fitted on the
training titles). A saved model is a folder: ``config.json`` + ``weights.npz`` (numeric and string arrays,
read without pickle).

Probabilities (zero-shot) are a softmax over ``logit_scale * cosine``, with the temperature learned by
the contrastive loss; they are comparable across labels of one query, not calibrated per class.
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from skulens.catalog.images import ImageLoadError, decode_image, read_image_bytes
from skulens.catalog.schema import Catalog, CatalogError
from skulens.catalog.splits import group_split, normalise_text, text_groups
from skulens.encoders import Encoder, EncoderError, create_encoder
from skulens.encoders.text import TfidfEncoder
from skulens.heads.align import AlignConfig, AlignmentHeads
from skulens.index import SearchIndexError, VectorIndex
from skulens.tasks.features import FeatureExtractor, Features
from skulens.tasks.model_folder import ModelFolderError, read_model_folder, write_model_folder

TASK = "align"
MIN_PAIRS = 64
DEFAULT_IMAGE_ENCODERS = ("efficientnet-lite0", "efficientnet-lite2", "classical-image")
DEFAULT_TEXT_ENCODERS = ("minilm", "tfidf")
TFIDF_MAX_FEATURES = 4096
#: Prompt ensemble: generic phrasings plus the gender / colour words product titles carry.
DEFAULT_TEMPLATES = (
    "{label}",
    "a photo of {label}",
    "a product photo of {label}",
    "{label} for men",
    "{label} for women",
    "men {label}",
    "women {label}",
    "black {label}",
    "blue {label}",
    "white {label}",
)


class AlignmentError(ValueError):
    """Input an alignment model cannot use (too few pairs, empty query, unknown script...)."""


def _scripts(text: str) -> Counter:
    """Letters of ``text`` counted by Unicode script (the first word of the character name: LATIN, CYRILLIC...)."""
    counts: Counter = Counter()
    for char in text:
        if char.isalpha():
            counts[unicodedata.name(char, "UNKNOWN").split(" ")[0]] += 1
    return counts


def _normalise_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def _as_catalog(data: Catalog | pd.DataFrame, root: str | Path | None = None) -> Catalog:
    if isinstance(data, Catalog):
        return data
    if isinstance(data, pd.DataFrame):
        return Catalog(data.copy(), root=Path(root) if root else None, name="dataframe")
    raise AlignmentError(f"expected a Catalog or a pandas DataFrame, got {type(data).__name__}")


@dataclass
class DedupeResult:
    """Near-duplicate pairs (``pairs``: id_a, id_b, score, image_sim, text_sim, exact) and how the threshold was set."""

    pairs: pd.DataFrame
    threshold: float
    threshold_source: str
    exact_pairs: int
    precision: float | None
    recall: float | None


class AlignmentModel:
    """Images and texts of products in one normalised space (see the module docstring).

    ``fit(catalog)`` trains on rows that have both an image and a text; ``encode_images`` /
    ``encode_texts`` embed new inputs; ``zero_shot`` ranks label names for products; ``build_index`` +
    ``search`` / ``similar`` retrieve products; ``dedupe`` lists near-duplicate listings.
    """

    def __init__(
        self,
        image_encoders: Sequence[str] = DEFAULT_IMAGE_ENCODERS,
        text_encoders: Sequence[str] = DEFAULT_TEXT_ENCODERS,
        text_fields: Sequence[str] = ("title",),
        config: AlignConfig | None = None,
        val_fraction: float = 0.1,
        refit: bool = True,
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
        progress: bool = False,
    ) -> None:
        if not image_encoders or not text_encoders:
            raise AlignmentError("an alignment needs at least one image encoder and one text encoder")
        self.image_encoders = list(image_encoders)
        self.text_encoders = list(text_encoders)
        self.text_fields = tuple(text_fields)
        self.config = config or AlignConfig()
        self.val_fraction = val_fraction
        self.refit = refit
        self.features = FeatureExtractor(
            self.image_encoders + self.text_encoders,
            self.text_fields,
            cache_dir=cache_dir,
            use_cache=use_cache,
            progress=progress,
            factory=_create_encoder,
        )
        self.heads: AlignmentHeads | None = None
        self._identity: str | None = None
        self.scripts: list[str] = []
        self.trained_pairs = 0
        self.encoder_identities: dict[str, str] = {}

    @property
    def encoders(self) -> list[str]:
        """The frozen encoders, image ones first."""
        return self.image_encoders + self.text_encoders

    # ---- encoders and frozen features -------------------------------------------------------------
    def encoder(self, name: str) -> Encoder:
        return self.features.encoder(name)

    def catalog_features(self, catalog: Catalog) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Frozen (image features, image present, text features, text present) for every catalog row."""
        features = self.features.transform(catalog)
        image, text = self.image_encoders, self.text_encoders
        return (
            _dense_blocks(features, image),
            np.logical_and.reduce([features.present[n] for n in image]),
            _dense_blocks(features, text),
            np.logical_or.reduce([features.present[n] for n in text]),
        )

    def text_features(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        return _dense_blocks(self.features.transform_inputs([None] * len(texts), texts, self.text_encoders), self.text_encoders)

    def image_features(self, images: Sequence[Image.Image]) -> np.ndarray:
        images = list(images)
        features = self.features.transform_inputs(images, [""] * len(images), self.image_encoders)
        return _dense_blocks(features, self.image_encoders)

    # ---- training -------------------------------------------------------------------------------
    def fit(self, data: Catalog | pd.DataFrame, log=None) -> AlignmentModel:
        """Train the projections on the catalog's rows that have an image and a text.

        A group-aware ``val_fraction`` of the pairs (no normalised title on both sides) drives early stopping;
        with ``refit`` the heads are then retrained on every pair for the number of epochs chosen there.
        """
        catalog = _as_catalog(data)
        self._identity = None
        try:
            self.features.fit(catalog)
        except EncoderError as exc:
            raise AlignmentError(f"cannot fit the text encoders on catalog '{catalog.name}': {exc}") from None
        image, image_ok, text, text_ok = self.catalog_features(catalog)
        usable = np.flatnonzero(image_ok & text_ok)
        if len(usable) < MIN_PAIRS:
            raise AlignmentError(
                f"catalog '{catalog.name}' has {len(usable)} products with both an image and a text "
                f"({', '.join(self.text_fields)}); training an alignment needs at least {MIN_PAIRS} such pairs"
            )
        pairs = catalog.subset(usable)
        train_rows, val_rows = np.arange(len(usable)), np.arange(0)
        if self.val_fraction > 0 and len(usable) >= 2 * MIN_PAIRS:
            groups = text_groups(pairs, self.text_fields)
            position = pd.Series(np.arange(len(pairs)), index=pairs.ids)
            train_part, val_part = group_split(pairs, self.val_fraction, groups=groups, seed=self.config.seed)
            train_rows, val_rows = position[train_part.ids].to_numpy(), position[val_part.ids].to_numpy()
        image, text = image[usable], text[usable]
        self.heads = AlignmentHeads(image.shape[1], text.shape[1], self.config)
        self.heads.fit(image[train_rows], text[train_rows], image[val_rows], text[val_rows], log=log)
        if self.refit and len(val_rows):
            chosen = self.heads
            epochs = chosen.best_epoch + 1
            self.heads = AlignmentHeads(image.shape[1], text.shape[1], replace(self.config, max_epochs=epochs))
            self.heads.fit(image, text, log=log)
            self.heads.history = chosen.history + [{"refit_on_all_pairs": len(usable), "epochs": epochs}]
            self.heads.best_epoch = chosen.best_epoch
        train_rows = np.arange(len(usable)) if self.refit and len(val_rows) else train_rows
        scripts = Counter()
        for title in pairs.texts(self.text_fields):
            scripts.update(_scripts(title))
        self.scripts = sorted(s for s, n in scripts.items() if n >= max(1, 0.001 * sum(scripts.values())))
        self.trained_pairs = len(train_rows)
        self.encoder_identities = {n: self.encoder(n).identity for n in self.image_encoders + self.text_encoders}
        return self

    @classmethod
    def from_clip(cls, path: str | Path, cache_dir: str | Path | None = None) -> AlignmentModel:
        """A real CLIP checkpoint's own image-text space, without training: its image and text towers
        (``hf-clip:`` / ``hf-clip-text:``) with identity projections and CLIP's own temperature."""
        model = cls([f"hf-clip:{path}"], [f"hf-clip-text:{path}"], cache_dir=cache_dir)
        image, text = model.encoder(model.image_encoders[0]), model.encoder(model.text_encoders[0])
        config = AlignConfig(dim=image.dim, dropout=0.0)
        heads = AlignmentHeads(image.dim, text.dim, config)
        with torch.no_grad():
            for projection in (heads.image_proj[1], heads.text_proj[1]):
                projection.weight.copy_(torch.eye(image.dim))
                projection.bias.zero_()
            scale = getattr(image.model, "logit_scale", None)
            heads.logit_scale.fill_(float(scale) if scale is not None else math.log(1.0 / config.init_temperature))
        heads.eval()
        model.config, model.heads = config, heads
        model.encoder_identities = {n: model.encoder(n).identity for n in model.encoders}
        return model

    def _require_fitted(self) -> AlignmentHeads:
        if self.heads is None:
            raise AlignmentError("the alignment model is not trained: call fit(catalog) or AlignmentModel.load(folder)")
        return self.heads

    @property
    def identity(self) -> str:
        """``align:<hash>``: changes whenever the weights or the frozen encoders change (computed once)."""
        heads = self._require_fitted()
        if self._identity is not None:
            return self._identity
        digest = hashlib.sha256()
        for key, value in sorted(heads.to_arrays().items()):
            digest.update(key.encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        for name, identity in sorted(self.encoder_identities.items()):
            digest.update(f"{name}={identity}".encode())
        for name in self.text_encoders:
            encoder = self.encoder(name)
            if isinstance(encoder, TfidfEncoder):
                digest.update("\n".join(encoder.to_arrays()["terms"].tolist()).encode())
        self._identity = f"align:{digest.hexdigest()[:16]}"
        return self._identity

    @property
    def logit_scale(self) -> float:
        return self._require_fitted().scale

    # ---- encoding ---------------------------------------------------------------------------------
    def check_query(self, text: str) -> str:
        """A query text, or a clear error when it is empty or written in a script the model never saw."""
        if not isinstance(text, str) or not text.strip():
            raise AlignmentError("the query is empty: type some words describing the product")
        scripts = _scripts(text)
        if scripts and self.scripts and not set(scripts) & set(self.scripts):
            raise AlignmentError(
                f"the query is written in {', '.join(sorted(scripts))} script, but this model was trained on "
                f"{', '.join(self.scripts)} text only; write the query in that script"
            )
        return text.strip()

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised embeddings (n, dim) of texts."""
        heads = self._require_fitted()
        return heads.encode_text(self.text_features([self.check_query(t) for t in texts]))

    def encode_images(self, images: Sequence[Image.Image | bytes | str | Path] | Catalog) -> np.ndarray:
        """Normalised embeddings (n, dim) of images (PIL, bytes or paths) or of every row of a catalog
        (rows without a usable image get a zero vector)."""
        heads = self._require_fitted()
        if isinstance(images, Catalog):
            features, present, _, _ = self.catalog_features(images)
            out = heads.encode_image(features)
            out[~present] = 0.0
            return out
        return heads.encode_image(self.image_features([_open_image(i) for i in images]))

    def encode_catalog(self, catalog: Catalog) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(image embeddings, image present, text embeddings, text present) of every row."""
        heads = self._require_fitted()
        image, image_ok, text, text_ok = self.catalog_features(catalog)
        image_emb, text_emb = heads.encode_image(image), heads.encode_text(text)
        image_emb[~image_ok] = 0.0
        text_emb[~text_ok] = 0.0
        return image_emb, image_ok, text_emb, text_ok

    # ---- zero-shot --------------------------------------------------------------------------------
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
        return _normalise_rows(emb)

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
                mean = _normalise_rows(image[rows].mean(axis=0, keepdims=True))[0]
                out[i] = prompt_weight * prompt[i] + (1 - prompt_weight) * mean
        return _normalise_rows(out)

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
        catalog = _as_catalog(data)
        classes = class_embeddings if class_embeddings is not None else self.label_embeddings(labels, templates)
        image, image_ok, text, text_ok = self.encode_catalog(catalog)
        if use == "image":
            query = image
        elif use == "text":
            query = text
        else:
            query = _normalise_rows(image * image_ok[:, None] + text * text_ok[:, None])
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
        query = _normalise_rows(np.sum(parts, axis=0, keepdims=True))[0]
        logits = self.logit_scale * classes @ query
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        order = np.argsort(-probs)[: min(k, len(labels))]
        return [(str(labels[j]), float(probs[j])) for j in order]

    # ---- search -----------------------------------------------------------------------------------
    def build_index(
        self,
        catalog: Catalog,
        columns: Sequence[str] | None = None,
        kind: str = "auto",
        use: str = "image",
    ) -> VectorIndex:
        """An index of the catalog's products (their image embeddings, or ``text`` / ``both``) with
        ``columns`` kept for filters and display (default: the non-schema text-like columns + title, image)."""
        image, image_ok, text, text_ok = self.encode_catalog(catalog)
        if use == "image":
            vectors, ok = image, image_ok
        elif use == "text":
            vectors, ok = text, text_ok
        elif use == "both":
            vectors, ok = _normalise_rows(image * image_ok[:, None] + text * text_ok[:, None]), image_ok | text_ok
        else:
            raise AlignmentError(f"use must be 'image', 'text' or 'both', not '{use}'")
        rows = np.flatnonzero(ok)
        if len(rows) == 0:
            raise AlignmentError(f"catalog '{catalog.name}' has no product with a usable {use} to index")
        frame = catalog.frame.iloc[rows]
        if columns is None:
            columns = [c for c in frame.columns if c not in ("id", "category", "description", "review_text")]
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise AlignmentError(
                f"catalog '{catalog.name}' has no column {', '.join(missing)}; it has {', '.join(frame.columns)}"
            )
        metadata = frame[list(columns)].copy()
        if "category" in frame.columns and "category" not in columns:
            metadata["category"] = frame["category"].map(lambda p: " > ".join(p) if isinstance(p, tuple) else None)
        extra = {"vectors": use, "catalog": catalog.name, "image_root": str(catalog.root) if catalog.root else None}
        return VectorIndex.build(vectors[rows], [catalog.ids[i] for i in rows], self.identity, metadata, kind=kind, extra=extra)

    def search(
        self,
        index: VectorIndex,
        text: str | None = None,
        image: Image.Image | bytes | str | Path | None = None,
        k: int = 10,
        where: dict | None = None,
    ) -> list[dict]:
        """Top-``k`` products for a text or an image query: ``[{id, score, corpus_id, **metadata}]``."""
        index.check_identity(self.identity)
        if (text is None) == (image is None):
            raise AlignmentError("give exactly one query: a text or an image")
        query = self.encode_texts([text]) if text is not None else self.encode_images([image])
        return [_hit_dict(hit) for hit in index.search(query, k, where)[0]]

    def similar(self, index: VectorIndex, product_id: str, k: int = 10, where: dict | None = None) -> list[dict]:
        """The ``k`` products most similar to an indexed product (itself excluded)."""
        index.check_identity(self.identity)
        return similar_products(index, product_id, k, where)

    # ---- near-duplicates ----------------------------------------------------------------------------
    def dedupe(
        self,
        data: Catalog | pd.DataFrame,
        threshold: float | None = None,
        neighbours: int = 10,
        default_threshold: float = 0.9,
    ) -> DedupeResult:
        """Pairs of listings whose image and text are both near-identical (score = mean of the two cosines).

        Without ``threshold``, it is chosen on the catalog itself: the score that best separates (F1) the
        candidate pairs that are exact duplicates (identical image bytes or identical normalised titles)
        from the rest; precision and recall against those exact pairs are reported (precision is a lower
        bound: a near duplicate that is not exact counts against it). Without exact duplicates,
        ``default_threshold`` is used and precision is None.
        """
        catalog = _as_catalog(data)
        image, image_ok, text, text_ok = self.encode_catalog(catalog)
        ok = np.flatnonzero(image_ok & text_ok)
        if len(ok) < 2:
            raise AlignmentError(f"catalog '{catalog.name}' needs at least two products with an image and a text to dedupe")
        both = np.hstack([image[ok], text[ok]]) / np.sqrt(2.0)
        index = VectorIndex.build(both, [catalog.ids[i] for i in ok], "dedupe", kind="auto")
        hits = index.search(both, min(neighbours + 1, len(ok)))
        keys = _exact_keys(catalog)
        seen, records = set(), []
        for a, row_hits in enumerate(hits):
            for hit in row_hits:
                b = hit.corpus_id
                if a == b or (min(a, b), max(a, b)) in seen:
                    continue
                seen.add((min(a, b), max(a, b)))
                ra, rb = ok[a], ok[b]
                exact = bool(
                    (keys["image"][ra] and keys["image"][ra] == keys["image"][rb])
                    or (keys["title"][ra] and keys["title"][ra] == keys["title"][rb])
                )
                records.append(
                    (catalog.ids[ra], catalog.ids[rb], hit.score, float(image[ra] @ image[rb]), float(text[ra] @ text[rb]), exact)
                )
        pairs = pd.DataFrame(records, columns=["id_a", "id_b", "score", "image_sim", "text_sim", "exact"])
        exact_total = int(pairs["exact"].sum())
        source = "given"
        if threshold is None:
            threshold, source = (
                (_best_threshold(pairs), "chosen on exact duplicates (best F1)")
                if exact_total
                else (
                    default_threshold,
                    "default (no exact duplicates to choose it on)",
                )
            )
        kept = pairs[pairs["score"] >= threshold].sort_values("score", ascending=False).reset_index(drop=True)
        precision = float(kept["exact"].mean()) if exact_total and len(kept) else None
        recall = float(kept["exact"].sum() / exact_total) if exact_total else None
        return DedupeResult(kept, float(threshold), source, exact_total, precision, recall)

    # ---- persistence ------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        heads = self._require_fitted()
        arrays = {f"heads.{k}": v for k, v in heads.to_arrays().items()}
        arrays.update(self.features.to_arrays())
        config = {
            "task": TASK,
            "image_encoders": self.image_encoders,
            "text_encoders": self.text_encoders,
            "text_fields": list(self.text_fields),
            "align": self.config.to_dict(),
            "encoder_identities": self.encoder_identities,
            "scripts": self.scripts,
            "trained_pairs": self.trained_pairs,
            "best_epoch": heads.best_epoch,
            "history": heads.history,
            "logit_scale": heads.scale,
            "identity": self.identity,
        }
        return write_model_folder(folder, config, arrays)

    @classmethod
    def load(cls, folder: str | Path, cache_dir: str | Path | None = None, check_encoders: bool = True) -> AlignmentModel:
        config, arrays = read_model_folder(folder, TASK)
        model = cls(
            config["image_encoders"],
            config["text_encoders"],
            tuple(config["text_fields"]),
            AlignConfig.from_dict(config["align"]),
            cache_dir=cache_dir,
        )
        model.features.restore({k: v for k, v in arrays.items() if not k.startswith("heads.")})
        heads_arrays = {k[len("heads.") :]: v for k, v in arrays.items() if k.startswith("heads.")}
        model.heads = AlignmentHeads.from_arrays(heads_arrays, model.config)
        model.heads.best_epoch = config.get("best_epoch", -1)
        model.scripts = config.get("scripts", [])
        model.trained_pairs = config.get("trained_pairs", 0)
        model.encoder_identities = config.get("encoder_identities", {})
        if check_encoders:
            for name, saved in model.encoder_identities.items():
                if name in model.text_encoders and isinstance(model.encoder(name), TfidfEncoder):
                    continue
                current = model.encoder(name).identity
                if current != saved:
                    raise ModelFolderError(
                        f"alignment {folder} was trained on encoder {saved}, but this install has {current}; retrain it"
                    )
        return model


def _create_encoder(name: str) -> Encoder:
    """The registry's encoder, except ``tfidf`` which gets the alignment's vocabulary size and ``min_df``."""
    return TfidfEncoder(max_features=TFIDF_MAX_FEATURES, min_df=2) if name == "tfidf" else create_encoder(name)


def _dense_blocks(features: Features, names: Sequence[str]) -> np.ndarray:
    """The blocks of ``names`` side by side as one dense float32 matrix (TF-IDF blocks densified)."""
    blocks = [features.blocks[n].toarray() if hasattr(features.blocks[n], "toarray") else features.blocks[n] for n in names]
    return np.hstack([np.asarray(b, dtype=np.float32) for b in blocks])


def similar_products(index: VectorIndex, product_id: str, k: int = 10, where: dict | None = None) -> list[dict]:
    """The ``k`` indexed products nearest to ``product_id`` (itself excluded)."""
    if k > len(index) - 1:
        raise SearchIndexError(f"k={k} is larger than the other products in the index ({len(index) - 1})")
    hits = index.search(index.vector(product_id), min(k + 1, len(index)), where)[0]
    return [_hit_dict(hit) for hit in hits if hit.id != str(product_id)][:k]


def _hit_dict(hit) -> dict:
    return {"id": hit.id, "score": hit.score, "corpus_id": hit.corpus_id, **hit.metadata}


def _open_image(item: Image.Image | bytes | str | Path) -> Image.Image:
    """A query image from PIL, bytes or a file path, decoded with the catalog's safety checks."""
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, (str, Path)):
        path = Path(item)
        if not path.is_file():
            raise AlignmentError(f"query image {path} does not exist")
        data, name = path.read_bytes(), str(path)
    elif isinstance(item, (bytes, bytearray)):
        data, name = bytes(item), "query image"
    else:
        raise AlignmentError(f"a query image must be a PIL image, bytes or a path, not {type(item).__name__}")
    try:
        return decode_image(data, name=name)
    except (ImageLoadError, OSError) as exc:
        raise AlignmentError(f"{name} is not a usable image: {exc}") from None


def _exact_keys(catalog: Catalog) -> dict[str, list[str]]:
    """Per row: a hash of the image bytes ('' without a readable image) and the normalised title."""
    image_keys = []
    paths = catalog.frame["image"].tolist() if "image" in catalog.frame.columns else [None] * len(catalog)
    for path in paths:
        try:
            image_keys.append(hashlib.sha256(read_image_bytes(path, catalog.root)).hexdigest() if path else "")
        except (ImageLoadError, OSError, CatalogError):
            image_keys.append("")
    titles = catalog.frame["title"].map(normalise_text).tolist() if "title" in catalog.frame.columns else [""] * len(catalog)
    return {"image": image_keys, "title": titles}


def _best_threshold(pairs: pd.DataFrame) -> float:
    """The score threshold with the best F1 of 'score >= t' against the ``exact`` column."""
    scores = pairs["score"].to_numpy()
    exact = pairs["exact"].to_numpy()
    order = np.argsort(-scores)
    hits = np.cumsum(exact[order])
    flagged = np.arange(1, len(order) + 1)
    f1 = 2 * hits / (flagged + exact.sum())
    best = int(np.argmax(f1))
    return float(scores[order][best])
