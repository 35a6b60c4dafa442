"""``skulens search train|index|query``, ``similar``, ``dedupe`` and ``zero-shot`` on a tiny drawn catalog file."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_align import COLOURS, SHAPES, _draw
from typer.testing import CliRunner

from skulens.cli.main import app

FAST = ["--image-encoder", "classical-image", "--text-encoder", "tfidf"]


@pytest.fixture(scope="module")
def cli():
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return run


@pytest.fixture(scope="module")
def files(tmp_path_factory, cli):
    root = tmp_path_factory.mktemp("cli-shop")
    rows = []
    for colour in COLOURS:
        for shape in SHAPES:
            for i in range(6):
                name = f"{colour}-{shape}-{i}.png"
                _draw(colour, shape, seed=len(rows)).save(root / name)
                rows.append({"id": f"p{len(rows)}", "title": f"{colour} {shape} sticker {i}", "image": name, "colour": colour})
    rows.append({**rows[0], "id": "copy-of-p0"})
    pd.DataFrame(rows).to_csv(root / "shop.csv", index=False)
    model = root / "model"
    result = cli("search", "train", root / "shop.csv", "--out", model, "--epochs", "30", "--dim", "32", *FAST)
    assert result.exit_code == 0, result.output
    result = cli("search", "index", root / "shop.csv", "--model", model, "--out", model / "index")
    assert result.exit_code == 0, result.output
    assert "indexed 73 products (flat" in result.output
    return root / "shop.csv", model


def test_query_by_text_and_image_with_filter(cli, files):
    catalog, model = files
    result = cli("search", "query", model / "index", "red circle sticker", "-k", "3", "--json")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert len(hits) == 3 and all({"id", "score", "title"} <= set(h) for h in hits)
    result = cli("search", "query", model / "index", "red circle sticker", "-k", "4", "--where", "colour=blue", "--json")
    assert result.exit_code == 0 and all(h["colour"] == "blue" for h in json.loads(result.output))
    result = cli("search", "query", model / "index", "--image", catalog.parent / "green-square-0.png", "-k", "2")
    assert result.exit_code == 0, result.output


def test_similar_dedupe_zero_shot(cli, files):
    catalog, model = files
    result = cli("similar", model / "index", "p3", "-k", "5", "--json")
    assert result.exit_code == 0 and len(json.loads(result.output)) == 5
    result = cli("dedupe", catalog, "--model", model, "--out", catalog.parent / "pairs.csv")
    assert result.exit_code == 0, result.output
    pairs = pd.read_csv(catalog.parent / "pairs.csv")
    assert {"p0", "copy-of-p0"} in [set(p) for p in zip(pairs.id_a, pairs.id_b)]
    result = cli("zero-shot", catalog, "--model", model, "--labels", "circle,square,triangle", "--use", "text", "-k", "2")
    assert result.exit_code == 0 and "probability" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("search", "query", "{index}", "   "), "empty"),
        (("search", "query", "{index}", "red", "-k", "500"), "larger than the index"),
        (("similar", "{index}", "no-such-id"), "'no-such-id' is not in this index"),
        (("search", "query", "{index}", "red", "--where", "colour"), "COLUMN=VALUE"),
        (("zero-shot", "{catalog}", "--model", "{model}", "--labels", "circle"), "at least two"),
    ],
)
def test_bad_input_is_a_clear_error(cli, files, args, message):
    catalog, model = files
    filled = [a.format(index=model / "index", catalog=catalog, model=model) for a in args]
    result = cli(*filled)
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output


def test_too_few_pairs_to_train(cli, tmp_path, files):
    catalog, _ = files
    small = tmp_path / "small.csv"
    pd.read_csv(catalog).head(10).to_csv(small, index=False)
    for image in pd.read_csv(small)["image"]:
        (tmp_path / image).write_bytes((catalog.parent / image).read_bytes())
    result = cli("search", "train", small, "--out", tmp_path / "m", *FAST)
    assert result.exit_code == 2 and "at least 64" in " ".join(result.output.split())


def test_a_clip_checkpoint_instead_of_training(cli, files, tiny_clip_dir, tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("SKULENS_MODELS_ROOT", str(Path(tiny_clip_dir).parent))  # the checkpoint is outside the model folder
    catalog, _ = files
    result = cli("search", "train", "unused", "--clip", tiny_clip_dir, "--out", tmp_path / "clip")
    assert result.exit_code == 0 and "no training" in result.output, result.output
    result = cli("search", "index", catalog, "--model", tmp_path / "clip", "--out", tmp_path / "clip" / "index")
    assert result.exit_code == 0, result.output
    result = cli("search", "query", tmp_path / "clip" / "index", "red circle", "-k", "2", "--json")
    assert result.exit_code == 0 and len(json.loads(result.output)) == 2
