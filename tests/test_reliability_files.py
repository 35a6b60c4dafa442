"""What a tampered model folder or a careless catalog can do to a run: one clear error or one reported
row, never a traceback (issue 16)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from serve_helpers import shared_models
from typer.testing import CliRunner

from skulens.catalog.images import ImageLoadError, load_image
from skulens.catalog.schema import Catalog
from skulens.catalog.validation import check_images
from skulens.runtime import ModelLoadError, load_models
from skulens.tasks import model_folder
from skulens.tasks.categorize import CategoryPredictor
from skulens.tasks.model_folder import ModelFolderError
from skulens.tasks.reviews import ReviewPredictor

ENV = {"HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "COLUMNS": "200"}


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    return shared_models(tmp_path_factory)


def copy_model(shared: Path, name: str, dest: Path) -> Path:
    return Path(shutil.copytree(shared / name, dest / name))


def rewrite_weights(folder: Path, change) -> None:
    with np.load(folder / "weights.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    np.savez(folder / "weights.npz", **arrays)


def rewrite_config(folder: Path, change) -> None:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


def _nan_coef(arrays):
    key = next(k for k in arrays if k.endswith(".coef"))
    arrays[key] = np.full_like(arrays[key], np.nan)


def _wrong_shape(arrays):
    key = next(k for k in arrays if k.endswith(".coef"))
    arrays[key] = arrays[key][:, :-3]


def _missing_array(arrays):
    del arrays[next(k for k in arrays if k.endswith(".intercept"))]


def _extra_class_index(arrays):
    key = next(k for k in arrays if k.endswith(".class_index"))
    arrays[key] = arrays[key] + 50


TAMPERED_WEIGHTS = {"nan": _nan_coef, "shape": _wrong_shape, "missing": _missing_array, "index": _extra_class_index}
TAMPERED_CONFIGS = {
    "no classes": lambda c: c.pop("classes"),
    "classes not a list": lambda c: c.update(classes="Garden"),
    "one class": lambda c: c.update(classes=["Garden"]),
    "encoders a list": lambda c: c.update(encoders=["tfidf"]),
    "text_fields number": lambda c: c.update(text_fields=3),
    "head a number": lambda c: c.update(head=3),
    "fusion unknown": lambda c: c.update(fusion="deep"),
    "extra classes": lambda c: c.update(classes=[*c["classes"], "Cars", "Boats"]),
}


@pytest.mark.parametrize("kind", list(TAMPERED_WEIGHTS))
def test_tampered_weights_give_one_clear_error(shared, tmp_path, kind):
    folder = copy_model(shared, "text-only", tmp_path)
    rewrite_weights(folder, TAMPERED_WEIGHTS[kind])
    with pytest.raises(ModelFolderError, match=str(folder.name)):
        CategoryPredictor.load(folder)


@pytest.mark.parametrize("kind", list(TAMPERED_CONFIGS))
def test_tampered_configs_give_one_clear_error(shared, tmp_path, kind):
    folder = copy_model(shared, "text-only", tmp_path)
    rewrite_config(folder, TAMPERED_CONFIGS[kind])
    with pytest.raises(ModelFolderError):
        CategoryPredictor.load(folder)


@pytest.mark.parametrize("kind", ["nan", "shape", "missing"])
def test_tampered_reviews_model_gives_one_clear_error(shared, tmp_path, kind):
    folder = copy_model(shared, "tiny-reviews", tmp_path)
    rewrite_weights(folder, TAMPERED_WEIGHTS[kind])
    with pytest.raises(ModelFolderError):
        ReviewPredictor.load(folder)
    rewrite_config(copy_model(shared, "tiny-reviews", tmp_path / "b"), lambda c: c.update(prior="x"))
    with pytest.raises(ModelFolderError, match="prior"):
        ReviewPredictor.load(tmp_path / "b" / "tiny-reviews")


REVIEW_CONFIG_TAMPERS = {  # found by benchmarks/fuzz.py: each loaded, then failed on the first review
    "no alpha": lambda c: c["selection"].pop("alpha"),
    "empty prior": lambda c: c.update(prior=[]),
    "unknown stars": lambda c: c.update(stars_classes=[7, 8]),
    "no text fields": lambda c: c.update(text_fields=[]),
}


@pytest.mark.parametrize("kind", list(REVIEW_CONFIG_TAMPERS))
def test_tampered_reviews_config_gives_one_clear_error(shared, tmp_path, kind):
    folder = copy_model(shared, "tiny-reviews", tmp_path)
    rewrite_config(folder, REVIEW_CONFIG_TAMPERS[kind])
    with pytest.raises(ModelFolderError, match="damaged"):
        ReviewPredictor.load(folder)


def test_tampered_model_stops_serve_at_load_with_its_name(shared, tmp_path):
    models = tmp_path / "models"
    copy_model(shared, "text-only", models)
    rewrite_weights(models / "text-only", _wrong_shape)
    with pytest.raises(ModelLoadError, match="text-only.*features"):
        load_models(models, warm_up=False)  # refused on load, before any warm-up or request


def test_categorize_predict_reports_a_tampered_model_in_one_line(shared, tmp_path):
    from skulens.cli.main import app

    folder = copy_model(shared, "text-only", tmp_path)
    rewrite_weights(folder, _missing_array)
    result = CliRunner().invoke(app, ["categorize", "predict", str(folder), "--text", "garden hose"], env=ENV)
    assert result.exit_code != 0
    assert "Traceback" not in result.output and "damaged" in result.output
    assert not isinstance(result.exception, (KeyError, IndexError, TypeError))


def test_encoder_paths_stay_inside_the_model_folder_or_models_root(shared, tmp_path, monkeypatch):
    folder = copy_model(shared, "text-only", tmp_path / "m")
    outside = tmp_path / "elsewhere" / "encoder"
    outside.mkdir(parents=True)
    for name in (f"st:{outside}", f"hf-clip:{outside}", "st:../../elsewhere/encoder", "hf-clip-text:/etc"):
        rewrite_config(folder, lambda c, n=name: c.update(encoders={n: "x@1"}))
        with pytest.raises(ModelFolderError, match="outside the model folder"):
            CategoryPredictor.load(folder)
    monkeypatch.setenv(model_folder.MODELS_ROOT_ENV, str(tmp_path / "elsewhere"))
    assert model_folder.encoder_sources([f"st:{outside}"], folder) == {f"st:{outside}": f"st:{outside.resolve()}"}
    inside = folder / "encoder"
    assert model_folder.encoder_sources(["st:encoder"], folder) == {"st:encoder": f"st:{inside.resolve()}"}
    with pytest.raises(ModelFolderError, match="not available"):  # allowed, but not a real encoder folder
        rewrite_config(folder, lambda c: c.update(encoders={f"st:{outside}": "x@1"}))
        CategoryPredictor.load(folder)


def test_weights_over_the_size_cap_are_refused(shared, tmp_path, monkeypatch):
    folder = copy_model(shared, "text-only", tmp_path)
    monkeypatch.setattr(model_folder, "MAX_WEIGHTS_BYTES", 1_000)
    with pytest.raises(ModelFolderError, match="limit for model weights"):
        CategoryPredictor.load(folder)


def test_npz_zip_bomb_is_refused_before_it_unpacks(shared, tmp_path, monkeypatch):
    folder = copy_model(shared, "text-only", tmp_path)
    rewrite_weights(folder, lambda a: a.update(padding=np.zeros(3_000_000, dtype=np.uint8)))
    np.savez_compressed(folder / "weights.npz", **dict(np.load(folder / "weights.npz")))  # tiny on disk
    assert (folder / "weights.npz").stat().st_size < 1_000_000
    monkeypatch.setattr(model_folder, "MAX_WEIGHTS_BYTES", 2_000_000)
    with pytest.raises(ModelFolderError, match="unpacks to"):
        CategoryPredictor.load(folder)


def test_nul_byte_in_an_image_path_is_one_row_issue(tmp_path, write_jpeg):
    write_jpeg(tmp_path / "ok.jpg")
    with pytest.raises(ImageLoadError, match="NUL"):
        load_image("bad\x00.jpg", tmp_path)
    frame = pd.DataFrame({"id": ["a", "b"], "title": ["x", "y"], "image": ["ok.jpg", "bad\x00name.jpg"]})
    catalog = Catalog(frame, root=tmp_path)
    issues = check_images(catalog)
    assert [(i.row, i.column) for i in issues] == [(1, "image")] and "NUL" in issues[0].message


def test_embedding_a_catalog_with_a_nul_path_reports_the_row(tmp_path, write_jpeg, lite0):
    from skulens.embed import embed_catalog

    write_jpeg(tmp_path / "ok.jpg")
    frame = pd.DataFrame({"id": ["a", "b"], "title": ["x", "y"], "image": ["ok.jpg", "bad\x00name.jpg"]})
    result = embed_catalog(Catalog(frame, root=tmp_path), lite0, cache_dir=tmp_path / "cache")
    assert result.present.tolist() == [True, False]
    assert [i.row for i in result.issues] == [1]


def test_categorize_predict_input_reports_every_row_problem(shared, tmp_path, write_jpeg):
    from skulens.cli.main import app

    images = tmp_path / "img"
    for i in range(3):
        write_jpeg(images / f"ok{i}.jpg", seed=i)
    good = (images / "ok0.jpg").read_bytes()
    (images / "cut.jpg").write_bytes(good[: len(good) // 2])  # header fine, pixels cut off: fails only on decode
    (images / "text.jpg").write_bytes(b"not an image")
    pd.DataFrame(
        {
            "id": ["p0", "p1", "p2", "p3", "p4", "p5"],
            "title": ["garden hose", "kitchen pan", "toy car", "garden rake", "pan", "toy"],
            "image": ["img/ok0.jpg", "img/cut.jpg", "img/text.jpg", "img/missing.jpg", "img/ok1.jpg", "img/bad\x00.jpg"],
        }
    ).to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        app,
        ["categorize", "predict", str(shared / "tiny-categorizer"), "--input", str(tmp_path / "in.csv"), "--output", str(out)],
        env=ENV,
    )
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out)) == 6
    issues = pd.read_csv(out.with_name("out.issues.csv"))
    assert sorted(set(issues["id"])) == ["p1", "p2", "p3", "p5"]
    assert "4 row issue(s)" in " ".join(result.output.split())


def test_class_names_must_match_the_weights(shared, tmp_path):
    """Issue 24: a config naming 100,000 classes does not load against 3-class weights."""
    folder = copy_model(shared, "text-only", tmp_path)
    rewrite_config(folder, lambda c: c.update(classes=[f"class {i}" for i in range(100_000)]))
    with pytest.raises(ModelFolderError, match="damaged"):
        CategoryPredictor.load(folder)


def test_relative_encoder_paths_are_resolved_at_training_time(tmp_path, monkeypatch):
    """Issue 24: `-e finetuned:runs/ft` was stored relative and then looked up inside the model folder;
    it is stored absolute, with a warning at training time when loading will need $SKULENS_MODELS_ROOT."""
    from skulens.tasks.model_folder import training_encoder_names

    (tmp_path / "runs" / "ft").mkdir(parents=True)
    (tmp_path / "runs" / "model" / "enc").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SKULENS_MODELS_ROOT", raising=False)
    names, warnings = training_encoder_names(["finetuned:runs/ft", "minilm", "finetuned:runs/model/enc"], "runs/model")
    assert names == [f"finetuned:{tmp_path / 'runs' / 'ft'}", "minilm", f"finetuned:{tmp_path / 'runs' / 'model' / 'enc'}"]
    assert len(warnings) == 1 and f"SKULENS_MODELS_ROOT={tmp_path / 'runs'}" in warnings[0]
    monkeypatch.setenv("SKULENS_MODELS_ROOT", str(tmp_path / "runs"))
    assert training_encoder_names(["finetuned:runs/ft"], "runs/model")[1] == []
