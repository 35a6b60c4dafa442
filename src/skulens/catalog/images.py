"""Safe image loading: paths stay inside the catalog root, bombs and corrupt files are refused."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

#: Default pixel budget per image (about 8k x 8k). Larger images are refused, never decoded.
DEFAULT_MAX_PIXELS = 64_000_000
#: Default byte budget per image file.
DEFAULT_MAX_BYTES = 50 * 1024 * 1024


class ImageLoadError(ValueError):
    """An image that cannot be used; the message names the file and the reason."""


def resolve_image_path(path: str | os.PathLike, root: Path | None) -> Path:
    """The absolute path of ``path`` under ``root``, refusing anything that escapes it.

    Relative paths are taken relative to ``root``; absolute paths must lie inside it. Symlinks are
    resolved before the check, so a link pointing outside the root is refused too.
    """
    if root is None:
        raise ImageLoadError(f"image '{path}': the catalog has no image root; pass root=<folder of images>")
    root = Path(root).resolve()
    candidate = Path(path)
    full = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if full != root and root not in full.parents:
        raise ImageLoadError(f"image '{path}' is outside the catalog root {root}; refusing to read it")
    return full


def read_image_bytes(path: str | os.PathLike, root: Path | None, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The raw bytes of a catalog image (inside ``root``, at most ``max_bytes``)."""
    full = resolve_image_path(path, root)
    if not full.is_file():
        raise ImageLoadError(f"image '{path}' not found at {full}")
    size = full.stat().st_size
    if size > max_bytes:
        raise ImageLoadError(f"image '{path}' is {size:,} bytes, over the {max_bytes:,}-byte limit")
    return full.read_bytes()


def decode_image(
    data: bytes,
    name: str = "<bytes>",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: int | None = None,
) -> Image.Image:
    """Decode image bytes into an RGB image with EXIF orientation applied.

    Refuses images over ``max_pixels`` before decoding them (decompression-bomb guard) and reports
    truncated or non-image data as :class:`ImageLoadError`. ``draft_size`` lets JPEGs decode at a
    reduced scale that is still at least that many pixels on the short side (much faster).
    """
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageLoadError(f"image '{name}' is not an image file (unrecognised format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(f"image '{name}' refused as a possible decompression bomb: {exc}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageLoadError(
            f"image '{name}' is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,}; resize it or raise max_pixels"
        )
    if draft_size and image.format == "JPEG":
        scale = min(width, height) / draft_size
        if scale >= 2:
            image.draft("RGB", (int(width / scale) + 1, int(height / scale) + 1))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
        image = ImageOps.exif_transpose(image)
        return image.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(f"image '{name}' is corrupt or truncated: {exc}") from None


def load_image(
    path: str | os.PathLike,
    root: Path | None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Image.Image:
    """Read and decode one catalog image safely (see :func:`decode_image`)."""
    return decode_image(read_image_bytes(path, root, max_bytes), name=str(path), max_pixels=max_pixels)
