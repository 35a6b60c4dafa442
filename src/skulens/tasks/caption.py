"""Product titles written from images: :class:`CaptionModel` (fit / generate / evaluate / save / load).

A small decoder (:mod:`skulens.heads.caption_decoder`) is trained with teacher forcing and label
smoothing on a catalog's image-title pairs, attending over the frozen EfficientNet-Lite region map
(:mod:`skulens.encoders.spatial`). Early stopping keeps the epoch with the best CIDEr-D on a validation
split carved from the training rows (grouped: rows sharing a normalised title or image bytes stay on one
side). Beside the decoder the model keeps two baselines — the title of the nearest training image
(pooled features, cosine) and a template of predicted attributes (linear probes on pooled features,
e.g. gender + colour + articleType on Myntra) — so every evaluation reports them next to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from skulens.catalog.schema import Catalog, CatalogError
from skulens.catalog.splits import duplicate_groups
from skulens.encoders.spatial import SpatialImageEncoder
from skulens.errors import SkulensError
from skulens.heads.caption_decoder import build_decoder
from skulens.heads.caption_search import Candidate, beam_search
from skulens.heads.caption_vocab import PAD, CaptionVocabError, WordVocab
from skulens.heads.linear import LinearProbe
from skulens.metrics.captioning import caption_metrics
from skulens.progress import progress_bar
from skulens.tasks.model_folder import ModelFolderError, check_config, read_model_folder, restoring, write_model_folder

TASK = "caption"
#: The fewest usable (image, title) rows a captioner is trained on.
MIN_ROWS = 4
LOG = logging.getLogger(__name__)
#: Below this many rows there is no validation split: early stopping watches the training rows.
MIN_ROWS_FOR_VALIDATION = 40
#: Attribute columns probed when present (Myntra's names); the template joins them in this order.
DEFAULT_ATTRIBUTES = ("gender", "colour", "articleType")
CONFIG_KEYS = {"encoder": "str", "architecture": "str", "hyper": "dict", "vocab": "dict", "attributes": "dict"}


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


class CaptionModel:
    """Image -> product title. ``fit(catalog)`` needs a ``title`` and an ``image`` column."""

    def __init__(
        self,
        encoder: str = "lite0",
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
        progress: bool = True,
    ) -> None:
        self.hyper = {
            "architecture": architecture,
            "d_model": d_model,
            "layers": layers,
            "heads": heads,
            "dropout": dropout,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "label_smoothing": label_smoothing,
            "patience": patience,
            "min_count": min_count,
            "max_len": max_len,
            "beam": beam,
            "alpha": alpha,
            "no_repeat": no_repeat,
            "val_size": val_size,
            "reduce_dim": reduce_dim,
            "max_val_rows": max_val_rows,
            "seed": seed,
        }
        self.encoder_variant = encoder
        self.attribute_columns = list(attributes)
        self.progress = progress
        self._spatial: SpatialImageEncoder | None = None
        self.fit_report: dict = {}

    # ------------------------------------------------------------------ features
    @property
    def spatial(self) -> SpatialImageEncoder:
        if self._spatial is None:
            self._spatial = SpatialImageEncoder(self.encoder_variant)
        return self._spatial

    @property
    def encoders(self) -> list[str]:
        """The image encoder the decoder reads (one)."""
        return [f"efficientnet-{self.encoder_variant}"]

    @property
    def encoder_identities(self) -> dict[str, str]:
        return {self.encoders[0]: self.spatial.identity}

    def catalog_maps(self, catalog: Catalog, cache: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Region maps and the readable-image mask of every catalog row (see ``SpatialImageEncoder``)."""
        return self.spatial.encode_catalog(catalog, cache=cache, progress=self.progress)

    def _fit_reduction(self, maps: np.ndarray, rows: np.ndarray, sample_rows: int = 400) -> None:
        """A fixed PCA of region vectors (fitted on up to ``sample_rows`` training images) down to
        ``reduce_dim`` channels: 5x less decoder input work per step; 0 keeps every channel."""
        k = self.hyper["reduce_dim"]
        if not k or k >= maps.shape[2]:
            self.reduce_mean = self.reduce_components = None
            return
        rng = np.random.default_rng(self.hyper["seed"])
        sample = np.sort(rng.choice(rows, size=min(sample_rows, len(rows)), replace=False))
        x = np.asarray(maps[sample], dtype=np.float32).reshape(-1, maps.shape[2])
        self.reduce_mean = x.mean(axis=0)
        x -= self.reduce_mean
        _, vectors = np.linalg.eigh(x.T @ x / len(x))
        self.reduce_components = np.ascontiguousarray(vectors[:, ::-1][:, :k]).astype(np.float32)

    def _reduce(self, maps: np.ndarray, rows: np.ndarray, chunk: int = 256) -> np.ndarray:
        """Region features of ``rows`` as float32 (rows, regions, decoder channels)."""
        parts = []
        for start in range(0, len(rows), chunk):
            x = np.asarray(maps[rows[start : start + chunk]], dtype=np.float32)
            parts.append(x if self.reduce_components is None else (x - self.reduce_mean) @ self.reduce_components)
        return np.concatenate(parts) if parts else np.zeros((0, self.regions, self.decoder_channels), dtype=np.float32)

    @property
    def decoder_channels(self) -> int:
        return self.channels if self.reduce_components is None else int(self.reduce_components.shape[1])

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

    def fit(self, catalog: Catalog, maps: np.ndarray | None = None, ok: np.ndarray | None = None) -> CaptionModel:
        """Train on ``catalog`` (``maps``/``ok`` from :meth:`catalog_maps` when already computed)."""
        if maps is None or ok is None:
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
        try:
            self.vocab = WordVocab.build([titles[r] for r in fit_rows], h["min_count"])
        except CaptionVocabError:
            self.vocab = WordVocab.build([titles[r] for r in fit_rows], 1)
        self.channels, self.regions = int(maps.shape[2]), int(maps.shape[1])
        started = time.perf_counter()
        self._fit_reduction(maps, fit_rows)
        self.model = self._decoder(len(self.vocab), self.decoder_channels, self.regions)
        self._fit_probes(catalog, maps, rows)
        self.nearest_embeddings = _pooled(maps, rows).astype(np.float16)
        self.nearest_titles = np.array([titles[r] for r in rows])
        if len(val_rows) > h["max_val_rows"]:  # per-epoch greedy decoding of validation rows is the slow part
            val_rows = np.sort(np.random.default_rng(h["seed"]).choice(val_rows, h["max_val_rows"], replace=False))
        features = self._reduce(maps, rows)
        history = self._train(
            features, [titles[r] for r in rows], np.searchsorted(rows, fit_rows), np.searchsorted(rows, val_rows)
        )
        self.fit_report = {
            "rows": int(len(rows)),
            "fit_rows": int(len(fit_rows)),
            "validation_rows": int(len(val_rows)),
            "validation": "grouped split of training rows"
            if len(rows) >= MIN_ROWS_FOR_VALIDATION
            else "training rows (catalog too small)",
            "skipped": skipped,
            "vocab_size": len(self.vocab),
            "unknown_word_share": self.vocab.unknown_share([titles[r] for r in val_rows]),
            "history": history,
            "best_epoch": int(np.argmax([e["val_cider"] for e in history]) + 1),
            "train_seconds": time.perf_counter() - started,
        }
        return self

    def _fit_probes(self, catalog: Catalog, maps: np.ndarray, rows: np.ndarray) -> None:
        self.probes: dict[str, LinearProbe] = {}
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
            self.probes[column] = LinearProbe(seed=self.hyper["seed"]).fit(pooled[known], labels)

    def _batches(self, features: np.ndarray, titles: list[str], rows: np.ndarray, rng: np.random.Generator):
        order = rng.permutation(rows)
        size = self.hyper["batch_size"]
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            encoded = [self.vocab.encode(titles[r], self.hyper["max_len"]) for r in chunk]
            tokens = torch.full((len(chunk), max(map(len, encoded))), PAD, dtype=torch.long)
            for i, ids in enumerate(encoded):
                tokens[i, : len(ids)] = torch.tensor(ids)
            yield torch.from_numpy(features[chunk]), tokens

    def _train(self, features: np.ndarray, titles: list[str], fit_rows: np.ndarray, val_rows: np.ndarray) -> list[dict]:
        """Teacher-forced epochs over ``features[fit_rows]`` (reduced region features, one per title)."""
        h = self.hyper
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=h["lr"], weight_decay=0.01)
        steps = h["epochs"] * -(-len(fit_rows) // h["batch_size"])
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=h["lr"], total_steps=max(steps, 1), pct_start=0.1)
        rng = np.random.default_rng(h["seed"])
        history, best, best_state, waited = [], -np.inf, None, 0
        val_refs = [titles[r] for r in val_rows]
        with progress_bar(h["epochs"], "caption decoder epochs", enabled=self.progress) as bar:
            for epoch in range(h["epochs"]):
                self.model.train()
                losses = []
                for batch_maps, tokens in self._batches(features, titles, fit_rows, rng):
                    logits = self.model.logits(self.model.memory(batch_maps), tokens[:, :-1])
                    loss = F.cross_entropy(
                        logits.reshape(-1, logits.shape[-1]),
                        tokens[:, 1:].reshape(-1),
                        ignore_index=PAD,
                        label_smoothing=h["label_smoothing"],
                    )
                    optimizer.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                    optimizer.step()
                    schedule.step()
                    losses.append(loss.item())
                generated = [c.title for c in self._decode(features[val_rows], beam=1)]
                score = caption_metrics(generated, val_refs)
                history.append(
                    {"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_cider": score["cider"], "val_bleu": score["bleu"]}
                )
                LOG.info("caption epoch %s", history[-1])
                bar.advance()
                if score["cider"] > best:
                    best, waited = score["cider"], 0
                    best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                else:
                    waited += 1
                    if waited >= h["patience"]:
                        break
        self.model.load_state_dict(best_state)
        self.model.eval()
        return history

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
        self.model.eval()
        out: list[Caption] = []
        for start in range(0, len(features), chunk):
            batch = torch.from_numpy(features[start : start + chunk])
            found = beam_search(
                self.model, self.model.memory(batch), beam, self.hyper["max_len"], self.hyper["alpha"], self.hyper["no_repeat"]
            )
            out.extend(self._caption(candidates) for candidates in found)
        return out

    def _caption(self, candidates: list[Candidate]) -> Caption:
        texts = [(self.vocab.decode(c.tokens), float(c.score)) for c in candidates]
        texts = [(t, s) for t, s in texts if t]
        if not texts:
            raise CaptionError(
                "the decoder produced no word for this image (its vocabulary is empty or damaged); retrain the model"
            )
        return Caption(title=texts[0][0], alternatives=texts[1:])

    def generate_from_maps(self, maps: np.ndarray, beam: int | None = None, nearest: int = 0) -> list[Caption]:
        """Titles for precomputed region maps (n, regions, channels); ``nearest`` > 0 adds that many nearest
        training titles and the predicted attributes to each caption."""
        self._check_fitted()
        if maps.ndim != 3 or maps.shape[1:] != (self.regions, self.channels):
            raise CaptionError(f"region maps of shape {maps.shape[1:]} do not fit this model's {(self.regions, self.channels)}")
        captions = self._generate_maps(maps, np.arange(len(maps)), beam)
        if nearest > 0 and len(maps):
            pooled = _pooled(maps)
            scores = pooled @ self.nearest_embeddings.astype(np.float32).T
            top = np.argsort(-scores, axis=1)[:, :nearest]
            attributes = self.predict_attributes(pooled)
            for i, caption in enumerate(captions):
                caption.nearest = [(str(self.nearest_titles[j]), float(scores[i, j])) for j in top[i]]
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
        return self.generate_from_maps(self.spatial.encode(list(images)), beam, nearest)

    def predict_attributes(self, pooled: np.ndarray) -> dict[str, np.ndarray]:
        return {name: probe.predict(pooled) for name, probe in self.probes.items()}

    def template_titles(self, pooled: np.ndarray) -> list[str]:
        """The template baseline: predicted attributes joined in ``attribute_columns`` order."""
        predicted = self.predict_attributes(pooled)
        names = [c for c in self.attribute_columns if c in predicted]
        return [" ".join(str(predicted[c][i]) for c in names) for i in range(len(pooled))]

    def retrieval_titles(self, pooled: np.ndarray) -> list[str]:
        """The retrieval baseline: the title of the most similar training image."""
        scores = pooled @ self.nearest_embeddings.astype(np.float32).T
        return [str(t) for t in self.nearest_titles[scores.argmax(axis=1)]]

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self,
        catalog: Catalog,
        maps: np.ndarray | None = None,
        ok: np.ndarray | None = None,
        beam: int | None = None,
        resamples: int = 1000,
    ) -> dict:
        """Decoder, retrieval and template metrics on ``catalog``'s usable rows, attribute accuracy per
        probed column, generation throughput, and the generated titles (``examples``)."""
        self._check_fitted()
        if maps is None or ok is None:
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
        if self.probes:
            result["template"] = caption_metrics(self.template_titles(pooled), references)
            predicted = self.predict_attributes(pooled)
            accuracy = {}
            for name, values in predicted.items():
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
        if not hasattr(self, "model"):
            raise CaptionError("this CaptionModel is not trained: call fit(catalog) or CaptionModel.load(folder)")

    def save(self, folder: str | Path) -> Path:
        self._check_fitted()
        arrays = {f"decoder.{k}": v.detach().numpy() for k, v in self.model.state_dict().items()}
        for name, probe in self.probes.items():
            arrays.update({f"probe.{name}.{k}": v for k, v in probe.to_arrays().items()})
        if self.reduce_components is not None:
            arrays.update({"reduce.mean": self.reduce_mean, "reduce.components": self.reduce_components})
        arrays["nearest.embeddings"] = self.nearest_embeddings
        arrays["nearest.titles"] = self.nearest_titles.astype(str)
        config = {
            "task": TASK,
            "encoder": self.spatial.identity,
            "encoder_variant": self.encoder_variant,
            "architecture": self.hyper["architecture"],
            "hyper": self.hyper,
            "shape": [self.regions, self.channels],
            "vocab": self.vocab.to_config(),
            "attributes": {name: [str(c) for c in probe.classes_] for name, probe in self.probes.items()},
            "attribute_columns": self.attribute_columns,
            "fit_report": self.fit_report,
        }
        return write_model_folder(folder, config, arrays)

    @classmethod
    def load(cls, folder: str | Path, progress: bool = False) -> CaptionModel:
        config, arrays = read_model_folder(folder, TASK)
        check_config(config, CONFIG_KEYS, folder)
        with restoring(folder):
            model = cls(encoder=str(config["encoder_variant"]), attributes=config["attribute_columns"], progress=progress)
            model.hyper.update(config["hyper"])
            if model.spatial.identity != config["encoder"]:
                raise ModelFolderError(
                    f"model {folder} was trained on image features '{config['encoder']}', but this skulens gives "
                    f"'{model.spatial.identity}'; retrain the captioner with this encoder"
                )
            model.vocab = WordVocab.from_config(config["vocab"])
            model.regions, model.channels = (int(v) for v in config["shape"])
            model.reduce_mean, model.reduce_components = arrays.get("reduce.mean"), arrays.get("reduce.components")
            model.model = model._decoder(len(model.vocab), model.decoder_channels, model.regions)
            state = {k[len("decoder.") :]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("decoder.")}
            model.model.load_state_dict(state, strict=True)
            model.model.eval()
            model.probes = {
                name: LinearProbe.from_arrays(
                    {k.split(".", 2)[2]: v for k, v in arrays.items() if k.startswith(f"probe.{name}.")}, np.array(classes)
                )
                for name, classes in config["attributes"].items()
            }
            model.nearest_embeddings = arrays["nearest.embeddings"]
            model.nearest_titles = arrays["nearest.titles"]
            model.fit_report = config.get("fit_report", {})
        return model
