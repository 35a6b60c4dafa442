"""Search for the service and the UI: the product index saved beside an alignment model, and product photos.

An alignment model folder (``skulens search train``) may hold its catalog's index in ``<model>/index``
(``skulens search index CATALOG --model M --out M/index``). Indexes are loaded once per folder and
checked against the model's identity. No modelling happens here.
"""

from __future__ import annotations

from pathlib import Path
from threading import Lock

from skulens.catalog.images import ImageLoadError, read_image_bytes
from skulens.catalog.schema import CatalogError
from skulens.index import SearchIndexError, VectorIndex

INDEX_DIR = "index"

_indexes: dict[tuple[str, str], VectorIndex] = {}
_lock = Lock()


class NoIndexError(SearchIndexError):
    """The alignment model has no product index beside it."""

    code = "no_index"


def model_index(folder: str | Path, identity: str) -> VectorIndex:
    """The index in ``<folder>/index`` built by the model with ``identity`` (loaded once, then reused)."""
    path = Path(folder) / INDEX_DIR
    key = (str(path.resolve()), identity)
    with _lock:
        if key not in _indexes:
            if not path.is_dir():
                raise NoIndexError(
                    f"model {Path(folder).name} has no product index; build one with "
                    f"`skulens search index CATALOG --model {folder} --out {path}`"
                )
            _indexes[key] = VectorIndex.load(path, identity=identity)
        return _indexes[key]


def has_index(folder: str | Path) -> bool:
    return (Path(folder) / INDEX_DIR).is_dir()


def product_image(index: VectorIndex, hit: dict) -> bytes | None:
    """The photo of a search hit (read inside the indexed catalog's image root), or None."""
    root, path = index.manifest.get("image_root"), hit.get("image")
    if not root or not path:
        return None
    try:
        return read_image_bytes(str(path), Path(root))
    except (ImageLoadError, CatalogError, OSError):
        return None
