"""The alignment model: frozen encoders + contrastive projection heads, training, encoding and persistence."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from PIL import Image

from skulens.catalog.images import ImageLoadError, decode_image
from skulens.catalog.schema import Catalog
from skulens.catalog.splits import family_keys, group_split, normalise_title, text_groups
from skulens.encoders import Encoder, EncoderError, create_encoder
from skulens.encoders.text import TfidfEncoder
from skulens.heads.align import AlignConfig, AlignmentHeads
from skulens.heads.align_ridge import ridge_heads
from skulens.metrics import classification_metrics
from skulens.metrics.retrieval import recall_at_k
from skulens.tasks.align.common import (
    DEFAULT_IMAGE_ENCODERS,
    DEFAULT_TEMPLATES,
    DEFAULT_TEXT_ENCODERS,
    MIN_PAIRS,
    TASK,
    TFIDF_MAX_FEATURES,
    AlignmentError,
)
from skulens.tasks.align.dedupe import DedupeMixin
from skulens.tasks.align.search import SearchMixin
from skulens.tasks.align.zero_shot import ZeroShotMixin
from skulens.tasks.features import FeatureExtractor, Features
from skulens.tasks.inputs import Data, as_catalog
from skulens.tasks.model_folder import (
    ModelFolderError,
    check_config,
    check_numbers,
    encoder_sources,
    read_model_folder,
    restoring,
    write_model_folder,
)
from skulens.tasks.predictor import WARM_UP_TEXT, ConfigField, catalog_row_issues, row_issue_texts, with_issues
from skulens.tasks.scripts import count_scripts, reads_scripts


@dataclass(frozen=True)
class AlignmentConfig:
    """An alignment's settings (saved in ``config.json``): its frozen encoders, the text it reads, the
    validation split and refit, and the projection heads' training (``heads``, an :class:`AlignConfig`)."""

    image_encoders: tuple[str, ...] = DEFAULT_IMAGE_ENCODERS
    text_encoders: tuple[str, ...] = DEFAULT_TEXT_ENCODERS
    text_fields: tuple[str, ...] = ("title",)
    val_fraction: float = 0.1
    refit: bool = True
    heads: AlignConfig = field(default_factory=AlignConfig)


class AlignmentModel(ZeroShotMixin, SearchMixin, DedupeMixin):
    """Images and texts of products in one normalised space (see the module docstring).

    ``fit(catalog)`` trains on rows that have both an image and a text; ``encode_images`` /
    ``encode_texts`` embed new inputs; ``zero_shot`` ranks label names for products; ``build_index`` +
    ``search`` / ``similar`` retrieve products; ``dedupe`` lists near-duplicate listings. As a
    :class:`~skulens.tasks.predictor.Predictor`, ``predict`` / ``predict_one`` are zero-shot categories
    over ``labels_`` (the top-level categories of the training rows, or labels given to the call).
    """

    task: ClassVar[str] = TASK
    #: Search and zero-shot requests are answered directly (no micro-batching worker).
    batched: ClassVar[bool] = False
    modalities: ClassVar[frozenset[str]] = frozenset({"image", "text"})

    def __init__(
        self,
        image_encoders: Sequence[str] = DEFAULT_IMAGE_ENCODERS,
        text_encoders: Sequence[str] = DEFAULT_TEXT_ENCODERS,
        text_fields: Sequence[str] = ("title",),
        head_config: AlignConfig | None = None,
        val_fraction: float = 0.1,
        refit: bool = True,
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
        progress: bool = False,
    ) -> None:
        if not image_encoders or not text_encoders:
            raise AlignmentError("an alignment needs at least one image encoder and one text encoder")
        self.config = AlignmentConfig(
            tuple(image_encoders), tuple(text_encoders), tuple(text_fields), val_fraction, refit, head_config or AlignConfig()
        )
        self.features = FeatureExtractor(
            self.image_encoders + self.text_encoders,
            self.text_fields,
            cache_dir=cache_dir,
            use_cache=use_cache,
            progress=progress,
            factory=_create_encoder,
        )
        self.heads_: AlignmentHeads | None = None
        self._identity: str | None = None
        self.scripts_: list[str] = []
        self.trained_pairs_ = 0
        self.encoder_identities_: dict[str, str] = {}
        self.labels_: list[str] = []
        #: The training-free prior's share per use ("search", "zero_shot_image", "zero_shot_text"); 0 = learned only.
        self.blend_weights_: dict[str, float] = {}
        self._prior = None
        self._cache_dir = cache_dir
        self._learned_only = False
        self.zero_shot_note: str | None = None
        self.adapt_note: str | None = None

    # ---- the settings, as in config ---------------------------------------------------------------
    image_encoders = ConfigField[list[str]](list)
    text_encoders = ConfigField[list[str]](list)
    text_fields = ConfigField[tuple[str, ...]]()
    val_fraction = ConfigField[float]()
    refit = ConfigField[bool]()

    def encoder_identities(self) -> dict[str, str]:
        """Encoder name -> identity (name, version and weights hash) of the frozen encoders."""
        return dict(self.encoder_identities_)

    @property
    def encoders(self) -> list[str]:
        """The frozen encoders, image ones first."""
        return self.image_encoders + self.text_encoders

    # ---- encoders and frozen features -------------------------------------------------------------
    def encoder(self, name: str) -> Encoder:
        return self.features.encoder(name)

    def catalog_features(
        self, catalog: Catalog, features: Features | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Frozen (image features, image present, text features, text present) for every catalog row
        (from ``features`` when the catalog's are already extracted)."""
        features = features if features is not None else self.features.transform(catalog)
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
    def fit(self, data: Data | str | Path, log=None, root: str | Path | None = None) -> AlignmentModel:
        """Train the projections on the rows of ``data`` (read by :func:`~skulens.tasks.inputs.as_catalog`,
        image paths under ``root``) that have an image and a text.

        A group-aware ``val_fraction`` of the pairs (no normalised title on both sides) drives early stopping;
        with ``refit`` the heads are then retrained on every pair for the number of epochs chosen there.
        """
        catalog = as_catalog(data, root=root)
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
            train_part, val_part = group_split(pairs, self.val_fraction, groups=groups, seed=self.config.heads.seed)
            train_rows, val_rows = position[train_part.ids].to_numpy(), position[val_part.ids].to_numpy()
        image, text = image[usable], text[usable]
        if self.config.heads.ridge_alpha > 0:  # closed form: photos mapped into the frozen text space
            self.heads_ = ridge_heads(image, text, self.config.heads.ridge_alpha, seed=self.config.heads.seed)
            self.config = replace(self.config, heads=self.heads_.config)
            train_rows, val_rows = np.arange(len(usable)), np.arange(0)
        else:
            self._fit_contrastive(image, text, train_rows, val_rows, log, pairs)
        train_rows = np.arange(len(usable)) if self.refit and len(val_rows) else train_rows
        scripts = Counter()
        for title in pairs.texts(self.text_fields):
            scripts.update(count_scripts(title))
        self.scripts_ = sorted(s for s, n in scripts.items() if n >= max(1, 0.001 * sum(scripts.values())))
        self.trained_pairs_ = len(train_rows)
        self.encoder_identities_ = {n: self.encoder(n).identity for n in self.image_encoders + self.text_encoders}
        self.labels_ = _top_level_labels(pairs)
        return self

    def adapt(self, data: Data, base: AlignmentModel) -> AlignmentModel:
        """Start from ``base`` (a ridge space such as the packaged base space) and adapt it to this catalog's
        photo-title pairs; with fewer than ``MIN_PAIRS`` pairs the base space is kept unchanged and
        ``adapt_note`` says so. Encoders, fitted text features and blend weights come from ``base``."""
        if base.config.heads.ridge_alpha <= 0:
            raise AlignmentError(
                "only ridge spaces (like the packaged base space) can be adapted; train this catalog from scratch"
            )
        catalog = as_catalog(data)
        image, image_ok, text, text_ok = base.catalog_features(catalog)
        usable = np.flatnonzero(image_ok & text_ok)
        if len(usable) < MIN_PAIRS:
            base.adapt_note = (
                f"catalog '{catalog.name}' has {len(usable)} photo-title pairs, too few to adapt (at least {MIN_PAIRS}); "
                "using the base space unchanged"
            )
            return base
        self.config, self.features, self.blend_weights_ = base.config, base.features, dict(base.blend_weights_)
        heads = ridge_heads(
            image[usable], text[usable], base.config.heads.ridge_alpha, seed=base.config.heads.seed, start=base.heads_
        )
        heads.history = base.heads_.history + [{"adapted_on": len(usable), "catalog": catalog.name}]
        self.heads_ = heads
        scripts = Counter()
        for title in catalog.subset(usable).texts(self.text_fields):
            scripts.update(count_scripts(title))
        self.scripts_ = sorted(set(base.scripts_) | {s for s, n in scripts.items() if n >= max(1, 0.001 * sum(scripts.values()))})
        self.trained_pairs_ = len(usable)
        self.encoder_identities_ = dict(base.encoder_identities_)
        self.labels_ = sorted(set(base.labels_) | set(_top_level_labels(catalog)))
        self._identity = None
        self.adapt_note = f"adapted the base space to {len(usable):,} photo-title pairs of '{catalog.name}'"
        return self

    def _fit_contrastive(
        self, image: np.ndarray, text: np.ndarray, train_rows: np.ndarray, val_rows: np.ndarray, log, pairs: Catalog
    ) -> None:
        """Contrastive projection heads, trained with early stopping on ``val_rows``, then (``refit``)
        retrained on all pairs for the chosen number of epochs. With ``hard_negatives`` > 0 the batches
        hold product families (:func:`~skulens.catalog.splits.family_keys`) and rows with identical texts are
        not each other's negatives."""
        families = titles = None
        if self.config.heads.hard_negatives > 0:
            families = family_keys(pairs)
            titles = np.array([normalise_title(t) or f"id:{i}" for t, i in zip(pairs.texts(self.text_fields), pairs.ids)])
        self.heads_ = AlignmentHeads(image.shape[1], text.shape[1], self.config.heads)
        self.heads_.fit(
            image[train_rows],
            text[train_rows],
            image[val_rows],
            text[val_rows],
            log=log,
            families=None if families is None else families[train_rows],
            titles=None if titles is None else titles[train_rows],
        )
        if self.refit and len(val_rows):
            chosen = self.heads_
            epochs = chosen.best_epoch + 1
            self.heads_ = AlignmentHeads(image.shape[1], text.shape[1], replace(self.config.heads, epochs=epochs))
            self.heads_.fit(image, text, log=log, families=families, titles=titles)
            self.heads_.history = chosen.history + [{"refit_on_all_pairs": len(image), "epochs": epochs}]
            self.heads_.best_epoch = chosen.best_epoch

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
        model.config, model.heads_ = replace(model.config, heads=config), heads
        model.encoder_identities_ = {n: model.encoder(n).identity for n in model.encoders}
        return model

    def _require_fitted(self) -> AlignmentHeads:
        if self.heads_ is None:
            raise AlignmentError("the alignment model is not trained: call fit(catalog) or AlignmentModel.load(folder)")
        return self.heads_

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
        for name, identity in sorted(self.encoder_identities_.items()):
            digest.update(f"{name}={identity}".encode())
        for use, weight in sorted(self.blend_weights_.items()):
            if weight:
                digest.update(f"blend:{use}={weight}".encode())
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
        if self.scripts_ and not reads_scripts(text, self.scripts_):
            raise AlignmentError(
                f"the query is written in {', '.join(sorted(count_scripts(text)))} script, but this model was trained on "
                f"{', '.join(self.scripts_)} text only; write the query in that script"
            )
        return text.strip()

    # ---- the training-free prior, blended in ---------------------------------------------------------
    @property
    def prior(self):
        """The ImageNet-vocabulary prior (:class:`~skulens.tasks.prior.VisionLanguagePrior`), created on first use."""
        if self._prior is None:
            from skulens.tasks.prior import VisionLanguagePrior

            self._prior = VisionLanguagePrior(cache_dir=self._cache_dir)
        return self._prior

    def _search_weight(self) -> float:
        return 0.0 if self._learned_only else float(self.blend_weights_.get("search", 0.0))

    @contextmanager
    def learned_only(self):
        """Within the block, ``encode_*`` give the learned space alone (no prior part appended)."""
        previous, self._learned_only = self._learned_only, True
        try:
            yield self
        finally:
            self._learned_only = previous

    @staticmethod
    def _join(learned: np.ndarray, prior: np.ndarray, weight: float) -> np.ndarray:
        """``[sqrt(1-w) learned, sqrt(w) prior]``: dot products of such vectors are ``(1-w) cos_learned + w cos_prior``."""
        return np.hstack([math.sqrt(1 - weight) * learned, math.sqrt(weight) * prior]).astype(np.float32)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised embeddings (n, dim) of texts (with the prior's part appended when blended)."""
        heads = self._require_fitted()
        texts = [self.check_query(t) for t in texts]
        learned = heads.encode_text(self.text_features(texts))
        weight = self._search_weight()
        return self._join(learned, self.prior.embed_texts(texts), weight) if weight > 0 else learned

    def encode_images(self, images: Sequence[Image.Image | bytes | str | Path] | Catalog) -> np.ndarray:
        """Normalised embeddings (n, dim) of images (PIL, bytes or paths) or of every row of a catalog
        (rows without a usable image get a zero vector)."""
        heads = self._require_fitted()
        weight = self._search_weight()
        if isinstance(images, Catalog):
            features, present, _, _ = self.catalog_features(images)
            out = heads.encode_image(features)
            if weight > 0:
                out = self._join(out, self.prior.catalog_images(images)[0], weight)
            out[~present] = 0.0
            return out
        opened = [_open_image(i) for i in images]
        out = heads.encode_image(self.image_features(opened))
        if weight > 0:
            prior = self.prior
            pooled = prior.features.transform_inputs(opened, [""] * len(opened), [prior.image_encoder]).blocks[
                prior.image_encoder
            ]
            out = self._join(out, prior.embed_image_features(np.asarray(pooled, dtype=np.float32)), weight)
        return out

    def encode_catalog(
        self, catalog: Catalog, features: Features | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(image embeddings, image present, text embeddings, text present) of every row."""
        heads = self._require_fitted()
        image, image_ok, text, text_ok = self.catalog_features(catalog, features)
        image_emb, text_emb = heads.encode_image(image), heads.encode_text(text)
        weight = self._search_weight()
        if weight > 0:
            image_emb = self._join(image_emb, self.prior.catalog_images(catalog)[0], weight)
            text_emb = self._join(text_emb, self.prior.catalog_texts(catalog, self.text_fields)[0], weight)
        image_emb[~image_ok] = 0.0
        text_emb[~text_ok] = 0.0
        return image_emb, image_ok, text_emb, text_ok

    # ---- the predictor contract: zero-shot categories over labels_ ------------------------------------
    def _labels(self, labels: Sequence[str] | None) -> list[str]:
        """The labels given, else ``labels_`` (a clear error when the model recorded none)."""
        if labels is not None:
            return list(labels)
        if len(self.labels_) < 2:
            raise AlignmentError(
                "give the label names to choose from (labels=[...]): this model recorded no categories when it was trained"
            )
        return list(self.labels_)

    def predict(self, data: Catalog | pd.DataFrame, labels: Sequence[str] | None = None, use: str = "both") -> pd.DataFrame:
        """One row per product: ``id``, the zero-shot ``label`` and its ``probability``, ``issue``.

        ``labels`` default to ``labels_``. A product without a usable photo or text (for ``use``) gets no
        label, only its issue: never the flat 1/K answer an empty embedding would give."""
        labels = self._labels(labels)
        catalog = as_catalog(data)
        features = self.features.transform(catalog)
        probs = self.zero_shot_scores(catalog, labels, use=use, features=features)
        _, image_ok, _, text_ok = self.catalog_features(catalog, features)
        read = {"image": image_ok, "text": text_ok, "both": image_ok | text_ok}[use]
        missing = "photo or text" if use == "both" else use
        issues = row_issue_texts(len(catalog), catalog_row_issues(catalog, features.issues))
        issues = [issue or ("" if ok else f"no usable {missing}") for issue, ok in zip(issues, read)]
        best = probs.argmax(axis=1)
        chosen = [labels[j] if ok else None for j, ok in zip(best, read)]
        probability = [float(probs[i, j]) if ok else float("nan") for i, (j, ok) in enumerate(zip(best, read))]
        return with_issues(catalog.ids, {"label": chosen, "probability": probability}, issues)

    def predict_one(
        self,
        image: Image.Image | bytes | str | Path | None = None,
        text: str | None = None,
        labels: Sequence[str] | None = None,
        k: int = 5,
        templates: Sequence[str] = DEFAULT_TEMPLATES,
    ) -> list[tuple[str, float]]:
        """Top-``k`` (label, probability) of one product (a photo, a text or both), over ``labels`` or ``labels_``."""
        return self.zero_shot_inputs(self._labels(labels), image=image, text=text, templates=templates, k=k)

    def evaluate(self, data: Catalog | pd.DataFrame, labels: Sequence[str] | None = None) -> dict:
        """Photo -> title retrieval recall@1/5/10 among the rows with both, and zero-shot classification
        metrics against the rows' top-level categories (when the catalog has them)."""
        catalog = as_catalog(data)
        image, image_ok, text, text_ok = self.encode_catalog(catalog)
        both = image_ok & text_ok
        if both.sum() < 2:
            raise AlignmentError(f"catalog '{catalog.name}' needs at least two products with a photo and a text to evaluate")
        metrics: dict = {"n_pairs": int(both.sum())}
        recall = recall_at_k(image[both], text[both], ks=(1, 5, 10))
        metrics.update({f"image_to_text_recall@{k}": float(v) for k, v in recall.items()})
        truth = _top_level(catalog)
        if truth is not None and len(self.labels_ if labels is None else labels) >= 2:
            labels = self._labels(labels)
            predicted = self.predict(catalog, labels)
            known = predicted["label"].notna().to_numpy() & np.isin(truth, labels)
            if known.any():
                zero_shot = classification_metrics(
                    truth[known], predicted["label"].to_numpy()[known].astype(str), np.array(labels)
                )
                metrics["zero_shot"] = {k: zero_shot[k] for k in ("accuracy", "macro_f1", "n") if k in zero_shot}
        return metrics

    def serve_batch(self, items: list[dict]) -> list[list[tuple[str, float]]]:
        """Zero-shot answers of served items (each the keyword arguments of :meth:`predict_one`)."""
        return [self.predict_one(**item) for item in items]

    def warm_up(self) -> None:
        self.encode_texts([WARM_UP_TEXT])

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
            "val_fraction": self.val_fraction,
            "refit": self.refit,
            "align": self.config.heads.to_dict(),
            "encoder_identities": self.encoder_identities_,
            "scripts": self.scripts_,
            "trained_pairs": self.trained_pairs_,
            "labels": self.labels_,
            "best_epoch": heads.best_epoch,
            "history": heads.history,
            "logit_scale": heads.scale,
            "identity": self.identity,
            "blend_weights": self.blend_weights_,
        }
        return write_model_folder(folder, config, arrays)

    @classmethod
    def load(cls, folder: str | Path, cache_dir: str | Path | None = None, check_encoders: bool = True) -> AlignmentModel:
        """Load a folder written by :meth:`save`, or ``"base"``: the packaged base space (weights hash
        checked). A damaged or tampered folder is one :class:`ModelFolderError` (config types and ranges,
        encoder paths inside the folder or ``$SKULENS_MODELS_ROOT``, weight shapes checked against the config
        before the heads are built)."""
        from skulens.tasks.align.base_space import base_space_folder, is_base, verify_base_space

        if is_base(folder):
            folder = base_space_folder()
            verify_base_space(folder)
        config, arrays = read_model_folder(folder, TASK)
        check_config(config, {"image_encoders": "str_list", "text_encoders": "str_list", "text_fields": "str_list"}, folder)
        check_numbers(config.get("align"), ALIGN_LIMITS, folder, "align")
        if not isinstance(config.get("encoder_identities", {}), dict):
            raise ModelFolderError(
                f"model {folder}: 'encoder_identities' in config.json should be an object; the folder is damaged"
            )
        with restoring(folder):
            model = cls(
                config["image_encoders"],
                config["text_encoders"],
                tuple(config["text_fields"]),
                AlignConfig.from_dict(config["align"]),
                val_fraction=config.get("val_fraction", 0.1),
                refit=config.get("refit", True),
                cache_dir=cache_dir,
            )
            model.features.sources = encoder_sources(model.features.names, folder)
            model.features.restore({k: v for k, v in arrays.items() if not k.startswith("heads.")})
            heads_arrays = {k[len("heads.") :]: v for k, v in arrays.items() if k.startswith("heads.")}
            check_state_shapes(AlignmentHeads, heads_arrays, model.config.heads, folder)
            model.heads_ = AlignmentHeads.from_arrays(heads_arrays, model.config.heads)
        model.heads_.best_epoch = config.get("best_epoch", -1)
        model.scripts_ = config.get("scripts", [])
        model.trained_pairs_ = config.get("trained_pairs", 0)
        model.encoder_identities_ = config.get("encoder_identities", {})
        model.labels_ = [str(label) for label in config.get("labels", [])]
        model.blend_weights_ = {k: float(v) for k, v in config.get("blend_weights", {}).items()}
        if check_encoders:
            for name, saved in model.encoder_identities_.items():
                if name in model.text_encoders and isinstance(model.encoder(name), TfidfEncoder):
                    continue
                current = model.encoder(name).identity
                if current != saved:
                    raise ModelFolderError(
                        f"alignment {folder} was trained on encoder {saved}, but this install has {current}; retrain it"
                    )
        return model


#: Types and ranges of the saved ``align`` settings (what training accepts, with room to spare).
ALIGN_LIMITS = {
    "dim": (int, 1, 4096),
    "hidden": (int, 0, 16_384),
    "dropout": (float, 0.0, 1.0),
    "lr": (float, 0.0, 10.0),
    "weight_decay": (float, 0.0, 100.0),
    "batch_size": (int, 1, 1_000_000),
    "epochs": (int, 0, 100_000),
    "max_epochs": (int, 0, 100_000),  # folders saved before the shared training settings
    "patience": (int, 0, 100_000),
    "init_temperature": (float, 1e-6, 100.0),
    "seed": (int, 0, 2**32 - 1),
    "standardize_text": (bool, 0, 1),
    "ridge_alpha": (float, 0.0, 1e12),
}


def check_state_shapes(heads_class, arrays: dict[str, np.ndarray], config: AlignConfig, folder: str | Path) -> None:
    """Refuse saved head weights whose names or shapes differ from what ``config`` builds, comparing
    against heads built on PyTorch's meta device (no memory is allocated for them)."""
    means = [arrays.get("image_mean"), arrays.get("text_mean")]
    if any(m is None or m.ndim != 1 or not 1 <= m.shape[0] <= 1_000_000 for m in means):
        raise ModelFolderError(f"model {folder}: the saved heads have no usable image_mean/text_mean; the folder is damaged")
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in heads_class(means[0].shape[0], means[1].shape[0], config).state_dict().items()}
    saved = {k: tuple(v.shape) for k, v in arrays.items()}
    if saved != expected:
        wrong = sorted(k for k in expected.keys() | saved.keys() if expected.get(k) != saved.get(k))[:3]
        raise ModelFolderError(
            f"model {folder}: the saved head weights do not fit its 'align' settings ({', '.join(wrong)}); the folder is damaged"
        )


def _create_encoder(name: str) -> Encoder:
    """The registry's encoder, except ``tfidf`` which gets the alignment's vocabulary size and ``min_df``."""
    return TfidfEncoder(max_features=TFIDF_MAX_FEATURES, min_df=2) if name == "tfidf" else create_encoder(name)


def _top_level(catalog: Catalog) -> np.ndarray | None:
    """Each row's top-level category name (``None`` where it has none), or ``None`` without a category column."""
    if "category" not in catalog.frame.columns:
        return None
    return np.array([path[0] if isinstance(path, tuple) and path else None for path in catalog.frame["category"]], dtype=object)


def _top_level_labels(catalog: Catalog) -> list[str]:
    """The distinct top-level categories of a catalog (the default zero-shot labels), sorted."""
    top = _top_level(catalog)
    return sorted({str(label) for label in top if label is not None}) if top is not None else []


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
