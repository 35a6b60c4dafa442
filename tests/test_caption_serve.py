"""Service route of the captioner: /v1/caption (TestClient, real tiny model trained on drawn shapes)."""

from __future__ import annotations

import base64
import io

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from test_caption import TINY, _draw, _shapes_catalog  # noqa: E402

from skulens.serve.app import create_app  # noqa: E402
from skulens.tasks.caption import CaptionModel  # noqa: E402


def _b64(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("caption-serve")
    catalog = _shapes_catalog(root)
    CaptionModel(**TINY, progress=False, attributes=("colour",)).fit(catalog).save(root / "models" / "shapes-caption")
    with TestClient(create_app(root / "models", max_upload_bytes=200_000)) as c:
        yield c


def test_caption_route(client):
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert models["shapes-caption"]["task"] == "caption" and list(models["shapes-caption"]["encoders"]) == [
        "efficientnet-lite0-regions"
    ]
    body = client.post("/v1/caption", json={"image_base64": _b64(_draw("blue", "square", 10)), "beam": 3, "nearest": 2}).json()
    assert body["model"] == "shapes-caption" and body["title"] == "bright blue square sticker", body
    assert len(body["alternatives"]) == 2 and len(body["nearest"]) == 2 and body["attributes"] == {"colour": "blue"}
    greedy = client.post("/v1/caption", json={"image_base64": _b64(_draw("green", "circle", 20)), "beam": 1, "nearest": 0}).json()
    assert greedy["title"] == "bright green circle sticker" and greedy["alternatives"] == [] and greedy["nearest"] == []


def test_caption_route_bad_input(client):
    bad = client.post("/v1/caption", json={"image_base64": base64.b64encode(b"not an image").decode()})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_image"
    assert client.post("/v1/caption", json={"image_base64": "%%%"}).status_code == 400
    assert client.post("/v1/caption", json={"image_base64": _b64(_draw("red", "circle", 0)), "beam": 0}).status_code == 422
    too_big = client.post("/v1/caption", json={"image_base64": base64.b64encode(b"\xff" * 300_000).decode()})
    assert too_big.status_code == 413
    assert client.post("/v1/caption", json={}).status_code == 422


def test_caption_route_decoded_pixel_cap(client, tmp_path):
    """A tiny PNG that decodes to 64 MP is refused (400) before its pixels are allocated (issue 24)."""
    from conftest import write_huge_png

    data = write_huge_png(tmp_path / "big.png", 7999, 7999).read_bytes()
    response = client.post("/v1/caption", json={"image_base64": base64.b64encode(data).decode()})
    assert response.status_code == 400 and "decoded pixels" in response.json()["detail"], response.text
