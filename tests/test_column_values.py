"""Every column a task reads can be mapped, and values out of range are named with their rows (issue 23)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from skulens.catalog import read_catalog, read_reviews
from skulens.cli import app


def _reviews_file(tmp_path):
    rows = [
        {"review_id": "r1", "headline": "Great", "body": "love it, great fit", "stars": 5, "would_recommend": "yes"},
        {"review_id": "r2", "headline": "Bad", "body": "awful fabric", "stars": 1, "would_recommend": "no"},
        {"review_id": "r3", "headline": "Odd", "body": "fine", "stars": 6, "would_recommend": "maybe"},
        {"review_id": "r4", "headline": "Zero", "body": "meh", "stars": 0, "would_recommend": "TRUE"},
    ]
    file = tmp_path / "reviews.jsonl"
    file.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return file


def test_recommended_is_detected_mapped_and_read_as_yes_no(tmp_path):
    file = _reviews_file(tmp_path)
    catalog = read_reviews(file)
    assert catalog.mapping.detected.get("recommended") == "would_recommend"
    values = catalog.frame["recommended"].tolist()
    assert values[:2] == [1.0, 0.0] and np.isnan(values[2]) and values[3] == 1.0
    [bad] = [i for i in catalog.issues if i.column == "recommended"]
    assert bad.id == "r3" and "'maybe' is not yes/no" in bad.message
    mapped = read_reviews(file, columns={"recommended": "would_recommend", "review_text": "body"})
    assert mapped.mapping.given["recommended"] == "would_recommend"


def test_ratings_out_of_range_are_named_and_dropped(tmp_path):
    catalog = read_reviews(_reviews_file(tmp_path))
    out = {i.id: i.message for i in catalog.issues if i.column == "rating"}
    assert out == {"r3": "rating 6 is outside 1-5 stars; value dropped", "r4": "rating 0 is outside 1-5 stars; value dropped"}
    assert catalog.frame["rating"].isna().sum() == 2


def test_unknown_mapping_names_every_mappable_column(tmp_path):
    frame = pd.DataFrame({"sku": ["a"], "name": ["x"]})
    frame.to_csv(tmp_path / "p.csv", index=False)
    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "p.csv"), "--columns", "colour=name"])
    assert result.exit_code == 2 and "recommended" in result.output and "review_text" in result.output
    assert read_catalog(tmp_path / "p.csv", columns={"title": "name"}).frame["title"].tolist() == ["x"]
