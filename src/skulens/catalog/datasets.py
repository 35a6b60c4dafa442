"""Built-in dataset adapters (flipkart, myntra, myntra_more, reviews) and name-or-path resolution."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from skulens.catalog.readers import read_catalog, read_table
from skulens.catalog.schema import Catalog, CatalogError
from skulens.catalog.validation import build_catalog

DATA_ENV = "SKULENS_DATA"


def data_root() -> Path:
    """Where built-in datasets live: ``$SKULENS_DATA``, else ``../shared/datasets`` next to the
    working directory or next to the skulens checkout."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[3]
    for candidate in (Path.cwd().parent / "shared" / "datasets", checkout.parent / "shared" / "datasets"):
        if candidate.is_dir():
            return candidate.resolve()
    return (checkout.parent / "shared" / "datasets").resolve()


def _require(folder: Path, name: str) -> Path:
    if not folder.is_dir():
        raise CatalogError(
            f"dataset '{name}' not found at {folder}; set {DATA_ENV}=<folder holding {name}/> "
            "or run from a checkout with ../shared/datasets beside it"
        )
    return folder


def _flipkart_tree(value: object) -> str | None:
    """``'["A >> B >> C"]'`` -> ``'A >> B >> C'``."""
    if not isinstance(value, str):
        return None
    try:
        parsed = json.loads(value)
        return parsed[0] if isinstance(parsed, list) and parsed else None
    except json.JSONDecodeError:
        return value.strip('[]"')


def load_flipkart(folder: Path, image_roots: Sequence[str | Path] = ()) -> Catalog:
    """The Flipkart sample: 1,050 products, image + title + description, category tree of 2-7 levels."""
    raw = read_table(folder / "flipkart_com-ecommerce_sample_1050.csv", id_column="uniq_id")
    frame = pd.DataFrame(
        {
            "id": raw["uniq_id"],
            "title": raw["product_name"],
            "description": raw["description"],
            "image": "images/" + raw["image"].astype(str),
            "category": raw["product_category_tree"].map(_flipkart_tree),
            "rating": raw["product_rating"],
            "brand": raw["brand"],
        }
    )
    return build_catalog(frame, root=folder.resolve(), name="flipkart", image_roots=image_roots)


def load_myntra(
    folder: Path, with_images_only: bool = True, image_roots: Sequence[str | Path] = (), name: str = "myntra"
) -> Catalog:
    """Myntra fashion products; category = (masterCategory, subCategory, articleType), each level also
    kept as its own column (so ``label="masterCategory"`` works)."""
    raw = read_table(folder / ("styles_with_images.csv" if with_images_only else "styles.csv"))
    ids = raw["id"].astype(str)
    images = "images/" + ids + ".jpg"
    if not with_images_only:
        images = images.where([(folder / p).is_file() for p in images], None)
    frame = pd.DataFrame(
        {
            "id": ids,
            "title": raw["productDisplayName"],
            "image": images,
            "category": list(zip(raw["masterCategory"], raw["subCategory"], raw["articleType"])),
            "masterCategory": raw["masterCategory"],
            "subCategory": raw["subCategory"],
            "articleType": raw["articleType"],
            "gender": raw["gender"],
            "colour": raw["baseColour"],
            "season": raw["season"],
            "usage": raw["usage"],
        }
    )
    return build_catalog(frame, root=folder.resolve(), name=name, image_roots=image_roots)


def load_myntra_more(folder: Path, image_roots: Sequence[str | Path] = ()) -> Catalog:
    """34,500 more Myntra products (60x80 photos, ids outside ``myntra/``'s range), same columns as myntra."""
    return load_myntra(folder, image_roots=image_roots, name="myntra_more")


def load_reviews(folder: Path, image_roots: Sequence[str | Path] = ()) -> Catalog:
    """Women's clothing reviews: title + text, 1-5 stars, recommended, (division, department, class)."""
    raw = read_table(folder / "womens_clothing_reviews.csv")
    frame = pd.DataFrame(
        {
            "id": "r" + raw.iloc[:, 0].astype(str),
            "title": raw["Title"],
            "review_text": raw["Review Text"],
            "rating": raw["Rating"],
            "recommended": raw["Recommended IND"],
            "product_id": raw["Clothing ID"].astype(str),
            "category": list(zip(raw["Division Name"], raw["Department Name"], raw["Class Name"])),
        }
    )
    frame["category"] = frame["category"].map(lambda levels: tuple(v for v in levels if isinstance(v, str)))
    return build_catalog(frame, root=folder.resolve(), name="reviews", image_roots=image_roots)


ADAPTERS: dict[str, Callable[..., Catalog]] = {
    "flipkart": load_flipkart,
    "myntra": load_myntra,
    "myntra_more": load_myntra_more,
    "reviews": load_reviews,
}


def load_catalog(
    name_or_path: str | Path, columns: Mapping[str, str] | None = None, image_roots: Sequence[str | Path] = ()
) -> Catalog:
    """A built-in dataset by name (``flipkart``, ``myntra``, ``myntra_more``, ``reviews``) or a catalog file by path.

    ``columns`` maps schema names to a file's columns (built-in datasets have their own mapping);
    ``image_roots`` are folders besides the catalog's own that images may be read from.
    """
    key = str(name_or_path)
    if key in ADAPTERS:
        if columns:
            raise CatalogError(f"'{key}' is a built-in dataset with its own column mapping; --columns applies to your own files")
        return ADAPTERS[key](_require(data_root() / key, key), image_roots=image_roots)
    path = Path(key)
    if not path.exists():
        raise CatalogError(f"'{key}' is neither a built-in dataset ({', '.join(ADAPTERS)}) nor an existing catalog file")
    return read_catalog(path, columns=columns, image_roots=image_roots)
