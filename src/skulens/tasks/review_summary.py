"""Aspect view: aggregate a product's (or department's) reviews into a summary.

For each group: how many reviews, the rating distribution, the mean rating, the share of negative
reviews (1-2 stars; predicted stars from a :class:`ReviewPredictor` where a review has no rating), and the
phrases most associated with its negative and its positive reviews.

Phrases come from :class:`PhraseModel`: TF-IDF word 1-2 grams and a logistic regression of negative
(1-2 stars) vs positive (4-5 stars) reviews. A phrase's weight in a group is its coefficient times its
summed TF-IDF over the group's reviews, so a phrase ranks high when it is both strongly negative (or
positive) in general and frequent in this group. Phrases made only of stop words are never listed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from sklearn.linear_model import LogisticRegression

from skulens.catalog.schema import Catalog, CatalogError
from skulens.encoders.text import TfidfEncoder
from skulens.tasks.reviews import TEXT_FIELDS, labelled_stars, review_texts

GROUP_LEVELS = {"division": 0, "department": 1, "class": 2}


class PhraseModel:
    """TF-IDF + logistic regression, negative (1-2★) = class 1 vs positive (4-5★) = class 0."""

    def __init__(self, min_df: int = 3, C: float = 3.0, text_fields: Sequence[str] = TEXT_FIELDS, seed: int = 0) -> None:
        self.min_df, self.C, self.text_fields, self.seed = min_df, C, tuple(text_fields), seed

    def fit(self, catalog: Catalog) -> PhraseModel:
        texts = review_texts(catalog, self.text_fields)
        stars = labelled_stars(catalog)
        keep = np.array([bool(t.strip()) for t in texts]) & ~np.isnan(stars) & (stars != 3)
        y = (stars[keep] <= 2).astype(int)
        if len(np.unique(y)) < 2:
            raise CatalogError("phrases need both negative (1-2★) and positive (4-5★) reviews with text")
        min_df = self.min_df if keep.sum() >= 50 else 1
        self.tfidf_ = TfidfEncoder(min_df=min_df).fit([t for t, k in zip(texts, keep) if k])
        X = self.tfidf_.encode([t for t, k in zip(texts, keep) if k])
        model = LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000, random_state=self.seed).fit(X, y)
        self.coef_ = model.coef_[0]
        self.terms_ = np.array(sorted(self.tfidf_.vectorizer.vocabulary_, key=self.tfidf_.vectorizer.vocabulary_.get))
        # phrases made only of stop words ("was", "the", "and with") carry no aspect; they are never listed
        self.informative_ = np.array([not all(w in ENGLISH_STOP_WORDS for w in t.split()) for t in self.terms_])
        return self

    def top_phrases(self, texts: Sequence[str], k: int = 5) -> dict[str, list[str]]:
        """The ``k`` phrases of ``texts`` pulling most towards negative and towards positive."""
        if not texts:
            return {"negative": [], "positive": []}
        weight = np.asarray(self.tfidf_.encode(list(texts)).sum(axis=0)).ravel() * self.coef_ * self.informative_
        negative = [self.terms_[i] for i in np.argsort(-weight)[:k] if weight[i] > 0]
        positive = [self.terms_[i] for i in np.argsort(weight)[:k] if weight[i] < 0]
        return {"negative": negative, "positive": positive}


def _groups(catalog: Catalog, by: str) -> np.ndarray:
    if by in GROUP_LEVELS and by not in catalog.frame.columns:
        return catalog.labels(GROUP_LEVELS[by]).fillna("<none>").astype(str).to_numpy()
    return catalog.column(by).fillna("<none>").astype(str).to_numpy()


def review_summary(
    catalog: Catalog,
    by: str = "product_id",
    phrases: PhraseModel | None = None,
    predictor=None,
    top_k: int = 5,
    min_reviews: int = 1,
    groups: Sequence[str] | None = None,
) -> list[dict]:
    """One summary per group (``by`` a column, or ``division`` / ``department`` / ``class``), most
    reviewed first. ``phrases`` defaults to a :class:`PhraseModel` fitted on ``catalog``; ``predictor``
    (a ReviewPredictor) fills in stars for reviews without a rating. ``groups`` limits the output."""
    keys = _groups(catalog, by)
    stars = labelled_stars(catalog)
    texts = review_texts(catalog, phrases.text_fields if phrases else TEXT_FIELDS)
    if np.isnan(stars).any() and predictor is not None:
        missing = np.flatnonzero(np.isnan(stars))
        predicted = predictor.predict(catalog.subset(missing))["stars"].astype("float").to_numpy()
        stars[missing] = predicted
    phrases = phrases or PhraseModel().fit(catalog)
    wanted = set(map(str, groups)) if groups is not None else None
    summaries = []
    for key in np.unique(keys):
        if wanted is not None and key not in wanted:
            continue
        rows = np.flatnonzero(keys == key)
        if len(rows) < min_reviews:
            continue
        rated = stars[rows][~np.isnan(stars[rows])].astype(int)
        negative_texts = [texts[i] for i in rows if stars[i] <= 2 and texts[i].strip()]
        positive_texts = [texts[i] for i in rows if stars[i] >= 4 and texts[i].strip()]
        summaries.append(
            {
                "group": key,
                "by": by,
                "n_reviews": int(len(rows)),
                "n_rated": int(len(rated)),
                "rating_distribution": {str(k): int((rated == k).sum()) for k in range(1, 6)},
                "mean_rating": float(rated.mean()) if len(rated) else None,
                "share_negative": float((rated <= 2).mean()) if len(rated) else None,
                "negative_phrases": phrases.top_phrases(negative_texts, top_k)["negative"],
                "positive_phrases": phrases.top_phrases(positive_texts, top_k)["positive"],
            }
        )
    return sorted(summaries, key=lambda s: (-s["n_reviews"], s["group"]))
