"""Built-in example products and reviews the UI offers as one-click tries (images drawn with PIL)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from PIL import Image, ImageDraw

SIZE = 256


@dataclass(frozen=True)
class Example:
    label: str
    title: str
    description: str
    draw: str  # name of the drawing function below

    def image(self) -> Image.Image:
        return draw_example(self.draw)


EXAMPLES = (
    Example(
        "Wrist watch",
        "Analog wrist watch with leather strap",
        "Round stainless steel dial, water resistant, for men",
        "watch",
    ),
    Example("Frying pan", "Non-stick frying pan 24 cm", "Aluminium pan with a heat-resistant handle for daily cooking", "pan"),
    Example("Laptop", "15.6 inch laptop with backlit keyboard", "8 GB RAM, 512 GB SSD, full HD screen", "laptop"),
)

EXAMPLE_REVIEWS = {
    "Happy customer": "Love it! The fabric is soft and it fits perfectly. I wear it every week.",
    "Unhappy customer": "Cheap fabric, it ripped after one wash. Returned it.",
    "Mixed feelings": "It's okay. Nice colour, but it runs a bit large and the zip feels flimsy.",
}


def _watch(draw: ImageDraw.ImageDraw) -> None:
    draw.rectangle((103, 0, 153, 256), fill=(110, 70, 40))  # strap
    draw.ellipse((58, 58, 198, 198), fill=(190, 190, 195), outline=(90, 90, 95), width=6)  # case
    draw.ellipse((72, 72, 184, 184), fill=(250, 250, 245))  # dial
    for x, y in ((128, 80), (176, 128), (128, 176), (80, 128)):
        draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=(30, 30, 30))  # hour marks
    draw.line((128, 128, 128, 92), fill=(20, 20, 20), width=5)
    draw.line((128, 128, 160, 140), fill=(20, 20, 20), width=4)


def _pan(draw: ImageDraw.ImageDraw) -> None:
    draw.rectangle((150, 118, 252, 138), fill=(60, 40, 30))  # handle
    draw.ellipse((10, 40, 170, 200), fill=(70, 70, 75))  # rim
    draw.ellipse((24, 54, 156, 186), fill=(35, 35, 38))  # non-stick surface


def _laptop(draw: ImageDraw.ImageDraw) -> None:
    draw.rectangle((48, 40, 208, 150), fill=(40, 40, 45))  # lid
    draw.rectangle((58, 50, 198, 140), fill=(70, 130, 200))  # screen
    draw.polygon([(40, 156), (216, 156), (246, 210), (10, 210)], fill=(170, 170, 175))  # base
    for row in range(3):
        y = 166 + row * 12
        draw.line((40 - row * 6, y, 216 + row * 6, y), fill=(120, 120, 125), width=2)  # keys


@cache
def draw_example(name: str) -> Image.Image:
    """The example's product photo (a plain drawing on a light background)."""
    image = Image.new("RGB", (SIZE, SIZE), (236, 236, 232))
    {"watch": _watch, "pan": _pan, "laptop": _laptop}[name](ImageDraw.Draw(image))
    return image
