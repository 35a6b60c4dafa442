"""One star rule for the CLI, the service and the UI, and reviews the model cannot read (another script or
language) getting an issue and no stars."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from skulens.catalog import Catalog
from skulens.tasks.readable import latin_share, unreadable_reason
from skulens.tasks.reviews import ReviewPredictor

OK_REVIEW = "It's ok. Nothing special but fine for the price"
RUSSIAN_ONE_STAR = "Ужасное качество, порвалось после первой стирки. Не покупайте!"
FRENCH = "Vraiment nul, la couleur a disparu après un lavage et la taille est beaucoup trop petite"

WORDS = {
    1: "awful ripped returned terrible cheap",
    2: "poor thin disappointing scratchy",
    3: "ok fine average nothing special price",
    4: "good nice comfy pretty flattering",
    5: "perfect love amazing gorgeous favourite",
}


def _reviews(n: int, seed: int) -> Catalog:
    rng = np.random.default_rng(seed)
    stars = rng.choice([1, 2, 3, 4, 5], size=n, p=[0.08, 0.1, 0.17, 0.25, 0.4])
    rows = []
    for i, s in enumerate(stars):
        words = " ".join(rng.choice(WORDS[s].split(), size=3)) + " " + " ".join(rng.choice(WORDS[min(5, s + 1)].split(), size=1))
        rows.append({"id": f"r{i}", "review_text": f"it is {words} the dress fits", "rating": int(s)})
    return Catalog(pd.DataFrame(rows), name="drawn-reviews")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model = ReviewPredictor(encoders=("tfidf",), alphas=(0.0,), class_weight=None).fit(_reviews(500, seed=0))
    models = tmp_path_factory.mktemp("star-rule") / "models"
    model.save(models / "reviews")
    return models


def test_cli_service_and_ui_show_the_same_stars(model_dir):
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from skulens.cli import app as cli
    from skulens.serve.app import create_app
    from skulens.ui.reviews_page import star_view

    model = ReviewPredictor.load(model_dir / "reviews")
    result = model.predict_one(OK_REVIEW)
    frame = model.predict(pd.DataFrame({"id": ["a"], "review_text": [OK_REVIEW]}))
    assert int(frame["stars"].iloc[0]) == result["stars"]
    printed = CliRunner().invoke(
        cli, ["reviews", "predict", str(model_dir / "reviews"), "--text", OK_REVIEW], env={"COLUMNS": "200"}
    )
    assert printed.exit_code == 0, printed.output
    cli_stars = json.loads(printed.output[printed.output.index("{") :])["stars"]
    with TestClient(create_app(model_dir)) as client:
        served = client.post("/v1/reviews", json={"texts": [OK_REVIEW]}).json()["results"][0]
    ui_stars = star_view(served).filled
    assert cli_stars == served["stars"] == ui_stars == result["stars"]
    assert 2 <= result["stars"] <= 4  # a middling review: neither the 5 stars nor 1 star of the extremes


def test_review_in_another_script_gets_no_stars(model_dir):
    model = ReviewPredictor.load(model_dir / "reviews")
    results = model.predict_texts([RUSSIAN_ONE_STAR, "perfect love amazing"])
    assert "error" in results[0] and "Latin script" in results[0]["error"] and "stars" not in results[0]
    assert results[1]["stars"] >= 4
    frame = model.predict(
        pd.DataFrame({"id": ["ru", "fr", "en"], "review_text": [RUSSIAN_ONE_STAR, FRENCH, "awful ripped returned"]})
    )
    assert frame["stars"].isna().tolist() == [True, True, False]
    assert "vocabulary" in frame["issue"].iloc[1] and frame["issue"].iloc[2] == ""
    assert [issue.id for issue in model.last_issues_] == ["ru", "fr"]
    labelled = pd.DataFrame(
        {"id": ["ru", "x1", "x2"], "review_text": [RUSSIAN_ONE_STAR, "awful ripped", "love perfect"], "rating": [1, 1, 5]}
    )
    metrics = model.evaluate(labelled)
    assert metrics["n"] == 2 and metrics["skipped"]["unreadable"] == 1


def test_unreadable_reason_rules():
    assert latin_share("hello") == 1.0 and latin_share("привет") == 0.0 and latin_share("123 !") == 1.0
    assert "Latin script" in unreadable_reason("这件衣服质量很差")
    assert unreadable_reason("Great dress, love it") is None
    vocabulary = {"great", "dress", "love", "it", "fit"}
    assert unreadable_reason("Great dress, love it", vocabulary) is None
    assert "vocabulary" in unreadable_reason("Vraiment nul, la couleur a disparu", vocabulary)
    assert unreadable_reason("nul", vocabulary) is None  # too short to judge


def test_model_saved_before_label_shift_still_loads_and_adapts(model_dir, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(model_dir / "reviews", old)
    config = json.loads((old / "config.json").read_text())
    assert config["label_shift"]["estimator"] in ("em", "bbse", "rlls", "none")
    del config["label_shift"]  # as written before label-shift fitting existed
    (old / "config.json").write_text(json.dumps(config))
    model = ReviewPredictor.load(old)
    assert model.label_shift_ is None
    rng = np.random.default_rng(3)
    texts = [f"awful ripped returned {i}" if rng.random() < 0.7 else f"perfect love amazing {i}" for i in range(60)]
    model.predict(pd.DataFrame({"id": [str(i) for i in range(60)], "review_text": texts}), adapt_priors=True)
    shift = model.last_prior_shift_
    assert shift.applied and shift.estimator == "em" and shift.estimated_priors[0] > 2 * shift.train_priors[0]


def test_review_predictions_file_carries_the_review_and_rounded_numbers(model_dir, tmp_path):
    """Issue 23: the review predictions file shows each review's headline and text beside its stars, and
    no 16-digit floats; JSONL rows with out-of-range stars are named by their file line."""
    from typer.testing import CliRunner

    from skulens.cli import app as cli

    path = tmp_path / "reviews.jsonl"
    records = [
        {"review_id": "a", "headline": "Lovely", "body": "perfect love amazing the dress fits", "stars": 5},
        {"review_id": "b", "headline": "Meh", "body": "ok fine average nothing special", "stars": 6},
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    out = tmp_path / "predictions.csv"
    result = CliRunner().invoke(cli, ["reviews", "predict", str(model_dir / "reviews"), "-i", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert written.columns.tolist()[:4] == ["id", "title", "review_text", "rating"]
    assert written["review_text"].tolist() == [r["body"] for r in records]
    assert written["title"].tolist() == ["Lovely", "Meh"]
    numbers = written[["expected_rating", "sentiment_score", "p1", "p5"]].to_numpy().ravel()
    assert all(len(v.split(".")[-1]) <= 4 for v in numbers if "." in v)
