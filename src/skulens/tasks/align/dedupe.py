"""Near-duplicate listings: pairs whose image and text embeddings are both near-identical."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from skulens.catalog.images import ImageLoadError, read_image_bytes
from skulens.catalog.schema import Catalog, CatalogError
from skulens.catalog.splits import normalise_text
from skulens.index import VectorIndex
from skulens.tasks.align.common import AlignmentError, as_catalog


@dataclass
class DedupeResult:
    """Near-duplicate pairs (``pairs``: id_a, id_b, score, image_sim, text_sim, exact) and how the threshold was set."""

    pairs: pd.DataFrame
    threshold: float
    threshold_source: str
    exact_pairs: int
    precision: float | None
    recall: float | None


class DedupeMixin:
    """The near-duplicate method of ``AlignmentModel`` (it uses its ``encode_catalog``)."""

    def dedupe(
        self,
        data: Catalog | pd.DataFrame,
        threshold: float | None = None,
        neighbours: int = 10,
        default_threshold: float = 0.9,
    ) -> DedupeResult:
        """Pairs of listings whose image and text are both near-identical (score = mean of the two cosines).

        Without ``threshold``, it is chosen on the catalog itself: the score that best separates (F1) the
        candidate pairs that are exact duplicates (identical image bytes or identical normalised titles)
        from the rest; precision and recall against those exact pairs are reported (precision is a lower
        bound: a near duplicate that is not exact counts against it). Without exact duplicates,
        ``default_threshold`` is used and precision is None.
        """
        catalog = as_catalog(data)
        image, image_ok, text, text_ok = self.encode_catalog(catalog)
        ok = np.flatnonzero(image_ok & text_ok)
        if len(ok) < 2:
            raise AlignmentError(f"catalog '{catalog.name}' needs at least two products with an image and a text to dedupe")
        both = np.hstack([image[ok], text[ok]]) / np.sqrt(2.0)
        index = VectorIndex.build(both, [catalog.ids[i] for i in ok], "dedupe", kind="auto")
        hits = index.search(both, min(neighbours + 1, len(ok)))
        keys = _exact_keys(catalog)
        seen, records = set(), []
        for a, row_hits in enumerate(hits):
            for hit in row_hits:
                b = hit.corpus_id
                if a == b or (min(a, b), max(a, b)) in seen:
                    continue
                seen.add((min(a, b), max(a, b)))
                ra, rb = ok[a], ok[b]
                exact = bool(
                    (keys["image"][ra] and keys["image"][ra] == keys["image"][rb])
                    or (keys["title"][ra] and keys["title"][ra] == keys["title"][rb])
                )
                records.append(
                    (catalog.ids[ra], catalog.ids[rb], hit.score, float(image[ra] @ image[rb]), float(text[ra] @ text[rb]), exact)
                )
        pairs = pd.DataFrame(records, columns=["id_a", "id_b", "score", "image_sim", "text_sim", "exact"])
        exact_total = int(pairs["exact"].sum())
        source = "given"
        if threshold is None:
            threshold, source = (
                (_best_threshold(pairs), "chosen on exact duplicates (best F1)")
                if exact_total
                else (
                    default_threshold,
                    "default (no exact duplicates to choose it on)",
                )
            )
        kept = pairs[pairs["score"] >= threshold].sort_values("score", ascending=False).reset_index(drop=True)
        precision = float(kept["exact"].mean()) if exact_total and len(kept) else None
        recall = float(kept["exact"].sum() / exact_total) if exact_total else None
        return DedupeResult(kept, float(threshold), source, exact_total, precision, recall)


def _exact_keys(catalog: Catalog) -> dict[str, list[str]]:
    """Per row: a hash of the image bytes ('' without a readable image) and the normalised title."""
    image_keys = []
    paths = catalog.frame["image"].tolist() if "image" in catalog.frame.columns else [None] * len(catalog)
    for path in paths:
        try:
            image_keys.append(hashlib.sha256(read_image_bytes(path, catalog.root)).hexdigest() if path else "")
        except (ImageLoadError, OSError, CatalogError):
            image_keys.append("")
    titles = catalog.frame["title"].map(normalise_text).tolist() if "title" in catalog.frame.columns else [""] * len(catalog)
    return {"image": image_keys, "title": titles}


def _best_threshold(pairs: pd.DataFrame) -> float:
    """The score threshold with the best F1 of 'score >= t' against the ``exact`` column."""
    scores = pairs["score"].to_numpy()
    exact = pairs["exact"].to_numpy()
    order = np.argsort(-scores)
    hits = np.cumsum(exact[order])
    flagged = np.arange(1, len(order) + 1)
    f1 = 2 * hits / (flagged + exact.sum())
    best = int(np.argmax(f1))
    return float(scores[order][best])
