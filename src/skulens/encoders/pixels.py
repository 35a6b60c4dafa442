"""Pixel preparation shared by the image encoders (numpy + Pillow only, so it imports fast)."""

from __future__ import annotations

import numpy as np
from PIL import Image

#: Interpolation names a pretrained config may give, as Pillow filters.
RESAMPLE = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}


def to_square_array(image: Image.Image, size: int) -> np.ndarray:
    """``image`` resized (aspect not kept) to ``size`` x ``size``, as an HxWx3 uint8 array."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image.resize((size, size), Image.BILINEAR, reducing_gap=3.0), dtype=np.uint8)


def config_pixels(image: Image.Image, size: int, interpolation: str = "bilinear", crop: str = "squash") -> np.ndarray:
    """``image`` as a ``size`` x ``size`` HxWx3 uint8 array the way a pretrained config says: ``squash``
    resizes (aspect not kept; with ``bilinear`` this is :func:`to_square_array`), ``center`` resizes the
    short side to ``size`` and keeps the centre square."""
    if interpolation not in RESAMPLE:
        raise ValueError(f"unknown interpolation '{interpolation}'; choose from {', '.join(RESAMPLE)}")
    if image.mode != "RGB":
        image = image.convert("RGB")
    if crop == "center":
        scale = size / min(image.size)
        width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
        image = image.resize((width, height), RESAMPLE[interpolation], reducing_gap=3.0)
        left, top = (width - size) // 2, (height - size) // 2
        return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)
    if crop != "squash":
        raise ValueError(f"unknown crop '{crop}'; choose squash or center")
    return np.asarray(image.resize((size, size), RESAMPLE[interpolation], reducing_gap=3.0), dtype=np.uint8)
