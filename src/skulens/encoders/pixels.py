"""Pixel preparation shared by the image encoders (numpy + Pillow only, so it imports fast)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def to_square_array(image: Image.Image, size: int) -> np.ndarray:
    """``image`` resized (aspect not kept) to ``size`` x ``size``, as an HxWx3 uint8 array."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image.resize((size, size), Image.BILINEAR, reducing_gap=3.0), dtype=np.uint8)
