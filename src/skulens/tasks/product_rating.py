"""Product rating from image + title/description: a Huber-loss regression head on frozen embeddings.

The only rated products here are the 161 Flipkart items with a ``product_rating``; with so few rows the
honest evaluation is K-fold cross-validation against constant baselines (the training mean, and the
training median, which is the best constant for MAE). Each fold's Huber head standardises the
embeddings, projects them on their first 32 principal components (fitted on the training fold only: with
~130 training rows, 1,664 raw dimensions overfit and make Huber slow) and picks its L2 strength ``alpha``
by an inner 3-fold CV (lowest MAE); predictions are clipped to [1, 5].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.decomposition import PCA
from sklearn.linear_model import HuberRegressor
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skulens.catalog.schema import Catalog, CatalogError
from skulens.metrics import mean_std_ci, regression_metrics
from skulens.tasks.features import FeatureExtractor

ALPHAS = (1.0, 10.0, 100.0, 1000.0, 10000.0)
COMPONENTS = 32


def huber_head(alphas: Sequence[float] = ALPHAS, seed: int = 0, components: int = COMPONENTS) -> GridSearchCV:
    """Standardise, PCA to ``components`` dims (fitted on the training fold), ``HuberRegressor``;
    ``alpha`` chosen by inner 3-fold CV on MAE."""
    model = make_pipeline(StandardScaler(), PCA(components, random_state=seed), HuberRegressor(epsilon=1.35, max_iter=1000))
    return GridSearchCV(
        model,
        {"huberregressor__alpha": list(alphas)},
        cv=KFold(3, shuffle=True, random_state=seed),
        scoring="neg_mean_absolute_error",
    )


def _dense(X) -> np.ndarray:
    return X.toarray() if sp.issparse(X) else np.asarray(X, dtype=np.float32)


def product_rating_cv(
    catalog: Catalog,
    encoders: Sequence[str] = ("efficientnet-lite0", "minilm"),
    folds: int = 5,
    seed: int = 0,
    alphas: Sequence[float] = ALPHAS,
    text_fields: Sequence[str] = ("title", "description"),
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> dict:
    """Cross-validated MAE/RMSE/R² of Huber heads on each encoder and on all of them concatenated,
    against predict-the-mean and predict-the-median baselines (see :func:`rating_cv`)."""
    if "rating" not in catalog.frame.columns:
        raise CatalogError(f"catalog '{catalog.name}' has no 'rating' column")
    rating = pd.to_numeric(catalog.frame["rating"], errors="coerce").to_numpy(dtype=float)
    rated = np.flatnonzero(~np.isnan(rating))
    if len(rated) < 2 * folds:
        raise CatalogError(f"only {len(rated)} rated rows in '{catalog.name}'; {folds}-fold CV needs at least {2 * folds}")
    rows, y = catalog.subset(rated), rating[rated]
    features = FeatureExtractor(encoders, text_fields=text_fields, cache_dir=cache_dir, progress=progress).transform(rows)
    blocks = {name: _dense(features.blocks[name]) for name in encoders}
    if len(encoders) > 1:
        blocks["+".join(encoders)] = np.hstack([blocks[name] for name in encoders])
    return {
        "dataset": catalog.name,
        "n_rated": int(len(y)),
        "rating_mean": float(y.mean()),
        "rating_std": float(y.std()),
        "folds": folds,
        "seed": seed,
        "encoders": list(encoders),
        "images_missing": int((~features.present[encoders[0]]).sum()) if encoders else 0,
        "results": rating_cv(blocks, y, folds, seed, alphas),
    }


def rating_cv(
    blocks: dict[str, np.ndarray], y: np.ndarray, folds: int = 5, seed: int = 0, alphas: Sequence[float] = ALPHAS
) -> list:
    """K-fold results of the mean and median baselines and a Huber head per feature block.

    Pooled metrics are over all out-of-fold predictions; ``per_fold`` gives mean, std and 95% CI over
    folds; ``alphas_chosen`` the inner-CV choice of each fold.
    """
    y = np.asarray(y, dtype=float)
    splitter = KFold(folds, shuffle=True, random_state=seed)
    predictions = {"mean baseline": np.zeros(len(y)), "median baseline": np.zeros(len(y))}
    predictions.update({f"huber:{name}": np.zeros(len(y)) for name in blocks})
    chosen: dict[str, list[float]] = {name: [] for name in blocks}
    fold_metrics: dict[str, list[dict]] = {name: [] for name in predictions}
    for train, test in splitter.split(y):
        predictions["mean baseline"][test] = y[train].mean()
        predictions["median baseline"][test] = np.median(y[train])
        for name, X in blocks.items():
            components = max(1, min(COMPONENTS, X.shape[1], len(train) * 2 // 3 - 1))  # PCA fits inner-CV folds too
            search = huber_head(alphas, seed, components).fit(X[train], y[train])
            predictions[f"huber:{name}"][test] = np.clip(search.predict(X[test]), 1.0, 5.0)
            chosen[name].append(float(search.best_params_["huberregressor__alpha"]))
        for name, pred in predictions.items():
            fold_metrics[name].append(regression_metrics(y[test], pred[test]))

    results = []
    for name, pred in predictions.items():
        entry = {"name": name, **regression_metrics(y, pred)}
        entry["per_fold"] = {m: mean_std_ci([f[m] for f in fold_metrics[name]]) for m in ("mae", "rmse", "r2")}
        if name.startswith("huber:"):
            entry["alphas_chosen"] = chosen[name[6:]]
        results.append(entry)
    return results
