"""Text/image search and similar products over a ``VectorIndex`` of alignment embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from skulens.catalog.schema import Catalog
from skulens.index import SearchIndexError, VectorIndex
from skulens.tasks.align.common import AlignmentError, normalise_rows


class SearchMixin:
    """Search methods of ``AlignmentModel`` (they use its ``encode_*`` methods and ``identity``)."""

    def build_index(
        self,
        catalog: Catalog,
        columns: Sequence[str] | None = None,
        kind: str = "auto",
        use: str = "image",
    ) -> VectorIndex:
        """An index of the catalog's products (their image embeddings, or ``text`` / ``both``) with
        ``columns`` kept for filters and display (default: the non-schema text-like columns + title, image)."""
        image, image_ok, text, text_ok = self.encode_catalog(catalog)
        if use == "image":
            vectors, ok = image, image_ok
        elif use == "text":
            vectors, ok = text, text_ok
        elif use == "both":
            vectors, ok = normalise_rows(image * image_ok[:, None] + text * text_ok[:, None]), image_ok | text_ok
        else:
            raise AlignmentError(f"use must be 'image', 'text' or 'both', not '{use}'")
        rows = np.flatnonzero(ok)
        if len(rows) == 0:
            raise AlignmentError(f"catalog '{catalog.name}' has no product with a usable {use} to index")
        frame = catalog.frame.iloc[rows]
        if columns is None:
            columns = [c for c in frame.columns if c not in ("id", "category", "description", "review_text")]
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise AlignmentError(
                f"catalog '{catalog.name}' has no column {', '.join(missing)}; it has {', '.join(frame.columns)}"
            )
        metadata = frame[list(columns)].copy()
        if "category" in frame.columns and "category" not in columns:
            metadata["category"] = frame["category"].map(lambda p: " > ".join(p) if isinstance(p, tuple) else None)
        extra = {"vectors": use, "catalog": catalog.name, "image_root": str(catalog.root) if catalog.root else None}
        return VectorIndex.build(vectors[rows], [catalog.ids[i] for i in rows], self.identity, metadata, kind=kind, extra=extra)

    def search(
        self,
        index: VectorIndex,
        text: str | None = None,
        image: Image.Image | bytes | str | Path | None = None,
        k: int = 10,
        where: dict | None = None,
    ) -> list[dict]:
        """Top-``k`` products for a text or an image query: ``[{id, score, corpus_id, **metadata}]``."""
        index.check_identity(self.identity)
        if (text is None) == (image is None):
            raise AlignmentError("give exactly one query: a text or an image")
        query = self.encode_texts([text]) if text is not None else self.encode_images([image])
        return [_hit_dict(hit) for hit in index.search(query, k, where)[0]]

    def similar(self, index: VectorIndex, product_id: str, k: int = 10, where: dict | None = None) -> list[dict]:
        """The ``k`` products most similar to an indexed product (itself excluded)."""
        index.check_identity(self.identity)
        return similar_products(index, product_id, k, where)


def similar_products(index: VectorIndex, product_id: str, k: int = 10, where: dict | None = None) -> list[dict]:
    """The ``k`` indexed products nearest to ``product_id`` (itself excluded)."""
    if k > len(index) - 1:
        raise SearchIndexError(f"k={k} is larger than the other products in the index ({len(index) - 1})")
    hits = index.search(index.vector(product_id), min(k + 1, len(index)), where)[0]
    return [_hit_dict(hit) for hit in hits if hit.id != str(product_id)][:k]


def _hit_dict(hit) -> dict:
    return {"id": hit.id, "score": hit.score, "corpus_id": hit.corpus_id, **hit.metadata}
