"""Catalog ingestion: the schema, readers, built-in datasets, safe images, validation and splits."""

from skulens.catalog.datasets import ADAPTERS, data_root, load_catalog
from skulens.catalog.images import ImageLoadError, decode_image, load_image, resolve_image_path
from skulens.catalog.readers import read_catalog
from skulens.catalog.schema import SCHEMA_COLUMNS, Catalog, CatalogError, RowIssue, write_issues
from skulens.catalog.splits import Split, balance_catalog, split_catalog
from skulens.catalog.validation import build_catalog, check_images

__all__ = [
    "ADAPTERS",
    "SCHEMA_COLUMNS",
    "Catalog",
    "CatalogError",
    "ImageLoadError",
    "RowIssue",
    "Split",
    "balance_catalog",
    "build_catalog",
    "check_images",
    "data_root",
    "decode_image",
    "load_catalog",
    "load_image",
    "read_catalog",
    "resolve_image_path",
    "split_catalog",
    "write_issues",
]
