"""Partial fine-tuning of EfficientNet-Lite on a labelled catalog's photos (``skulens finetune image``).

The first ``freeze_blocks`` blocks keep their ImageNet weights. Their outputs are computed once, for the
clean image and for ``views - 1`` augmented copies (random resized crop, flip, colour jitter and one
RandAugment-style operation), so every epoch runs only the top blocks, the 1x1 head convolution and a new
classifier: this is what makes fine-tuning practical on a 2-core CPU. BatchNorm statistics stay frozen
(the affine parameters train), which keeps small batches stable. The result is saved as an encoder folder
(``finetuned:<folder>``, see :mod:`skulens.encoders.finetuned`).
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance, ImageOps
from torch import nn

from skulens.catalog.images import ImageLoadError, decode_image, read_image_bytes
from skulens.catalog.schema import Catalog
from skulens.catalog.splits import duplicate_groups, grouped_holdout
from skulens.encoders.efficientnet_lite import HEAD_CHANNELS, VARIANTS, EfficientNetLite, load_pretrained
from skulens.encoders.finetuned import save_finetuned
from skulens.encoders.pixels import to_square_array
from skulens.progress import progress_bar
from skulens.training.finetune import (
    FinetuneError,
    TrainConfig,
    TrainResult,
    check_class_counts,
    plot_curves,
    train,
)
from skulens.training.loop import with_batch_backoff


@dataclass(frozen=True)
class ImageRecipe:
    """What is fine-tuned and how the training views are made."""

    variant: str = "lite0"
    freeze_blocks: int | None = None  # None: all blocks before the last stride-2 block (the last two stages train)
    views: int = 4
    dropout: float = 0.2
    val_size: float = 0.15

    def frozen(self, model: EfficientNetLite) -> int:
        count = len(model._blocks)
        last_downsampling = max(i for i, block in enumerate(model._blocks) if block._depthwise_conv.stride[0] == 2)
        frozen = last_downsampling if self.freeze_blocks is None else self.freeze_blocks
        if not 0 <= frozen <= count:
            raise FinetuneError(f"--freeze-blocks must be between 0 and {count} for efficientnet-{self.variant}; got {frozen}")
        return frozen


class TopNetwork(nn.Module):
    """The trainable top of an EfficientNet-Lite: blocks ``frozen..``, head convolution, pooling, classifier.

    It shares its modules with ``model``, so training it updates ``model`` in place.
    """

    def __init__(self, model: EfficientNetLite, frozen: int, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(model._blocks[frozen:])
        self.conv_head, self.bn_head = model._conv_head, model._bn1
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(HEAD_CHANNELS, n_classes)

    def train(self, mode: bool = True) -> TopNetwork:
        super().train(mode)
        for module in self.modules():  # BatchNorm statistics stay those of ImageNet
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return F.relu6(self.bn_head(self.conv_head(x))).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x)))


def trunk(model: EfficientNetLite, frozen: int, x: torch.Tensor) -> torch.Tensor:
    """The output of the stem and the first ``frozen`` blocks."""
    x = F.relu6(model._bn0(model._conv_stem(x)))
    for block in model._blocks[:frozen]:
        x = block(x)
    return x


def augment(image: Image.Image, size: int, rng: np.random.Generator) -> np.ndarray:
    """One random training view of ``image`` as a (size, size, 3) uint8 array: random resized crop (35-100% of
    the area, aspect 3/4-4/3), horizontal flip, brightness/contrast/saturation jitter and one of rotate,
    autocontrast, equalize, sharpness, posterize or nothing (RandAugment-style)."""
    image = image.convert("RGB")
    width, height = image.size
    for _ in range(10):
        area = width * height * rng.uniform(0.35, 1.0)
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        w, h = int(round(np.sqrt(area * ratio))), int(round(np.sqrt(area / ratio)))
        if 0 < w <= width and 0 < h <= height:
            left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            image = image.crop((left, top, left + w, top + h))
            break
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(float(rng.uniform(0.7, 1.3)))
    operation = int(rng.integers(6))
    if operation == 0:
        image = image.rotate(float(rng.uniform(-15, 15)), resample=Image.BILINEAR, fillcolor=(255, 255, 255))
    elif operation == 1:
        image = ImageOps.autocontrast(image)
    elif operation == 2:
        image = ImageOps.equalize(image)
    elif operation == 3:
        image = ImageEnhance.Sharpness(image).enhance(float(rng.uniform(0.3, 1.7)))
    elif operation == 4:
        image = ImageOps.posterize(image, int(rng.integers(4, 7)))
    return to_square_array(image, size)


def to_input(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (n, r, r, 3) pixels as the network's [-1, 1] (n, 3, r, r) input."""
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def trunk_runner(model: EfficientNetLite, frozen: int) -> Callable[[np.ndarray], torch.Tensor]:
    """A function from uint8 (n, r, r, 3) pixels to the frozen trunk's outputs: ONNX Runtime on one thread when
    installed (about 3x faster on CPU; same graph export as the encoders), else PyTorch."""
    try:
        import onnxruntime as ort

        from skulens.encoders.efficientnet_lite import to_onnx

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(to_onnx(model, blocks=frozen), options, providers=["CPUExecutionProvider"])
    except ImportError:
        session = None
    if session is not None and not torch.cuda.is_available():
        return lambda pixels: torch.from_numpy(session.run(["features"], {"pixels": pixels})[0])

    def run(pixels: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return trunk(model.eval(), frozen, to_input(pixels))

    return run


def trunk_views(
    model: EfficientNetLite,
    frozen: int,
    images: Sequence[Image.Image],
    views: int,
    seed: int,
    batch_size: int = 32,
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> torch.Tensor:
    """Frozen-trunk outputs, shape (views, n, c, h, w), float16: view 0 is the clean image, the others
    augmented (seeded per image, so the same images give the same views)."""
    size = VARIANTS[model.variant].resolution
    forward = trunk_runner(model, frozen)
    out: torch.Tensor | None = None
    with progress_bar(len(images) * views, "frozen blocks (once)", progress) as bar:
        for view in range(views):
            for start in range(0, len(images), batch_size):
                chunk = images[start : start + batch_size]
                pixels = np.stack(
                    [
                        to_square_array(im, size)
                        if view == 0
                        else augment(im, size, np.random.default_rng([seed, view, start + i]))
                        for i, im in enumerate(chunk)
                    ]
                )

                def run(step: int, pixels: np.ndarray = pixels) -> torch.Tensor:
                    return torch.cat([forward(pixels[i : i + step]) for i in range(0, len(pixels), step)])

                maps, _ = with_batch_backoff(run, len(pixels), log)
                if out is None:
                    out = torch.empty((views, len(images), *maps.shape[1:]), dtype=torch.float16)
                out[view, start : start + len(chunk)] = maps.half()
                bar.advance(len(chunk))
    assert out is not None
    return out


@torch.no_grad()
def top_features(top: TopNetwork, inputs: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Pooled 1280-d features of the top network for cached trunk outputs (clean view)."""
    top.eval()
    return torch.cat([top.features(inputs[i : i + batch_size].float()) for i in range(0, len(inputs), batch_size)]).numpy()


def load_images(catalog: Catalog, log: Callable[[str], None] = print) -> tuple[list[Image.Image], np.ndarray]:
    """The decoded images of ``catalog`` and the row indices they belong to; unusable images are reported and skipped."""
    images, rows = [], []
    paths = catalog.frame["image"].tolist() if catalog.has("image") else [None] * len(catalog)
    skipped = 0
    for row, path in enumerate(paths):
        if not isinstance(path, str) or not path:
            continue
        try:
            image = decode_image(read_image_bytes(path, catalog.image_roots), name=path)
        except (ImageLoadError, OSError) as exc:
            skipped += 1
            if skipped <= 5:
                log(f"row {row} (id {catalog.frame.at[row, 'id']}), column 'image': {exc}; skipped")
            continue
        image.thumbnail((512, 512))
        images.append(image)
        rows.append(row)
    if skipped > 5:
        log(f"... {skipped} images skipped in all")
    return images, np.array(rows, dtype=int)


def finetune_top(
    base: EfficientNetLite,
    frozen: int,
    cached: torch.Tensor,
    y: np.ndarray,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    n_classes: int,
    config: TrainConfig,
    dropout: float = 0.2,
    checkpoint_dir: Path | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
) -> tuple[EfficientNetLite, TopNetwork, TrainResult]:
    """A copy of ``base`` with its top fine-tuned on ``cached`` trunk outputs (views x rows) of ``train_rows``,
    early-stopped on the clean view of ``val_rows``; ``y`` are integer labels of all rows."""
    torch.manual_seed(config.seed)
    model = copy.deepcopy(base)
    for param in model.parameters():
        param.requires_grad_(False)
    top = TopNetwork(model, frozen, n_classes, dropout)
    for param in top.parameters():
        param.requires_grad_(True)
    result = train(
        top,
        cached[:, train_rows],
        y[train_rows],
        cached[0, val_rows],
        y[val_rows],
        config,
        checkpoint_dir=checkpoint_dir,
        on_epoch=on_epoch,
        log=log,
        stop_after=stop_after,
    )
    return model, top, result


@dataclass
class FinetuneOutcome:
    folder: Path
    result: TrainResult
    classes: list[str]
    n_train: int
    n_val: int
    seconds: float


def finetune_image(
    catalog: Catalog,
    labels: np.ndarray,
    out: Path,
    recipe: ImageRecipe = ImageRecipe(),
    config: TrainConfig = TrainConfig(),
    on_epoch: Callable[[dict], None] | None = None,
    log: Callable[[str], None] = print,
    progress: bool = False,
    stop_after: int | None = None,
) -> FinetuneOutcome:
    """Fine-tune on ``catalog`` (one label per row, ``None`` for unlabelled) and write the encoder folder ``out``.

    A grouped, stratified ``recipe.val_size`` of the rows (duplicates kept together) is held out for early
    stopping. Training checkpoints go to ``out/checkpoint``; running again after an interrupt resumes there.
    """
    started = time.perf_counter()
    labels = np.asarray(labels, dtype=object)
    images, rows = load_images(catalog, log)
    keep = np.array([labels[r] is not None for r in rows], dtype=bool)
    images, rows = [im for im, k in zip(images, keep) if k], rows[keep]
    if len(rows) == 0:
        raise FinetuneError(f"catalog '{catalog.name}' has no labelled rows with a readable image; nothing to fine-tune on")
    row_labels = labels[rows].astype(str)
    check_class_counts(row_labels)
    classes, y = np.unique(row_labels, return_inverse=True)
    groups = duplicate_groups(catalog)[rows]
    train_rows, val_rows = grouped_holdout(np.arange(len(rows)), y, groups, recipe.val_size, config.seed)
    base = load_pretrained(recipe.variant)
    frozen = recipe.frozen(base)
    log(
        f"fine-tuning efficientnet-{recipe.variant} blocks {frozen}-{len(base._blocks) - 1} + head on {len(train_rows)} images "
        f"({len(classes)} classes; {len(val_rows)} for early stopping), {recipe.views} views per image"
    )
    cached = trunk_views(base, frozen, images, recipe.views, config.seed, config.batch_size, progress, log)
    model, top, result = finetune_top(
        base,
        frozen,
        cached,
        y,
        train_rows,
        val_rows,
        len(classes),
        config,
        recipe.dropout,
        out / "checkpoint",
        on_epoch,
        log,
        stop_after,
    )
    seconds = time.perf_counter() - started
    if result.finished:
        spec = {
            "base_encoder": f"efficientnet-{recipe.variant}",
            "frozen_blocks": frozen,
            "classes": [str(c) for c in classes],
            "recipe": {**recipe.__dict__, "freeze_blocks": frozen},
            "training": config.as_dict(),
            "best_epoch": result.best_epoch,
            "best_val_macro_f1": result.best_val_macro_f1,
            "epochs_run": result.epochs_run,
            "batch_size_used": result.batch_size,
            "history": result.history,
            "n_train": int(len(train_rows)),
            "n_val": int(len(val_rows)),
            "seconds": round(seconds, 1),
            "threads": torch.get_num_threads(),
            "load_average": [round(v, 2) for v in os.getloadavg()],
        }
        save_finetuned(out, model, top.classifier, spec)
        plot_curves(result.history, out / "curves.png", f"fine-tuning efficientnet-{recipe.variant} on {catalog.name}")
        shutil.rmtree(out / "checkpoint", ignore_errors=True)
    return FinetuneOutcome(out, result, [str(c) for c in classes], len(train_rows), len(val_rows), seconds)
