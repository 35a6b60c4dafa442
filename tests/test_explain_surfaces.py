"""``skulens explain`` and ``POST /v1/explain`` on the shared tiny models (EfficientNet-Lite0 + TF-IDF, TF-IDF only)."""

from __future__ import annotations

import base64
import json
import re

import pytest
from serve_helpers import image_bytes, shared_models
from typer.testing import CliRunner

from skulens.cli import app

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from skulens.serve.app import create_app  # noqa: E402

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


def _text(result) -> str:
    return re.sub(r"\s+", " ", result.output + (result.stderr or ""))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return shared_models(tmp_path_factory)


@pytest.fixture(scope="module")
def client(models):
    with TestClient(create_app(models, max_upload_bytes=100_000)) as c:
        yield c


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ----- command line --------------------------------------------------------------------------------


def test_cli_writes_the_explanation_files(models, tmp_path):
    photo = tmp_path / "pan.jpg"
    photo.write_bytes(image_bytes("Kitchen", seed=4))
    out = tmp_path / "why"
    args = ["explain", str(models / "tiny-categorizer"), "--image", str(photo), "--text", "teddy bear toy car", "--out", str(out)]
    result = CliRunner().invoke(app, args, env=ENV)
    assert result.exit_code == 0, _text(result)
    text = _text(result)
    assert "Photo and text disagree" in text and "words for it:" in text
    for name in ("explanation.json", "explanation.html", "gradcam-efficientnet-lite0.png", "text.html", "text.png"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "explanation.json").read_text())
    assert summary["modality"]["conflict"] is True


def test_cli_text_only_model_says_so(models, tmp_path):
    photo = tmp_path / "pan.jpg"
    photo.write_bytes(image_bytes("Kitchen"))
    args = ["explain", str(models / "text-only"), "--image", str(photo), "--text", "frying pan", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, args, env=ENV)
    assert result.exit_code == 0, _text(result)
    assert "reads text only" in _text(result) and "photo was not used" in _text(result)
    assert not list((tmp_path / "o").glob("gradcam-*.png"))


def test_cli_bad_input_fails_clearly(models, tmp_path):
    model = str(models / "tiny-categorizer")
    missing = CliRunner().invoke(app, ["explain", model, "--image", str(tmp_path / "nope.jpg"), "--out", str(tmp_path)], env=ENV)
    assert missing.exit_code == 2 and "nope.jpg" in _text(missing)
    nothing = CliRunner().invoke(app, ["explain", model, "--out", str(tmp_path)], env=ENV)
    assert nothing.exit_code == 2 and "nothing to explain" in _text(nothing)
    unknown = CliRunner().invoke(app, ["explain", model, "--text", "pan", "--class", "Sofas", "--out", str(tmp_path)], env=ENV)
    assert unknown.exit_code == 2 and "Sofas" in _text(unknown) and "Kitchen" in _text(unknown)


# ----- service -------------------------------------------------------------------------------------


def test_route_explains_photo_and_title(client):
    body = {"image_base64": b64(image_bytes("Toys", seed=1)), "title": "rubber duck", "model": "tiny-categorizer"}
    response = client.post("/v1/explain", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["predicted"] == answer["category"] == "Toys" and answer["conflict"] is False
    [image_map] = answer["image_maps"]
    assert len(image_map["grid"]) == 7 and base64.b64decode(image_map["overlay_png_base64"]).startswith(b"\x89PNG")
    assert [w["word"] for w in answer["words"]] == ["rubber", "duck"]
    assert set(answer["word_scores_by_encoder"]) == {"tfidf"}
    assert answer["image"]["shift"] is not None and answer["text"]["top"] == "Toys"


def test_route_chosen_category_and_conflict(client):
    body = {"image_base64": b64(image_bytes("Kitchen", seed=2)), "title": "teddy bear toy car", "category": "Garden"}
    answer = client.post("/v1/explain", json=body).json()
    assert answer["category"] == "Garden" and answer["conflict"] is True and "disagree" in answer["statement"]


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({}, 422, "empty_input"),
        ({"title": "   "}, 422, "empty_input"),
        ({"image_base64": "not base64!!"}, 400, "invalid_image"),
        ({"image_base64": b64(b"not an image")}, 400, "invalid_image"),
        ({"image_base64": b64(b"\xff" * 150_000)}, 413, "too_large"),
        ({"title": "pan", "category": "Sofas"}, 404, "unknown_category"),
        ({"title": "\ufeff \u3000"}, 422, "empty_input"),
        ({"title": "pan", "model": "nope"}, 404, "unknown_model"),
        ({"title": "pan", "model": "tiny-reviews"}, 404, "unknown_model"),
    ],
)
def test_route_refuses_bad_input(client, body, status, code):
    response = client.post("/v1/explain", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"] == code


def test_route_text_only_model(client):
    body = {"image_base64": b64(image_bytes("Garden")), "title": "garden hose", "model": "text-only"}
    answer = client.post("/v1/explain", json=body).json()
    assert answer["image_maps"] == [] and answer["image"] is None
    assert "text only" in answer["statement"] and any("not used" in n for n in answer["notes"])


def test_route_decoded_pixel_cap(client, tmp_path):
    """A tiny PNG that decodes to 64 MP is refused (400) before its pixels are allocated (issue 24)."""
    from conftest import write_huge_png

    data = write_huge_png(tmp_path / "big.png", 7999, 7999).read_bytes()
    response = client.post("/v1/explain", json={"image_base64": b64(data), "title": "pan"})
    assert response.status_code == 400 and "decoded pixels" in response.json()["detail"], response.text


def test_route_long_text_is_explained_on_its_start(client):
    """The cost of an explanation does not grow with the text: a 100,000-character description is
    explained on its first 5,000 characters, and the answer says so (issue 24)."""
    body = {"title": "garden hose", "description": "steel pan for cooking " * 4_500, "model": "text-only"}
    answer = client.post("/v1/explain", json=body).json()
    assert any("first 5,000" in note for note in answer["notes"]), answer["notes"]
    assert answer["words"] and max(w["end"] for w in answer["words"]) <= 5_000
