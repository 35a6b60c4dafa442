"""The real datasets in ../shared/datasets (skipped when absent): adapters and a small embedding run."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from skulens.catalog import load_catalog
from skulens.embed import embed_catalog

pytestmark = pytest.mark.integration

FLIPKART_CLASSES = {
    "Home Furnishing",
    "Baby Care",
    "Watches",
    "Home Decor & Festive Needs",
    "Kitchen & Dining",
    "Beauty and Personal Care",
    "Computers",
}


@pytest.fixture
def flipkart(datasets_root):
    return load_catalog("flipkart")


def test_flipkart(flipkart, datasets_root):
    assert len(flipkart) == 1050
    assert flipkart.root == (datasets_root / "flipkart").resolve()
    assert len(set(flipkart.ids)) == 1050 and all(len(i) == 32 for i in flipkart.ids)
    counts = Counter(flipkart.labels(0))
    assert set(counts) == FLIPKART_CLASSES and set(counts.values()) == {150}
    assert flipkart.depth >= 3
    assert flipkart.labels(1).nunique() > 7
    assert flipkart.frame["title"].notna().all()
    assert flipkart.frame["rating"].notna().sum() == 161  # "No rating available" -> NaN
    assert not [issue for issue in flipkart.issues if issue.column in ("id", "rating")]
    images = flipkart.frame["image"]
    assert images.str.startswith("images/").all()
    missing = [path for path in images if not (flipkart.root / path).is_file()]
    assert len(missing) == 3


def test_myntra(datasets_root):
    catalog = load_catalog("myntra")
    assert len(catalog) == 8448
    assert catalog.depth == 3
    masters = Counter(catalog.labels(0))
    assert masters == {
        "Apparel": 4881,
        "Footwear": 1907,
        "Accessories": 1620,
        "Personal Care": 32,
        "Free Items": 7,
        "Sporting Goods": 1,
    }
    # (the README's 45 subCategories / ~75 articleTypes describe all of styles.csv; the imaged subset has 30 / 73)
    assert catalog.labels(1).nunique() == 30 and catalog.labels(2).nunique() == 73
    assert catalog.frame["title"].notna().sum() > 8400
    assert catalog.frame["image"].str.fullmatch(r"images/\d+\.jpg").all()
    assert (catalog.root / catalog.frame["image"][0]).is_file()
    # each level is also a column, so --label masterCategory names the same classes as --label 0
    assert Counter(catalog.labels("masterCategory")) == masters
    assert catalog.labels("articleType").tolist() == catalog.labels(2).tolist()


def test_reviews(datasets_root):
    catalog = load_catalog("reviews")
    assert len(catalog) == 23486
    assert Counter(catalog.frame["rating"].tolist()) == {1: 842, 2: 1565, 3: 2871, 4: 5077, 5: 13131}
    assert catalog.frame["review_text"].isna().sum() == 845
    assert catalog.has("title") and catalog.depth == 3
    assert set(catalog.frame["recommended"].unique()) == {0, 1}
    assert len(set(catalog.ids)) == 23486
    # the one record of bad rows names reviews without a title (the text is still read); nothing else is wrong
    assert {issue.column for issue in catalog.issues} == {"title"}
    assert len(catalog.issues) == int(catalog.frame["title"].isna().sum())


def test_embed_first_flipkart_rows(flipkart, lite0, minilm, tmp_path):
    head = flipkart.head(16)
    images = embed_catalog(head, lite0, cache_dir=tmp_path / "cache")
    assert images.vectors.shape == (16, 1280)
    expected_present = [(head.root / p).is_file() for p in head.frame["image"]]
    assert images.present.tolist() == expected_present
    assert images.encoded == sum(expected_present) and images.cached == 0
    assert len(images.issues) == 16 - sum(expected_present)
    assert np.isfinite(images.vectors).all()

    texts = embed_catalog(head, minilm, cache_dir=tmp_path / "cache")
    assert texts.vectors.shape == (16, 384) and texts.present.all()
    np.testing.assert_allclose(np.linalg.norm(texts.vectors, axis=1), 1.0, atol=1e-4)

    again = embed_catalog(head, lite0, cache_dir=tmp_path / "cache")
    assert again.encoded == 0 and again.cached == images.encoded


def test_cli_trains_on_a_named_myntra_level(datasets_root, tmp_path):
    import json

    from typer.testing import CliRunner

    from skulens.cli import app

    model = tmp_path / "model"
    args = ["categorize", "train", "myntra", "--label", "masterCategory", "-e", "tfidf", "--out", str(model)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    config = json.loads((model / "config.json").read_text())
    assert config["label"] == "masterCategory"
    assert set(config["classes"]) == {"Apparel", "Footwear", "Accessories", "Personal Care", "Free Items"}  # 1 Sporting Goods row
    assert "held-out 16" in result.output  # 20% of 8,448 rows
