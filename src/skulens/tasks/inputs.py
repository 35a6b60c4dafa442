"""What predictors accept: a Catalog or a pandas DataFrame, single products, and training-row ids."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from skulens.catalog.images import decode_image, read_image_bytes
from skulens.catalog.issues import issue_summary, row_issues
from skulens.catalog.readers import read_catalog
from skulens.catalog.schema import Catalog, CatalogError
from skulens.catalog.validation import build_catalog, check_images

log = logging.getLogger(__name__)

#: What ``fit``, ``predict``, ``evaluate``... accept.
Data = Catalog | pd.DataFrame
#: One product image as a caller may hand it over.
ImageInput = str | Path | bytes | bytearray | Image.Image | None


def as_catalog(
    data: Data | str | Path,
    name: str | None = None,
    root: str | Path | None = None,
    image_roots: Sequence[str | Path] = (),
) -> Catalog:
    """The one input path of every task: a :class:`Catalog` as it is; a DataFrame in the skulens schema
    or a catalog file (CSV, Parquet, JSON Lines) validated into one.

    Validation records every problem as a :class:`~skulens.catalog.RowIssue` in ``catalog.issues`` (and
    logs one count line): rows with an empty or repeated id are skipped (the first of a repeated id is
    kept), blank titles and non-numeric ratings dropped, and image paths checked. Image paths resolve
    against a declared ``root`` (a file's default is its own folder; ``image_roots`` adds folders), never
    the working directory: a DataFrame without ``root`` has its image paths dropped, with a warning.
    Images that cannot be read (missing, corrupt, truncated, too large) are listed too, so a task
    flags those rows instead of predicting from nothing.
    """
    if isinstance(data, Catalog):
        return data
    if isinstance(data, (str, Path)):
        catalog = read_catalog(data, root=root, name=name, image_roots=image_roots)
    elif isinstance(data, pd.DataFrame):
        if "id" not in data.columns:
            raise CatalogError(
                f"the DataFrame has no 'id' column (columns: {', '.join(map(str, data.columns))}); "
                "add one with a unique id per row, e.g. frame.rename(columns={'sku': 'id'})"
            )
        resolved = Path(root).expanduser().resolve() if root is not None else None
        catalog = build_catalog(data, root=resolved, name=name or "dataframe", image_roots=image_roots)
        if resolved is None and not image_roots:
            dropped = sum(issue.column == "image" for issue in catalog.issues)
            if dropped:
                log.warning(
                    "%d image path(s) in the DataFrame were not used: no image folder was declared; "
                    "pass root=IMAGE_FOLDER to use them",
                    dropped,
                )
    else:
        raise CatalogError(f"expected a Catalog, a pandas DataFrame or a catalog file path, not {type(data).__name__}")
    if catalog.image_roots:
        catalog.issues = row_issues(catalog, check_images(catalog))
    line = issue_summary(catalog, row_issues(catalog))
    if line:
        log.warning("%s (see catalog.issues)", line)
    return catalog


def hash_ids(ids: Iterable[str]) -> np.ndarray:
    """The sha256 hex digest of each id, as a fixed-width byte array (storable without pickle)."""
    return np.array([hashlib.sha256(str(i).encode("utf-8")).hexdigest().encode("ascii") for i in ids], dtype="S64")


def training_id_mask(ids: Sequence[str], training_hashes: np.ndarray) -> np.ndarray:
    """True for each id whose hash is among ``training_hashes``."""
    if len(training_hashes) == 0 or len(ids) == 0:
        return np.zeros(len(ids), dtype=bool)
    return np.isin(hash_ids(ids), training_hashes)


def product_text(fields: Mapping[str, str | None], text_fields: Sequence[str]) -> str:
    """The text a catalog row with these ``fields`` gives (joined like :meth:`Catalog.texts`)."""
    parts = [str(fields.get(f) or "").strip() for f in text_fields]
    return ". ".join(p for p in parts if p)


def load_product_image(image: ImageInput, draft_size: int | None = None) -> Image.Image | None:
    """An RGB image from a file path, encoded bytes or a PIL image, decoded as catalog images are.

    A missing, unreadable or oversized file raises :class:`~skulens.catalog.images.ImageLoadError`
    naming it; ``draft_size`` lets JPEG files decode at a reduced scale (as the catalog path does).
    """
    if image is None:
        return None
    if isinstance(image, Image.Image):
        return ImageOps.exif_transpose(image).convert("RGB")
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_image(bytes(image), name="<image bytes>", draft_size=draft_size)
    if isinstance(image, (str, Path)):
        full = Path(image).expanduser().resolve()
        return decode_image(read_image_bytes(full, full.parent), name=str(image), draft_size=draft_size)
    raise CatalogError(f"image must be a file path, image bytes or a PIL image, not {type(image).__name__}")
