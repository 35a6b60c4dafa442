"""Product rating from image + title/description: a Huber-loss regression head on frozen embeddings.

The only rated products here are the 161 Flipkart items with a ``product_rating``; with so few rows the
honest evaluation is K-fold cross-validation against constant baselines (the training mean, and the
training median, which is the best constant for MAE). Each fold's Huber head standardises the
embeddings, projects them on their first 32 principal components (fitted on the training fold only: with
~130 training rows, 1,664 raw dimensions overfit and make Huber slow) and picks its L2 strength ``alpha``
by an inner 3-fold CV (lowest MAE); predictions are clipped to [1, 5].

:class:`RatingPredictor` is that head fitted on every rated row, as a task predictor (fit / predict / save...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

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
from skulens.tasks.features import FeatureExtractor, Features
from skulens.tasks.inputs import Data, ImageInput, as_catalog, load_product_image, product_text
from skulens.tasks.model_folder import ModelFolderError, check_config, read_model_folder, restoring, write_model_folder
from skulens.tasks.predictor import (
    WARM_UP_TEXT,
    ConfigField,
    ExtractorEncoders,
    catalog_row_issues,
    config_dict,
    config_from,
    row_issue_texts,
    with_issues,
)

TASK = "rating"
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


@dataclass(frozen=True)
class RatingConfig:
    """A product-rating model's settings (saved in ``config.json``; see :class:`RatingPredictor`)."""

    encoders: tuple[str, ...] = ("efficientnet-lite0", "minilm")
    text_fields: tuple[str, ...] = ("title", "description")
    alphas: tuple[float, ...] = ALPHAS
    components: int = COMPONENTS
    seed: int = 0


class RatingPredictor(ExtractorEncoders):
    """Product rating (1-5) from image + text: the Huber head of :func:`huber_head` on the encoders'
    concatenated embeddings, fitted on every rated row. The fitted pipeline (standardise, PCA, Huber) is
    affine, so it is kept as one weight vector and intercept (``weights_``, ``intercept_``): saved as
    arrays, never pickled. Predictions are clipped to [1, 5]."""

    task: ClassVar[str] = TASK
    batched: ClassVar[bool] = True

    def __init__(
        self,
        encoders: Sequence[str] = ("efficientnet-lite0", "minilm"),
        text_fields: Sequence[str] = ("title", "description"),
        alphas: Sequence[float] = ALPHAS,
        components: int = COMPONENTS,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        progress: bool = False,
    ) -> None:
        if not encoders:
            raise CatalogError("give at least one encoder, e.g. encoders=['minilm']")
        self.config = RatingConfig(tuple(encoders), tuple(text_fields), tuple(alphas), components, seed)
        self.extractor = FeatureExtractor(
            self.config.encoders, text_fields=self.config.text_fields, cache_dir=cache_dir, progress=progress
        )
        self.metrics_: dict = {}

    encoders = ConfigField[list[str]](list)
    text_fields = ConfigField[tuple[str, ...]]()

    def _matrix(self, features: Features) -> np.ndarray:
        return np.hstack([_dense(features.blocks[name]) for name in self.encoders])

    def _read(self, features: Features) -> np.ndarray:
        return np.logical_or.reduce([features.present[name] for name in self.encoders])

    def _check_fitted(self) -> None:
        if not hasattr(self, "weights_"):
            raise CatalogError("this RatingPredictor is not trained yet; call fit(catalog) or load(folder)")

    # ----- training ------------------------------------------------------------------------
    def fit(self, data: Data) -> RatingPredictor:
        """Fit the Huber head (``alpha`` by inner 3-fold CV on MAE) on the rated rows. Returns self."""
        catalog = as_catalog(data)
        y = _ratings(catalog)
        rated = np.flatnonzero(~np.isnan(y))
        if len(rated) < 6:
            raise CatalogError(f"only {len(rated)} rated rows in '{catalog.name}'; a rating model needs at least 6")
        rows = catalog.subset(rated)
        self.extractor.fit(rows)
        X, y = self._matrix(self.extractor.transform(rows)), y[rated]
        components = max(1, min(self.config.components, X.shape[1], len(rated) * 2 // 3 - 1))
        search = huber_head(self.config.alphas, self.config.seed, components).fit(X, y)
        scaler, pca, huber = (step for _, step in search.best_estimator_.steps)
        direction = pca.components_.T @ huber.coef_
        self.weights_ = (direction / scaler.scale_).astype(np.float64)
        self.intercept_ = float(huber.intercept_ - (scaler.mean_ / scaler.scale_ + pca.mean_) @ direction)
        self.alpha_ = float(search.best_params_["huberregressor__alpha"])
        self.training_mean_ = float(y.mean())
        return self

    # ----- prediction ----------------------------------------------------------------------
    def _predict_features(self, features: Features) -> np.ndarray:
        return np.clip(self._matrix(features) @ self.weights_ + self.intercept_, 1.0, 5.0)

    def predict(self, data: Data) -> pd.DataFrame:
        """One row per product: ``id``, the predicted ``rating``, ``issue`` (no rating for a product none of
        whose inputs could be read)."""
        self._check_fitted()
        catalog = as_catalog(data)
        features = self.extractor.transform(catalog)
        read = self._read(features)
        rating = np.where(read, self._predict_features(features), np.nan)
        issues = row_issue_texts(len(catalog), catalog_row_issues(catalog, features.issues))
        issues = [issue or ("" if ok else "nothing this model reads is present") for issue, ok in zip(issues, read)]
        return with_issues(catalog.ids, {"rating": [None if np.isnan(r) else float(r) for r in rating]}, issues)

    def predict_inputs(self, images: Sequence, texts: Sequence[str]) -> np.ndarray:
        """Ratings of products held in memory (decoded images or ``None``, joined texts)."""
        self._check_fitted()
        return self._predict_features(self.extractor.transform_inputs(images, texts))

    def predict_one(self, image: ImageInput = None, title: str | None = None, description: str | None = None) -> float:
        """The rating of one product from a photo (path, bytes or PIL image) and/or its text."""
        picture = load_product_image(image)
        text = product_text({"title": title, "description": description}, self.text_fields)
        if picture is None and not text:
            raise CatalogError("give an image, a title or a description to rate")
        return float(self.predict_inputs([picture], [text])[0])

    def serve_batch(self, items: list[tuple]) -> list[float]:
        """Ratings of served items ``(image or None, text)``."""
        return [float(r) for r in self.predict_inputs([image for image, _ in items], [text for _, text in items])]

    def warm_up(self) -> None:
        self.serve_batch([(None, WARM_UP_TEXT)])

    # ----- evaluation ----------------------------------------------------------------------
    def evaluate(self, data: Data) -> dict:
        """MAE / RMSE / R² on the rated rows of ``data``, and the MAE of predicting the training mean."""
        predicted = self.predict(data)
        y = _ratings(as_catalog(data))
        known = ~np.isnan(y) & predicted["rating"].notna().to_numpy()
        if not known.any():
            raise CatalogError("no rated row with a readable image or text to evaluate on")
        metrics = regression_metrics(y[known], predicted["rating"].to_numpy(dtype=float)[known])
        metrics["mean_baseline_mae"] = float(np.abs(y[known] - self.training_mean_).mean())
        self.metrics_ = metrics
        return metrics

    # ----- persistence ---------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """``config.json`` + ``weights.npz`` (no pickle)."""
        self._check_fitted()
        config = {
            "task": TASK,
            **config_dict(self.config),
            "encoders": self.extractor.identities(),
            "alpha": self.alpha_,
            "training_mean": self.training_mean_,
            "metrics": {k: v for k, v in self.metrics_.items() if isinstance(v, (int, float))},
        }
        arrays = {"rating.weights": self.weights_, "rating.intercept": np.array([self.intercept_])}
        arrays.update({f"encoder.{k}": v for k, v in self.extractor.to_arrays().items()})
        return write_model_folder(folder, config, arrays)

    @classmethod
    def load(cls, folder: str | Path, cache_dir: str | Path | None = None) -> RatingPredictor:
        config, arrays = read_model_folder(folder, TASK)
        check_config(config, {"encoders": "encoders", "text_fields": "str_list"}, folder)
        with restoring(folder):
            predictor = cls(**vars(config_from(RatingConfig, config, encoders=tuple(config["encoders"]))), cache_dir=cache_dir)
            predictor.extractor.restore_saved(arrays, config["encoders"], folder)
            predictor.weights_ = np.asarray(arrays["rating.weights"], dtype=np.float64)
            predictor.intercept_ = float(arrays["rating.intercept"][0])
            predictor.alpha_ = float(config.get("alpha", 0.0))
            predictor.training_mean_ = float(config.get("training_mean", 3.0))
            predictor.metrics_ = config.get("metrics", {})
        width = sum(predictor.extractor.encoder(name).dim for name in predictor.encoders)
        if predictor.weights_.shape != (width,):
            raise ModelFolderError(
                f"model {folder}: {predictor.weights_.shape[0]} rating weights for {width} features; retrain it"
            )
        return predictor


def _ratings(catalog: Catalog) -> np.ndarray:
    """The ``rating`` column as floats (NaN where missing); a clear error when there is none."""
    if "rating" not in catalog.frame.columns:
        raise CatalogError(f"catalog '{catalog.name}' has no 'rating' column")
    return pd.to_numeric(catalog.frame["rating"], errors="coerce").to_numpy(dtype=float)
