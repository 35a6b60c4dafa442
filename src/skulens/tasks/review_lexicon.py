"""VADER lexicon baseline for reviews: no learned text model, only monotone maps of its compound score.

VADER (PyPI ``vaderSentiment``) gives each text a compound score in [-1, 1]. Fitting on training reviews
learns three small, monotone maps of that one number (nothing about words):

- stars: four cut points on the compound score placed at the training star quantiles, so the predicted
  star shares match the training shares (1★ for the lowest scores ... 5★ for the highest);
- star distribution: the training star histogram (add-one smoothed) within each of ``bins`` quantile
  bins of the compound score; its expected value is the expected rating;
- recommendation: a 1-d logistic regression of ``recommended`` on the compound score.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from skulens.catalog.schema import Catalog, CatalogError
from skulens.tasks.reviews import STARS, TEXT_FIELDS, labelled_stars, recommended_labels, review_metrics, review_texts


def vader_analyzer():
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        raise CatalogError("the VADER baseline needs the package vaderSentiment: pip install vaderSentiment") from None
    return SentimentIntensityAnalyzer()


class VaderBaseline:
    """Lexicon sentiment (VADER) mapped to stars, a star distribution and a recommendation probability."""

    name = "vader"

    def __init__(self, bins: int = 20, text_fields: Sequence[str] = TEXT_FIELDS) -> None:
        self.bins = bins
        self.text_fields = tuple(text_fields)
        self._analyzer = None

    def compound(self, texts: Sequence[str]) -> np.ndarray:
        """VADER compound score of each text (0 for an empty one)."""
        if self._analyzer is None:
            self._analyzer = vader_analyzer()
        return np.array([self._analyzer.polarity_scores(t)["compound"] if t.strip() else 0.0 for t in texts])

    def _rows(self, catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
        texts = review_texts(catalog, self.text_fields)
        stars = labelled_stars(catalog)
        keep = np.array([bool(t.strip()) for t in texts]) & ~np.isnan(stars)
        if keep.sum() == 0:
            raise CatalogError(f"no row of '{catalog.name}' has both review text and a 1-5 rating")
        return keep, self.compound([t for t, k in zip(texts, keep) if k])

    def fit(self, catalog: Catalog) -> VaderBaseline:
        keep, score = self._rows(catalog)
        stars = labelled_stars(catalog)[keep].astype(int)
        prior = np.bincount(stars, minlength=6)[1:] / len(stars)
        self.cuts_ = np.quantile(score, np.cumsum(prior)[:-1])
        self.edges_ = np.unique(np.quantile(score, np.linspace(0, 1, self.bins + 1)[1:-1]))
        which = np.digitize(score, self.edges_)
        counts = np.ones((len(self.edges_) + 1, 5))
        np.add.at(counts, (which, stars - 1), 1)
        self.bin_proba_ = counts / counts.sum(axis=1, keepdims=True)
        self.recommend_ = None
        recommended = recommended_labels(catalog)
        if recommended is not None:
            known = ~np.isnan(recommended[keep])
            if len(np.unique(recommended[keep][known])) == 2:
                self.recommend_ = LogisticRegression().fit(score[known, None], recommended[keep][known].astype(int))
        return self

    def outputs(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        score = self.compound(texts)
        out = {
            "compound": score,
            "stars": STARS[np.digitize(score, self.cuts_)],
            "star_proba": self.bin_proba_[np.digitize(score, self.edges_)],
        }
        if self.recommend_ is not None:
            out["recommend_proba"] = self.recommend_.predict_proba(score[:, None])[:, 1]
        return out

    def evaluate(self, catalog: Catalog) -> dict:
        keep = ~np.isnan(labelled_stars(catalog)) & np.array([bool(t.strip()) for t in review_texts(catalog, self.text_fields)])
        texts = [t for t, k in zip(review_texts(catalog, self.text_fields), keep) if k]
        out = self.outputs(texts)
        recommended = recommended_labels(catalog)
        return review_metrics(
            labelled_stars(catalog)[keep].astype(int),
            out["star_proba"],
            out["stars"],
            None if recommended is None else recommended[keep],
            out.get("recommend_proba"),
        )
