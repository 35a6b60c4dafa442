"""The ``skulens`` command line through Typer's CliRunner."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from skulens.cli import app

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _text(result) -> str:
    """Everything the command printed (stdout and stderr), with whitespace collapsed."""
    parts = [result.output]
    try:
        parts.append(result.stderr)
    except ValueError:  # older Click without separate stderr
        pass
    return re.sub(r"\s+", " ", " ".join(p for p in parts if p))


@pytest.fixture
def small_csv(tmp_path, write_jpeg):
    root = tmp_path / "shop"
    for i in range(3):
        write_jpeg(root / "img" / f"s{i}.jpg", seed=200 + i)
    pd.DataFrame(
        {
            "id": ["s0", "s1", "s2", "s1", "s3"],
            "title": ["Red shirt", "Blue jeans", "Green hat", "dup", "Lost product"],
            "category": ["Apparel >> Tops", "Apparel >> Bottoms", "Accessories >> Hats", "Apparel", "Apparel >> Tops"],
            "image": ["img/s0.jpg", "img/s1.jpg", "img/s2.jpg", "img/s1.jpg", "img/missing.jpg"],
        }
    ).to_csv(root / "products.csv", index=False)
    return root / "products.csv"


def test_encoders_lists_names(runner):
    result = runner.invoke(app, ["encoders"], env=ENV)
    assert result.exit_code == 0, result.output
    for name in ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "minilm", "tfidf"):
        assert name in result.output
    text_only = runner.invoke(app, ["encoders", "--modality", "text"], env=ENV)
    assert text_only.exit_code == 0
    assert "minilm" in text_only.output and "efficientnet-lite0" not in text_only.output


def test_ingest_small_csv(runner, small_csv):
    result = runner.invoke(app, ["ingest", str(small_csv)], env=ENV)
    assert result.exit_code == 0, _text(result)
    out = _text(result)
    assert "products: 4 rows" in out
    assert "level 0: 2 classes" in out and "Apparel (3)" in out
    assert "level 1: 3 classes" in out
    assert "images unusable: 1" in out
    assert "duplicate id" in out and "missing.jpg" in out
    assert "2 row issue(s)" in out


def test_embed_writes_outputs_and_reuses_cache(runner, small_csv, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ["embed", str(small_csv), "--encoder", "efficientnet-lite0", "--out", str(out), "--cache-dir", str(cache)]
    first = runner.invoke(app, args, env=ENV)
    assert first.exit_code == 0, _text(first)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"] == 4 and manifest["present"] == 3
    assert manifest["encoded"] == 3 and manifest["from_cache"] == 0
    assert manifest["dim"] == 1280 and manifest["encoder"].startswith("efficientnet-lite0@")
    assert manifest["issues"] == 1
    with np.load(out / "embeddings.npz", allow_pickle=False) as data:
        assert data["ids"].tolist() == ["s0", "s1", "s2", "s3"]
        assert data["vectors"].shape == (4, 1280)
        assert data["present"].tolist() == [True, True, True, False]
    issues = pd.read_csv(out / "issues.csv")
    assert issues.columns.tolist() == ["row", "id", "column", "message"]
    assert set(issues["column"]) == {"id", "image"}
    assert any("missing.jpg" in m for m in issues["message"])
    assert any(cache.glob("*/index.sqlite"))  # the embedding cache was written

    second = runner.invoke(app, args, env=ENV)
    assert second.exit_code == 0, _text(second)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["from_cache"] == manifest["present"] == 3 and manifest["encoded"] == 0
    assert "3 from cache" in _text(second)


def test_embed_with_limit_and_text_encoder(runner, small_csv, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["embed", str(small_csv), "-e", "tfidf", "-o", str(out), "--limit", "2"], env=ENV)
    assert result.exit_code == 0, _text(result)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"] == 2 and manifest["present"] == 2


def test_unknown_dataset_or_file(runner, tmp_path):
    result = runner.invoke(app, ["ingest", "no-such-dataset"], env=ENV)
    assert result.exit_code == 2
    assert "error:" in _text(result) and "neither a built-in dataset" in _text(result)
    missing = runner.invoke(app, ["embed", str(tmp_path / "nope.csv"), "-e", "minilm", "-o", str(tmp_path / "o")], env=ENV)
    assert missing.exit_code == 2 and "nope.csv" in _text(missing)
    assert not (tmp_path / "o").exists()


def test_builtin_dataset_missing(runner, tmp_path):
    result = runner.invoke(app, ["ingest", "flipkart"], env={**ENV, "SKULENS_DATA": str(tmp_path)})
    assert result.exit_code == 2
    assert "dataset 'flipkart' not found" in _text(result)


def test_unknown_encoder(runner, small_csv, tmp_path):
    result = runner.invoke(app, ["embed", str(small_csv), "-e", "resnet-9000", "-o", str(tmp_path / "o")], env=ENV)
    assert result.exit_code == 2
    text = _text(result)
    assert "unknown encoder 'resnet-9000'" in text and "efficientnet-lite0" in text
    assert not result.exception or isinstance(result.exception, SystemExit)


def test_messages_with_brackets_are_printed_verbatim(runner, tmp_path):
    path = tmp_path / "[/x]catalog.csv"
    result = runner.invoke(app, ["ingest", str(path)], env=ENV)
    assert result.exit_code == 2
    assert "[/x]catalog.csv" in _text(result)
