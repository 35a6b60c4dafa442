"""Image encoders on pretrained ImageNet CNNs."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from skulens.encoders.base import Encoder, EncoderError
from skulens.encoders.efficientnet_lite import HEAD_CHANNELS, VARIANTS, load_pretrained
from skulens.encoders.registry import register_encoder


def to_square_array(image: Image.Image, size: int) -> np.ndarray:
    """``image`` resized (aspect not kept) to ``size`` x ``size``, as an HxWx3 uint8 array."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image.resize((size, size), Image.BILINEAR, reducing_gap=3.0), dtype=np.uint8)


class EfficientNetLiteEncoder(Encoder):
    """1280-d pooled features of EfficientNet-Lite0/1/2 with bundled ImageNet weights."""

    modality = "image"
    dim = HEAD_CHANNELS
    batch_size = 32

    def __init__(self, variant: str = "lite0", threads: int | None = None) -> None:
        if variant not in VARIANTS:
            raise EncoderError(f"unknown EfficientNet-Lite variant '{variant}'; choose from {list(VARIANTS)}")
        self.name = f"efficientnet-{variant}"
        self.resolution = VARIANTS[variant].resolution
        self.version = f"imagenet-{self.resolution}px-squash"
        if threads:
            torch.set_num_threads(threads)
        self.model = load_pretrained(variant).to(memory_format=torch.channels_last)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """A normalised (n, 3, r, r) batch: pixels scaled to [-1, 1] as the TF-Lite models expect."""
        batch = np.stack([to_square_array(image, self.resolution) for image in images])
        tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
        return (tensor / 127.5 - 1.0).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def encode(self, batch: Sequence[Image.Image]) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.model.features(self.preprocess(batch)).numpy().astype(np.float32, copy=False)

    @torch.inference_mode()
    def classify(self, batch: Sequence[Image.Image]) -> np.ndarray:
        """ImageNet class probabilities, shape (n, 1000)."""
        return self.model(self.preprocess(batch)).softmax(-1).numpy()


for _variant in VARIANTS:
    register_encoder(
        f"efficientnet-{_variant}",
        "image",
        HEAD_CHANNELS,
        f"EfficientNet-Lite{_variant[-1]} ImageNet features ({VARIANTS[_variant].resolution}px)",
    )(lambda variant=_variant, **kw: EfficientNetLiteEncoder(variant, **kw))
