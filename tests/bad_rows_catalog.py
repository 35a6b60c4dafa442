"""A drawn catalog with 20 planted bad rows among good ones, as a new user's messy CSV would have them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

#: Classes of the drawn products: a colour and a shape each, so images and titles both tell them apart.
KINDS = {
    "Watches": ((200, 30, 30), "ellipse"),
    "Computers": ((30, 30, 200), "rectangle"),
    "Baby Care": ((30, 160, 30), "polygon"),
}
GOOD_PER_KIND = 30


def _drawn(kind: str, seed: int) -> Image.Image:
    colour, shape = KINDS[kind]
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (96, 96), tuple(int(c) for c in rng.integers(200, 256, 3)))
    draw = ImageDraw.Draw(image)
    x, y = (int(v) for v in rng.integers(10, 30, 2))
    box = (x, y, x + 50, y + 50)
    jitter = tuple(int(np.clip(c + rng.integers(-25, 25), 0, 255)) for c in colour)
    if shape == "polygon":
        draw.polygon([(x, y + 50), (x + 25, y), (x + 50, y + 50)], fill=jitter)
    else:
        getattr(draw, shape)(box, fill=jitter)
    return image


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _bomb_png(path: Path, width: int = 20_000, height: int = 20_000) -> None:
    """A tiny PNG file whose header declares width x height pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


#: The planted bad rows: (id, what is wrong) — the test expects exactly these ids in every issues file.
PLANTED = {
    "bad-missing": "image",
    "bad-missing-2": "image",
    "bad-corrupt": "image",
    "bad-truncated": "image",
    "bad-truncated-png": "image",
    "bad-text-file": "image",
    "bad-empty-file": "image",
    "bad-folder": "image",
    "bad-bomb": "image",
    "bad-outside": "image",
    "bad-absolute": "image",
    "bad-url": "image",
    "bad-empty-title": "title",
    "bad-spaces-title": "title",
    "bad-rating": "rating",
    "bad-rating-2": "rating",
    "good-0": "id",  # a second row with the id of good-0 (skipped, first kept)
    "good-1": "id",
    "<empty id>": "id",
    "bad-missing-unicode": "image",
}


def write_bad_rows_catalog(folder: Path) -> Path:
    """``folder/shop/products.csv`` with 90 good products and the 20 :data:`PLANTED` bad rows; images in
    ``folder/shop/img``, one image outside the shop folder. Returns the CSV path."""
    shop = folder / "shop"
    images = shop / "img"
    images.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    kinds = list(KINDS)
    for i in range(GOOD_PER_KIND * len(kinds)):
        kind = kinds[i % len(kinds)]
        name = f"good-{i}.jpg" if i != 5 else "gööd-ünï-5.jpg"  # a unicode file name is fine
        (images / name).write_bytes(_jpeg(_drawn(kind, seed=i)))
        title = f"{kind} item {i} {'deluxe' if i % 2 else 'classic'}" if i != 7 else f"{kind} article nº {i} — été"
        rows.append({"id": f"good-{i}", "title": title, "category": kind, "image": f"img/{name}", "rating": str(1 + i % 5)})

    good = _jpeg(_drawn("Watches", seed=999))
    (images / "corrupt.jpg").write_bytes(np.random.default_rng(1).bytes(2048))
    (images / "truncated.jpg").write_bytes(_jpeg(_drawn("Computers", seed=998))[:600])
    png = io.BytesIO()
    _drawn("Baby Care", seed=997).save(png, "PNG")
    (images / "truncated.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    (images / "notes.jpg").write_text("this is not a photo\n")
    (images / "empty.jpg").write_bytes(b"")
    (images / "a-folder.jpg").mkdir(exist_ok=True)
    _bomb_png(images / "bomb.png")
    (folder / "outside.jpg").write_bytes(good)

    def bad(row_id: str, image: str | None, title: str = "Watches spare item", rating: str = "3") -> dict:
        return {"id": row_id, "title": title, "category": "Watches", "image": image, "rating": rating}

    rows += [
        bad("bad-missing", "img/nowhere.jpg"),
        bad("bad-missing-2", "img/sub/also-nowhere.jpg"),
        bad("bad-corrupt", "img/corrupt.jpg"),
        bad("bad-truncated", "img/truncated.jpg"),
        bad("bad-truncated-png", "img/truncated.png"),
        bad("bad-text-file", "img/notes.jpg"),
        bad("bad-empty-file", "img/empty.jpg"),
        bad("bad-folder", "img/a-folder.jpg"),
        bad("bad-bomb", "img/bomb.png"),
        bad("bad-outside", "../outside.jpg"),
        bad("bad-absolute", str((folder / "outside.jpg").resolve())),
        bad("bad-url", "https://example.com/watch.jpg"),
        bad("bad-empty-title", "img/good-0.jpg", title=""),
        bad("bad-spaces-title", "img/good-3.jpg", title="   "),
        bad("bad-rating", "img/good-6.jpg", rating="five stars"),
        bad("bad-rating-2", "img/good-9.jpg", rating="4,5,6"),
        bad("good-0", "img/good-12.jpg", title="a second row with a used id"),
        bad("good-1", "img/good-13.jpg", title="another repeated id"),
        bad("", "img/good-15.jpg", title="a row without id"),
        bad("bad-missing-unicode", "img/ñot-thére.jpg"),
    ]
    path = shop / "products.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path
