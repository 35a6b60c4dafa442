"""Review intelligence: the predictor, the sentiment rule, the VADER baseline, leakage-safe splits, the
aspect view, product-rating regression and the reviews CLI. Fast tests use a tiny fixture CSV and TF-IDF;
one test uses the real MiniLM (late fusion with TF-IDF); tests on the real data are marked ``integration``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skulens.catalog import Catalog, CatalogError, build_catalog, load_catalog, read_catalog
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
    assert results[0]["recommend_proba"] < 0.5 < results[1]["recommend_proba"]
    for r in results:
        p = r["star_proba"]
        assert r["sentiment_score"] == pytest.approx(p["4"] + p["5"] - p["1"] - p["2"], abs=1e-3)
        assert r["expected_rating"] == pytest.approx(sum(int(k) * v for k, v in p.items()), abs=1e-3)
        assert abs(sum(p.values()) - 1) < 1e-3


def test_empty_and_whitespace_text(tfidf_model):
    with pytest.raises(EmptyReviewError, match="empty"):
        tfidf_model.predict_one("   \n\t ")
    with pytest.raises(EmptyReviewError):
        tfidf_model.predict_one("")
    results = tfidf_model.predict_texts(["love it", "  ", "", "awful"])
    assert "error" in results[1] and "error" in results[2]
    assert "stars" in results[0] and "stars" in results[3]
    frame = tfidf_model.predict(Catalog(pd.DataFrame({"id": ["a", "b"], "review_text": ["nice", None]})))
    assert (
        frame.loc[1, "issue"]
        and not frame.loc[0, "issue"]
        and pd.isna(frame.loc[1, "stars"])
        and not pd.isna(frame.loc[0, "stars"])
    )
    assert [issue.id for issue in tfidf_model.last_issues_] == ["b"]


def test_review_issues_are_numbered_by_source_row(tfidf_model):
    """A skipped row (repeated id) before an empty review: the issue names the review's row in the source
    table, as every RowIssue (issues.csv) does, while the issue column stays beside its prediction row."""
    frame = pd.DataFrame({"id": ["a", "a", "b", "c"], "review_text": ["nice", "again", "fine dress", None]})
    predicted = tfidf_model.predict(frame)
    assert list(predicted["id"]) == ["a", "b", "c"]
    assert [(issue.row, issue.id, issue.column) for issue in tfidf_model.last_issues_] == [(3, "c", "review_text")]
    assert predicted["issue"].tolist()[:2] == ["", ""] and "no title or review text" in predicted["issue"].iloc[2]


def test_long_and_non_english_text(tfidf_model):
    long_text = "love this dress " * 5000
    out = tfidf_model.predict_texts([long_text, "Das Kleid ist wunderschön, ich liebe es", "这件衣服质量很差", "🙂👗"])
    assert "stars" in out[0] and "stars" in out[3]  # long text is read; emoji carry no words to doubt
    assert out[0]["sentiment"] == "positive"
    # German words the clothing vocabulary does not know, and Chinese script: an error, no stars
    assert "vocabulary" in out[1]["error"] and "Latin script" in out[2]["error"]


def test_review_without_title(tfidf_model, catalog):
    assert catalog.frame["title"].isna().any()
    no_title = tfidf_model.predict_one("awful fit, fabric ripped", title=None)
    with_title = tfidf_model.predict_one("awful fit, fabric ripped", title="Disappointed")
    assert no_title["sentiment"] == "negative" and with_title["sentiment"] == "negative"
    only_title = tfidf_model.predict_one("", title="Love it")
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


def test_training_rows_are_excluded_from_evaluation(tfidf_model, catalog, tmp_path):
    train, test = group_split(catalog, 0.25, label="rating", seed=0)
    held_out = tfidf_model.evaluate(test)
    everything = tfidf_model.evaluate(catalog)
    assert everything["excluded_training_rows"] == len(train) and everything["n"] == held_out["n"] == len(test)
    assert everything["star_accuracy"] == held_out["star_accuracy"]
    assert tfidf_model.evaluate(catalog, include_training_rows=True)["n"] == len(catalog)
    with pytest.raises(
        CatalogError, match=f"{len(train)} of its {len(train)} rows were used to train.*include_training_rows=True"
    ):
        tfidf_model.evaluate(train)
    loaded = ReviewPredictor.load(tfidf_model.save(tmp_path / "model"))
    assert loaded.evaluate(catalog)["excluded_training_rows"] == len(train)


def test_dataframe_input_equals_catalog_input(tfidf_model, catalog):
    frame = catalog.frame.assign(category=catalog.frame["category"].map(" >> ".join))
    pd.testing.assert_frame_equal(tfidf_model.predict(frame), tfidf_model.predict(catalog))
    np.testing.assert_allclose(tfidf_model.predict_proba(frame.head(5)), tfidf_model.predict_proba(catalog.head(5)))
    frame_model = ReviewPredictor(encoders=("tfidf",), class_weight=None, alphas=(0.0,)).fit(frame)
    catalog_model = ReviewPredictor(encoders=("tfidf",), class_weight=None, alphas=(0.0,)).fit(build_catalog(frame))
    np.testing.assert_allclose(frame_model.predict_proba(frame), catalog_model.predict_proba(catalog))


def test_minilm_mlp_fused_with_tfidf_round_trip(catalog, tmp_path):
    predictor = ReviewPredictor(
        encoders=("tfidf", "minilm"),
        class_weight=None,
        alphas=(0.0,),
        cache_dir=tmp_path / "cache",
        encoder_params={"tfidf": {"Cs": (3.0,)}, "minilm": {"head": "mlp", "hidden": 32, "max_epochs": 20}},
    ).fit(catalog)
    model = predictor.stars_model_
    assert type(model).__name__ == "LateFusion" and model.head_kinds_ == {"tfidf": "linear", "minilm": "mlp"}
    assert predictor.selection_["weights"] == model.block_weights and set(model.block_weights) == {"tfidf", "minilm"}
    out = predictor.predict_texts(["love this dress", "terrible quality, returned it"])
    assert out[0]["expected_rating"] > out[1]["expected_rating"]
    loaded = ReviewPredictor.load(predictor.save(tmp_path / "model"), cache_dir=tmp_path / "cache")
    assert loaded.stars_model_.head_kinds_ == {"tfidf": "linear", "minilm": "mlp"}
    pd.testing.assert_frame_equal(loaded.predict(catalog), predictor.predict(catalog))


def test_old_weighted_fusion_model_is_refused(tfidf_model, tmp_path):
    folder = tfidf_model.save(tmp_path / "old")
    config = json.loads((folder / "config.json").read_text())
    config["fusion"] = "weighted"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match="'weighted' fusion.*retrain"):
        ReviewPredictor.load(folder)
    with pytest.raises(CatalogError, match="fusion must be one of late, early"):
        ReviewPredictor(fusion="weighted")


# ----- VADER -----------------------------------------------------------------------------------------


def test_vader_baseline_on_hand_computable_reviews():
    from skulens.tasks.review_lexicon import VaderBaseline

    # One text per star level (4 rows each) whose VADER compound scores rise with the stars.
    texts = {1: "terrible, awful, horrible", 2: "bad", 3: "a dress", 4: "good", 5: "wonderful, I love it"}
    rows = [(f"{k}-{i}", texts[k], k) for k in texts for i in range(4)]
    frame = pd.DataFrame(rows, columns=["id", "review_text", "rating"]).assign(recommended=lambda f: (f.rating >= 4).astype(int))
    vader = VaderBaseline(bins=5).fit(Catalog(frame))
    assert np.all(np.diff(vader.compound(list(texts.values()))) > 0)
    metrics = vader.evaluate(Catalog(frame))
    # cuts fall between the levels, so every star is right; each of the 5 bins holds one level, so its
    # add-one smoothed distribution is 5/9 on that star and 1/9 elsewhere: expected rating (4k + 15) / 9,
    # whose mean absolute error over k = 1..5 is (10 + 5 + 0 + 5 + 10) / 9 / 5 = 2/3
    assert metrics["star_accuracy"] == 1.0 and metrics["star_macro_f1"] == 1.0
    assert metrics["rating_mae"] == pytest.approx(2 / 3)
    assert metrics["recommend_auc"] == 1.0
    reversed_stars = frame.assign(rating=6 - frame["rating"])
    assert vader.evaluate(Catalog(reversed_stars))["star_accuracy"] == pytest.approx(0.2)  # only the 3-star rows


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
    frame = _fixture_frame()
    own = frame[frame["product_id"] == first["group"]]
    assert first["n_reviews"] == len(own) and first["share_negative"] == pytest.approx((own["rating"] <= 2).mean())
    negative_words = " ".join(s for item in by_product for s in item["negative_phrases"])
    assert any(word in negative_words for word in ("terrible", "awful", "returned", "ugly", "worst", "disappointed", "horrible"))
    by_department = review_summary(catalog, by="department")
    assert {s["group"] for s in by_department} == {"Dresses", "Tops"}


def test_product_rating_cv_on_a_linear_fixture():
    from sklearn.model_selection import KFold

    from skulens.tasks.product_rating import rating_cv

    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(40, 3))
    y = 3 + 1.5 * X[:, 0] + 0.5 * X[:, 1]  # in [1, 5], exactly linear in the features
    results = {r["name"]: r for r in rating_cv({"x": X}, y, folds=4)}
    assert list(results) == ["mean baseline", "median baseline", "huber:x"]
    mean_pred, median_pred = np.zeros(40), np.zeros(40)
    for train, test in KFold(4, shuffle=True, random_state=0).split(y):
        mean_pred[test], median_pred[test] = y[train].mean(), np.median(y[train])
    assert results["mean baseline"]["mae"] == pytest.approx(np.abs(mean_pred - y).mean())
    assert results["median baseline"]["mae"] == pytest.approx(np.abs(median_pred - y).mean())
    assert results["huber:x"]["mae"] < 1e-3 and results["huber:x"]["r2"] > 0.999
    assert len(results["huber:x"]["alphas_chosen"]) == 4 and results["huber:x"]["per_fold"]["mae"]["n"] == 4


def test_product_rating_cv_needs_enough_rated_rows():
    from skulens.tasks.product_rating import product_rating_cv

    frame = pd.DataFrame({"id": [str(i) for i in range(5)], "title": ["mug"] * 5, "rating": [1.0, 2.0, 3.0, 4.0, 5.0]})
    with pytest.raises(CatalogError, match="only 5 rated rows.*4-fold CV needs at least 8"):
        product_rating_cv(Catalog(frame), encoders=("tfidf",), folds=4)
    with pytest.raises(CatalogError, match="no 'rating' column"):
        product_rating_cv(Catalog(frame.drop(columns=["rating"])), encoders=("tfidf",), folds=4)


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
    assert len(predicted) == 3 and predicted["issue"].notna().sum() == 1
    issues = pd.read_csv(tmp_path / "out.issues.csv")
    assert issues[["row", "column"]].values.tolist() == [[1, "review_text"]]
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
