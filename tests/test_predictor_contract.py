"""The Predictor contract, checked the same way over every task (like scikit-learn's ``check_estimator``).

One tiny drawn catalog (coloured shapes with titles, reviews and ratings) trains each task's predictor with
real encoders that run in seconds; every check below runs over every predictor.
"""

from __future__ import annotations

import json
from dataclasses import is_dataclass

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw

from skulens.catalog import build_catalog
from skulens.heads.align import AlignConfig
from skulens.tasks.align import AlignmentModel
from skulens.tasks.caption import CaptionModel
from skulens.tasks.categorize import CategoryPredictor
from skulens.tasks.predictor import Predictor
from skulens.tasks.product_rating import RatingPredictor
from skulens.tasks.reviews import ReviewPredictor

COLOURS = {"Red": (220, 20, 20), "Green": (20, 170, 40), "Blue": (30, 40, 220), "Yellow": (240, 220, 10)}
SHAPES = ("Circle", "Square")
#: Review words by star rating (the colour decides the rating, so image and text both carry it).
REVIEWS = {1: "awful broken terrible", 2: "poor weak disappointing", 4: "good nice solid", 5: "love perfect great"}
STARS = {"Red": 1, "Green": 2, "Blue": 4, "Yellow": 5}
STYLES = ("classic", "bright", "small", "large", "plain", "modern", "simple", "bold", "round")


def _draw(colour: str, shape: str, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (96, 96), "white")
    draw = ImageDraw.Draw(image)
    size = int(rng.integers(45, 70))
    x, y = (int(v) for v in rng.integers(4, 96 - size - 4, size=2))
    box = [x, y, x + size, y + size]
    (draw.ellipse if shape == "Circle" else draw.rectangle)(box, fill=COLOURS[colour])
    return image


def _rows(folder, prefix: str, per_kind: int, seed: int) -> list[dict]:
    rows = []
    for colour in COLOURS:
        for shape in SHAPES:
            for i in range(per_kind):
                name = f"{prefix}-{colour}-{shape}-{i}.png"
                _draw(colour, shape, seed=seed + len(rows)).save(folder / name)
                style = STYLES[i % len(STYLES)]
                rows.append(
                    {
                        "id": f"{prefix}{len(rows)}",
                        "title": f"{style} {colour.lower()} {shape.lower()} sticker",
                        "description": f"a {shape.lower()} sticker in {colour.lower()}",
                        "image": name,
                        "category": f"{colour} >> {shape}",
                        "colour": colour.lower(),
                        "rating": STARS[colour],
                        "review_text": f"{REVIEWS[STARS[colour]]} {style} sticker",
                    }
                )
    return rows


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """(training catalog, held-out catalog, held-out catalog + one unreadable row named ``bad``)."""
    folder = tmp_path_factory.mktemp("contract")
    train = _rows(folder, "t", per_kind=9, seed=0)
    test = _rows(folder, "h", per_kind=2, seed=1000)
    (folder / "broken.png").write_bytes(b"this is not an image")
    bad = {**test[0], "id": "bad", "image": "broken.png", "title": "", "description": "", "review_text": ""}
    return (
        build_catalog(pd.DataFrame(train), root=folder, name="train"),
        build_catalog(pd.DataFrame(test), root=folder, name="held-out"),
        build_catalog(pd.DataFrame([*test, bad]), root=folder, name="with-bad-row"),
    )


def _categorize(cache):
    return CategoryPredictor(["classical-image", "tfidf"], label=0, cache_dir=cache)


def _reviews(cache):
    return ReviewPredictor(["tfidf"], cache_dir=cache)


def _align(cache):
    config = AlignConfig(dim=16, epochs=20, patience=20, batch_size=32, lr=3e-3)
    return AlignmentModel(("classical-image",), ("tfidf",), head_config=config, cache_dir=cache)


def _caption(cache):
    torch.manual_seed(0)
    return CaptionModel(
        d_model=32, layers=1, heads=2, epochs=4, batch_size=16, min_count=1, attributes=("colour",), progress=False
    )


def _rating(cache):
    return RatingPredictor(["classical-image", "tfidf"], cache_dir=cache)


FACTORIES = {"categorize": _categorize, "reviews": _reviews, "align": _align, "caption": _caption, "rating": _rating}


@pytest.fixture(scope="module", params=list(FACTORIES))
def fitted(request, data, tmp_path_factory):
    """(unfitted predictor's attribute names, the fitted predictor, what ``fit`` returned)."""
    predictor = FACTORIES[request.param](tmp_path_factory.mktemp("cache"))
    before = set(vars(predictor))
    returned = predictor.fit(data[0])
    return before, predictor, returned


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    """(the folder the fitted predictor was saved to, the predictor loaded back from it)."""
    _, predictor, _ = fitted
    folder = predictor.save(tmp_path_factory.mktemp("model") / predictor.task)
    return folder, type(predictor).load(folder)


def test_is_a_predictor_and_fit_returns_self(fitted):
    before, predictor, returned = fitted
    assert isinstance(predictor, Predictor)
    assert returned is predictor
    assert predictor.modalities and set(predictor.modalities) <= {"image", "text"}
    assert is_dataclass(predictor.config)
    learned = set(vars(predictor)) - before
    assert all(name.endswith("_") or name.startswith("_") for name in learned), sorted(learned)
    assert any(name.endswith("_") and value is not None for name, value in vars(predictor).items())


def test_predict_keeps_every_id_and_flags_only_the_bad_row(fitted, data):
    _, predictor, _ = fitted
    frame = predictor.predict(data[2])
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["id"]) == data[2].ids
    assert "issue" in frame.columns
    bad = frame["id"] == "bad"
    assert frame.loc[bad, "issue"].str.len().gt(0).all()
    assert frame.loc[~bad, "issue"].eq("").all(), frame.loc[~bad, "issue"].unique()
    predictions = frame.drop(columns=["id", "issue"])
    assert predictions.loc[bad].isna().all(axis=None), "an unreadable row got an invented prediction"
    assert predictions.loc[~bad].notna().any(axis=1).all()


def test_save_load_round_trip_predicts_the_same(fitted, saved, data):
    _, predictor, _ = fitted
    _, loaded = saved
    assert isinstance(loaded, Predictor) and loaded.config == predictor.config
    pd.testing.assert_frame_equal(loaded.predict(data[2]), predictor.predict(data[2]), rtol=1e-6)


def test_encoder_identities_are_stable_across_save_and_load(fitted, saved):
    _, predictor, _ = fitted
    _, loaded = saved
    identities = predictor.encoder_identities()
    assert identities and all(isinstance(k, str) and isinstance(v, str) and v for k, v in identities.items())
    assert loaded.encoder_identities() == identities


def test_config_json_names_the_task(fitted, saved):
    _, predictor, _ = fitted
    folder, _ = saved
    config = json.loads((folder / "config.json").read_text())
    assert config["task"] == predictor.task


def _numbers(value) -> list[float]:
    """Every float in a (nested) metrics dict."""
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers(v)]
    return [float(value)] if isinstance(value, (float, np.floating)) else []


def test_evaluate_returns_metrics(fitted, data):
    _, predictor, _ = fitted
    metrics = predictor.evaluate(data[1])
    assert isinstance(metrics, dict)
    assert any(np.isfinite(x) for x in _numbers(metrics)), metrics


def test_predict_one_and_serving(fitted, data):
    """``predict_one`` on a product held in memory, and the registry's calls: ``warm_up`` and ``serve_batch``
    on the items the service builds for the task."""
    _, predictor, _ = fitted
    row = data[1].frame.iloc[0]
    photo = Image.open(data[1].root / row["image"]).convert("RGB")
    text = f"{row['title']}. {row['description']}"
    one, item = {
        "categorize": ({"image": photo, "title": row["title"], "description": row["description"]}, (photo, text)),
        "reviews": ({"text": row["review_text"]}, row["review_text"]),
        "align": ({"image": photo, "text": row["title"]}, {"image": photo, "text": row["title"]}),
        "caption": ({"image": photo}, {"image": photo}),
        "rating": ({"image": photo, "title": row["title"], "description": row["description"]}, (photo, text)),
    }[predictor.task]
    assert predictor.predict_one(**one) is not None
    predictor.warm_up()
    assert isinstance(predictor.batched, bool)
    assert len(predictor.serve_batch([item, item])) == 2
