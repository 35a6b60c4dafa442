"""Vector search over aligned embeddings: FAISS flat / IVF / HNSW with a versioned on-disk format."""

from skulens.index.vector_index import (
    FLAT_LIMIT,
    FORMAT_VERSION,
    Hit,
    IndexIdentityError,
    SearchIndexError,
    UnknownProductError,
    VectorIndex,
)

__all__ = ["FLAT_LIMIT", "FORMAT_VERSION", "Hit", "SearchIndexError", "IndexIdentityError", "UnknownProductError", "VectorIndex"]
