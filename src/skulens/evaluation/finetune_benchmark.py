"""Fine-tuned image features inside the grouped, nested categorization benchmark.

In each outer fold EfficientNet-Lite is fine-tuned on that fold's inner-training rows only (early stopping
on a grouped part carved from them), then its pooled features of every row become the block
``finetuned-<variant>`` that the usual probes and fusions read. The inner-validation rows (used to select
configurations) and the outer-test rows are never seen by the fine-tuning. The frozen blocks' outputs of
every image and view are computed once and shared by all folds: they do not depend on any label.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from skulens.catalog.schema import Catalog
from skulens.catalog.splits import grouped_holdout
from skulens.encoders.efficientnet_lite import HEAD_CHANNELS, VARIANTS, load_pretrained
from skulens.evaluation.categorize_benchmark import Config, Fold
from skulens.outputs import atomic_file
from skulens.tasks.features import Features
from skulens.tasks.finetune_image import (
    ImageRecipe,
    check_class_counts,
    finetune_top,
    load_images,
    top_features,
    trunk,
    trunk_views,
)
from skulens.training.finetune import TrainConfig, plot_curves


def _key_file(cache: Path) -> Path:
    return cache.with_name(cache.name + ".key.json")


def finetuned_configs(variant: str = "lite0") -> tuple[Config, ...]:
    """The fine-tuned configurations added to a benchmark (image alone, with lite2, and fused with text)."""
    name = f"finetuned-{variant}"
    return (
        Config(f"finetuned {variant} linear", "image", (name,)),
        Config(f"finetuned {variant}+lite2 late", "image", (name, "efficientnet-lite2")),
        Config(f"finetuned {variant}+minilm+tfidf late", "fused", (name, "minilm", "tfidf")),
        Config(f"finetuned {variant}+lite2+minilm+tfidf late", "fused", (name, "efficientnet-lite2", "minilm", "tfidf")),
    )


class FinetunedFoldFeatures:
    """:class:`~skulens.evaluation.categorize_benchmark.FoldFeatures` of a partially fine-tuned EfficientNet-Lite."""

    def __init__(
        self,
        recipe: ImageRecipe = ImageRecipe(),
        config: TrainConfig = TrainConfig(),
        out: Path | None = None,
        log: Callable[[str], None] = print,
        progress: bool = False,
        cache: Path | None = None,
    ) -> None:
        """``cache``: a ``.npy`` file keeping the frozen blocks' outputs between runs on the same rows and recipe."""
        self.recipe, self.config, self.out, self.log, self.progress, self.cache = recipe, config, out, log, progress, cache
        self.names = (f"finetuned-{recipe.variant}",)
        self.records: list[dict] = []
        self.prepare_seconds = 0.0

    def prepare(self, rows: Catalog, y: np.ndarray, groups: np.ndarray) -> None:
        started = time.perf_counter()
        self.n_rows = len(rows)
        images, self.image_rows = load_images(rows, self.log)
        self.classes, y_int = np.unique(y, return_inverse=True)
        self.y = y_int[self.image_rows]
        self.groups = np.asarray(groups)[self.image_rows]
        self.base = load_pretrained(self.recipe.variant)
        self.frozen = self.recipe.frozen(self.base)
        self.log(
            f"frozen blocks 0-{self.frozen - 1} of efficientnet-{self.recipe.variant}: {len(images)} images x {self.recipe.views} views"
        )
        resolution = VARIANTS[self.recipe.variant].resolution
        with torch.no_grad():
            one = trunk(self.base.eval(), self.frozen, torch.zeros(1, 3, resolution, resolution))
        shape = (self.recipe.views, len(images), *one.shape[1:])
        key = self._cache_key(images) if self.cache is not None else ""  # hashing every photo only pays with a cache
        if self._cache_fits(shape, key):
            self.cached = torch.from_numpy(np.load(self.cache, allow_pickle=False))
            self.log(f"frozen-block outputs read from {self.cache}")
        else:
            self.cached = trunk_views(
                self.base, self.frozen, images, self.recipe.views, 0, self.config.batch_size, self.progress, self.log
            )
            if self.cache is not None:
                with atomic_file(self.cache) as temp, temp.open("wb") as file:
                    np.save(file, self.cached.numpy(), allow_pickle=False)
                with atomic_file(_key_file(self.cache)) as temp:
                    temp.write_text(json.dumps({"key": key}) + "\n")
        self.prepare_seconds = time.perf_counter() - started

    def _cache_key(self, images: list) -> str:
        """What the frozen-block outputs depend on: base network, frozen blocks, views, batch size, the pixels."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(repr((self.recipe.variant, self.frozen, self.recipe.views, self.config.batch_size)).encode())
        for image in images:
            digest.update(repr((image.size, image.mode)).encode())
            digest.update(image.tobytes())
        return digest.hexdigest()

    def _cache_fits(self, shape: tuple[int, ...], key: str) -> bool:
        """Whether :attr:`cache` holds the outputs for these images and recipe (a stale one is said and recomputed)."""
        if self.cache is None or not self.cache.exists():
            return False
        try:
            stored = json.loads(_key_file(self.cache).read_text()).get("key")
            fits = stored == key and np.load(self.cache, mmap_mode="r", allow_pickle=False).shape == shape
        except (OSError, ValueError, AttributeError):
            fits = False
        if not fits:
            self.log(f"{self.cache} was built for other images or another recipe; recomputing it")
        return fits

    def for_fold(self, fold: Fold) -> Features:
        started = time.perf_counter()
        position = {row: i for i, row in enumerate(self.image_rows)}
        fit = np.array([position[r] for r in fold.inner_train if r in position], dtype=int)
        check_class_counts(self.classes[self.y[fit]])
        train_rows, val_rows = grouped_holdout(fit, self.y, self.groups, self.recipe.val_size, fold.seed)
        _, top, result = finetune_top(
            self.base,
            self.frozen,
            self.cached,
            self.y,
            train_rows,
            val_rows,
            len(self.classes),
            replace(self.config, seed=fold.seed),
            self.recipe.dropout,
            log=lambda message: None,
        )
        vectors = np.zeros((self.n_rows, HEAD_CHANNELS), dtype=np.float32)
        present = np.zeros(self.n_rows, dtype=bool)
        vectors[self.image_rows] = top_features(top, self.cached[0])
        present[self.image_rows] = True
        seconds = time.perf_counter() - started
        best = result.history[result.best_epoch - 1] if result.history else {}
        self.log(
            f"  seed {fold.seed} fold {fold.index + 1}: fine-tuned on {len(train_rows)} images in {seconds:.0f}s, "
            f"best epoch {result.best_epoch}/{result.epochs_run} (validation macro-F1 {result.best_val_macro_f1:.3f})"
        )
        self.records.append(
            {
                "seed": fold.seed,
                "fold": fold.index,
                "n_train": int(len(train_rows)),
                "n_early_stopping": int(len(val_rows)),
                "seconds": round(seconds, 1),
                "best_epoch": result.best_epoch,
                "epochs_run": result.epochs_run,
                "best_val_macro_f1": round(result.best_val_macro_f1, 4),
                "best_val_loss": round(best.get("val_loss", float("nan")), 4),
                "load_average": [round(v, 2) for v in os.getloadavg()],
                "history": result.history,
            }
        )
        if self.out is not None and len(self.records) == 1:
            self.out.mkdir(parents=True, exist_ok=True)
            plot_curves(result.history, self.out / "finetune_curves.png", f"fine-tuning, seed {fold.seed} fold {fold.index + 1}")
        return Features({self.names[0]: vectors}, {self.names[0]: present})

    def summary(self) -> dict:
        seconds = [r["seconds"] for r in self.records]
        return {
            "encoder": self.names[0],
            "base": f"efficientnet-{self.recipe.variant}",
            "frozen_blocks": self.frozen,
            "recipe": {**self.recipe.__dict__, "freeze_blocks": self.frozen},
            "training": self.config.as_dict(),
            "protocol": (
                "per outer fold, fine-tuned on the inner-training rows only (early stopping on a grouped "
                f"{self.recipe.val_size:.0%} of them); the inner-validation and outer-test rows are never seen"
            ),
            "threads": torch.get_num_threads(),
            "frozen_outputs_seconds": round(self.prepare_seconds, 1),
            "finetune_seconds_per_fold": round(float(np.mean(seconds)), 1) if seconds else None,
            "finetune_seconds_total": round(float(np.sum(seconds)), 1),
            "folds": self.records,
        }
