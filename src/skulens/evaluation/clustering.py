"""Clustering quality of an embedding space: KMeans and HDBSCAN scored against the true categories.

ARI and NMI compare the clusters with the categories (1 = identical partition, 0 = chance);
silhouette measures how separated the found clusters are in the space itself (cosine; -1..1).
HDBSCAN may call rows noise: they count as one extra cluster for ARI/NMI and are left out of its
silhouette; ``noise_share`` says how many there were.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.cluster import HDBSCAN, KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score


def _silhouette(points: np.ndarray, labels: np.ndarray, seed: int, sample: int = 5000) -> float | None:
    if len(set(labels.tolist())) < 2 or len(set(labels.tolist())) >= len(labels):
        return None
    size = min(sample, len(labels))
    return float(silhouette_score(points, labels, metric="cosine", sample_size=size, random_state=seed))


def partition_scores(points: np.ndarray, truth: Sequence[str], clusters: np.ndarray, seed: int = 0) -> dict:
    """ARI, NMI against ``truth`` and silhouette of ``clusters`` (noise label -1 left out of the silhouette)."""
    kept = clusters >= 0
    return {
        "ari": float(adjusted_rand_score(truth, clusters)),
        "nmi": float(normalized_mutual_info_score(truth, clusters)),
        "silhouette": _silhouette(points[kept], clusters[kept], seed),
        "clusters": int(len(set(clusters[kept].tolist()))),
        "noise_share": float(1 - kept.mean()),
    }


def kmeans_labels(points: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    return KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(points)


def hdbscan_labels(points: np.ndarray, min_cluster_size: int | None = None) -> np.ndarray:
    size = min_cluster_size or max(5, len(points) // 100)
    return HDBSCAN(min_cluster_size=size, metric="euclidean", copy=True).fit_predict(points)


def score_clustering(
    points: np.ndarray, truth: Sequence[str], n_clusters: int | None = None, seed: int = 0, min_cluster_size: int | None = None
) -> dict:
    """KMeans (k = number of true classes unless given) and HDBSCAN on ``points``, each scored against ``truth``.

    ``points`` should be L2-normalised (see ``embedding_space.reduce_vectors``). The top-level
    ``ari``/``nmi``/``silhouette`` are KMeans'; ``silhouette_true`` is the silhouette of the true
    categories themselves (how well the space separates them without any clustering).
    """
    truth = np.asarray([str(t) for t in truth])
    k = n_clusters or len(set(truth.tolist()))
    kmeans = partition_scores(points, truth, kmeans_labels(points, k, seed), seed)
    hdbscan = partition_scores(points, truth, hdbscan_labels(points, min_cluster_size), seed)
    _, true_ids = np.unique(truth, return_inverse=True)
    return {
        "rows": int(len(truth)),
        "classes": int(len(set(truth.tolist()))),
        "ari": kmeans["ari"],
        "nmi": kmeans["nmi"],
        "silhouette": kmeans["silhouette"],
        "silhouette_true": _silhouette(points, true_ids, seed),
        "kmeans": kmeans,
        "hdbscan": hdbscan,
    }
