"""Catalog ingestion: the schema, readers, built-in datasets, safe images, validation and splits."""

from skulens.catalog.datasets import ADAPTERS, data_root, load_catalog
from skulens.catalog.images import ImageLoadError, decode_image, load_image, read_image_bytes, resolve_image_path
from skulens.catalog.issues import issue_column, issue_summary, row_issues
from skulens.catalog.readers import frame_to_catalog, parse_columns, read_catalog, read_reviews
from skulens.catalog.schema import SCHEMA_COLUMNS, Catalog, CatalogError, ColumnMapping, RowIssue, write_issues
from skulens.catalog.splits import NewProductsSplit, Split, balance_catalog, family_key, new_products_split, split_catalog
from skulens.catalog.validation import build_catalog, check_images

__all__ = [
    "ADAPTERS",
    "SCHEMA_COLUMNS",
    "Catalog",
    "CatalogError",
    "ColumnMapping",
    "ImageLoadError",
    "NewProductsSplit",
    "RowIssue",
    "Split",
    "balance_catalog",
    "build_catalog",
    "check_images",
    "data_root",
    "decode_image",
    "family_key",
    "frame_to_catalog",
    "issue_column",
    "issue_summary",
    "load_catalog",
    "load_image",
    "new_products_split",
    "parse_columns",
    "read_catalog",
    "read_image_bytes",
    "read_reviews",
    "resolve_image_path",
    "row_issues",
    "split_catalog",
    "write_issues",
]
