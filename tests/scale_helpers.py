"""A small catalog written to disk for the streaming and engine tests: PIL-drawn photos + titles in two classes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw

COLOURS = {"Red things": (200, 30, 30), "Blue things": (30, 40, 200)}
NOUNS = ["mug", "shirt", "lamp", "chair", "bag", "clock", "vase", "towel"]


def draw(path: Path, colour: tuple[int, int, int], seed: int) -> None:
    """A 48-px photo: a coloured shape whose size depends on ``seed`` (so every photo's bytes differ)."""
    image = Image.new("RGB", (48, 48), (235, 235, 235))
    pen = ImageDraw.Draw(image)
    box = (3, 3, 6 + seed % 40, 46 - seed // 4)
    if seed % 2:
        pen.ellipse(box, fill=colour)
    else:
        pen.rectangle(box, fill=colour)
    image.save(path, "JPEG", quality=90)


def write_catalog(folder: Path, rows: int = 40, bad: bool = True) -> Path:
    """``folder/catalog.csv`` (``sku, product_name, description, img, category``) + ``folder/img/*.jpg``.

    With ``bad``: one row without an id, one id repeated far from its first use, one image missing and one
    path outside the folder.
    """
    images = folder / "img"
    images.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(rows):
        label = list(COLOURS)[i % 2]
        noun = NOUNS[i % len(NOUNS)]
        draw(images / f"{i:04d}.jpg", COLOURS[label], i)
        word = label.split()[0].lower()
        records.append(
            {
                "sku": f"{i:05d}",
                "product_name": f"{word} {noun} number {i}",
                "description": f"A {word} {noun}; item {i}." if i % 3 else None,
                "img": f"img/{i:04d}.jpg",
                "category": f"{label} >> {noun}",
            }
        )
    if bad:
        records[3]["img"] = "img/missing.jpg"
        records[5]["img"] = "../outside.jpg"
        records.append({"sku": None, "product_name": "no id", "description": None, "img": None, "category": None})
        records.append({**records[1], "product_name": "repeated id"})
    path = folder / "catalog.csv"
    pd.DataFrame(records).to_csv(path, index=False)
    return path
