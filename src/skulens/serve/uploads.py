"""The one image decode path of the service: every route that takes a photo decodes it here.

:class:`ImageDecoder` holds the service's image limits — upload bytes, header pixels, decoded pixels —
and a semaphore bounding how many images are decoded at once, so ``/v1/categorize``,
``/v1/categorize/batch``, ``/v1/search``, ``/v1/zero-shot``, ``/v1/caption`` and ``/v1/explain`` all
refuse the same bombs the same way (400/413, never a 5xx) and share one memory budget.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import re
import threading
from collections.abc import Callable

from PIL import Image

from skulens.catalog.images import DEFAULT_MAX_PIXELS, ImageLoadError, decode_image
from skulens.serve.guard import MAX_QUOTED_CHARS, safe_text

DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
#: Pixels an uploaded image may decode to (after JPEG draft decoding): 16 MP, e.g. 4,000 x 4,000.
DEFAULT_MAX_DECODED_PIXELS = 16_000_000
#: Images decoded at the same time (each can take up to about 4 bytes x the decoded-pixel cap).
DEFAULT_DECODE_SLOTS = 2
#: Decoded images at least this large have their memory handed back to the system afterwards.
LARGE_DECODE_PIXELS = 4_000_000
#: A ``data:image/png;base64,`` style prefix.
DATA_URI = re.compile(r"^data:[\w.+/-]*(;[\w.+-]+=[\w.+-]+)*;base64,", re.IGNORECASE)


def decode_base64(text: str) -> bytes:
    """Bytes of plain, line-wrapped (MIME) or data-URI base64; raises ``binascii.Error`` on anything else."""
    text = DATA_URI.sub("", text.strip(), count=1)
    return base64.b64decode("".join(text.split()), validate=True)


def release_memory() -> None:
    """Hand freed heap memory back to the system (glibc keeps it otherwise); a no-op elsewhere."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class ImageDecoder:
    """Decodes uploads within the service's limits; ``error(status, code, detail)`` is the 4xx it raises."""

    def __init__(
        self,
        error: type[Exception],
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_decoded_pixels: int = DEFAULT_MAX_DECODED_PIXELS,
        slots: int = DEFAULT_DECODE_SLOTS,
    ) -> None:
        self.error, self.max_upload_bytes = error, max_upload_bytes
        self.max_pixels, self.max_decoded_pixels = max_pixels, max_decoded_pixels
        self._slot = threading.BoundedSemaphore(max(1, slots))

    def decode(self, data: bytes, name: str, draft_size: int | None = None, then: Callable[[Image.Image], object] | None = None):
        """The RGB image of ``data`` (or ``then(image)``, run while the decode slot is held, so a large
        decoded image is released before the next one is decoded)."""
        name = safe_text(name, MAX_QUOTED_CHARS)
        if len(data) > self.max_upload_bytes:
            raise self.error(413, "too_large", f"image '{name}' is over the {self.max_upload_bytes:,}-byte upload limit")
        if not data:
            raise self.error(400, "invalid_image", f"image '{name}' is empty (0 bytes)")
        with self._slot:
            try:
                image = decode_image(
                    data, name=name, max_pixels=self.max_pixels, draft_size=draft_size, max_decoded_pixels=self.max_decoded_pixels
                )
            except ImageLoadError as exc:
                raise self.error(400, "invalid_image", str(exc)) from None
            except Exception as exc:  # noqa: BLE001 - any decoder failure is the upload's fault
                raise self.error(400, "invalid_image", f"image '{name}' cannot be decoded: {type(exc).__name__}") from None
            large = image.width * image.height >= LARGE_DECODE_PIXELS
            result = then(image) if then is not None else image
            del image
        if large and then is not None:
            release_memory()
        return result

    def decode_base64(self, text: str, name: str = "image_base64", draft_size: int | None = None, then=None):
        """:meth:`decode` of a base64 (plain, MIME-wrapped or data-URI) upload; 400 when it is not base64."""
        try:
            data = decode_base64(text)
        except (binascii.Error, ValueError):
            raise self.error(400, "invalid_image", f"{name} is not valid base64 (or a data: URI)") from None
        return self.decode(data, name, draft_size=draft_size, then=then)
