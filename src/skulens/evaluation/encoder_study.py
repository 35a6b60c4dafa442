"""The encoder study: what each text and image representation buys, by linear-probe macro-F1 and clustering ARI.

Text: bag of words, TF-IDF, Word2Vec trained on the catalog, MiniLM. Image: GLCM, Gabor, an ORB bag of
visual words, the classical colour+HOG+LBP features, the EfficientNet-Lite family. Every representation
is probed with the same logistic regression over the same stratified folds; representations that learn
from data (bag of words, TF-IDF, Word2Vec, the ORB codebook) are fitted on each fold's training rows
only. Clustering (KMeans, k = number of classes) uses every row, without labels.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skulens.catalog.images import ImageLoadError, decode_image, read_image_bytes
from skulens.catalog.schema import Catalog
from skulens.embed import embed_catalog
from skulens.encoders import create_encoder, encoder_info
from skulens.evaluation.clustering import score_clustering
from skulens.evaluation.embedding_space import reduce_vectors
from skulens.evaluation.study_features import BagOfWords, ImageDescriptors, OrbBagOfVisualWords, Word2VecMean

TEXT_FIELDS = ("title", "description")
PRETRAINED = ("minilm", "classical-image", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")


@dataclass
class Representation:
    """``features(train_rows, rows)``: the matrix of ``rows`` with anything learnt taken from ``train_rows``."""

    name: str
    modality: str
    description: str
    features: Callable[[np.ndarray, np.ndarray], np.ndarray | sp.csr_matrix]


def _fitted_text(name: str, description: str, make: Callable[[], object], texts: list[str]) -> Representation:
    def features(train: np.ndarray, rows: np.ndarray):
        model = make().fit([texts[i] for i in train])
        return (
            model.transform([texts[i] for i in rows]) if hasattr(model, "transform") else model.encode([texts[i] for i in rows])
        )

    return Representation(name, "text", description, features)


class _TfidfAdapter:
    def __init__(self) -> None:
        self.encoder = create_encoder("tfidf")

    def fit(self, texts):
        self.encoder.fit(texts)
        return self

    def transform(self, texts):
        return self.encoder.encode(texts)


def representations(
    catalog: Catalog, log: Callable[[str], None] = print, seed: int = 0
) -> tuple[list[Representation], np.ndarray]:
    """Every representation of the study for ``catalog`` (pretrained embeddings come through the cache),
    and which rows have a readable image for all image representations."""
    texts = catalog.texts(TEXT_FIELDS)
    reps = [
        _fitted_text("bag-of-words", "word counts (unigrams)", BagOfWords, texts),
        _fitted_text("tfidf", "TF-IDF word 1-2 grams (skulens' tfidf encoder)", _TfidfAdapter, texts),
        _fitted_text(
            "word2vec",
            "Word2Vec skip-gram (100-d) trained on the catalog, mean of word vectors",
            lambda: Word2VecMean(seed=seed),
            texts,
        ),
    ]
    log("reading images for GLCM / Gabor / ORB")
    images = []
    for path in catalog.frame["image"]:
        try:
            images.append(decode_image(read_image_bytes(path, catalog.root), name=str(path), draft_size=128))
        except (ImageLoadError, OSError, TypeError):
            images.append(None)
    started = time.perf_counter()
    descriptors = ImageDescriptors(images)
    present = descriptors.present.copy()
    log(f"GLCM, Gabor and ORB descriptors of {len(images)} images in {time.perf_counter() - started:.0f}s")
    reps += [
        Representation("glcm", "image", "grey-level co-occurrence properties (72-d)", lambda train, rows: descriptors.glcm[rows]),
        Representation(
            "gabor",
            "image",
            "Gabor magnitude mean/std, 4 frequencies x 4 orientations (32-d)",
            lambda train, rows: descriptors.gabor[rows],
        ),
        Representation(
            "orb-bovw",
            "image",
            "ORB bag of visual words (64-word codebook from training images)",
            lambda train, rows: OrbBagOfVisualWords(descriptors.orb, seed=seed).fit(train).transform(rows),
        ),
    ]
    for name in PRETRAINED:
        encoder = create_encoder(name)
        result = embed_catalog(catalog, encoder, text_fields=TEXT_FIELDS, progress=True)
        vectors = np.asarray(result.vectors)
        reps.append(
            Representation(name, encoder.modality, encoder_info(name).description, lambda train, rows, v=vectors: v[rows])
        )
        if encoder.modality == "image":
            present &= result.present
    return reps, present


def probe_scores(features: Callable, labels: np.ndarray, folds: int, seed: int) -> list[float]:
    """Macro-F1 of a logistic-regression probe on each stratified fold."""
    scores = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels):
        matrix = features(train, np.r_[train, test])
        x_train, x_test = matrix[: len(train)], matrix[len(train) :]
        probe = LogisticRegression(max_iter=3000, C=1.0)
        model = probe if sp.issparse(matrix) else make_pipeline(StandardScaler(), probe)
        model.fit(x_train, labels[train])
        scores.append(float(f1_score(labels[test], model.predict(x_test), average="macro")))
    return scores


def run_encoder_study(
    catalog: Catalog, label: int | str = 0, folds: int = 5, seed: int = 0, log: Callable[[str], None] = print
) -> dict:
    """Probe macro-F1 (mean, std over folds) and clustering ARI/NMI/silhouette for every representation.

    Rows without a label or without a readable image are left out, so every representation is scored
    on the same rows.
    """
    labels = catalog.labels(label)
    catalog = catalog.subset(labels.notna())
    reps, usable = representations(catalog, log, seed)
    rows = np.flatnonzero(usable)
    y = catalog.labels(label).astype(str).to_numpy()[rows]
    results = {}
    for rep in reps:
        started = time.perf_counter()

        def restricted(train, subset, rep=rep):
            return rep.features(rows[train], rows[subset])

        f1 = probe_scores(restricted, y, folds, seed)
        everything = (
            rep.features(np.arange(len(rows)), np.arange(len(rows)))
            if False
            else restricted(np.arange(len(rows)), np.arange(len(rows)))
        )
        clustering = score_clustering(reduce_vectors(everything, 50, seed), y, seed=seed)
        results[rep.name] = {
            "modality": rep.modality,
            "description": rep.description,
            "probe_macro_f1": float(np.mean(f1)),
            "probe_macro_f1_std": float(np.std(f1)),
            "probe_folds": f1,
            "ari": clustering["ari"],
            "nmi": clustering["nmi"],
            "silhouette": clustering["silhouette"],
            "seconds": round(time.perf_counter() - started, 1),
        }
        log(f"{rep.name}: probe macro-F1 {np.mean(f1):.3f} ± {np.std(f1):.3f}, ARI {clustering['ari']:.3f}")
    return {
        "rows": int(len(rows)),
        "classes": int(len(set(y.tolist()))),
        "folds": folds,
        "seed": seed,
        "label": str(label),
        "representations": results,
    }
