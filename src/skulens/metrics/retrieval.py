"""Retrieval metrics for paired query/gallery embeddings (row i of the queries matches row i of the gallery)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pair_ranks(queries: np.ndarray, gallery: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The 0-based rank of each query's own gallery item (ties count in the query's favour)."""
    if queries.shape != gallery.shape:
        raise ValueError(f"queries {queries.shape} and gallery {gallery.shape} must be paired row by row")
    ranks = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), batch_size):
        sims = queries[start : start + batch_size] @ gallery.T
        own = sims[np.arange(len(sims)), np.arange(start, start + len(sims))]
        ranks[start : start + len(sims)] = (sims > own[:, None]).sum(axis=1)
    return ranks


def recall_at_k(queries: np.ndarray, gallery: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Share of queries whose own gallery item is among the top ``k`` most similar, for each ``k``."""
    ranks = pair_ranks(queries, gallery)
    return {int(k): float(np.mean(ranks < k)) for k in ks}


def category_consistent_r1(queries: np.ndarray, gallery: np.ndarray, labels: Sequence) -> float:
    """Share of queries whose top-1 gallery item has the query's label (e.g. the same articleType)."""
    labels = np.asarray(labels)
    if len(labels) != len(gallery) or len(queries) != len(gallery):
        raise ValueError("labels, queries and gallery must have the same number of rows")
    top = np.argmax(queries @ gallery.T, axis=1)
    return float(np.mean(labels[top] == labels))


def neighbour_recall(approximate: np.ndarray, exact: np.ndarray) -> float:
    """recall@k of an approximate search: the share of the exact top-k ids the approximate top-k found."""
    if approximate.shape != exact.shape:
        raise ValueError(f"approximate {approximate.shape} and exact {exact.shape} results differ in shape")
    k = exact.shape[1]
    found = sum(len(set(a.tolist()) & set(e.tolist())) for a, e in zip(approximate, exact))
    return found / (len(exact) * k) if len(exact) else 0.0
