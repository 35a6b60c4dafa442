"""CategoryPredictor, heads, fusion, hierarchy roll-up and metrics on tiny self-made catalogs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from skulens.catalog import Catalog, CatalogError, build_catalog
from skulens.heads import EarlyFusion, HeadError, LateFusion, LinearProbe, MLPProbe
from skulens.metrics import classification_metrics, expected_calibration_error, mean_std_ci, regression_metrics
from skulens.tasks.categorize import CategoryPredictor, rollup
from skulens.tasks.features import Features
from skulens.tasks.model_folder import ModelFolderError

# Each fine class has a colour (what the image shows) and words (what the text says).
KINDS = {
    ("Kitchen", "Knives"): ("red", "steel chef knife blade"),
    ("Kitchen", "Pans"): ("orange", "nonstick frying pan skillet"),
    ("Watches", "Analog"): ("blue", "analog wrist watch leather strap"),
    ("Watches", "Smart"): ("navy", "smart watch fitness tracker"),
}


def _draw(path, colour: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (64, 64), "white")
    draw = ImageDraw.Draw(image)
    x, y = rng.integers(4, 20, size=2)
    draw.rectangle([x, y, x + 36, y + 36], fill=colour)
    image.save(path, "JPEG")


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A 48-product catalog (12 per fine class) with drawn images and short texts."""
    root = tmp_path_factory.mktemp("shop")
    rows = []
    for k, ((top, leaf), (colour, words)) in enumerate(KINDS.items()):
        for i in range(12):
            name = f"{leaf.lower()}-{i}.jpg"
            _draw(root / name, colour, seed=100 * k + i)
            rows.append(
                {
                    "id": f"{leaf}-{i}",
                    "title": f"{words.split()[i % 3]} {words} model {i}",
                    "description": f"A {words} for everyday use.",
                    "image": name,
                    "category": f"{top} >> {leaf}",
                }
            )
    return build_catalog(pd.DataFrame(rows), root=root, name="shop")


@pytest.fixture(scope="module")
def trained(shop, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    predictor = CategoryPredictor(["efficientnet-lite0", "tfidf"], label=1, cache_dir=cache)
    return predictor.fit(shop.subset(range(0, 48, 2))), cache


def test_fit_predict_top_k_and_metrics(shop, trained):
    predictor, _ = trained
    test = shop.subset(range(1, 48, 2))
    assert list(predictor.classes_) == sorted(leaf for _, leaf in KINDS)
    proba = predictor.predict_proba(test)
    assert proba.shape == (24, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    metrics = predictor.evaluate(test)
    assert metrics["accuracy"] >= 0.9 and metrics["n"] == 24
    top = predictor.top_k(test.head(1), k=3)[0]
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]


def test_save_load_round_trip(shop, trained, tmp_path):
    predictor, cache = trained
    folder = predictor.save(tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    assert config["task"] == "categorize" and config["classes"] == list(predictor.classes_)
    assert set(config["encoders"]) == {"efficientnet-lite0", "tfidf"}
    loaded = CategoryPredictor.load(folder, cache_dir=cache)
    test = shop.subset(range(1, 48, 2))
    np.testing.assert_allclose(loaded.predict_proba(test), predictor.predict_proba(test), atol=1e-6)


def test_missing_modality_is_predicted_from_what_remains(shop, trained):
    predictor, _ = trained
    test = shop.subset(range(1, 48, 2))
    no_image = Catalog(test.frame.assign(image=None), root=test.root, name="no-image")
    no_text = Catalog(test.frame.assign(title=None, description=None), root=test.root, name="no-text")
    truth = test.labels(1).to_numpy()
    assert (predictor.predict(no_image) == truth).mean() >= 0.9
    assert (predictor.predict(no_text) == truth).mean() >= 0.7


def test_predict_product_from_image_path_or_text(shop, trained):
    predictor, _ = trained
    image = shop.root / "knives-1.jpg"
    assert predictor.predict_product(image=image)[0][0] in ("Knives", "Pans")  # red vs orange: close colours
    assert predictor.predict_product(title="smart watch fitness tracker")[0][0] == "Smart"
    with pytest.raises(CatalogError, match="image, a title or a description"):
        predictor.predict_product()


def test_hierarchy_roll_up(shop, trained):
    predictor, _ = trained
    parents, proba = predictor.predict_parents(shop.subset(range(1, 48, 2)), level=0)
    assert list(parents) == ["Kitchen", "Watches"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    names, summed = rollup(np.array([[0.1, 0.2, 0.3, 0.4]]), ["a", "b", "c", "d"], {"a": "X", "b": "Y", "c": "X", "d": "Y"})
    assert list(names) == ["X", "Y"]
    np.testing.assert_allclose(summed, [[0.4, 0.6]])


def test_level_zero_training_and_parent_recorded(shop, tmp_path):
    predictor = CategoryPredictor(["tfidf"], label=0).fit(shop)
    assert list(predictor.classes_) == ["Kitchen", "Watches"]
    fine = CategoryPredictor(["tfidf"], label=1).fit(shop)
    assert fine.parents_["Knives"] == ["Kitchen"] and fine.parents_["Smart"] == ["Watches"]


def test_late_fusion_beats_each_weak_modality():
    """Two noisy views of the same signal: fusing them must beat either alone."""
    rng = np.random.default_rng(0)
    n, classes = 600, 3
    y = rng.integers(0, classes, n)
    centers = rng.normal(size=(classes, 8)) * 1.2
    view_a = centers[y] + rng.normal(size=(n, 8)) * 2.0
    view_b = centers[y] + rng.normal(size=(n, 8)) * 2.0
    train, test = np.arange(400), np.arange(400, n)
    present = {"a": np.ones(n, bool), "b": np.ones(n, bool)}
    blocks = {"a": view_a, "b": view_b}
    fused = LateFusion().fit({k: v[train] for k, v in blocks.items()}, {k: v[train] for k, v in present.items()}, y[train])
    acc_fused = (
        fused.classes_[
            fused.predict_proba({k: v[test] for k, v in blocks.items()}, {k: v[test] for k, v in present.items()}).argmax(1)
        ]
        == y[test]
    ).mean()
    acc_a = (LinearProbe().fit(view_a[train], y[train]).predict(view_a[test]) == y[test]).mean()
    acc_b = (LinearProbe().fit(view_b[train], y[train]).predict(view_b[test]) == y[test]).mean()
    assert acc_fused > max(acc_a, acc_b)
    early = EarlyFusion().fit({k: v[train] for k, v in blocks.items()}, {k: v[train] for k, v in present.items()}, y[train])
    assert early.predict_proba({k: v[test] for k, v in blocks.items()}, {k: v[test] for k, v in present.items()}).shape == (
        200,
        3,
    )


def test_mlp_probe_is_seeded_and_round_trips():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 10)).astype(np.float32)
    y = np.where(X[:, 0] + X[:, 1] > 0, "pos", "neg")
    a = MLPProbe(hidden=16, max_epochs=30, seed=3).fit(X, y)
    b = MLPProbe(hidden=16, max_epochs=30, seed=3).fit(X, y)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-6)
    assert (a.predict(X) == y).mean() > 0.85
    restored = MLPProbe.from_arrays(a.to_arrays(), a.classes_)
    np.testing.assert_allclose(restored.predict_proba(X), a.predict_proba(X), atol=1e-6)


def test_linear_probe_binary_probabilities_match_sklearn():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(80, 4))
    y = np.where(X[:, 0] > 0, 1, 0)
    probe = LinearProbe(Cs=(1.0,)).fit(X, y)
    from sklearn.linear_model import LogisticRegression

    reference = LogisticRegression(C=1.0, max_iter=2000).fit((X - probe.mean_) / probe.scale_, y)
    np.testing.assert_allclose(probe.predict_proba(X), reference.predict_proba((X - probe.mean_) / probe.scale_), atol=1e-4)


def test_metrics_match_hand_computed_values():
    y_true = ["a", "a", "b", "b", "c"]
    y_pred = ["a", "b", "b", "b", "a"]
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(3 / 5)
    # per class: a P=1/2 R=1/2 F1=1/2; b P=2/3 R=1 F1=0.8; c P=0 R=0 F1=0
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    # ECE: two bins used: conf 0.9 (2 rows, 1 correct) and 0.6 (1 row, correct) -> (2/3)*0.4 + (1/3)*0.4
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    ece = expected_calibration_error(np.array(["x", "y", "y"]), proba, np.array(["x", "y"]))
    assert ece == pytest.approx((2 / 3) * 0.4 + (1 / 3) * 0.4)
    ci = mean_std_ci([0.8, 0.9, 1.0])
    assert ci["mean"] == pytest.approx(0.9) and ci["std"] == pytest.approx(0.1)
    assert ci["ci95"][0] == pytest.approx(0.9 - 4.302652729911275 * 0.1 / np.sqrt(3))
    r = regression_metrics([1, 2, 3], [1, 2, 5])
    assert r["mae"] == pytest.approx(2 / 3) and r["rmse"] == pytest.approx(np.sqrt(4 / 3))


def test_bad_inputs_give_clear_errors(shop, tmp_path):
    with pytest.raises(CatalogError, match="no column 'brand'"):
        CategoryPredictor(["tfidf"], label="brand").fit(shop)
    with pytest.raises(CatalogError, match="level 5 does not exist"):
        CategoryPredictor(["tfidf"], label=5).fit(shop)
    with pytest.raises(CatalogError, match="empty"):
        CategoryPredictor(["tfidf"]).fit(shop.subset([]))
    with pytest.raises(CatalogError, match="not trained"):
        CategoryPredictor(["tfidf"]).predict(shop)
    with pytest.raises(HeadError, match="only one class"):
        CategoryPredictor(["tfidf"], label=0, min_class_count=1).fit(shop.subset(range(12)))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hello")
    with pytest.raises(ModelFolderError, match="is not a skulens model"):
        CategoryPredictor.load(tmp_path / "junk")
    with pytest.raises(ModelFolderError, match="does not exist"):
        CategoryPredictor.load(tmp_path / "nowhere")


def test_single_sample_class_is_dropped_with_reason(shop, caplog):
    frame = shop.frame.copy()
    frame.loc[0, "category"] = ("Garden", "Hose")
    catalog = Catalog(frame, root=shop.root, name="with-singleton")
    predictor = CategoryPredictor(["tfidf"], label=1).fit(catalog)
    assert predictor.dropped_classes_ == {"Hose": 1}
    assert "Hose" not in predictor.classes_
    assert "dropped" in caplog.text


def test_model_with_a_missing_encoder_fails_clearly(shop, tmp_path):
    folder = CategoryPredictor(["tfidf"], label=1).fit(shop).save(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["encoders"] = {"no-such-encoder": "no-such-encoder@1"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match="encoder 'no-such-encoder' is not available"):
        CategoryPredictor.load(folder)


def test_features_subset_keeps_alignment():
    features = Features({"a": np.arange(10).reshape(5, 2)}, {"a": np.array([1, 0, 1, 0, 1], bool)})
    part = features.subset(np.array([0, 3]))
    assert part.blocks["a"].tolist() == [[0, 1], [6, 7]] and part.present["a"].tolist() == [True, False]


def test_cli_train_predict_evaluate(shop, tmp_path):
    from typer.testing import CliRunner

    from skulens.cli import app

    csv = tmp_path / "shop.csv"
    frame = shop.frame.drop(columns=["image"]).assign(category=shop.frame["category"].map(" >> ".join))
    frame.to_csv(csv, index=False)
    runner = CliRunner()
    model = tmp_path / "model"
    result = runner.invoke(
        app, ["train", str(csv), "--label", "1", "--encoders", "tfidf", "--out", str(model), "--test-size", "0.25"]
    )
    assert result.exit_code == 0, result.output
    assert "held-out 12 rows" in result.output and (model / "weights.npz").is_file()
    result = runner.invoke(app, ["predict", str(model), "--text", "smart watch fitness tracker", "--k", "2"])
    assert result.exit_code == 0 and "Smart" in result.output
    result = runner.invoke(app, ["predict", str(model), "--input", str(csv), "--output", str(tmp_path / "pred.csv")])
    assert result.exit_code == 0, result.output
    predictions = pd.read_csv(tmp_path / "pred.csv")
    assert len(predictions) == 48 and (predictions["category_1"] == shop.labels(1).to_numpy()).mean() > 0.9
    result = runner.invoke(app, ["evaluate", str(model), str(csv), "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report" / "confusion.png").is_file()
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["n"] == 48
    result = runner.invoke(app, ["predict", str(tmp_path), "--text", "x"])
    assert result.exit_code == 2 and "is not a skulens model" in " ".join(result.output.split())
