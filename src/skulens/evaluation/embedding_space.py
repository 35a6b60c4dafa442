"""A catalog's embeddings as a dense, reduced, L2-normalised matrix: the common input of maps, clustering and drift."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.preprocessing import normalize

from skulens.catalog.schema import Catalog
from skulens.embed import embed_catalog
from skulens.encoders import create_encoder


@dataclass
class CatalogVectors:
    """One encoder's vectors for the rows of a catalog that have something to encode (``rows`` index the catalog)."""

    encoder: str
    modality: str
    vectors: np.ndarray | sp.csr_matrix
    rows: np.ndarray


def catalog_vectors(
    catalog: Catalog, encoder: str, cache_dir: str | Path | None = None, progress: bool = False
) -> CatalogVectors:
    """Embed ``catalog`` with ``encoder`` through the cache; a fitted text encoder (TF-IDF) is fitted on the catalog."""
    model = create_encoder(encoder)
    if model.requires_fit:
        model.fit(catalog.texts())
    result = embed_catalog(catalog, model, cache_dir=cache_dir, progress=progress)
    rows = np.flatnonzero(result.present)
    return CatalogVectors(encoder, model.modality, result.vectors[rows], rows)


def reduce_vectors(vectors: np.ndarray | sp.spmatrix, dims: int = 50, seed: int = 0) -> np.ndarray:
    """L2-normalise rows, project to at most ``dims`` principal directions (truncated SVD for sparse), normalise again."""
    unit = normalize(vectors)
    limit = min(dims, unit.shape[0] - 1, unit.shape[1] - 1 if sp.issparse(unit) else unit.shape[1])
    if sp.issparse(unit):
        reduced = TruncatedSVD(n_components=max(limit, 1), random_state=seed).fit_transform(unit)
    elif unit.shape[1] > limit:
        reduced = PCA(n_components=limit, random_state=seed).fit_transform(unit)
    else:
        reduced = np.asarray(unit)
    return normalize(reduced).astype(np.float32)
