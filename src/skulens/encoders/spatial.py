"""Spatial image features: EfficientNet-Lite's last convolutional map as a sequence of region vectors.

A captioner attends over image regions rather than one pooled vector; this module gives each image as
``(regions, 1280)`` float16 rows (7x7 = 49 regions for Lite0 at 224 px), and can fill a memory-mapped
``.npy`` cache for a whole catalog once so training epochs never re-run the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from skulens.catalog.images import ImageLoadError, load_image
from skulens.catalog.schema import Catalog
from skulens.encoders.image import EfficientNetLiteEncoder
from skulens.progress import progress_bar


class SpatialImageEncoder:
    """``encode(images) -> (n, regions, channels)`` float16 from EfficientNet-Lite's last feature map.

    :attr:`identity` names the network and its weights; a saved captioner records it and refuses to load
    beside a different encoder.
    """

    batch_size = 16

    def __init__(self, variant: str = "lite0") -> None:
        self.encoder = EfficientNetLiteEncoder(variant, backend="torch")
        self.identity = f"{self.encoder.name}:{self.encoder.version}:feature_map"
        self.channels = self.encoder.dim
        side = -(-self.encoder.resolution // 32)
        self.regions = side * side

    @torch.inference_mode()
    def encode(self, images: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, self.regions, self.channels), dtype=np.float16)
        maps = self.encoder.model.feature_map(self.encoder.preprocess(list(images)))
        return maps.flatten(2).transpose(1, 2).to(torch.float16).numpy()

    def encode_catalog(
        self, catalog: Catalog, cache: str | Path | None = None, progress: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(maps, ok)`` for every row of ``catalog``: maps (rows, regions, channels) float16 and a bool mask
        of rows whose image was read (the others are zeros).

        With ``cache`` (a ``.npy`` path) the maps are written there memory-mapped, with ``<cache>.ok.npy``
        beside it; a complete cache of the same shape is reused rather than recomputed.
        """
        shape = (len(catalog), self.regions, self.channels)
        ok_path = Path(f"{cache}.ok.npy") if cache else None
        if cache and Path(cache).is_file() and ok_path.is_file():
            maps = np.load(cache, mmap_mode="r", allow_pickle=False)
            if maps.shape == shape:
                return maps, np.load(ok_path, allow_pickle=False)
        if cache:
            Path(cache).parent.mkdir(parents=True, exist_ok=True)
            maps = np.lib.format.open_memmap(f"{cache}.partial.npy", mode="w+", dtype=np.float16, shape=shape)
        else:
            maps = np.zeros(shape, dtype=np.float16)
        ok = np.zeros(len(catalog), dtype=bool)
        paths = catalog.frame["image"].tolist() if catalog.has("image") else [None] * len(catalog)
        with progress_bar(len(catalog), f"image regions ({self.encoder.name})", enabled=progress) as bar:
            for start in range(0, len(catalog), self.batch_size):
                rows, images = [], []
                for row in range(start, min(start + self.batch_size, len(catalog))):
                    image = _try_load(paths[row], catalog)
                    if image is not None:
                        rows.append(row)
                        images.append(image)
                if rows:
                    maps[rows] = self.encode(images)
                    ok[rows] = True
                bar.advance(min(self.batch_size, len(catalog) - start))
        if cache:
            maps.flush()
            del maps
            Path(f"{cache}.partial.npy").replace(cache)
            np.save(ok_path, ok)
            return np.load(cache, mmap_mode="r", allow_pickle=False), ok
        return maps, ok


def _try_load(path: object, catalog: Catalog) -> Image.Image | None:
    """The row's image, or ``None`` when it has none or it cannot be read (callers count those rows)."""
    if path is None or (isinstance(path, float) and np.isnan(path)) or not str(path).strip():
        return None
    try:
        return load_image(str(path), catalog.image_roots)
    except (ImageLoadError, OSError):
        return None
