"""The alignment model: frozen encoders + contrastive projection heads, training, encoding and persistence."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from skulens.catalog.images import ImageLoadError, decode_image
from skulens.catalog.schema import Catalog
from skulens.catalog.splits import group_split, text_groups
from skulens.encoders import Encoder, EncoderError, create_encoder
from skulens.encoders.text import TfidfEncoder
from skulens.heads.align import AlignConfig, AlignmentHeads
from skulens.tasks.align.common import (
    DEFAULT_IMAGE_ENCODERS,
    DEFAULT_TEXT_ENCODERS,
    MIN_PAIRS,
    TASK,
    TFIDF_MAX_FEATURES,
    AlignmentError,
    as_catalog,
)
from skulens.tasks.align.dedupe import DedupeMixin
from skulens.tasks.align.scripts import count_scripts
from skulens.tasks.align.search import SearchMixin
from skulens.tasks.align.zero_shot import ZeroShotMixin
from skulens.tasks.features import FeatureExtractor, Features
from skulens.tasks.model_folder import ModelFolderError, read_model_folder, write_model_folder


class AlignmentModel(ZeroShotMixin, SearchMixin, DedupeMixin):
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
        catalog = as_catalog(data)
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
            scripts.update(count_scripts(title))
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
        scripts = count_scripts(text)
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
        """A saved alignment model folder, or ``"base"``: the packaged base space (weights hash checked)."""
        from skulens.tasks.align.base_space import base_space_folder, is_base, verify_base_space

        if is_base(folder):
            folder = base_space_folder()
            verify_base_space(folder)
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
