"""ReviewPredictor: star rating, sentiment and recommendation from review title + text.

What it predicts for each review (title and text joined as ``"title. text"``; a review without a title is
just its text):

- a 5-class star distribution ``p(1..5)`` from the heads (with several encoders, their late fusion: a
  weighted product of experts, weights fitted on held-out log-loss) and the expected rating
  ``sum_k k * p(k)``; when ``class_weight="balanced"`` is chosen the distribution leans towards rare
  stars, so it is a confidence, not a calibrated probability, unless its ECE says otherwise;
- the star decision ``argmax_k p(k) / prior(k) ** alpha``: ``alpha`` (0 = plain argmax, 1 = fully
  prior-corrected, close to ``class_weight="balanced"``) and the head's ``class_weight`` are chosen on a
  group-aware validation split of the training rows (criterion: accuracy + macro-F1) and recorded in
  ``selection_``;
- sentiment by the documented rule :data:`SENTIMENT_RULE` (1-2 stars negative, 3 neutral, 4-5 positive;
  ``P(negative) = p1 + p2``, ``P(neutral) = p3``, ``P(positive) = p4 + p5``; the label is the most likely
  of the three and the score is ``P(positive) - P(negative)`` in [-1, 1]);
- the probability that the reviewer recommends the product (a binary head, when the training catalog has
  a ``recommended`` column).

Rows without text are reported (``last_issues_``) and skipped in batches; a single empty text is an error.
Data is a :class:`Catalog` or a pandas DataFrame with ``id``, ``review_text`` (and ``title``,
``rating``, ``recommended``) columns.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from skulens import __version__
from skulens.catalog.schema import Catalog, CatalogError, RowIssue
from skulens.catalog.splits import group_split
from skulens.heads.base import align_proba
from skulens.heads.fusion import LateFusion, make_fusion, restore_fusion
from skulens.heads.prior_shift import PriorShift, fit_label_shift
from skulens.heads.prior_shift import adapt_priors as estimate_priors
from skulens.metrics import classification_metrics, regression_metrics
from skulens.metrics.classification import majority_baseline
from skulens.side_by_side import run_side_by_side
from skulens.tasks.features import FeatureExtractor, Features
from skulens.tasks.inputs import Data, as_catalog, hash_ids, training_id_mask
from skulens.tasks.model_folder import (
    ModelFolderError,
    array_part,
    check_config,
    check_restored,
    read_model_folder,
    restore_label_shift,
    restoring,
    saved_training_ids,
    training_record,
    write_model_folder,
)
from skulens.tasks.predictor import WARM_UP_TEXT, ConfigField, ExtractorEncoders, config_dict, config_from
from skulens.tasks.readable import unreadable_reason

log = logging.getLogger(__name__)

TASK = "reviews"
STARS = np.array([1, 2, 3, 4, 5])
TEXT_FIELDS = ("title", "review_text")
SENTIMENTS = np.array(["negative", "neutral", "positive"])
SENTIMENT_RULE = "1-2 stars negative, 3 neutral, 4-5 positive; score = P(positive) - P(negative)"
CLASS_WEIGHTS = (None, "balanced")
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)


FUSIONS = ("late", "early")
CRITERIA = ("accuracy+macro_f1", "accuracy")


class EmptyReviewError(CatalogError):
    """A review with no text to read."""

    code = "empty_review"


# --------------------------------------------------------------------------------------------------
# The sentiment rule and the metrics every review model (predictor, lexicon baseline) reports
# --------------------------------------------------------------------------------------------------


def sentiment_of_stars(stars: Sequence[int] | np.ndarray) -> np.ndarray:
    """The sentiment label of star ratings: 1-2 negative, 3 neutral, 4-5 positive."""
    stars = np.asarray(stars, dtype=float)
    if np.any((stars < 1) | (stars > 5)):
        raise ValueError("star ratings must be between 1 and 5")
    return np.where(stars <= 2, "negative", np.where(stars < 4, "neutral", "positive"))


def sentiment_from_proba(star_proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From a star distribution (rows, 5): (sentiment labels, scores in [-1, 1], proba (rows, 3))."""
    star_proba = np.asarray(star_proba, dtype=float)
    sentiment = np.stack([star_proba[:, 0] + star_proba[:, 1], star_proba[:, 2], star_proba[:, 3] + star_proba[:, 4]], 1)
    return SENTIMENTS[sentiment.argmax(axis=1)], sentiment[:, 2] - sentiment[:, 0], sentiment


def expected_rating(star_proba: np.ndarray) -> np.ndarray:
    """``sum_k k * p(k)`` for each row."""
    return np.asarray(star_proba, dtype=float) @ STARS.astype(float)


def median_rating(star_proba: np.ndarray) -> np.ndarray:
    """The median star of each distribution (the point estimate with the lowest expected absolute error)."""
    return STARS[np.argmax(np.cumsum(np.asarray(star_proba, dtype=float), axis=1) >= 0.5 - 1e-9, axis=1)]


def prior_corrected_stars(star_proba: np.ndarray, prior: np.ndarray, alpha: float) -> np.ndarray:
    """``argmax_k p(k) / prior(k) ** alpha`` (alpha 0: plain argmax; 1: divide out the class prior).

    This is the one star rule: the stars the CLI, the service and the UI show all come from it (through
    :meth:`ReviewPredictor.predict`), with ``alpha`` chosen on validation data."""
    scores = np.log(np.clip(star_proba, 1e-12, 1.0)) - alpha * np.log(np.clip(prior, 1e-12, 1.0))
    return STARS[scores.argmax(axis=1)]


def _check_review_config(config: dict, folder: str | Path) -> None:
    """The reviews-specific values of a saved config: stars within 1..5, a prior per star, a finite
    prior-correction ``alpha`` and at least one text field (else every review would read as empty)."""
    stars, prior, alpha = config["stars_classes"], config["prior"], config["selection"].get("alpha")
    problems = []
    if len(stars) < 2 or len(set(stars)) != len(stars) or not set(stars) <= set(STARS.tolist()):
        problems.append(f"'stars_classes' should be distinct stars within 1..5, not {str(stars)[:100]}")
    if len(prior) != len(STARS) or any(p < 0 for p in prior):
        problems.append(f"'prior' should hold {len(STARS)} non-negative numbers, one per star")
    if type(alpha) not in (int, float) or not np.isfinite(alpha) or alpha < 0:
        problems.append("'selection.alpha' should be a non-negative number")
    if not config["text_fields"]:
        problems.append("'text_fields' is empty")
    if problems:
        raise ModelFolderError(f"model {folder}: {'; '.join(problems)}; the folder is damaged (retrain the model)")


def review_metrics(
    stars_true: np.ndarray,
    star_proba: np.ndarray,
    stars_pred: np.ndarray,
    recommend_true: np.ndarray | None = None,
    recommend_proba: np.ndarray | None = None,
) -> dict:
    """Star metrics (accuracy, macro-F1, per class, confusion, ECE), expected-rating MAE/RMSE, sentiment
    metrics, and recommendation ROC-AUC / PR-AUC. Headline keys: ``star_accuracy``, ``star_macro_f1``,
    ``rating_mae``, ``recommend_auc``."""
    stars_true = np.asarray(stars_true).astype(int)
    stars = classification_metrics(stars_true, np.asarray(stars_pred).astype(int), STARS, star_proba)
    rating = regression_metrics(stars_true, expected_rating(star_proba))
    sentiment_pred, _, _ = sentiment_from_proba(star_proba)
    sentiment = classification_metrics(sentiment_of_stars(stars_true), sentiment_pred, SENTIMENTS)
    result = {
        "n": int(len(stars_true)),
        "star_accuracy": stars["accuracy"],
        "star_macro_f1": stars["macro_f1"],
        "rating_mae": rating["mae"],
        "rating_rmse": rating["rmse"],
        "rating_r2": rating["r2"],
        "star_decision_mae": float(np.abs(np.asarray(stars_pred).astype(int) - stars_true).mean()),
        "median_rating_mae": float(np.abs(median_rating(star_proba) - stars_true).mean()),
        "star_ece": stars.get("ece"),
        "sentiment_accuracy": sentiment["accuracy"],
        "sentiment_macro_f1": sentiment["macro_f1"],
        "stars": stars,
        "sentiment": sentiment,
    }
    if recommend_true is not None and recommend_proba is not None:
        known = ~pd.isna(recommend_true)
        y = np.asarray(recommend_true)[known].astype(int)
        p = np.asarray(recommend_proba, dtype=float)[known]
        if len(np.unique(y)) == 2:
            result.update(
                recommend_auc=float(roc_auc_score(y, p)),
                recommend_pr_auc=float(average_precision_score(y, p)),
                recommend_pr_auc_not_recommended=float(average_precision_score(1 - y, 1 - p)),
                recommend_accuracy=float(((p >= 0.5).astype(int) == y).mean()),
                recommend_n=int(len(y)),
            )
    return result


def review_texts(catalog: Catalog, fields: Sequence[str] = TEXT_FIELDS) -> list[str]:
    """Each row's title and text joined (``"title. text"``); empty where a row has neither."""
    return catalog.texts(fields)


def labelled_stars(catalog: Catalog) -> np.ndarray:
    """Star ratings as floats rounded to 1..5 (NaN where missing or out of range)."""
    if "rating" not in catalog.frame.columns:
        return np.full(len(catalog), np.nan)
    rating = pd.to_numeric(catalog.frame["rating"], errors="coerce").round().to_numpy(dtype=float, copy=True)
    rating[(rating < 1) | (rating > 5)] = np.nan
    return rating


def recommended_labels(catalog: Catalog) -> np.ndarray | None:
    if "recommended" not in catalog.frame.columns:
        return None
    values = pd.to_numeric(catalog.frame["recommended"], errors="coerce").to_numpy(dtype=float, copy=True)
    values[~np.isin(values, (0.0, 1.0))] = np.nan
    return values


def texts_catalog(texts: Sequence[str], titles: Sequence[str | None] | None = None) -> Catalog:
    """A catalog of raw review texts (ids ``0..n-1``), for predicting on strings."""
    frame = pd.DataFrame({"id": [str(i) for i in range(len(texts))], "review_text": list(texts)})
    if titles is not None:
        frame["title"] = list(titles)
    return Catalog(frame, name="input")


# --------------------------------------------------------------------------------------------------
# The predictor
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewConfig:
    """A review reader's settings (saved in ``config.json``; see :class:`ReviewPredictor`)."""

    encoders: tuple[str, ...] = ("minilm",)
    head: str = "linear"
    class_weight: str | None = "auto"
    fusion: str = "late"
    text_fields: tuple[str, ...] = TEXT_FIELDS
    val_size: float = 0.15
    alphas: tuple[float, ...] = ALPHAS
    seed: int = 0
    head_params: dict = field(default_factory=dict)
    encoder_params: dict = field(default_factory=dict)
    criterion: str = "accuracy+macro_f1"


class ReviewPredictor(ExtractorEncoders):
    """Train on reviews with star ratings (and optionally ``recommended``), then read new reviews.

    ``encoders`` are text encoders from the registry (``minilm``, ``tfidf``, ``st:<path>``); with more
    than one, their heads are combined by ``fusion``: ``late`` (default: one head per encoder, a weighted
    product of experts whose weights are fitted on held-out log-loss, see
    :class:`~skulens.heads.fusion.LateFusion`) or ``early`` (one head on the concatenated features).
    ``encoder_params[name]`` sets one encoder's head, e.g. ``{"minilm": {"head": "mlp"}}`` or
    ``{"tfidf": {"Cs": (3.0,)}}``. ``class_weight`` is ``"auto"`` (choose ``None`` or ``"balanced"`` on
    validation data), ``None`` or ``"balanced"``; ``criterion`` is what that choice (and alpha's) maximises
    on the validation part: ``"accuracy+macro_f1"`` or ``"accuracy"``. Label-shift adaptation
    (``label_shift_``, :mod:`skulens.heads.prior_shift`) is fitted on the same validation part. The ids of the training rows are kept as sha256
    hashes (``training_ids_``, saved with the model) so :meth:`evaluate` can leave them out.
    """

    task: ClassVar[str] = TASK
    batched: ClassVar[bool] = True
    #: Reviews are text.
    modalities: ClassVar[frozenset[str]] = frozenset({"text"})

    def __init__(
        self,
        encoders: Sequence[str] = ("minilm",),
        head: str = "linear",
        class_weight: str | None = "auto",
        fusion: str = "late",
        text_fields: Sequence[str] = TEXT_FIELDS,
        val_size: float = 0.15,
        alphas: Sequence[float] = ALPHAS,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        progress: bool = False,
        head_params: dict | None = None,
        encoder_params: dict[str, dict] | None = None,
        criterion: str = "accuracy+macro_f1",
    ) -> None:
        if not encoders:
            raise CatalogError("give at least one text encoder, e.g. encoders=['minilm']")
        if criterion not in CRITERIA:
            raise CatalogError(f"criterion must be one of {', '.join(CRITERIA)}, not {criterion!r}")
        if class_weight not in ("auto", None, "balanced"):
            raise CatalogError(f"class_weight must be 'auto', None or 'balanced', not {class_weight!r}")
        if fusion not in FUSIONS:
            raise CatalogError(f"fusion must be one of {', '.join(FUSIONS)}, not {fusion!r}")
        self.config = ReviewConfig(
            tuple(encoders),
            head,
            class_weight,
            fusion,
            tuple(text_fields),
            val_size,
            tuple(alphas),
            seed,
            dict(head_params or {}),
            {name: dict(p) for name, p in (encoder_params or {}).items()},
            criterion,
        )
        if head == "mlp" and "tfidf" in self.encoders:
            raise CatalogError("the mlp head needs dense embeddings; use head='linear' with tfidf (or drop tfidf)")
        self.extractor = FeatureExtractor(self.encoders, text_fields=self.text_fields, cache_dir=cache_dir, progress=progress)
        self.metrics_: dict = {}
        self.last_issues_: list[RowIssue] = []

    # ----- the settings, as in config ---------------------------------------------------------
    encoders = ConfigField[list[str]](list)
    head = ConfigField[str]()
    class_weight = ConfigField[str | None]()
    fusion = ConfigField[str]()
    text_fields = ConfigField[tuple[str, ...]]()
    val_size = ConfigField[float]()
    alphas = ConfigField[tuple[float, ...]]()
    seed = ConfigField[int]()
    head_params = ConfigField[dict]()
    encoder_params = ConfigField[dict[str, dict]]()
    criterion = ConfigField[str]()

    # ----- training -------------------------------------------------------------------------
    def _labelled_rows(self, catalog: Catalog) -> tuple[Catalog, np.ndarray, np.ndarray | None, dict[str, int]]:
        """Rows with text and a 1-5 star rating: (rows, stars, recommended or None, counts of the others)."""
        if len(catalog) == 0:
            raise CatalogError(f"catalog '{catalog.name}' is empty; nothing to train on or evaluate")
        if "rating" not in catalog.frame.columns:
            raise CatalogError(f"catalog '{catalog.name}' has no 'rating' column (1-5 stars)")
        has_text = np.array([bool(t.strip()) for t in review_texts(catalog, self.text_fields)])
        stars = labelled_stars(catalog)
        keep = has_text & ~np.isnan(stars)
        skipped = {"no_text": int((~has_text).sum()), "no_rating": int((has_text & np.isnan(stars)).sum())}
        if keep.sum() == 0:
            raise CatalogError(f"no row of '{catalog.name}' has both review text and a 1-5 rating")
        rows = catalog.subset(np.flatnonzero(keep))
        recommended = recommended_labels(catalog)
        return rows, stars[keep].astype(int), None if recommended is None else recommended[keep], skipped

    def training_rows(self, catalog: Catalog) -> tuple[Catalog, np.ndarray, np.ndarray | None]:
        """Rows with text and a 1-5 star rating: (rows, stars, recommended or None); ``skipped_`` counts the others."""
        rows, stars, recommended, self.skipped_ = self._labelled_rows(catalog)
        return rows, stars, recommended

    def _params(self, class_weight: str | None, Cs: dict | None = None) -> tuple[dict, dict]:
        """(shared head params, per-encoder head params) for one fit; ``Cs`` fixes a linear head's C."""
        shared = dict(self.head_params, class_weight=class_weight)
        per_block = {name: dict(self.encoder_params.get(name, {})) for name in self.encoders}
        for name, C in (Cs or {}).items():
            per_block.setdefault(name, {})["Cs"] = (C,)  # reuse the C the validation fit chose
        if len(self.encoders) == 1:
            shared.update(per_block[self.encoders[0]])
            if Cs and shared.get("head", self.head) == "linear":
                shared["holdout"] = False  # C is fixed and one head has no fusion weights to fit: no validation fit
        return shared, per_block

    def _new_model(self, class_weight: str | None, Cs: dict | None = None):
        shared, per_block = self._params(class_weight, Cs)
        if self.fusion == "late":
            return make_fusion("late", self.head, seed=self.seed, head_params=shared, block_params=per_block)
        head = shared.pop("head", self.head)
        return make_fusion("early", head, seed=self.seed, head_params=shared)

    def _chosen_Cs(self, model) -> dict[str, float]:
        """The C each linear head chose (an early fusion's one head gives its C to every encoder)."""
        heads = getattr(model, "heads_", None) or {name: model.head_ for name in self.encoders}
        return {name: float(head.C_) for name, head in heads.items() if hasattr(head, "C_")}

    def _star_proba(self, model, features: Features) -> np.ndarray:
        return align_proba(model.predict_proba(features.blocks, features.present), np.asarray(model.classes_), STARS)

    def _select(self, rows: Catalog, features: Features, y: np.ndarray) -> dict:
        """Choose class weight and prior-correction alpha on a group-aware validation split; keeps the chosen
        candidate's validation posteriors in ``_validation`` (for fitting label-shift adaptation)."""
        candidates = list(CLASS_WEIGHTS) if self.class_weight == "auto" else [self.class_weight]
        alphas = self.alphas
        frame = rows.frame.assign(_row=np.arange(len(rows)))
        inner, val = group_split(
            Catalog(frame, name=rows.name), self.val_size, label="rating", fields=self.text_fields, seed=self.seed
        )
        inner_rows, val_rows = inner.frame["_row"].to_numpy(), val.frame["_row"].to_numpy()
        prior = np.bincount(y[inner_rows], minlength=6)[1:] / len(inner_rows)
        inner_features, val_features = features.subset(inner_rows), features.subset(val_rows)
        scores, probas = [], {}
        fits = [
            partial(self._new_model(class_weight).fit, inner_features.blocks, inner_features.present, y[inner_rows])
            for class_weight in candidates
        ]
        for class_weight, model in zip(candidates, run_side_by_side(fits), strict=True):  # in processes when threads allow
            Cs = self._chosen_Cs(model)
            proba = probas[class_weight] = self._star_proba(model, val_features)
            mae = float(np.abs(expected_rating(proba) - y[val_rows]).mean())
            # prior correction divides out the class prior, which a class-weighted head has already done
            for alpha in alphas if class_weight is None else (0.0,):
                metrics = classification_metrics(y[val_rows], prior_corrected_stars(proba, prior, alpha), STARS)
                scores.append(
                    {
                        "class_weight": class_weight,
                        "alpha": float(alpha),
                        "C": Cs,
                        "accuracy": metrics["accuracy"],
                        "macro_f1": metrics["macro_f1"],
                        "rating_mae": mae,
                        "score": metrics["accuracy"] + (metrics["macro_f1"] if self.criterion == "accuracy+macro_f1" else 0.0),
                    }
                )
        best = max(scores, key=lambda s: s["score"])
        self._validation = (probas[best["class_weight"]], y[val_rows], val_features)
        fixed = len(candidates) == 1 and len(alphas) == 1
        return {
            "class_weight": best["class_weight"],
            "alpha": best["alpha"],
            "C": {} if fixed else best["C"],
            "criterion": "fixed"
            if fixed
            else f"max {self.criterion.replace('+', ' + ')} on a group-aware {self.val_size:.0%} validation split of the training rows",
            "candidates": scores,
            "n_inner": int(len(inner_rows)),
            "n_val": int(len(val_rows)),
        }

    def fit(self, data: Data) -> ReviewPredictor:
        """Embed (cached), fit fitted encoders, choose class weighting on validation data, fit the heads."""
        rows, y, recommended = self.training_rows(as_catalog(data))
        self.extractor.fit(rows)
        return self.fit_features(self.extractor.transform(rows), y, recommended, rows)

    def _recommend_model(self, features: Features, recommended: np.ndarray | None):
        """The recommendation head on the rows with a known ``recommended`` value (None without two values)."""
        if recommended is None:
            return None
        known = ~np.isnan(recommended)
        if len(np.unique(recommended[known])) != 2:
            log.warning("the 'recommended' column has fewer than two values; no recommendation head is trained")
            return None
        part = features.subset(np.flatnonzero(known))
        return self._new_model(None).fit(part.blocks, part.present, recommended[known].astype(int))

    def fit_features(
        self, features: Features, y: np.ndarray, recommended: np.ndarray | None = None, rows: Catalog | None = None
    ) -> ReviewPredictor:
        """Fit the heads on precomputed features (``rows`` gives the group-aware validation split and the
        training ids; without it, each row is its own group and no training ids are recorded).

        ``selection_["weights"]`` records the late-fusion block weights the star model fitted."""
        y = np.asarray(y).astype(int)
        self.prior_ = np.bincount(y, minlength=6)[1:] / len(y)
        self.training_ids_ = hash_ids(rows.ids if rows is not None else [])
        if rows is None:
            rows = Catalog(pd.DataFrame({"id": [str(i) for i in range(len(y))], "rating": y}), name="train")
        self.selection_ = self._select(rows, features, y)
        sel = self.selection_
        val_proba, val_y, val_features = self._validation
        del self._validation

        def stars_model():
            return self._new_model(sel["class_weight"], sel.get("C")).fit(features.blocks, features.present, y)

        def shift_and_recommend():
            shift = fit_label_shift(val_proba, val_y - 1, val_features.blocks[self.shift_block], seed=self.seed)
            return shift, self._recommend_model(features, recommended)

        # the star head on every row beside label-shift adaptation and the recommendation head (independent fits)
        self.stars_model_, (self.label_shift_, self.recommend_model_) = run_side_by_side([stars_model, shift_and_recommend])
        sel["weights"] = self.stars_model_.block_weights if isinstance(self.stars_model_, LateFusion) else None
        return self

    @property
    def shift_block(self) -> str:
        """The encoder whose embeddings test whether a batch lies in the training domain (a dense one if any)."""
        return next((name for name in self.encoders if name != "tfidf"), self.encoders[0])

    # ----- prediction -----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "stars_model_"):
            raise CatalogError("this ReviewPredictor is not trained yet; call fit(catalog) or load(folder)")

    def _vocabulary(self) -> dict | None:
        """The TF-IDF vocabulary when the model has one (to tell text it cannot read)."""
        if "tfidf" not in self.encoders:
            return None
        return getattr(self.extractor.encoder("tfidf").vectorizer, "vocabulary_", None)

    def _readable(self, catalog: Catalog) -> tuple[np.ndarray, list[str]]:
        """Rows with text the model can read, and per row why not (``""`` when it can); the others (empty,
        another script or language) are skipped and reported in ``last_issues_``, numbered by source row as
        every :class:`RowIssue` is (what ``issues.csv`` says)."""
        vocabulary = self._vocabulary()
        reasons = []
        for text in review_texts(catalog, self.text_fields):
            reason = "no title or review text; row skipped (give it some text)" if not text.strip() else None
            reasons.append(reason or unreadable_reason(text, vocabulary) or "")
        self.last_issues_ = [
            RowIssue(catalog.source_row(i), catalog.ids[i], "review_text", reason) for i, reason in enumerate(reasons) if reason
        ]
        for issue in self.last_issues_[:5]:
            log.warning("%s", issue)
        return np.array([not reason for reason in reasons], dtype=bool), reasons

    def _adapt(self, proba: np.ndarray, features: Features) -> tuple[np.ndarray, PriorShift]:
        """Star distributions adapted to the batch's star mix (fitted adaptation, or plain EM for older models)."""
        if getattr(self, "label_shift_", None) is None:
            return estimate_priors(proba, self.prior_)
        vectors = features.blocks[self.shift_block] if np.all(features.present[self.shift_block]) else None
        return self.label_shift_.adapt(proba, vectors, seed=self.seed, names=[f"{s} stars" for s in STARS])

    def outputs_from_features(self, features: Features, adapt_priors: bool = False) -> dict[str, np.ndarray]:
        """Star distribution, expected rating, stars, sentiment and recommendation for feature rows.

        With ``adapt_priors`` the star distributions are adapted to the star mix EM estimates on these rows
        (:mod:`skulens.heads.prior_shift`); the report is kept in :attr:`last_prior_shift_`."""
        self._check_fitted()
        proba = self._star_proba(self.stars_model_, features)
        prior = self.prior_
        self.last_prior_shift_ = None
        if adapt_priors:
            proba, self.last_prior_shift_ = self._adapt(proba, features)
            prior = np.asarray(self.last_prior_shift_.estimated_priors) if self.last_prior_shift_.applied else prior
        sentiment, score, _ = sentiment_from_proba(proba)
        out = {
            "star_proba": proba,
            "expected_rating": expected_rating(proba),
            "stars": prior_corrected_stars(proba, prior, self.selection_["alpha"]),
            "sentiment": sentiment,
            "sentiment_score": score,
        }
        if self.recommend_model_ is not None:
            rec = self.recommend_model_.predict_proba(features.blocks, features.present)
            out["recommend_proba"] = align_proba(rec, np.asarray(self.recommend_model_.classes_), np.array([0, 1]))[:, 1]
        return out

    def _outputs(self, catalog: Catalog, adapt_priors: bool = False) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]]:
        """(readable rows, per row why not, the outputs of the readable rows)."""
        self._check_fitted()
        ok, reasons = self._readable(catalog)
        if not ok.any():
            return ok, reasons, {}
        return ok, reasons, self.outputs_from_features(self.extractor.transform(catalog.subset(np.flatnonzero(ok))), adapt_priors)

    def predict_proba(self, data: Data) -> np.ndarray:
        """Star distribution, shape (rows, 5) for stars 1..5; NaN rows where a review has no text."""
        catalog = as_catalog(data)
        ok, _, out = self._outputs(catalog)
        proba = np.full((len(catalog), 5), np.nan)
        if out:
            proba[ok] = out["star_proba"]
        return proba

    def predict(self, data: Data, adapt_priors: bool = False) -> pd.DataFrame:
        """One row per review: id, stars, expected_rating, sentiment, sentiment_score, recommend_proba,
        p1..p5, and ``issue`` (set, with the other fields empty, for reviews without text). With
        ``adapt_priors``, adapted to the batch's star mix (report in :attr:`last_prior_shift_`)."""
        catalog = as_catalog(data)
        ok, reasons, out = self._outputs(catalog, adapt_priors)
        frame = pd.DataFrame({"id": catalog.ids})
        frame["stars"] = pd.array([pd.NA] * len(catalog), dtype="Int64")
        for column in ("expected_rating", "sentiment_score", "recommend_proba", *(f"p{k}" for k in STARS)):
            frame[column] = np.nan
        frame["sentiment"] = None
        if out:
            frame.loc[ok, "stars"] = out["stars"]
            frame.loc[ok, "expected_rating"] = out["expected_rating"]
            frame.loc[ok, "sentiment"] = out["sentiment"]
            frame.loc[ok, "sentiment_score"] = out["sentiment_score"]
            if "recommend_proba" in out:
                frame.loc[ok, "recommend_proba"] = out["recommend_proba"]
            for k in STARS:
                frame.loc[ok, f"p{k}"] = out["star_proba"][:, k - 1]
        frame["issue"] = reasons
        order = [
            "id",
            "stars",
            "expected_rating",
            "sentiment",
            "sentiment_score",
            "recommend_proba",
            *(f"p{k}" for k in STARS),
            "issue",
        ]
        return frame[order]

    def predict_one(self, text: str, title: str | None = None) -> dict:
        """Everything about one review; raises :class:`EmptyReviewError` when it has no text."""
        if not isinstance(text, str) or not (text.strip() or (title or "").strip()):
            raise EmptyReviewError("the review is empty (only whitespace); give some review text to read")
        return self.predict_texts([text], [title])[0]

    def predict_texts(self, texts: Sequence[str], titles: Sequence[str | None] | None = None) -> list[dict]:
        """One dict per text (stars, expected_rating, star_proba, sentiment, sentiment_score,
        recommend_proba); an empty text gets ``{"error": ...}`` instead and the others are still read."""
        texts = ["" if t is None else str(t) for t in texts]
        frame = self.predict(texts_catalog(texts, titles))
        results = []
        for row in frame.itertuples(index=False):
            if row.issue:
                results.append({"error": f"text {row.id}: {row.issue}"})
                continue
            item = {
                "stars": int(row.stars),
                "expected_rating": round(float(row.expected_rating), 4),
                "star_proba": {str(k): round(float(getattr(row, f"p{k}")), 4) for k in STARS},
                "sentiment": row.sentiment,
                "sentiment_score": round(float(row.sentiment_score), 4),
            }
            if not np.isnan(row.recommend_proba):
                item["recommend_proba"] = round(float(row.recommend_proba), 4)
            results.append(item)
        return results

    # ----- serving ----------------------------------------------------------------------------
    def serve_batch(self, items: list[str]) -> list[dict]:
        """One result dict per served review text (see :meth:`predict_texts`)."""
        return self.predict_texts(list(items))

    def warm_up(self) -> None:
        self.serve_batch([WARM_UP_TEXT])

    # ----- evaluation -----------------------------------------------------------------------
    def evaluate(self, data: Data, include_training_rows: bool = False, adapt_priors: bool = False) -> dict:
        """Star, expected-rating, sentiment and recommendation metrics on rows with text and a rating.

        Rows whose id the model was trained on are left out unless ``include_training_rows`` (counted in
        ``excluded_training_rows``); rows without text or rating are counted in ``skipped``.
        ``majority_baseline`` scores always predicting the most frequent training star; with
        ``adapt_priors`` the star distributions are adapted to these rows' star mix (EM, no labels used),
        reported in ``prior_shift``.
        """
        self._check_fitted()
        catalog = as_catalog(data)
        training = np.zeros(len(catalog), dtype=bool)
        if not include_training_rows:
            training = training_id_mask(catalog.ids, self.training_ids_)
        try:
            rows, y, recommended, skipped = self._labelled_rows(catalog.subset(np.flatnonzero(~training)))
        except CatalogError:
            if not training.any():
                raise
            raise CatalogError(
                f"no review of '{catalog.name}' is left to evaluate: {int(training.sum())} of its {len(catalog)} rows were "
                "used to train this model (matched by id) and the others lack text or a 1-5 rating; evaluate on held-out "
                "reviews, or pass include_training_rows=True to score training rows (optimistic)"
            ) from None
        readable, _ = self._readable(rows)
        skipped["unreadable"] = int((~readable).sum())
        if not readable.any():
            raise CatalogError(
                f"no review of '{catalog.name}' is in a language the model can read: {self.last_issues_[0].message}"
            )
        rows, y = rows.subset(np.flatnonzero(readable)), y[readable]
        recommended = None if recommended is None else recommended[readable]
        out = self.outputs_from_features(self.extractor.transform(rows), adapt_priors)
        metrics = review_metrics(y, out["star_proba"], out["stars"], recommended, out.get("recommend_proba"))
        majority = int(STARS[int(np.argmax(self.prior_))])
        metrics["majority_baseline"] = {
            **majority_baseline(y, majority),
            "rating_mae": float(np.abs(np.asarray(y, dtype=float) - majority).mean()),
        }
        if self.last_prior_shift_ is not None:
            shift = metrics["prior_shift"] = self.last_prior_shift_.as_dict()
            if shift["applied"]:  # the same rows without adapting: did it help?
                plain = self.outputs_from_features(self.extractor.transform(rows))
                before = review_metrics(y, plain["star_proba"], plain["stars"])
                metrics["unadapted"] = {k: (before[k], metrics[k]) for k in ("star_accuracy", "star_decision_mae", "rating_mae")}
                self.last_prior_shift_ = PriorShift(**shift)
        metrics["skipped"] = skipped
        metrics["excluded_training_rows"] = int(training.sum())
        metrics["training_ids_recorded"] = int(len(self.training_ids_))
        self.metrics_ = metrics
        return metrics

    # ----- persistence ----------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``config.json`` + ``weights.npz`` (no pickle)."""
        self._check_fitted()
        config = {
            "task": TASK,
            "skulens_version": __version__,
            **config_dict(self.config),
            "encoders": self.extractor.identities(),
            "stars_classes": [int(c) for c in self.stars_model_.classes_],
            "recommend": self.recommend_model_ is not None,
            "selection": self.selection_,
            "prior": [float(p) for p in self.prior_],
            "sentiment_rule": SENTIMENT_RULE,
            "metrics": {k: v for k, v in self.metrics_.items() if isinstance(v, (int, float)) or v is None},
        }
        record, arrays = training_record(getattr(self, "label_shift_", None), self.training_ids_)
        arrays.update({f"stars.{k}": v for k, v in self.stars_model_.to_arrays().items()})
        if self.recommend_model_ is not None:
            arrays.update({f"recommend.{k}": v for k, v in self.recommend_model_.to_arrays().items()})
        arrays.update({f"encoder.{k}": v for k, v in self.extractor.to_arrays().items()})
        return write_model_folder(folder, config | record, arrays)

    @classmethod
    def load(cls, folder: str | Path, cache_dir: str | Path | None = None) -> ReviewPredictor:
        """Load a folder written by :meth:`save`; fails clearly if it is not a reviews model."""
        config, arrays = read_model_folder(folder, TASK)
        check_config(
            config,
            {"encoders": "encoders", "head": "str", "fusion": "str", "text_fields": "str_list", "stars_classes": "int_list"},
            folder,
        )
        check_config(config, {"selection": "dict", "prior": "float_list"}, folder)
        _check_review_config(config, folder)
        if config.get("fusion") not in FUSIONS:
            raise ModelFolderError(
                f"review model {folder} uses the '{config.get('fusion')}' fusion, which this version of skulens "
                "replaced by late fusion; retrain it (skulens reviews train ...)"
            )
        with restoring(folder):
            settings = config_from(ReviewConfig, config, encoders=tuple(config["encoders"]))
            predictor = cls(**vars(settings), cache_dir=cache_dir)
            predictor.extractor.restore_saved(arrays, config["encoders"], folder)
            predictor.selection_ = config["selection"]
            predictor.prior_ = np.asarray(config["prior"], dtype=float)
            predictor.label_shift_ = restore_label_shift(config, arrays, folder)
            predictor.metrics_ = config.get("metrics", {})
            predictor.training_ids_ = saved_training_ids(arrays)
            stars = np.array(config["stars_classes"])
            predictor.stars_model_ = restore_fusion(
                config["fusion"], array_part(arrays, "stars"), predictor.encoders, stars, config["head"]
            )
            zero_row = predictor.extractor.zero_row()
            check_restored(predictor.stars_model_, zero_row, len(stars), folder)
            predictor.recommend_model_ = None
            if config.get("recommend"):
                predictor.recommend_model_ = restore_fusion(
                    config["fusion"], array_part(arrays, "recommend"), predictor.encoders, np.array([0, 1]), config["head"]
                )
                check_restored(predictor.recommend_model_, zero_row, 2, folder)
        return predictor
