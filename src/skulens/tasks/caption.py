"""Product titles written from images: :class:`CaptionModel` (fit / generate / evaluate / save / load).

A small decoder (:mod:`skulens.heads.caption_decoder`) is trained with teacher forcing and label
smoothing on a catalog's image-title pairs, attending over the frozen EfficientNet-Lite region map
(the registered ``efficientnet-lite0-regions`` encoder, :mod:`skulens.encoders.spatial`, through the
shared embedding cache). Early stopping keeps the epoch with the best CIDEr-D on a validation
split carved from the training rows (grouped: rows sharing a normalised title or image bytes stay on one
side). Beside the decoder the model keeps two baselines — the title of the nearest training image
(pooled features, cosine) and a template of predicted attributes (linear probes on pooled features,
e.g. gender + colour + articleType on Myntra) — so every evaluation reports them next to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from skulens.catalog.schema import Catalog, CatalogError
from skulens.catalog.splits import duplicate_groups
from skulens.embed import embed_catalog
from skulens.encoders import create_encoder
from skulens.encoders.spatial import RegionEncoder, region_encoder_name
from skulens.errors import SkulensError
from skulens.heads.caption_decoder import build_decoder
from skulens.heads.caption_search import Candidate, beam_search
from skulens.heads.caption_vocab import PAD, CaptionVocabError, WordVocab
from skulens.heads.linear import LinearProbe
from skulens.metrics.captioning import caption_metrics
from skulens.progress import step
from skulens.tasks.inputs import Data, ImageInput, as_catalog, load_product_image
from skulens.tasks.model_folder import (
    ModelFolderError,
    check_config,
    check_numbers,
    read_model_folder,
    restoring,
    write_model_folder,
)
from skulens.tasks.predictor import ConfigField, catalog_row_issues, row_issue_texts, with_issues
from skulens.training.loop import TrainingLoop, TrainingSettings

TASK = "caption"
#: The fewest usable (image, title) rows a captioner is trained on.
MIN_ROWS = 4
LOG = logging.getLogger(__name__)
#: Below this many rows there is no validation split: early stopping watches the training rows.
MIN_ROWS_FOR_VALIDATION = 40
#: Attribute columns probed when present (Myntra's names); the template joins them in this order.
DEFAULT_ATTRIBUTES = ("gender", "colour", "articleType")
CONFIG_KEYS = {"encoder": "str", "architecture": "str", "hyper": "dict", "vocab": "dict", "attributes": "dict"}
#: Widest beam a caption may be searched with (each beam entry runs the decoder once per word).
MAX_BEAM = 16
#: Types and ranges of the saved ``hyper`` settings, checked before a decoder is built from them.
HYPER_LIMITS = {
    "d_model": (int, 1, 4096),
    "layers": (int, 1, 48),
    "heads": (int, 1, 64),
    "dropout": (float, 0.0, 1.0),
    "max_len": (int, 1, 256),
    "beam": (int, 1, MAX_BEAM),
    "alpha": (float, 0.0, 10.0),
    "no_repeat": (bool, 0, 1),
    "reduce_dim": (int, 1, 65_536),
    "weight_decay": (float, 0.0, 100.0),
    "min_count": (int, 1, 1_000_000),
}
#: Largest region grid a saved captioner may declare (regions, channels).
MAX_SHAPE = (4096, 65_536)


def _check_nearest(arrays: dict[str, np.ndarray], channels: int, folder: str | Path) -> None:
    """Refuse nearest-title arrays that cannot answer a request: one finite embedding of ``channels``
    values per title."""
    embeddings, titles = arrays.get("nearest.embeddings"), arrays.get("nearest.titles")
    if (
        embeddings is None
        or titles is None
        or embeddings.ndim != 2
        or titles.ndim != 1
        or embeddings.dtype.kind != "f"
        or titles.dtype.kind not in "SU"
        or len(embeddings) != len(titles)
        or embeddings.shape[1] != channels
    ):
        raise ModelFolderError(
            f"model {folder}: nearest.embeddings and nearest.titles should hold one {channels}-wide embedding per title; "
            "the folder is damaged (retrain the captioner)"
        )


class CaptionError(SkulensError, ValueError):
    """Input a captioner cannot use; the message says what to change."""

    code = "caption"


@dataclass
class Caption:
    """A generated title, the other beam candidates (title, score) and the nearest training titles."""

    title: str
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    nearest: list[tuple[str, float]] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)


def _title_list(catalog: Catalog) -> list[str]:
    if not catalog.has("title"):
        raise CatalogError(f"catalog '{catalog.name}' has no 'title' column; captioning learns from image-title pairs")
    return [
        "" if t is None or (isinstance(t, float) and np.isnan(t)) else " ".join(str(t).split()) for t in catalog.frame["title"]
    ]


def _pooled(maps: np.ndarray, rows: np.ndarray | None = None, chunk: int = 512) -> np.ndarray:
    """Mean over regions, L2-normalised rows (float32), read in chunks so memory-mapped maps stay on disk."""
    rows = np.arange(len(maps)) if rows is None else np.asarray(rows)
    out = np.concatenate(
        [np.asarray(maps[rows[i : i + chunk]], dtype=np.float32).mean(axis=1) for i in range(0, len(rows), chunk)]
    )
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-8)


def _grouped_validation(catalog: Catalog, rows: np.ndarray, val_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    groups = duplicate_groups(catalog.subset(rows))
    unique = np.unique(groups)
    rng = np.random.default_rng(seed)
    val_groups = set(rng.permutation(unique)[: max(1, int(round(val_size * len(unique))))].tolist())
    in_val = np.array([g in val_groups for g in groups])
    return rows[~in_val], rows[in_val]


@dataclass(frozen=True)
class CaptionConfig(TrainingSettings):
    """A captioner's settings (saved in ``config.json``: ``encoder_name``, ``attribute_columns`` and the
    training/decoding ones under ``hyper``): the :class:`TrainingSettings` (patience counts epochs without a
    better validation CIDEr-D) and the decoder's. ``encoder`` is a region encoder's registry name."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.01
    patience: int = 4
    encoder: str = "efficientnet-lite0-regions"
    architecture: str = "transformer"
    d_model: int = 256
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    label_smoothing: float = 0.1
    min_count: int = 2
    max_len: int = 20
    beam: int = 3
    alpha: float = 0.0
    no_repeat: bool = True
    attributes: tuple[str, ...] = DEFAULT_ATTRIBUTES
    val_size: float = 0.1
    reduce_dim: int = 256
    max_val_rows: int = 400


#: The config fields saved under ``hyper`` (the others have their own keys in ``config.json``).
HYPER_KEYS = tuple(f.name for f in fields(CaptionConfig) if f.name not in ("encoder", "attributes"))


class CaptionModel:
    """Image -> product title. ``fit(catalog)`` needs a ``title`` and an ``image`` column."""

    task: ClassVar[str] = TASK
    #: Caption requests are answered directly (no micro-batching worker).
    batched: ClassVar[bool] = False
    modalities: ClassVar[frozenset[str]] = frozenset({"image"})

    def __init__(
        self,
        encoder: str = "efficientnet-lite0-regions",
        architecture: str = "transformer",
        d_model: int = 256,
        layers: int = 2,
        heads: int = 4,
        dropout: float = 0.1,
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 5e-4,
        label_smoothing: float = 0.1,
        patience: int = 4,
        min_count: int = 2,
        max_len: int = 20,
        beam: int = 3,
        alpha: float = 0.0,
        no_repeat: bool = True,
        attributes: Sequence[str] = DEFAULT_ATTRIBUTES,
        val_size: float = 0.1,
        reduce_dim: int = 256,
        max_val_rows: int = 400,
        seed: int = 0,
        weight_decay: float = 0.01,
        progress: bool = True,
    ) -> None:
        given = locals()  # one argument per config field
        settings = {f.name: given[f.name] for f in fields(CaptionConfig)}
        self.config = CaptionConfig(**settings | {"encoder": region_encoder_name(encoder), "attributes": tuple(attributes)})
        self.progress = progress
        self._spatial: RegionEncoder | None = None
        self.fit_report_: dict = {}

    @property
    def hyper(self) -> dict:
        """The training and decoding settings (the ``hyper`` entry of ``config.json``)."""
        return {k: v for k, v in asdict(self.config).items() if k in HYPER_KEYS}

    #: The registry name of the region encoder (``config.encoder``).
    encoder_name = ConfigField[str](field="encoder")
    attribute_columns = ConfigField[list[str]](list, field="attributes")

    # ------------------------------------------------------------------ features
    @property
    def spatial(self) -> RegionEncoder:
        """The registered region encoder the decoder reads."""
        if self._spatial is None:
            encoder = create_encoder(self.encoder_name)
            if not isinstance(encoder, RegionEncoder):
                raise CaptionError(f"encoder '{self.encoder_name}' gives no region maps; use e.g. efficientnet-lite0-regions")
            self._spatial = encoder
        return self._spatial

    @property
    def encoders(self) -> list[str]:
        """The image encoder the decoder reads (one)."""
        return [self.encoder_name]

    def encoder_identities(self) -> dict[str, str]:
        """Encoder name -> identity of the image encoder whose region maps the decoder reads."""
        return {self.encoder_name: self.spatial.identity}

    def catalog_maps(self, catalog: Catalog, cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Region maps ``(rows, regions, channels)`` float16 and the readable-image mask of every catalog row,
        through the shared embedding cache (``cache_dir``, default ``$SKULENS_CACHE``)."""
        spatial = self.spatial
        result = embed_catalog(catalog, spatial, cache_dir=cache_dir, progress=self.progress)
        maps = result.vectors.reshape(len(catalog), spatial.regions, spatial.channels).astype(np.float16)
        return maps, result.present

    def _fit_reduction(self, maps: np.ndarray, rows: np.ndarray, sample_rows: int = 400) -> None:
        """A fixed PCA of region vectors (fitted on up to ``sample_rows`` training images) down to
        ``reduce_dim`` channels: 5x less decoder input work per step; 0 keeps every channel."""
        k = self.hyper["reduce_dim"]
        if not k or k >= maps.shape[2]:
            self.reduce_mean_ = self.reduce_components_ = None
            return
        rng = np.random.default_rng(self.hyper["seed"])
        sample = np.sort(rng.choice(rows, size=min(sample_rows, len(rows)), replace=False))
        x = np.asarray(maps[sample], dtype=np.float32).reshape(-1, maps.shape[2])
        self.reduce_mean_ = x.mean(axis=0)
        x -= self.reduce_mean_
        _, vectors = np.linalg.eigh(x.T @ x / len(x))
        self.reduce_components_ = np.ascontiguousarray(vectors[:, ::-1][:, :k]).astype(np.float32)

    def _reduce(self, maps: np.ndarray, rows: np.ndarray, chunk: int = 256) -> np.ndarray:
        """Region features of ``rows`` as float32 (rows, regions, decoder channels)."""
        parts = []
        for start in range(0, len(rows), chunk):
            x = np.asarray(maps[rows[start : start + chunk]], dtype=np.float32)
            parts.append(x if self.reduce_components_ is None else (x - self.reduce_mean_) @ self.reduce_components_)
        return np.concatenate(parts) if parts else np.zeros((0, self.regions_, self.decoder_channels), dtype=np.float32)

    @property
    def decoder_channels(self) -> int:
        return self.channels_ if self.reduce_components_ is None else int(self.reduce_components_.shape[1])

    def _decoder(self, vocab_size: int, channels: int, regions: int) -> torch.nn.Module:
        h = self.hyper
        return build_decoder(
            h["architecture"],
            vocab_size=vocab_size,
            channels=channels,
            regions=regions,
            d_model=h["d_model"],
            layers=h["layers"],
            heads=h["heads"],
            dropout=h["dropout"],
            max_len=h["max_len"],
        )

    # ------------------------------------------------------------------ training
    def usable_rows(self, catalog: Catalog, ok: np.ndarray) -> tuple[np.ndarray, dict]:
        """Rows with a title and a readable image, and counts of the rows skipped and why."""
        titles = _title_list(catalog)
        has_title = np.array([bool(t) for t in titles])
        skipped = {"no_title": int((~has_title).sum()), "no_readable_image": int((has_title & ~ok).sum())}
        return np.flatnonzero(has_title & ok), skipped

    def fit(
        self, data: Data, maps: np.ndarray | None = None, ok: np.ndarray | None = None, root: str | Path | None = None
    ) -> CaptionModel:
        """Train on ``data`` (a Catalog, DataFrame or file, read by :func:`~skulens.tasks.inputs.as_catalog`
        with image paths under ``root``; ``maps``/``ok`` from :meth:`catalog_maps` when already computed)."""
        catalog = as_catalog(data, root=root)
        if maps is None or ok is None:
            with step(f"region maps of {len(catalog):,} photos ({self.encoder_name})", enabled=self.progress):
                maps, ok = self.catalog_maps(catalog)
        if len(maps) != len(catalog):
            raise CaptionError(f"{len(maps)} image maps for {len(catalog)} catalog rows; compute them from this catalog")
        rows, skipped = self.usable_rows(catalog, np.asarray(ok, dtype=bool))
        if len(rows) < MIN_ROWS:
            raise CaptionError(
                f"catalog '{catalog.name}' has {len(rows)} rows with both a title and a readable image "
                f"({skipped['no_title']} without title, {skipped['no_readable_image']} without a readable image); "
                f"a captioner needs at least {MIN_ROWS}"
            )
        h = self.hyper
        torch.manual_seed(h["seed"])
        titles = _title_list(catalog)
        if len(rows) >= MIN_ROWS_FOR_VALIDATION:
            fit_rows, val_rows = _grouped_validation(catalog, rows, h["val_size"], h["seed"])
        else:
            fit_rows, val_rows = rows, rows
        with step(f"vocabulary of {len(fit_rows):,} titles and region reduction", enabled=self.progress):
            try:
                self.vocab_ = WordVocab.build([titles[r] for r in fit_rows], h["min_count"])
            except CaptionVocabError:
                self.vocab_ = WordVocab.build([titles[r] for r in fit_rows], 1)
            self.channels_, self.regions_ = int(maps.shape[2]), int(maps.shape[1])
            started = time.perf_counter()
            self._fit_reduction(maps, fit_rows)
            self.model_ = self._decoder(len(self.vocab_), self.decoder_channels, self.regions_)
        attributes = [c for c in self.attribute_columns if catalog.has(c)]
        with step(f"attribute probes ({', '.join(attributes) or 'none'}) and nearest titles", enabled=self.progress):
            self._fit_probes(catalog, maps, rows)
            self.nearest_embeddings_ = _pooled(maps, rows).astype(np.float16)
            self.nearest_titles_ = np.array([titles[r] for r in rows])
        if len(val_rows) > h["max_val_rows"]:  # per-epoch greedy decoding of validation rows is the slow part
            val_rows = np.sort(np.random.default_rng(h["seed"]).choice(val_rows, h["max_val_rows"], replace=False))
        features = self._reduce(maps, rows)
        history = self._train(
            features, [titles[r] for r in rows], np.searchsorted(rows, fit_rows), np.searchsorted(rows, val_rows)
        )
        self.fit_report_ = {
            "rows": int(len(rows)),
            "fit_rows": int(len(fit_rows)),
            "validation_rows": int(len(val_rows)),
            "validation": "grouped split of training rows"
            if len(rows) >= MIN_ROWS_FOR_VALIDATION
            else "training rows (catalog too small)",
            "skipped": skipped,
            "vocab_size": len(self.vocab_),
            "unknown_word_share": self.vocab_.unknown_share([titles[r] for r in val_rows]),
            "history": history,
            "best_epoch": int(np.argmax([e["val_cider"] for e in history]) + 1),
            "train_seconds": time.perf_counter() - started,
        }
        return self

    def _fit_probes(self, catalog: Catalog, maps: np.ndarray, rows: np.ndarray) -> None:
        self.probes_: dict[str, LinearProbe] = {}
        columns = [c for c in self.attribute_columns if catalog.has(c)]
        if not columns:
            return
        pooled = _pooled(maps, rows)
        for column in columns:
            values = catalog.frame[column].iloc[rows]
            known = values.notna().to_numpy()
            labels = values[known].astype(str).to_numpy()
            if len(np.unique(labels)) < 2 or known.sum() < 10:
                continue
            self.probes_[column] = LinearProbe(seed=self.hyper["seed"]).fit(pooled[known], labels)

    def _batches(
        self, features: np.ndarray, tokens: torch.Tensor, lengths: np.ndarray, rows: np.ndarray, rng: np.random.Generator
    ):
        """One epoch of (region features, title tokens) batches in a fresh random order; ``tokens`` holds every
        title encoded once (padded), each batch is cut to its longest title."""
        order = rng.permutation(rows)
        size = self.hyper["batch_size"]
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            yield torch.from_numpy(features[chunk]), tokens[chunk, : int(lengths[chunk].max())]

    def _train(self, features: np.ndarray, titles: list[str], fit_rows: np.ndarray, val_rows: np.ndarray) -> list[dict]:
        """Teacher-forced epochs over ``features[fit_rows]`` (reduced region features, one per title)."""
        h = self.hyper
        config = self.config.loop_config(monitor="val_cider", schedule="one_cycle", warmup=0.1, clip_norm=1.0)
        rng = np.random.default_rng(h["seed"])
        val_refs = [titles[r] for r in val_rows]
        encoded = [self.vocab_.encode(title, h["max_len"]) for title in titles]  # every title's tokens, once
        lengths = np.array([len(ids) for ids in encoded])
        tokens = torch.full((len(encoded), int(lengths.max())), PAD, dtype=torch.long)
        for i, ids in enumerate(encoded):
            tokens[i, : len(ids)] = torch.tensor(ids)

        def loss_of(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            batch_maps, words = batch
            logits = self.model_.logits(self.model_.memory(batch_maps), words[:, :-1])
            flat = logits.reshape(-1, logits.shape[-1])
            return F.cross_entropy(flat, words[:, 1:].reshape(-1), ignore_index=PAD, label_smoothing=h["label_smoothing"])

        def validate(epoch: int, train_loss: float) -> dict:
            score = caption_metrics([c.title for c in self._decode(features[val_rows], beam=1)], val_refs)
            return {"epoch": epoch, "loss": train_loss, "val_cider": score["cider"], "val_bleu": score["bleu"]}

        loop = TrainingLoop(self.model_, config, steps_per_epoch=-(-len(fit_rows) // h["batch_size"]))
        result = loop.run(
            lambda size: self._batches(features, tokens, lengths, fit_rows, rng),
            loss_of,
            validate,
            on_epoch=lambda record: LOG.info("caption epoch %s", record),
            progress="caption decoder epochs" if self.progress else None,
        )
        self.model_.eval()
        return result.history

    # ------------------------------------------------------------------ generation
    @torch.inference_mode()
    def _generate_maps(self, maps: np.ndarray, rows: np.ndarray, beam: int | None = None, chunk: int = 128) -> list[Caption]:
        out: list[Caption] = []
        for start in range(0, len(rows), chunk):
            out.extend(self._decode(self._reduce(maps, rows[start : start + chunk]), beam))
        return out

    @torch.inference_mode()
    def _decode(self, features: np.ndarray, beam: int | None = None, chunk: int = 128) -> list[Caption]:
        beam = self.hyper["beam"] if beam is None else beam
        self.model_.eval()
        out: list[Caption] = []
        for start in range(0, len(features), chunk):
            batch = torch.from_numpy(features[start : start + chunk])
            found = beam_search(
                self.model_, self.model_.memory(batch), beam, self.hyper["max_len"], self.hyper["alpha"], self.hyper["no_repeat"]
            )
            out.extend(self._caption(candidates) for candidates in found)
        return out

    def _caption(self, candidates: list[Candidate]) -> Caption:
        texts = [(self.vocab_.decode(c.tokens), float(c.score)) for c in candidates]
        texts = [(t, s) for t, s in texts if t]
        if not texts:
            raise CaptionError(
                "the decoder produced no word for this image (its vocabulary is empty or damaged); retrain the model"
            )
        return Caption(title=texts[0][0], alternatives=texts[1:])

    def _check_beam(self, beam: int | None) -> None:
        if beam is not None and not (type(beam) is int and 1 <= beam <= MAX_BEAM):
            raise CaptionError(f"beam must be an integer from 1 (greedy) to {MAX_BEAM}, not {str(beam)[:20]}")

    def generate_from_maps(self, maps: np.ndarray, beam: int | None = None, nearest: int = 0) -> list[Caption]:
        """Titles for precomputed region maps (n, regions, channels); ``nearest`` > 0 adds that many nearest
        training titles and the predicted attributes to each caption."""
        self._check_fitted()
        self._check_beam(beam)
        if maps.ndim != 3 or maps.shape[1:] != (self.regions_, self.channels_):
            raise CaptionError(f"region maps of shape {maps.shape[1:]} do not fit this model's {(self.regions_, self.channels_)}")
        captions = self._generate_maps(maps, np.arange(len(maps)), beam)
        if nearest > 0 and len(maps):
            pooled = _pooled(maps)
            scores = pooled @ self.nearest_embeddings_.astype(np.float32).T
            top = np.argsort(-scores, axis=1)[:, :nearest]
            attributes = self.predict_attributes(pooled)
            for i, caption in enumerate(captions):
                caption.nearest = [(str(self.nearest_titles_[j]), float(scores[i, j])) for j in top[i]]
                caption.attributes = {name: str(values[i]) for name, values in attributes.items()}
        return captions

    def generate(self, images: Sequence[Image.Image], beam: int | None = None, nearest: int = 0) -> list[Caption]:
        """Titles for PIL images (decoded with :func:`skulens.catalog.images.load_image` or ``decode_image``)."""
        self._check_fitted()
        for i, image in enumerate(images):
            if not isinstance(image, Image.Image):
                raise CaptionError(
                    f"input {i} is a {type(image).__name__}, not an image; decode files with skulens.catalog.images.load_image"
                )
        return self.generate_from_maps(self.spatial.maps(list(images)), beam, nearest)

    # ------------------------------------------------------------------ the predictor contract
    def predict(self, data: Data, root: str | Path | None = None) -> pd.DataFrame:
        """One row per product of ``data`` (read like :meth:`fit`): ``id``, the generated ``title``, ``issue``
        (a product whose photo cannot be read gets no title, only its issue)."""
        self._check_fitted()
        data = as_catalog(data, root=root)
        maps, ok = self.catalog_maps(data)
        ok = np.asarray(ok, dtype=bool)
        titles: list[str | None] = [None] * len(data)
        for row, caption in zip(np.flatnonzero(ok).tolist(), self._generate_maps(maps, np.flatnonzero(ok))):
            titles[row] = caption.title
        issues = row_issue_texts(len(data), catalog_row_issues(data))
        issues = [issue or ("" if readable else "no readable image") for issue, readable in zip(issues, ok)]
        return with_issues(data.ids, {"title": titles}, issues)

    def predict_one(self, image: ImageInput, beam: int | None = None, nearest: int = 0) -> Caption:
        """The caption of one photo (a file path, bytes or a PIL image)."""
        picture = load_product_image(image)
        if picture is None:
            raise CaptionError("give a product photo to caption")
        return self.generate([picture], beam=beam, nearest=nearest)[0]

    def serve_batch(self, items: list[dict]) -> list[Caption]:
        """Captions of served items (each the keyword arguments of :meth:`predict_one`)."""
        return [self.predict_one(**item) for item in items]

    def warm_up(self) -> None:
        self.generate([Image.new("RGB", (64, 64), (128, 128, 128))], beam=1)

    def predict_attributes(self, pooled: np.ndarray) -> dict[str, np.ndarray]:
        return {name: probe.predict(pooled) for name, probe in self.probes_.items()}

    def template_titles(self, pooled: np.ndarray) -> list[str]:
        """The template baseline: predicted attributes joined in ``attribute_columns`` order."""
        predicted = self.predict_attributes(pooled)
        names = [c for c in self.attribute_columns if c in predicted]
        return [" ".join(str(predicted[c][i]) for c in names) for i in range(len(pooled))]

    def retrieval_titles(self, pooled: np.ndarray) -> list[str]:
        """The retrieval baseline: the title of the most similar training image."""
        scores = pooled @ self.nearest_embeddings_.astype(np.float32).T
        return [str(t) for t in self.nearest_titles_[scores.argmax(axis=1)]]

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self,
        data: Data,
        maps: np.ndarray | None = None,
        ok: np.ndarray | None = None,
        beam: int | None = None,
        resamples: int = 1000,
        root: str | Path | None = None,
    ) -> dict:
        """Decoder, retrieval and template metrics on the usable rows of ``data`` (read like :meth:`fit`),
        attribute accuracy per probed column the data has, generation throughput, and the generated
        titles (``examples``)."""
        self._check_fitted()
        self._check_beam(beam)
        catalog = as_catalog(data, root=root)
        if maps is None or ok is None:
            with step(f"region maps of {len(catalog):,} photos ({self.encoder_name})", enabled=self.progress):
                maps, ok = self.catalog_maps(catalog)
        rows, skipped = self.usable_rows(catalog, np.asarray(ok, dtype=bool))
        if len(rows) == 0:
            raise CaptionError(
                f"catalog '{catalog.name}' has no row with both a title and a readable image to evaluate on "
                f"({skipped['no_title']} without title, {skipped['no_readable_image']} without a readable image; image paths "
                "resolve against the catalog file's folder and --image-root)"
            )
        references = [_title_list(catalog)[r] for r in rows]
        started = time.perf_counter()
        captions = self._generate_maps(maps, rows, beam)
        seconds = time.perf_counter() - started
        generated = [c.title for c in captions]
        pooled = _pooled(maps, rows)
        result = {
            "decoder": caption_metrics(generated, references, resamples=resamples),
            "retrieval": caption_metrics(self.retrieval_titles(pooled), references),
            "skipped": skipped,
            "captions_per_s": len(rows) / seconds,
            "beam": self.hyper["beam"] if beam is None else beam,
            "n": int(len(rows)),
        }
        if self.probes_:
            result["template"] = caption_metrics(self.template_titles(pooled), references)
            predicted = self.predict_attributes(pooled)
            accuracy = {}
            for name, values in predicted.items():
                if name not in catalog.frame.columns:  # an optional column this catalog lacks: nothing to score
                    continue
                truth = catalog.frame[name].iloc[rows]
                known = truth.notna().to_numpy()
                accuracy[name] = float((truth[known].astype(str).to_numpy() == values[known]).mean()) if known.any() else None
            result["attribute_accuracy"] = accuracy
        ids = catalog.ids
        result["examples"] = [
            {"id": ids[r], "reference": ref, "generated": gen} for r, ref, gen in zip(rows.tolist(), references, generated)
        ]
        return result

    # ------------------------------------------------------------------ persistence
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise CaptionError("this CaptionModel is not trained: call fit(catalog) or CaptionModel.load(folder)")

    def save(self, folder: str | Path) -> Path:
        self._check_fitted()
        arrays = {f"decoder.{k}": v.detach().numpy() for k, v in self.model_.state_dict().items()}
        for name, probe in self.probes_.items():
            arrays.update({f"probe.{name}.{k}": v for k, v in probe.to_arrays().items()})
        if self.reduce_components_ is not None:
            arrays.update({"reduce.mean": self.reduce_mean_, "reduce.components": self.reduce_components_})
        arrays["nearest.embeddings"] = self.nearest_embeddings_
        arrays["nearest.titles"] = self.nearest_titles_.astype(str)
        config = {
            "task": TASK,
            "encoder": self.spatial.identity,
            "encoder_name": self.encoder_name,
            "architecture": self.hyper["architecture"],
            "hyper": self.hyper,
            "shape": [self.regions_, self.channels_],
            "vocab": self.vocab_.to_config(),
            "attributes": {name: [str(c) for c in probe.classes_] for name, probe in self.probes_.items()},
            "attribute_columns": self.attribute_columns,
            "fit_report": self.fit_report_,
        }
        return write_model_folder(folder, config, arrays)

    @classmethod
    def load(cls, folder: str | Path, progress: bool = False) -> CaptionModel:
        config, arrays = read_model_folder(folder, TASK)
        check_config(config, CONFIG_KEYS, folder)
        check_numbers(config["hyper"], HYPER_LIMITS, folder, "hyper")
        shape = config.get("shape")
        if not (
            isinstance(shape, list) and len(shape) == 2 and all(type(v) is int and 1 <= v <= m for v, m in zip(shape, MAX_SHAPE))
        ):
            raise ModelFolderError(f"model {folder}: 'shape' in config.json should be [regions, channels]; the folder is damaged")
        _check_nearest(arrays, shape[1], folder)
        with restoring(folder):
            name = str(config.get("encoder_name") or config["encoder_variant"])  # older folders say "lite0"
            model = cls(encoder=name, attributes=config["attribute_columns"], progress=progress)
            model.config = replace(model.config, **{k: v for k, v in config["hyper"].items() if k in HYPER_KEYS})
            if config["encoder"] not in (model.spatial.identity, model.spatial.legacy_identity):
                raise ModelFolderError(
                    f"model {folder} was trained on image features '{config['encoder']}', but this skulens gives "
                    f"'{model.spatial.identity}'; retrain the captioner with this encoder"
                )
            model.vocab_ = WordVocab.from_config(config["vocab"])
            model.regions_, model.channels_ = (int(v) for v in config["shape"])
            model.reduce_mean_, model.reduce_components_ = arrays.get("reduce.mean"), arrays.get("reduce.components")
            model.model_ = model._decoder(len(model.vocab_), model.decoder_channels, model.regions_)
            state = {k[len("decoder.") :]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("decoder.")}
            model.model_.load_state_dict(state, strict=True)
            model.model_.eval()
            model.probes_ = {
                name: LinearProbe.from_arrays(
                    {k.split(".", 2)[2]: v for k, v in arrays.items() if k.startswith(f"probe.{name}.")}, np.array(classes)
                )
                for name, classes in config["attributes"].items()
            }
            model.nearest_embeddings_ = arrays["nearest.embeddings"]
            model.nearest_titles_ = arrays["nearest.titles"]
            model.fit_report_ = config.get("fit_report", {})
        return model
