"""Review intelligence: the predictor, the sentiment rule, the VADER baseline, leakage-safe splits, the
aspect view, product-rating regression and the reviews CLI. Fast tests use a tiny fixture CSV and TF-IDF;
one test uses the real MiniLM; tests on the real data are marked ``integration``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skulens.catalog import Catalog, CatalogError, load_catalog, read_catalog
from skulens.catalog.splits import group_split, text_groups
from skulens.tasks.model_folder import ModelFolderError
from skulens.tasks.reviews import (
    EmptyReviewError,
    ReviewPredictor,
    expected_rating,
    median_rating,
    prior_corrected_stars,
    review_metrics,
    sentiment_from_proba,
    sentiment_of_stars,
)

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"

GOOD = [
    "love this dress",
    "perfect fit and beautiful colour",
    "great quality, so soft",
    "gorgeous and flattering",
    "i adore it, wear it all the time",
    "fits perfectly, very comfortable",
]
OK = [
    "it is okay, nothing special",
    "fabric is fine but the fit is average",
    "decent but runs a bit large",
    "so-so, mixed feelings about it",
]
BAD = [
    "terrible quality, returned it",
    "awful fit, fabric ripped",
    "cheap and ugly, very disappointed",
    "horrible, the seams came apart",
    "worst purchase, do not buy",
]


def _fixture_frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        stars = int(rng.choice([1, 2, 3, 4, 5], p=[0.1, 0.12, 0.18, 0.25, 0.35]))
        pool = BAD if stars <= 2 else OK if stars == 3 else GOOD
        text = f"{pool[rng.integers(len(pool))]}. {pool[rng.integers(len(pool))]} ({'very ' * (5 - stars)}item {i})"
        title = None if i % 7 == 0 else ("Love it" if stars >= 4 else "Meh" if stars == 3 else "Disappointed")
        rows.append(
            {
                "id": f"r{i}",
                "title": title,
                "review_text": text,
                "rating": stars,
                "recommended": int(stars >= 4 or (stars == 3 and i % 2 == 0)),
                "product_id": f"p{i % 6}",
                "category": ("General", "Dresses" if i % 2 else "Tops", "Knits"),
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def fixture_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("reviews") / "reviews.csv"
    frame = _fixture_frame()
    frame["category"] = frame["category"].map(" >> ".join)
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def catalog(fixture_csv) -> Catalog:
    return read_catalog(fixture_csv)


@pytest.fixture(scope="module")
def tfidf_model(catalog, tmp_path_factory) -> ReviewPredictor:
    train, _ = group_split(catalog, 0.25, label="rating", seed=0)
    return ReviewPredictor(encoders=("tfidf",), cache_dir=tmp_path_factory.mktemp("cache")).fit(train)


# ----- the sentiment rule and derived outputs ----------------------------------------------------------


def test_sentiment_rule_from_stars():
    assert list(sentiment_of_stars([1, 2, 3, 4, 5])) == ["negative", "negative", "neutral", "positive", "positive"]
    with pytest.raises(ValueError):
        sentiment_of_stars([0])


def test_sentiment_from_distribution_and_expected_rating():
    proba = np.array([[0.5, 0.2, 0.1, 0.1, 0.1], [0.0, 0.0, 1.0, 0.0, 0.0], [0.05, 0.05, 0.1, 0.3, 0.5]])
    labels, score, sentiment = sentiment_from_proba(proba)
    assert list(labels) == ["negative", "neutral", "positive"]
    np.testing.assert_allclose(score, [0.2 - 0.7, 0.0, 0.8 - 0.1])
    np.testing.assert_allclose(sentiment.sum(axis=1), 1.0)
    np.testing.assert_allclose(expected_rating(proba), [0.5 + 0.4 + 0.3 + 0.4 + 0.5, 3.0, 0.05 + 0.1 + 0.3 + 1.2 + 2.5])
    assert list(median_rating(proba)) == [1, 3, 4]


def test_prior_correction_moves_decisions_to_rare_classes():
    proba = np.array([[0.30, 0.0, 0.0, 0.0, 0.70]])
    prior = np.array([0.05, 0.1, 0.1, 0.15, 0.6])
    assert prior_corrected_stars(proba, prior, 0.0)[0] == 5
    assert prior_corrected_stars(proba, prior, 1.0)[0] == 1


# ----- the predictor -----------------------------------------------------------------------------------


def test_tfidf_predictor_learns_and_reports(tfidf_model, catalog):
    _, test = group_split(catalog, 0.25, label="rating", seed=0)
    metrics = tfidf_model.evaluate(test)
    assert metrics["star_accuracy"] > 0.5
    assert metrics["recommend_auc"] > 0.8
    assert set(metrics) >= {"star_macro_f1", "rating_mae", "rating_rmse", "recommend_pr_auc", "stars", "sentiment"}
    assert tfidf_model.selection_["class_weight"] in (None, "balanced")
    assert tfidf_model.selection_["candidates"], "the class-weight choice is recorded"
    proba = tfidf_model.predict_proba(test)
    assert proba.shape == (len(test), 5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_round_trip_gives_equal_outputs(tfidf_model, catalog, tmp_path):
    folder = tfidf_model.save(tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    assert config["task"] == "reviews" and config["sentiment_rule"].startswith("1-2 stars negative")
    loaded = ReviewPredictor.load(folder)
    a, b = tfidf_model.predict(catalog), loaded.predict(catalog)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ModelFolderError):
        ReviewPredictor.load(tmp_path)


def test_predict_frame_and_texts(tfidf_model):
    results = tfidf_model.predict_texts(["terrible quality, returned it", "love this dress, perfect fit"])
    assert results[0]["sentiment"] == "negative" and results[1]["sentiment"] == "positive"
    assert results[0]["expected_rating"] < results[1]["expected_rating"]
    for r in results:
        assert 1 <= r["stars"] <= 5 and 0 <= r["recommend_proba"] <= 1 and -1 <= r["sentiment_score"] <= 1
        assert abs(sum(r["star_proba"].values()) - 1) < 1e-3


def test_empty_and_whitespace_text(tfidf_model):
    with pytest.raises(EmptyReviewError, match="empty"):
        tfidf_model.predict_text("   \n\t ")
    with pytest.raises(EmptyReviewError):
        tfidf_model.predict_text("")
    results = tfidf_model.predict_texts(["love it", "  ", "", "awful"])
    assert "error" in results[1] and "error" in results[2]
    assert "stars" in results[0] and "stars" in results[3]
    frame = tfidf_model.predict(Catalog(pd.DataFrame({"id": ["a", "b"], "review_text": ["nice", None]})))
    assert frame.loc[1, "error"] and pd.isna(frame.loc[1, "stars"]) and not pd.isna(frame.loc[0, "stars"])
    assert [issue.id for issue in tfidf_model.last_issues_] == ["b"]


def test_long_and_non_english_text(tfidf_model):
    long_text = "love this dress " * 5000
    out = tfidf_model.predict_texts([long_text, "Das Kleid ist wunderschön, ich liebe es", "这件衣服质量很差", "🙂👗"])
    assert all("stars" in r for r in out)
    assert out[0]["sentiment"] == "positive"


def test_review_without_title(tfidf_model, catalog):
    assert catalog.frame["title"].isna().any()
    no_title = tfidf_model.predict_text("awful fit, fabric ripped", title=None)
    with_title = tfidf_model.predict_text("awful fit, fabric ripped", title="Disappointed")
    assert no_title["sentiment"] == "negative" and with_title["sentiment"] == "negative"
    only_title = tfidf_model.predict_text("", title="Love it")
    assert "stars" in only_title


def test_training_errors_are_clear(catalog):
    with pytest.raises(CatalogError, match="rating"):
        ReviewPredictor(encoders=("tfidf",)).fit(Catalog(pd.DataFrame({"id": ["1"], "review_text": ["x"]})))
    with pytest.raises(CatalogError, match="not trained"):
        ReviewPredictor(encoders=("tfidf",)).predict(catalog)
    with pytest.raises(CatalogError, match="class_weight"):
        ReviewPredictor(class_weight="weird")


def test_fixed_class_weight_and_fusion(catalog, tmp_path):
    predictor = ReviewPredictor(encoders=("tfidf",), class_weight="balanced", alphas=(0.0,), cache_dir=tmp_path).fit(catalog)
    assert predictor.selection_["class_weight"] == "balanced" and predictor.selection_["criterion"] == "fixed"


def test_minilm_probe_fused_with_tfidf(catalog, tmp_path):
    predictor = ReviewPredictor(
        encoders=("tfidf", "minilm"),
        class_weight=None,
        cache_dir=tmp_path / "cache",
        encoder_params={"tfidf": {"Cs": (3.0,)}, "minilm": {"Cs": (0.1,)}},
    ).fit(catalog)
    weights = predictor.selection_["weights"]
    assert set(weights) == {"tfidf", "minilm"} and abs(sum(weights.values()) - 1) < 1e-9
    out = predictor.predict_texts(["love this dress", "terrible quality, returned it"])
    assert out[0]["expected_rating"] > out[1]["expected_rating"]


def test_weighted_fusion_round_trip():
    from skulens.tasks.reviews import WeightedFusion

    rng = np.random.default_rng(0)
    y = rng.integers(1, 6, 200)
    blocks = {"a": rng.normal(size=(200, 6)) + y[:, None], "b": rng.normal(size=(200, 4))}
    present = {"a": np.ones(200, bool), "b": np.r_[np.ones(150, bool), np.zeros(50, bool)]}
    fusion = WeightedFusion(block_params={"a": {"Cs": (1.0,)}, "b": {"head": "mlp", "hidden": 8, "max_epochs": 3}})
    fusion.weights_ = {"a": 0.75, "b": 0.25}
    fusion.fit(blocks, present, y)
    restored = WeightedFusion.from_arrays(fusion.to_arrays(), ["a", "b"], fusion.classes_, "linear")
    np.testing.assert_allclose(fusion.predict_proba(blocks, present), restored.predict_proba(blocks, present), rtol=1e-6)
    assert restored.weights_ == {"a": 0.75, "b": 0.25}
    assert type(restored.heads_["b"]).__name__ == "MLPProbe"


# ----- VADER -----------------------------------------------------------------------------------------


def test_vader_baseline(catalog):
    from skulens.tasks.review_lexicon import VaderBaseline

    vader = VaderBaseline(bins=5).fit(catalog)
    assert np.all(np.diff(vader.cuts_) >= 0)
    out = vader.outputs(["I love it, it is wonderful", "This is terrible and ugly"])
    assert out["stars"][0] > out["stars"][1]
    assert out["recommend_proba"][0] > out["recommend_proba"][1]
    metrics = vader.evaluate(catalog)
    assert 0 <= metrics["star_accuracy"] <= 1 and metrics["recommend_auc"] > 0.5


def test_review_metrics_keys():
    proba = np.eye(5)[[0, 1, 2, 3, 4]]
    metrics = review_metrics(
        np.arange(1, 6), proba, np.arange(1, 6), np.array([0, 0, 1, 1, 1]), np.array([0.1, 0.2, 0.6, 0.8, 0.9])
    )
    assert metrics["star_accuracy"] == 1.0 and metrics["rating_mae"] == 0.0 and metrics["recommend_auc"] == 1.0


# ----- leakage -----------------------------------------------------------------------------------------


def test_group_split_keeps_duplicate_texts_on_one_side():
    texts = [f"review number {i % 40}" for i in range(200)]  # every text five times
    texts[3] = "  REVIEW   number 3 "  # normalisation: case and whitespace do not hide a duplicate
    frame = pd.DataFrame({"id": [str(i) for i in range(200)], "review_text": texts, "rating": [1 + i % 5 for i in range(200)]})
    catalog = Catalog(frame)
    for seed in range(3):
        train, test = group_split(catalog, 0.2, label="rating", seed=seed)
        assert len(train) + len(test) == 200 and len(test) > 0
        assert not set(text_groups(train)) & set(text_groups(test))
        assert set(train.ids).isdisjoint(test.ids)
    train, test = group_split(catalog, 0.2, seed=0)  # unstratified path
    assert not set(text_groups(train)) & set(text_groups(test))
    with pytest.raises(CatalogError):
        group_split(Catalog(pd.DataFrame({"id": ["1", "2"], "review_text": ["same", "same"]})))


# ----- aspect view and product rating -----------------------------------------------------------------


def test_review_summary_by_product_and_department(catalog):
    from skulens.tasks.review_summary import review_summary

    by_product = review_summary(catalog, by="product_id", top_k=3)
    assert {s["group"] for s in by_product} == {f"p{i}" for i in range(6)}
    first = by_product[0]
    assert sum(first["rating_distribution"].values()) == first["n_rated"] == first["n_reviews"]
    assert 0 <= first["share_negative"] <= 1
    negative_words = " ".join(s for item in by_product for s in item["negative_phrases"])
    assert any(word in negative_words for word in ("terrible", "awful", "returned", "ugly", "worst", "disappointed", "horrible"))
    by_department = review_summary(catalog, by="department")
    assert {s["group"] for s in by_department} == {"Dresses", "Tops"}


def test_product_rating_cv_on_tiny_catalog(monkeypatch):
    rng = np.random.default_rng(0)
    words = ["great", "poor", "steel", "cotton", "watch", "mug"]
    frame = pd.DataFrame(
        {
            "id": [str(i) for i in range(40)],
            "title": [" ".join(rng.choice(words, 3)) for _ in range(40)],
            "rating": rng.uniform(1, 5, 40).round(1),
        }
    )
    from skulens.tasks import product_rating

    class _Stub:  # a fixed random embedding instead of a real encoder keeps this test fast
        def __init__(self, *a, **k):
            pass

        def transform(self, catalog):
            from skulens.tasks.features import Features

            X = np.random.default_rng(1).normal(size=(len(catalog), 8)).astype(np.float32)
            return Features({"stub": X}, {"stub": np.ones(len(catalog), bool)})

    monkeypatch.setattr(product_rating, "FeatureExtractor", _Stub)
    result = product_rating.product_rating_cv(Catalog(frame), encoders=("stub",), folds=4)
    names = [r["name"] for r in result["results"]]
    assert names == ["mean baseline", "median baseline", "huber:stub"]
    for r in result["results"]:
        assert r["mae"] > 0 and "per_fold" in r
    with pytest.raises(CatalogError):
        product_rating.product_rating_cv(Catalog(frame.head(5)), encoders=("stub",), folds=4)


# ----- CLI -----------------------------------------------------------------------------------------------


def test_cli_train_and_predict(fixture_csv, tmp_path):
    from typer.testing import CliRunner

    from skulens.cli.reviews import reviews_app

    runner = CliRunner()
    model = tmp_path / "model"
    result = runner.invoke(reviews_app, ["train", str(fixture_csv), "--out", str(model), "--encoders", "tfidf"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(reviews_app, ["predict", str(model), "--text", "awful, returned it"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["sentiment"] == "negative"
    result = runner.invoke(reviews_app, ["predict", str(model), "--text", "   "])
    assert result.exit_code == 2 and "empty" in result.output
    source = tmp_path / "in.csv"
    pd.DataFrame({"text": ["love it", "", "terrible"]}).to_csv(source, index=False)
    out = tmp_path / "out.csv"
    result = runner.invoke(reviews_app, ["predict", str(model), "--input", str(source), "--output", str(out)])
    assert result.exit_code == 0, result.output
    predicted = pd.read_csv(out)
    assert len(predicted) == 3 and predicted["error"].notna().sum() == 1
    assert {"stars", "expected_rating", "sentiment", "sentiment_score", "recommend_proba"} <= set(predicted.columns)


# ----- real data ----------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.skipif(not (DATASETS / "reviews").is_dir(), reason="../shared/datasets/reviews is absent")
def test_real_reviews_group_split_has_no_leakage(monkeypatch):
    monkeypatch.setenv("SKULENS_DATA", str(DATASETS))
    catalog = load_catalog("reviews")
    catalog = catalog.subset(np.flatnonzero(catalog.frame["review_text"].notna().to_numpy()))
    train, test = group_split(catalog, 0.2, label="rating", seed=0)
    assert not set(text_groups(train)) & set(text_groups(test))
    assert abs(len(test) / len(catalog) - 0.2) < 0.02


@pytest.mark.integration
@pytest.mark.skipif(not (DATASETS / "reviews").is_dir(), reason="../shared/datasets/reviews is absent")
def test_real_reviews_tfidf_beats_chance(monkeypatch, tmp_path):
    monkeypatch.setenv("SKULENS_DATA", str(DATASETS))
    catalog = load_catalog("reviews").head(2000)
    train, test = group_split(catalog, 0.2, label="rating", seed=0)
    predictor = ReviewPredictor(
        encoders=("tfidf",), class_weight=None, alphas=(0.5,), encoder_params={"tfidf": {"Cs": (3.0,)}}, cache_dir=tmp_path
    ).fit(train)
    metrics = predictor.evaluate(test)
    assert metrics["star_accuracy"] > 0.55 and metrics["recommend_auc"] > 0.85


@pytest.mark.integration
@pytest.mark.skipif(not (DATASETS / "reviews").is_dir(), reason="../shared/datasets/reviews is absent")
def test_benchmark_reviews_writes_metrics(monkeypatch, tmp_path):
    from skulens.cli.reviews import benchmark_reviews

    monkeypatch.setenv("SKULENS_DATA", str(DATASETS))
    path = benchmark_reviews(tmp_path, models=["vader", "tfidf"], product_rating=False, limit=300)
    report = json.loads(path.read_text())
    assert report["dataset"] and report["split"]["duplicate_text_groups_across_split"] == 0
    assert [set(r) >= {"name", "star_accuracy", "star_macro_f1", "rating_mae", "recommend_auc"} for r in report["results"]] == [
        True,
        True,
    ]
    assert (tmp_path / "metrics.md").read_text().startswith("# Review intelligence benchmark")
