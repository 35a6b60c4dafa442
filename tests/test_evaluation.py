"""Honest evaluation rules on small synthetic data: grouped CV, nested selection, bootstrap intervals,
macro-F1 over present classes, and a categorize benchmark run end to end (TF-IDF + classical image)."""

from __future__ import annotations

import json
import string

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import f1_score

from skulens.catalog.schema import Catalog
from skulens.catalog.splits import duplicate_groups, grouped_folds, grouping_summary, normalise_title
from skulens.evaluation.categorize_benchmark import Config, nested_folds, run_categorize_benchmark, select_and_predict
from skulens.metrics import bootstrap_ci, classification_intervals, classification_metrics, review_intervals
from skulens.metrics.intervals import macro_f1_from_codes, roc_auc


def _image(path, colour, size=(24, 24)):
    Image.new("RGB", size, colour).save(path)
    return path.name


@pytest.fixture
def duplicate_catalog(tmp_path):
    """12 rows: 0/1 share a title up to case and punctuation, 2/3 share image bytes, 4-5-6 are chained
    (4~5 by title, 5~6 by image); the rest are unique."""
    colours = [(10 * i, 200 - 10 * i, 40 + 5 * i) for i in range(12)]
    colours[3] = colours[2]
    colours[6] = colours[5]
    titles = [f"unique product {c}" for c in string.ascii_lowercase[:12]]
    titles[0], titles[1] = "Blue Cotton T-Shirt!", "blue cotton   t shirt"
    titles[4], titles[5] = "Steel Mug (350 ml)", "steel mug, 350 ML"
    rows = [{"id": f"p{i}", "title": titles[i], "image": _image(tmp_path / f"p{i}.png", colours[i])} for i in range(12)]
    return Catalog(pd.DataFrame(rows), root=tmp_path, name="dups")


def test_normalise_title_collapses_case_whitespace_and_punctuation():
    assert normalise_title("  Blue  Cotton T-Shirt! ") == "blue cotton t shirt"
    assert normalise_title(None) == "" and normalise_title(float("nan")) == ""


def test_duplicate_groups_join_titles_images_and_chains(duplicate_catalog):
    groups = duplicate_groups(duplicate_catalog)
    assert groups[0] == groups[1]
    assert groups[2] == groups[3]
    assert groups[4] == groups[5] == groups[6]
    assert len({groups[0], groups[2], groups[4]}) == 3
    assert len(set(groups)) == 12 - 1 - 1 - 2
    assert grouping_summary(groups, ["normalised title", "image bytes"]) == {
        "by": ["normalised title", "image bytes"],
        "groups": 8,
        "rows_in_shared_groups": 7,
    }
    assert len(set(duplicate_groups(duplicate_catalog, images=False))) == 10  # titles alone join 0/1 and 4/5


def test_grouped_folds_keep_planted_duplicates_on_one_side():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(60), rng.integers(1, 5, size=60))  # groups of 1-4 rows
    y = np.array(["abc"[g % 3] for g in groups])
    seen_test = np.zeros(len(y), dtype=int)
    for train, test in grouped_folds(y, groups, folds=5, seed=3):
        assert not set(groups[train]) & set(groups[test])
        seen_test[test] += 1
    assert (seen_test == 1).all()


def test_nested_folds_inner_split_lies_inside_the_outer_training_part():
    groups = np.repeat(np.arange(50), 2)
    y = np.array(["ab"[g % 2] for g in groups])
    for fold in nested_folds(y, groups, folds=4, seed=0):
        assert set(fold.inner_train) | set(fold.inner_val) == set(fold.train)
        assert not set(fold.inner_train) & set(fold.inner_val)
        assert not set(groups[fold.inner_train]) & set(groups[fold.inner_val])
        assert not (set(fold.inner_train) | set(fold.inner_val)) & set(fold.test)


def test_nested_selection_never_sees_the_outer_test_fold():
    """A 'leaky' configuration is perfect exactly on the outer test rows and poor elsewhere; an honest
    one is decent everywhere. Selection on the inner split must pick the honest one, and no fit may
    train on, or be scored on, an outer test row."""
    rng = np.random.default_rng(0)
    n, classes = 200, np.array(["a", "b", "c", "d"])
    y = classes[rng.integers(0, 4, size=n)]
    groups = np.arange(n)
    truth = np.searchsorted(classes, y)
    noisy = np.where(rng.random(n) < 0.75, truth, rng.integers(0, 4, size=n))  # honest: ~80% right
    configs = (Config("honest", "text", ("tfidf",)), Config("leaky", "text", ("tfidf",)))
    for fold in nested_folds(y, groups, folds=5, seed=1):
        calls = []

        def fit_predict(config, train, predict, fold=fold, calls=calls):
            calls.append((config.name, train.copy(), predict.copy()))
            if config.name == "leaky":
                right = np.isin(predict, fold.test)
                codes = np.where(right, truth[predict], (truth[predict] + 1) % 4)
            else:
                codes = noisy[predict]
            return np.eye(4)[codes]

        test_proba, chosen = select_and_predict(configs, y, classes, fold, fit_predict)
        assert chosen["text"]["config"] == "honest"
        for _name, train, _predict in calls:
            assert not set(train) & set(fold.test)  # never fitted on test rows
        scored = [predict for _name, train, predict in calls if not np.array_equal(predict, fold.test)]
        assert all(not set(p) & set(fold.test) for p in scored)  # selection scored on inner rows only
        assert np.array_equal(test_proba["leaky"].argmax(axis=1), truth[fold.test])  # the trap is real
        assert set(chosen) == {"text"}


def test_bootstrap_interval_of_a_perfect_classifier_is_one():
    y = np.array(list("aabbbcccc") * 5)
    intervals = classification_intervals(y, y, resamples=200, seed=0)
    assert intervals["accuracy"]["ci95"] == [1.0, 1.0]
    assert intervals["macro_f1"]["ci95"] == [1.0, 1.0]
    assert intervals["macro_f1"]["estimate"] == 1.0


def test_bootstrap_interval_of_a_random_classifier_covers_chance_and_stays_in_unit_range():
    rng = np.random.default_rng(7)
    y, pred = rng.integers(0, 4, size=600), rng.integers(0, 4, size=600)
    intervals = classification_intervals(y, pred, resamples=500, seed=0)
    for key in ("accuracy", "macro_f1"):
        low, high = intervals[key]["ci95"]
        assert 0.0 <= low <= 0.25 <= high <= 1.0
        assert low <= intervals[key]["estimate"] <= high
    tiny = classification_intervals(np.array([0, 1, 1]), np.array([0, 1, 0]), resamples=300, seed=0)
    for key in ("accuracy", "macro_f1"):
        assert 0.0 <= tiny[key]["ci95"][0] <= tiny[key]["ci95"][1] <= 1.0


def test_bootstrap_is_seeded_and_skips_undefined_resamples():
    values = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    first = bootstrap_ci(lambda rows: values[rows].mean(), 5, resamples=100, seed=4)
    assert first == bootstrap_ci(lambda rows: values[rows].mean(), 5, resamples=100, seed=4)
    labels = np.array([1, 0, 0, 0, 0, 0, 0, 0])  # many resamples draw no positive: AUC undefined there
    result = bootstrap_ci(lambda rows: roc_auc(labels[rows], labels[rows] * 1.0), 8, resamples=200, seed=0)
    assert result["ci95"] == [1.0, 1.0]


def test_review_intervals_cover_each_headline_metric():
    rng = np.random.default_rng(1)
    stars = rng.integers(1, 6, size=300)
    pred = np.where(rng.random(300) < 0.6, stars, rng.integers(1, 6, size=300))
    recommended = (stars >= 4).astype(float)
    score = recommended * 0.6 + rng.random(300) * 0.5
    result = review_intervals(stars, pred, pred + 0.1, recommended, score, resamples=300)
    assert set(result) >= {"star_accuracy", "star_macro_f1", "rating_mae", "recommend_auc"}
    for key in ("star_accuracy", "star_macro_f1", "recommend_auc"):
        low, high = result[key]["ci95"]
        assert 0.0 <= low <= result[key]["estimate"] <= high <= 1.0
    assert result["rating_mae"]["ci95"][0] > 0


def test_fast_macro_f1_matches_sklearn_over_present_classes():
    rng = np.random.default_rng(2)
    true, pred = rng.integers(0, 5, size=80), rng.integers(0, 6, size=80)  # class 5 only predicted
    expected = f1_score(true, pred, labels=np.unique(true), average="macro", zero_division=0)
    assert macro_f1_from_codes(true, pred, 6) == pytest.approx(expected)


def test_macro_f1_averages_present_classes_and_lists_absent_ones():
    classes = ["Bags", "Free Items", "Shoes"]
    y_true = ["Bags", "Bags", "Shoes", "Shoes"]
    metrics = classification_metrics(y_true, y_true, classes)
    assert metrics["macro_f1"] == 1.0
    assert metrics["absent_classes"] == ["Free Items"]
    assert metrics["per_class"]["Free Items"]["support"] == 0
    wrong = classification_metrics(y_true, ["Bags", "Shoes", "Shoes", "Shoes"], classes)
    assert wrong["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


@pytest.fixture
def small_catalog(tmp_path):
    """60 products in 3 classes with class words in the title and a class colour in the image; rows
    0 and 1 of each class share a title (planted duplicates)."""
    words = {"mug": "ceramic coffee mug", "shirt": "cotton shirt sleeve", "watch": "analog wrist watch"}
    colours = {"mug": (200, 40, 40), "shirt": (40, 200, 40), "watch": (40, 40, 200)}
    rng = np.random.default_rng(0)
    rows = []
    for label in words:
        for i in range(20):
            colour = tuple(int(c + rng.integers(-30, 30)) for c in colours[label])
            name = _image(tmp_path / f"{label}{i}.png", colour)
            title = f"{words[label]} model {0 if i == 1 else i}"
            rows.append({"id": f"{label}{i}", "title": title, "image": name, "category": (label,)})
    frame = pd.DataFrame(rows)
    return Catalog(frame, root=tmp_path, name="tiny")


def test_categorize_benchmark_records_nested_grouped_bootstrapped_results(small_catalog, tmp_path):
    out = tmp_path / "bench"
    configs = (
        Config("classical-image LR", "baseline-image", ("classical-image",)),
        Config("tfidf LR", "baseline-text", ("tfidf",)),
        Config("classical-image+tfidf late", "fused", ("classical-image", "tfidf")),
    )
    summary = run_categorize_benchmark(
        small_catalog, 0, out, folds=3, configs=configs, command="test", log=lambda _: None, resamples=200
    )
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["selection"] == "nested"
    assert saved["grouping"] == {"by": ["normalised title", "image bytes"], "groups": 57, "rows_in_shared_groups": 6}
    assert set(saved["selected"]) == {"image", "text", "fused"}
    for entry in saved["selected"].values():
        assert len(entry["chosen_per_fold"]) == 3
        for key in ("macro_f1_ci95", "accuracy_ci95"):
            low, high = entry[key]
            assert 0.0 <= low <= high <= 1.0
    for entry in saved["results"]:
        assert 0.0 <= entry["macro_f1_ci95"][0] <= entry["macro_f1"] <= entry["macro_f1_ci95"][1] <= 1.0
        assert "best_of" not in entry
    assert saved["selected"]["text"]["macro_f1"] > 0.9  # class words in every title
    for name in ("report.md", "report.html", "comparison.png", "confusion_fused.png", "reliability_image.png"):
        assert (out / name).is_file(), name
    markdown = (out / "report.md").read_text()
    assert "57 groups" in markdown and "nested selection" in markdown
    html = (out / "report.html").read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert html.count("data:image/png;base64,") >= 7
    assert summary["rows"] == 60


def test_several_seeds_get_one_interval_each(small_catalog, tmp_path):
    configs = (Config("tfidf LR", "baseline-text", ("tfidf",)),)
    summary = run_categorize_benchmark(
        small_catalog, 0, tmp_path / "seeds", folds=3, seeds=(0, 1), configs=configs, log=lambda _: None, resamples=100
    )
    per_seed = summary["selected"]["text"]["per_seed"]
    assert [s["seed"] for s in per_seed] == [0, 1]
    assert per_seed[0]["macro_f1"] == summary["selected"]["text"]["macro_f1"]  # the headline is the first seed's
    assert all(0.0 <= s["macro_f1_ci95"][0] <= s["macro_f1_ci95"][1] <= 1.0 for s in per_seed)
    assert len(summary["results"][0]["fold_macro_f1"]) == 6
    assert summary["selected"]["text"]["chosen_per_fold"] == [
        {"fold": i, "config": "tfidf LR", "inner_macro_f1": c["inner_macro_f1"]}
        for i, c in enumerate(summary["selected"]["text"]["chosen_per_fold"])
    ]
