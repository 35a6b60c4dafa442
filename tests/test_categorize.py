"""CategoryPredictor on tiny self-made catalogs: training, in-memory prediction, DataFrames, honest
evaluation (training rows, unknown classes), hierarchy roll-up, persistence and metrics."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from skulens.catalog import Catalog, CatalogError, ImageLoadError, build_catalog, decode_image
from skulens.heads import HeadError
from skulens.metrics import classification_metrics, expected_calibration_error, mean_std_ci, regression_metrics
from skulens.tasks.categorize import CategoryPredictor, rollup
from skulens.tasks.features import Features
from skulens.tasks.inputs import as_catalog
from skulens.tasks.model_folder import ModelFolderError

# Each fine class has a colour (what the image shows) and words (what the text says).
KINDS = {
    ("Kitchen", "Knives"): ("red", "steel chef knife blade"),
    ("Kitchen", "Pans"): ("green", "nonstick frying pan skillet"),
    ("Watches", "Analog"): ("blue", "analog wrist watch leather strap"),
    ("Watches", "Smart"): ("yellow", "smart watch fitness tracker"),
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
    assert metrics["excluded_training_rows"] == 0 and metrics["unknown_class_rows"] == 0 and metrics["unlabelled_rows"] == 0
    top = predictor.top_k(test.head(1), k=3)[0]
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]


def test_evaluate_excludes_training_rows_by_default(shop, trained, tmp_path):
    predictor, cache = trained
    metrics = predictor.evaluate(shop)  # trained on the 24 even rows
    assert metrics["excluded_training_rows"] == 24 and metrics["n"] == 24
    assert predictor.evaluate(shop, include_training_rows=True)["n"] == 48
    with pytest.raises(CatalogError, match="all 24 labelled rows were used to train.*include_training_rows=True"):
        predictor.evaluate(shop.subset(range(0, 48, 2)))
    folder = predictor.save(tmp_path / "model")
    with np.load(folder / "weights.npz", allow_pickle=False) as weights:
        hashes = weights["training.id_sha256"]
    assert hashes.dtype == np.dtype("S64") and len(hashes) == 24
    assert hashlib.sha256(b"Knives-0").hexdigest().encode() in set(hashes)
    assert hashlib.sha256(b"Knives-1").hexdigest().encode() not in set(hashes)
    assert json.loads((folder / "config.json").read_text())["training_rows"] == 24
    loaded = CategoryPredictor.load(folder, cache_dir=cache)
    assert loaded.evaluate(shop)["excluded_training_rows"] == 24


def test_evaluate_counts_unknown_classes_and_unlabelled_rows(shop, trained):
    predictor, _ = trained
    frame = shop.subset(range(1, 48, 2)).frame.copy()
    frame.loc[[0, 1, 2], "category"] = [("Garden", "Hose")] * 3
    frame.loc[3, "category"] = ("Garden", "Rake")
    frame.loc[[4, 5], "category"] = None
    metrics = predictor.evaluate(Catalog(frame, root=shop.root, name="odd"))
    assert metrics["unknown_class_rows"] == 4 and metrics["unknown_classes"] == {"Hose": 3, "Rake": 1}
    assert metrics["unlabelled_rows"] == 2 and metrics["n"] == 24 - 6
    only_unknown = Catalog(frame.iloc[:4], root=shop.root, name="garden")
    with pytest.raises(CatalogError, match="4 carry classes the model does not know"):
        predictor.evaluate(only_unknown)


def test_absent_classes_are_listed_not_scored(shop, trained):
    predictor, _ = trained
    kitchen = shop.subset([i for i in range(1, 48, 2) if shop.ids[i].startswith(("Knives", "Pans"))])
    metrics = predictor.evaluate(kitchen)
    assert metrics["absent_classes"] == ["Analog", "Smart"] and metrics["n"] == 12
    present_f1 = [metrics["per_class"][c]["f1"] for c in ("Knives", "Pans")]
    assert metrics["macro_f1"] == pytest.approx(np.mean(present_f1))


def _decoded(catalog: Catalog, row: int) -> Image.Image:
    return decode_image((catalog.root / catalog.frame.at[row, "image"]).read_bytes())


def test_predict_inputs_equals_predict_proba(shop, trained):
    predictor, _ = trained
    test = shop.subset([1, 14, 27, 40])
    images = [_decoded(test, 0), None, _decoded(test, 2), _decoded(test, 3)]
    texts = test.texts(predictor.text_fields)
    texts[3] = ""  # image only
    frame = test.frame.copy()
    frame.loc[1, "image"] = None  # text only
    frame.loc[3, ["title", "description"]] = None
    catalog = Catalog(frame, root=test.root)
    np.testing.assert_allclose(predictor.predict_inputs(images, texts), predictor.predict_proba(catalog), atol=1e-6)
    prepared = predictor.extractor.encoder("efficientnet-lite0").prepare(images[0])
    np.testing.assert_allclose(predictor.predict_inputs([prepared], [texts[0]]), predictor.predict_inputs(images[:1], texts[:1]))
    with pytest.raises(CatalogError, match="2 images for 1 texts"):
        predictor.predict_inputs(images[:2], texts[:1])


def test_predict_one_from_path_bytes_or_pil_is_identical(shop, trained):
    predictor, cache = trained
    path = shop.root / "knives-1.jpg"
    row = shop.ids.index("Knives-1")
    title, description = shop.frame.at[row, "title"], shop.frame.at[row, "description"]
    before = sorted(p.name for p in cache.rglob("*"))
    from_path = predictor.predict_one(image=path, title=title, description=description, k=4)
    from_bytes = predictor.predict_one(image=path.read_bytes(), title=title, description=description, k=4)
    from_pil = predictor.predict_one(image=Image.open(path), title=title, description=description, k=4)
    from_str = predictor.predict_one(image=str(path), title=title, description=description, k=4)
    assert from_path == from_bytes == from_pil == from_str
    from_catalog = predictor.top_k(shop.subset([row]), k=4)[0]
    assert [c for c, _ in from_path] == [c for c, _ in from_catalog]
    np.testing.assert_allclose([p for _, p in from_path], [p for _, p in from_catalog], atol=1e-6)
    assert sorted(p.name for p in cache.rglob("*")) == before, "single predictions must not touch the embedding cache"


def test_predict_one_from_image_path_or_text(shop, trained):
    predictor, _ = trained
    image = shop.root / "knives-1.jpg"
    assert predictor.predict_one(image=image)[0][0] == "Knives"
    assert predictor.predict_one(title="smart watch fitness tracker")[0][0] == "Smart"
    with pytest.raises(CatalogError, match="image, a title or a description"):
        predictor.predict_one()


def test_predict_one_bad_image_fails_naming_it(shop, trained, tmp_path):
    predictor, _ = trained
    with pytest.raises(ImageLoadError, match="missing-photo.jpg"):
        predictor.predict_one(image=tmp_path / "missing-photo.jpg", title="steel chef knife")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a jpeg")
    with pytest.raises(ImageLoadError, match="broken.jpg.*not an image"):
        predictor.predict_one(image=broken, title="steel chef knife")
    with pytest.raises(ImageLoadError, match="not an image"):
        predictor.predict_one(image=b"\x00\x01 no image", title="steel chef knife")
    with pytest.raises(CatalogError, match="file path, image bytes or a PIL image"):
        predictor.predict_one(image=42)
    with pytest.raises(CatalogError, match="image, a title or a description"):
        predictor.predict_one(title="   ", description="")


def test_predict_one_with_nothing_the_model_reads_is_an_error(shop, caplog):
    text_only = CategoryPredictor(["tfidf"], label=1).fit(shop)
    with pytest.raises(CatalogError, match=r"reads only text \(title, description\)"):
        text_only.predict_one(image=shop.root / "knives-1.jpg")
    assert text_only.predict_one(image=shop.root / "knives-1.jpg", title="steel chef knife")[0][0] == "Knives"
    assert "the image is not used" in caplog.text


def test_dataframe_input_equals_catalog_input(shop, tmp_path):
    frame = shop.frame.drop(columns=["image"]).assign(category=shop.frame["category"].map(" >> ".join))
    from_frame = CategoryPredictor(["tfidf"], label=1).fit(frame)
    from_catalog = CategoryPredictor(["tfidf"], label=1).fit(build_catalog(frame, name="shop"))
    np.testing.assert_allclose(from_frame.predict_proba(frame), from_catalog.predict_proba(shop), atol=1e-9)
    assert list(from_frame.predict(frame.head(3))["category"]) == ["Knives", "Knives", "Knives"]
    assert len(from_frame.top_k(frame.head(2), k=2)) == 2
    with pytest.raises(CatalogError, match="all 48 labelled rows were used to train"):
        from_frame.evaluate(frame)
    assert from_frame.evaluate(frame, include_training_rows=True)["n"] == 48
    with pytest.raises(CatalogError, match="no 'id' column"):
        from_frame.predict(frame.drop(columns=["id"]))
    with pytest.raises(CatalogError, match="Catalog or a pandas DataFrame"):
        from_frame.predict([{"id": "1"}])


def test_dataframe_image_paths_are_not_used_silently(shop, caplog):
    frame = shop.frame.assign(category=shop.frame["category"].map(" >> ".join))
    catalog = as_catalog(frame)
    assert catalog.frame["image"].isna().all()
    assert "48 image path(s) in the DataFrame were not used" in caplog.text


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
    assert (predictor.predict(no_image)["category"] == truth).mean() >= 0.9
    assert (predictor.predict(no_text)["category"] == truth).mean() >= 0.9


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
    assert (tmp_path / "report" / "report.html").is_file()
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["n"] == 12 and metrics["excluded_training_rows"] == 36  # trained on 36 of 48 rows
    result = runner.invoke(app, ["predict", str(tmp_path), "--text", "x"])
    assert result.exit_code == 2 and "is not a skulens model" in " ".join(result.output.split())
