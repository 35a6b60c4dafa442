"""Tiny real models for the service/UI tests: PIL-drawn products in three categories, a handful of reviews."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

KINDS = {
    # category: (colour, shape, words)
    "Kitchen": ((200, 30, 30), "circle", ["steel pan", "cooking pot", "kitchen knife", "frying pan", "tea kettle"]),
    "Garden": ((30, 160, 40), "triangle", ["garden hose", "flower pot", "lawn rake", "seed tray", "plant pots"]),
    "Toys": ((30, 60, 210), "square", ["toy car", "teddy bear", "puzzle box", "rubber duck", "kids blocks"]),
}


def product_image(category: str, seed: int = 0, size: int = 96) -> Image.Image:
    colour, shape, _ = KINDS[category]
    rng = np.random.default_rng(seed)
    background = tuple(int(v) for v in rng.integers(215, 256, size=3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    m = int(rng.integers(8, 20))
    box = (m, m, size - m, size - m)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(size // 2, m), (m, size - m), (size - m, size - m)], fill=colour)
    return image


def image_bytes(category: str, seed: int = 0, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    product_image(category, seed).save(buffer, fmt)
    return buffer.getvalue()


def tiny_catalog(folder: Path, per_class: int = 8):
    """A catalog of ``3 * per_class`` products with images under ``folder/images``."""
    from skulens.catalog.schema import Catalog

    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for category, (_, _, words) in KINDS.items():
        for i in range(per_class):
            name = f"{category.lower()}-{i}.jpg"
            (images / name).write_bytes(image_bytes(category, seed=i))
            word = words[i % len(words)]
            rows.append(
                {
                    "id": f"{category}-{i}",
                    "title": f"{word} number {i}",
                    "description": f"a {word} for the {category.lower()} shelf",
                    "image": name,
                    "category": (category,),
                }
            )
    return Catalog(pd.DataFrame(rows), root=images, name="tiny")


def train_tiny(folder: Path, encoders=("efficientnet-lite0", "tfidf"), name: str = "tiny-categorizer", cache_dir=None) -> Path:
    """Train and save a tiny categorizer in ``folder/name``; returns the model folder."""
    from skulens.tasks.categorize import CategoryPredictor

    catalog = tiny_catalog(folder / "data")
    predictor = CategoryPredictor(encoders=list(encoders), min_class_count=2, cache_dir=cache_dir or folder / "cache")
    predictor.fit(catalog)
    predictor.evaluate(catalog, include_training_rows=True)  # scores its own training rows
    return predictor.save(folder / "models" / name)


#: Short reviews whose words say their rating: tfidf learns them in a fraction of a second.
REVIEWS = {
    "good": ["love it, great fit", "perfect dress, beautiful colour", "great quality, so soft", "excellent, wear it daily"],
    "bad": ["awful fabric, returned it", "terrible fit, cheap", "poor quality, tore quickly", "horrible, do not buy"],
    "middling": ["it is okay, average", "fine but nothing special", "decent, runs a bit large"],
}


def tiny_reviews():
    """60 reviews, 12 per star rating (1-2 bad words, 3 middling, 4-5 good), with a recommended flag."""
    from skulens.catalog.schema import Catalog

    rows = []
    for i in range(60):
        stars = i % 5 + 1
        pool = REVIEWS["good"] if stars >= 4 else REVIEWS["bad"] if stars <= 2 else REVIEWS["middling"]
        rows.append({"id": str(i), "review_text": pool[(i // 5) % len(pool)], "rating": stars, "recommended": int(stars >= 4)})
    return Catalog(pd.DataFrame(rows), name="tiny-reviews")


def train_tiny_reviews(folder: Path, name: str = "tiny-reviews") -> Path:
    """Train and save a TF-IDF reviews model on :func:`tiny_reviews` in ``folder/models/name``."""
    from skulens.tasks.reviews import ReviewPredictor

    predictor = ReviewPredictor(encoders=["tfidf"], cache_dir=folder / "cache").fit(tiny_reviews())
    return predictor.save(folder / "models" / name)


def shared_models(tmp_path_factory) -> Path:
    """A models folder shared by the service and UI tests of one session (trained once):
    ``tiny-categorizer`` (EfficientNet-Lite0 + TF-IDF), ``text-only`` (TF-IDF) and ``tiny-reviews``."""
    root = tmp_path_factory.getbasetemp() / "serve-shared"
    models = root / "models"
    done = root / "done"
    if not done.exists():
        train_tiny(root, encoders=("efficientnet-lite0", "tfidf"), name="tiny-categorizer")
        train_tiny(root, encoders=("tfidf",), name="text-only")
        train_tiny_reviews(root)
        done.touch()
    return models


def write_report(folder: Path, predictor, catalog, title: str) -> Path:
    """A report folder like the one ``skulens evaluate`` / ``make demo`` write (metrics.json, report.md
    with the per-class table, confusion.png), from ``predictor`` evaluated on ``catalog``."""
    from skulens.evaluation.report import confusion_png, markdown_table, write_json

    metrics = predictor.evaluate(catalog)
    write_json(metrics, folder / "metrics.json")
    confusion_png(metrics["confusion_matrix"], metrics["classes"], folder / "confusion.png", title)
    per_class = [{"class": c, **v} for c, v in metrics["per_class"].items()]
    table = markdown_table(per_class, [("class", "class"), ("precision", "precision"), ("recall", "recall"), ("f1", "F1")])
    (folder / "report.md").write_text(
        f"# {title}\n\naccuracy {metrics['accuracy']:.3f} on {metrics['n']} held-out products\n\n{table}\n\n"
        "![confusion matrix](confusion.png)\n"
    )
    return folder


def ui_models(root: Path, flipkart: bool, per_class: int = 10):
    """A folder laid out like ``make demo``'s (``models/`` + ``report/``) for the browser tests.

    The categorizer (EfficientNet-Lite0 + TF-IDF) is trained on ``per_class`` Flipkart products of each
    category when ``flipkart`` (the real data set is there), else on the PIL-drawn catalog; the reviews
    model is the tiny TF-IDF one. Returns ``(models folder, held-out catalog)``; held-out products have images.
    """
    from skulens.tasks.categorize import CategoryPredictor

    if flipkart:
        from skulens.catalog import load_catalog

        catalog, name = load_catalog("flipkart"), "flipkart-small"
    else:
        catalog, name = tiny_catalog(root / "data", per_class=per_class + 2), "tiny"
    labels = catalog.labels(0)
    rows = {c: np.flatnonzero(labels == c) for c in sorted(labels.unique())}
    train = catalog.subset([int(i) for r in rows.values() for i in r[:per_class]])
    held_out = catalog.subset([int(i) for r in rows.values() for i in r[per_class : per_class + 2]])
    predictor = CategoryPredictor(["efficientnet-lite0", "tfidf"], min_class_count=2, cache_dir=root / "cache").fit(train)
    predictor.save(root / "models" / f"{name}-categorizer")
    (root / "report").mkdir(parents=True, exist_ok=True)
    write_report(root / "report", predictor, held_out, f"{name} categorizer on {len(held_out)} held-out products")
    train_tiny_reviews(root)
    return root / "models", held_out
