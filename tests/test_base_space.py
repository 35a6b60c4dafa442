"""The packaged base space (issue #21): hash-checked, searches a new catalog with no training, adapts
to a catalog, and says so when a catalog is too small to adapt or a label cannot be placed."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from test_align import COLOURS, SHAPES, _draw
from typer.testing import CliRunner

from skulens.cli.main import app
from skulens.tasks.align import AlignmentError, AlignmentModel
from skulens.tasks.align.base_space import base_space_folder, verify_base_space


@pytest.fixture(scope="module")
def cli():
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("fresh-shop")
    rows = []
    for colour in COLOURS:
        for shape in SHAPES:
            for i in range(6):
                name = f"{colour}-{shape}-{i}.png"
                _draw(colour, shape, seed=len(rows)).save(root / name)
                rows.append({"id": f"p{len(rows)}", "title": f"{colour} {shape} sticker {i}", "image": name})
    pd.DataFrame(rows).to_csv(root / "shop.csv", index=False)
    pd.DataFrame(rows[:10]).to_csv(root / "tiny.csv", index=False)
    return root


def test_packaged_base_space_matches_its_recorded_hash():
    manifest = verify_base_space(base_space_folder())
    assert len(manifest["weights_sha256"]) == 64 and "MIT" in manifest["licence"] and manifest["command"]
    model = AlignmentModel.load("base")
    assert model.identity == manifest["identity"] and model.trained_pairs_ > 10_000


def test_base_space_with_other_weights_is_refused(tmp_path):
    folder = tmp_path / "base_space"
    shutil.copytree(base_space_folder(), folder)
    with open(folder / "weights.npz", "ab") as handle:
        handle.write(b"tampered")
    recorded = json.loads((folder / "manifest.json").read_text())["weights_sha256"]
    with pytest.raises(AlignmentError, match="refusing") as error:
        verify_base_space(folder)
    assert recorded in str(error.value) and "have sha256" in str(error.value)


def test_fresh_install_searches_a_drawn_catalog_with_no_training(cli, shop):
    index = shop / "index"
    result = cli("search", "index", shop / "shop.csv", "--model", "base", "--out", index)
    assert result.exit_code == 0, result.output
    result = cli("search", "query", index, "--image", shop / "green-square-0.png", "-k", "3", "--json")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert hits[0]["title"] == "green square sticker 0"  # its own photo is the nearest
    result = cli("search", "query", index, "blue triangle sticker", "-k", "5", "--json")
    assert result.exit_code == 0 and len(json.loads(result.output)) == 5


def test_zero_shot_needs_no_model_and_names_labels_the_prior_cannot_place(cli, shop):
    result = cli("zero-shot", shop / "tiny.csv", "--labels", "red sticker,blue sticker", "--out", shop / "zs.csv")
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(shop / "zs.csv")) == 10
    result = cli("zero-shot", shop / "tiny.csv", "--labels", "qwzx,tax invoice")
    assert result.exit_code == 0, result.output
    assert "cannot place" in result.output and "learned space alone" in result.output


def test_search_train_adapts_the_base_space_or_says_the_catalog_is_too_small(cli, shop):
    result = cli("search", "train", shop / "tiny.csv", "--from-base", "--out", shop / "tiny-model")
    assert result.exit_code == 0, result.output
    assert "too few to adapt" in result.output and "using the base space unchanged" in result.output
    assert AlignmentModel.load(shop / "tiny-model").identity == AlignmentModel.load("base").identity
    result = cli("search", "train", shop / "shop.csv", "--from-base", "--out", shop / "adapted")
    assert result.exit_code == 0, result.output
    assert "adapted the base space to 72" in result.output
    adapted = AlignmentModel.load(shop / "adapted")
    assert adapted.identity != AlignmentModel.load("base").identity and adapted.blend_weights_
