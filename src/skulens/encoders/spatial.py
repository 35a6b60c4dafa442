"""Spatial image features: EfficientNet-Lite's last convolutional map as a sequence of region vectors.

A captioner attends over image regions rather than one pooled vector. :class:`RegionEncoder` is a
registered encoder (``efficientnet-lite0-regions``...): each image becomes ``regions x channels`` values
(7x7 = 49 regions of 1280 channels for Lite0 at 224 px), flattened into one row, so a catalog's maps go
through :func:`~skulens.embed.embed_catalog` and the shared embedding cache like any other features.
Values are rounded to float16 (what the captioner stores and reads) before they are handed out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from skulens.encoders.base import Encoder
from skulens.encoders.image import EfficientNetLiteEncoder
from skulens.encoders.lite_variants import HEAD_CHANNELS, VARIANTS

#: The registry name of each variant's region encoder (``lite0`` is what caption configs used to say).
REGION_ENCODERS = {variant: f"efficientnet-{variant}-regions" for variant in VARIANTS}


def region_encoder_name(name: str) -> str:
    """The registry name for ``name``: a registry name as is, a bare variant (``lite0``) mapped to its encoder."""
    return REGION_ENCODERS.get(name, name)


def region_count(variant: str) -> int:
    """Regions of ``variant``'s last feature map (the input size over the network's stride of 32, squared)."""
    side = -(-VARIANTS[variant].resolution // 32)
    return side * side


class RegionEncoder(Encoder):
    """``encode(images) -> (n, regions * channels)`` float32 (float16-rounded) from EfficientNet-Lite's last
    feature map; :meth:`maps` gives them as ``(n, regions, channels)`` float16.

    No ``resolution`` attribute on purpose: catalog images are decoded at full scale (never the reduced
    JPEG draft), as the captioner has always read them. The identity names the weights (hash) and the
    pretrained preprocessing config.
    """

    modality = "image"
    batch_size = 16

    def __init__(self, variant: str = "lite0") -> None:
        self.pooled = EfficientNetLiteEncoder(variant, backend="torch")
        self.variant = variant
        self.name = REGION_ENCODERS[variant]
        self.channels = HEAD_CHANNELS
        self.regions = region_count(variant)
        self.dim = self.regions * self.channels
        self.version = f"{self.pooled.version}-feature-map"

    @property
    def legacy_identity(self) -> str:
        """The identity captioners saved before this was a registered encoder (same network, weights, numbers)."""
        return f"{self.pooled.name}:{self.pooled.version}:feature_map"

    def prepare(self, image: Image.Image | np.ndarray) -> np.ndarray:
        """One image as the network's uint8 input (run in the embedding run's decode threads)."""
        return self.pooled.prepare(image)

    def maps(self, images: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        """Region maps ``(n, regions, channels)`` float16."""
        import torch

        if len(images) == 0:
            return np.zeros((0, self.regions, self.channels), dtype=np.float16)
        with torch.inference_mode():
            maps = self.pooled.model.feature_map(self.pooled.preprocess(list(images)))
        return maps.flatten(2).transpose(1, 2).to(torch.float16).numpy()

    def encode(self, batch: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        return self.maps(batch).reshape(len(batch), self.dim).astype(np.float32)
