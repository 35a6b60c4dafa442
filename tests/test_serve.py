"""The HTTP service: every route, every bad input (always a 4xx JSON error, never a 500), API keys."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
from fastapi.testclient import TestClient  # noqa: E402
from serve_helpers import image_bytes, shared_models  # noqa: E402

from skulens.runtime import MicroBatcher, ModelLoadError  # noqa: E402
from skulens.serve.app import create_app  # noqa: E402

MAX_UPLOAD = 200_000
MAX_BATCH = 4


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """The shared tiny models (two categorizers, a reviews model) and a folder that is not a model."""
    import shutil

    models = tmp_path_factory.mktemp("serve") / "models"
    shutil.copytree(shared_models(tmp_path_factory), models)
    (models / "notes").mkdir()  # not a model folder: ignored
    return models


@pytest.fixture(scope="module")
def client(models_dir):
    app = create_app(models_dir, max_upload_bytes=MAX_UPLOAD, max_batch=MAX_BATCH)
    with TestClient(app) as c:
        yield c


def assert_error(response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "detail"}, body
    for word in words:
        assert word.lower() in body["detail"].lower(), body
    return body


def upload(data: bytes, name: str = "product.jpg", **fields):
    return {"files": {"image": (name, data, "image/jpeg")}, "data": fields}


# ----- status routes ---------------------------------------------------------------------------------


def test_health_ready_models(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["ready"] is True and ready["models"] == 3
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert set(models) == {"tiny-categorizer", "text-only", "tiny-reviews"}
    tiny = models["tiny-categorizer"]
    assert tiny["task"] == "categorize" and tiny["classes"] == ["Garden", "Kitchen", "Toys"]
    assert set(tiny["encoders"]) == {"efficientnet-lite0", "tfidf"} and tiny["metrics"]["accuracy"] == 1.0
    assert tiny["default"] and not models["text-only"]["default"]
    assert models["tiny-reviews"]["task"] == "reviews" and models["tiny-reviews"]["default"]
    schema = client.get("/openapi.json").json()
    assert {"/health", "/ready", "/models", "/v1/categorize", "/v1/categorize/batch", "/v1/reviews"} <= set(schema["paths"])
    assert "/" not in schema["paths"] and "/docs" not in schema["paths"]


def test_root_redirects_to_docs(client):
    response = client.get("/", follow_redirects=False)
    assert response.status_code in (302, 307) and response.headers["location"] == "/docs"
    assert client.get("/").url.path == "/docs"


def test_docs_work_offline(client):
    """/docs loads Swagger UI from the service itself: no external host, every asset answers 200."""
    import re

    response = client.get("/docs")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    html = response.text
    assert "SwaggerUIBundle" in html and "'/openapi.json'" in html
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(urls) == 3, urls  # the script, the stylesheet, the favicon
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}", html, re.IGNORECASE), "docs reference an external host"
    kinds = {}
    for url in urls:
        assert url.startswith("/static/swagger-ui/"), url
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 500, url
        kinds[url.rsplit(".", 1)[-1]] = asset.headers["content-type"]
    assert "javascript" in kinds["js"] and kinds["css"].startswith("text/css") and kinds["png"] == "image/png"
    assert b"SwaggerUIBundle" in client.get("/static/swagger-ui/swagger-ui-bundle.js").content
    assert_error(client.get("/redoc"), 404)
    assert_error(client.get("/static/swagger-ui/../../app.py"), 404)


def test_unknown_route_is_json_404(client):
    assert_error(client.get("/nope"), 404)


# ----- categorize ------------------------------------------------------------------------------------


@pytest.mark.parametrize("category", ["Kitchen", "Garden", "Toys"])
def test_categorize_image_only(client, category):
    response = client.post("/v1/categorize", **upload(image_bytes(category, seed=101)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "tiny-categorizer" and body["used_image"] and not body["used_text"]
    assert body["categories"][0]["category"] == category
    probs = [c["probability"] for c in body["categories"]]
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-4
    timing = response.headers["server-timing"]
    assert "decode;dur=" in timing and "model;dur=" in timing and "batch of 1" in timing


def test_categorize_png_text_and_k(client):
    response = client.post(
        "/v1/categorize", **upload(image_bytes("Toys", seed=7, fmt="PNG"), "toy.png", title="teddy bear", k="2")
    )
    body = response.json()
    assert response.status_code == 200 and body["used_image"] and body["used_text"]
    assert len(body["categories"]) == 2 and body["categories"][0]["category"] == "Toys"


def test_categorize_text_only_and_model_choice(client):
    for model in (None, "text-only"):
        data = {"title": "frying pan", "description": "for the kitchen shelf"}
        if model:
            data["model"] = model
        body = client.post("/v1/categorize", data=data).json()
        assert body["categories"][0]["category"] == "Kitchen" and body["model"] == (model or "tiny-categorizer")
        assert body["used_text"] and not body["used_image"]
    # k larger than the number of classes is clipped
    assert len(client.post("/v1/categorize", data={"title": "rake", "k": "50"}).json()["categories"]) == 3


def test_categorize_unknown_model(client):
    assert_error(client.post("/v1/categorize", data={"title": "pan", "model": "nope"}), 404, "nope", "tiny-categorizer")
    # a model of another task is not a categorizer either
    assert_error(client.post("/v1/categorize", data={"title": "pan", "model": "tiny-reviews"}), 404, "tiny-reviews")


@pytest.mark.parametrize("data", [{}, {"title": ""}, {"title": "   ", "description": ""}])
def test_categorize_needs_text_or_image(client, data):
    body = assert_error(client.post("/v1/categorize", data=data), 422, "image", "title")
    assert body["error"] == "empty_input"


def test_categorize_text_model_with_only_an_image(client):
    assert_error(client.post("/v1/categorize", **upload(image_bytes("Toys"), model="text-only")), 422, "text only")


def test_non_image_bytes(client):
    body = assert_error(client.post("/v1/categorize", **upload(b"this is not an image" * 10, "x.jpg")), 400, "not an image")
    assert body["error"] == "invalid_image"


def test_empty_upload(client):
    assert_error(client.post("/v1/categorize", **upload(b"", "empty.jpg", title="pan")), 400, "empty")


def test_truncated_image(client):
    data = image_bytes("Kitchen", fmt="PNG")
    assert_error(client.post("/v1/categorize", **upload(data[: len(data) // 2], "cut.png")), 400, "truncated")


def test_decompression_bomb(client, huge_png):
    data = huge_png.read_bytes()
    assert len(data) < MAX_UPLOAD
    assert_error(client.post("/v1/categorize", **upload(data, "bomb.png")), 400, "pixels")


def test_upload_over_limit(client):
    rng = np.random.default_rng(0)
    # just over the image limit: refused by the route after reading at most limit + 1 bytes
    assert_error(client.post("/v1/categorize", **upload(rng.bytes(MAX_UPLOAD + 10))), 413, "limit")
    # far over: refused from Content-Length before the body is read
    assert_error(client.post("/v1/categorize", **upload(rng.bytes(MAX_UPLOAD * 3))), 413, "limit")


@pytest.mark.parametrize("k", ["0", "-1", "abc"])
def test_bad_k(client, k):
    body = assert_error(client.post("/v1/categorize", data={"title": "pan", "k": k}), 422, "k")
    assert body["error"] == "invalid_request"


# ----- batch ---------------------------------------------------------------------------------------


def test_batch_mixed(client):
    image64 = base64.b64encode(image_bytes("Garden", seed=55)).decode()
    products = [
        {"id": "a", "title": "rubber duck", "description": "toy"},
        {"id": "b", "title": ""},
        {"id": "c", "image_base64": image64},
        {"id": "d", "image_base64": "!!not base64!!"},
    ]
    response = client.post("/v1/categorize/batch", json={"products": products, "k": 2})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["id"] for r in results] == ["a", "b", "c", "d"]
    assert results[0]["categories"][0]["category"] == "Toys" and len(results[0]["categories"]) == 2
    assert results[1]["error"] and not results[1]["categories"]
    assert results[2]["categories"][0]["category"] == "Garden"
    assert "base64" in results[3]["error"]


def test_batch_bad_image_item(client):
    bad = base64.b64encode(b"GIF89a broken").decode()
    results = client.post("/v1/categorize/batch", json={"products": [{"image_base64": bad}]}).json()["results"]
    assert "image" in results[0]["error"]


def test_batch_over_limit(client):
    products = [{"title": f"pan {i}"} for i in range(MAX_BATCH + 1)]
    assert_error(client.post("/v1/categorize/batch", json={"products": products}), 413, "limit")


@pytest.mark.parametrize(
    "body",
    [{"products": []}, {}, {"products": "pan"}, {"products": [{"title": 3}]}, {"products": [{"titel": "pan"}]}],
)
def test_batch_invalid(client, body):
    assert_error(client.post("/v1/categorize/batch", json=body), 422)


def test_batch_not_json(client):
    response = client.post("/v1/categorize/batch", content=b"{oops", headers={"content-type": "application/json"})
    assert_error(response, 422)


def test_batch_unknown_model(client):
    assert_error(client.post("/v1/categorize/batch", json={"model": "nope", "products": [{"title": "pan"}]}), 404, "nope")


# ----- reviews -------------------------------------------------------------------------------------


def test_reviews(client):
    """The real tiny TF-IDF reviews model reads a good and a bad review the way its training data says."""
    response = client.post("/v1/reviews", json={"texts": ["Love it, great fit and so soft", "Awful fabric, cheap, returned it"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "tiny-reviews"
    good, bad = body["results"]
    assert [good["index"], bad["index"]] == [0, 1]
    assert good["sentiment"] == "positive" and bad["sentiment"] == "negative"
    assert good["stars"] in (4, 5) and bad["stars"] in (1, 2)
    assert good["expected_rating"] >= 4 and bad["expected_rating"] <= 2
    assert good["sentiment_score"] > 0.5 and bad["sentiment_score"] < -0.5
    assert good["recommend_proba"] > 0.5 > bad["recommend_proba"]
    for result in (good, bad):
        assert set(result["star_proba"]) == {"1", "2", "3", "4", "5"} and abs(sum(result["star_proba"].values()) - 1) < 1e-3
        expected = sum(int(k) * p for k, p in result["star_proba"].items())
        assert abs(expected - result["expected_rating"]) < 1e-2


def test_reviews_bad_input(client):
    assert_error(client.post("/v1/reviews", json={"texts": ["fine", "  "]}), 422, "empty")
    assert_error(client.post("/v1/reviews", json={"texts": []}), 422)
    assert_error(client.post("/v1/reviews", json={"texts": ["x"] * (MAX_BATCH + 1)}), 413, "limit")
    assert_error(client.post("/v1/reviews", json={"texts": ["fine"], "model": "tiny-categorizer"}), 404)


def test_reviews_without_a_reviews_model(models_dir):
    with TestClient(create_app(models_dir / "text-only", warm_up=False)) as c:
        assert_error(c.post("/v1/reviews", json={"texts": ["good"]}), 404, "no 'reviews' model")


# ----- API key -------------------------------------------------------------------------------------


@pytest.mark.parametrize("from_env", [False, True])
def test_api_key(models_dir, monkeypatch, from_env):
    if from_env:
        monkeypatch.setenv("SKULENS_API_KEY", "s3cret")
        app = create_app(models_dir / "text-only", warm_up=False)
    else:
        app = create_app(models_dir / "text-only", api_key="s3cret", warm_up=False)
    with TestClient(app) as c:
        for path, kwargs in [
            ("/v1/categorize", {"data": {"title": "pan"}}),
            ("/v1/categorize/batch", {"json": {"products": [{"title": "pan"}]}}),
            ("/v1/reviews", {"json": {"texts": ["good"]}}),
            ("/v1/categorize", {"data": {}}),  # even a bad request is 401 first
        ]:
            assert_error(c.post(path, **kwargs), 401, "missing")
            assert_error(c.post(path, headers={"X-API-Key": "wrong"}, **kwargs), 401, "wrong")
        ok = c.post("/v1/categorize", data={"title": "pan"}, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200
        assert c.get("/health").status_code == 200 and c.get("/models").status_code == 200
        assert "X-API-Key" in json.dumps(c.get("/openapi.json").json()["components"])


def test_app_survives_lifespan_restart(models_dir):
    """Servers and test clients may run the ASGI lifespan more than once; model workers come back."""
    app = create_app(models_dir / "text-only", warm_up=False)
    worker = app.state.models["text-only"].batcher
    for _ in range(2):
        with TestClient(app) as c:
            assert c.post("/v1/categorize", data={"title": "pan"}).status_code == 200
            assert worker.thread.is_alive()
        assert not worker.thread.is_alive()  # the lifespan's shutdown stopped the model worker


def test_no_api_key_by_default(models_dir, monkeypatch):
    monkeypatch.delenv("SKULENS_API_KEY", raising=False)
    with TestClient(create_app(models_dir / "text-only", warm_up=False)) as c:
        assert c.post("/v1/categorize", data={"title": "pan"}).status_code == 200


# ----- start-up -----------------------------------------------------------------------------------


def test_broken_model_folder_fails_fast(tmp_path, models_dir):
    bad = tmp_path / "models" / "bad"
    bad.mkdir(parents=True)
    (bad / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="bad"):
        create_app(tmp_path / "models")
    (bad / "config.json").write_text(json.dumps({"task": "categorize"}))
    with pytest.raises(ModelLoadError, match="weights.npz"):
        create_app(tmp_path / "models")
    (bad / "weights.npz").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="bad"):
        create_app(tmp_path / "models")
    with pytest.raises(ModelLoadError, match="does not exist"):
        create_app(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no servable model"):
        create_app(tmp_path / "empty")


def test_model_that_cannot_predict_fails_at_start(tmp_path, models_dir):
    """Weights that do not fit the model's encoders stop start-up (warm-up) with the folder named."""
    import shutil

    broken = tmp_path / "models" / "misfit"
    shutil.copytree(models_dir / "text-only", broken)
    with np.load(broken / "weights.npz", allow_pickle=False) as weights:
        arrays = {name: weights[name] for name in weights.files}
    arrays["fusion.tfidf.coef"] = arrays["fusion.tfidf.coef"][:, :5]
    np.savez(broken / "weights.npz", **arrays)
    with pytest.raises(ModelLoadError, match="misfit"):
        create_app(tmp_path / "models")


# ----- concurrency -------------------------------------------------------------------------------


def test_micro_batcher_batches_while_busy():
    gate = threading.Event()
    calls = []

    def fn(items):
        calls.append(list(items))
        gate.wait(5)
        return [i * 2 for i in items]

    batcher = MicroBatcher(fn, max_batch=8)
    first = batcher.submit(1)
    time.sleep(0.1)
    rest = [batcher.submit(i) for i in range(2, 6)]
    gate.set()
    assert first.result(5) == 2 and [f.result(5) for f in rest] == [4, 6, 8, 10]
    assert calls == [[1], [2, 3, 4, 5]]
    # a request cancelled while queued (its client went away) is skipped and the worker keeps going
    gate.clear()
    busy = batcher.submit(7)
    time.sleep(0.1)
    gone = batcher.submit(8)
    assert gone.cancel()
    after = batcher.submit(9)
    gate.set()
    assert busy.result(5) == 14 and after.result(5) == 18 and calls[-1] == [9]
    failing = MicroBatcher(lambda items: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.submit(1).result(5)
    batcher.close()
    assert not batcher.thread.is_alive()
    assert batcher.submit(21).result(5) == 42  # revived after close (e.g. a second ASGI lifespan)
    batcher.close()
    failing.close()


def test_event_loop_not_blocked_by_model(client):
    """While a model call is running, other routes still answer at once."""
    model = client.app.state.models["text-only"]
    gate = threading.Event()
    original = model.batcher.fn

    def slow(items):
        gate.wait(10)
        return original(items)

    model.batcher.fn = slow
    try:
        result = {}
        worker = threading.Thread(
            target=lambda: result.setdefault("r", client.post("/v1/categorize", data={"title": "pan", "model": "text-only"}))
        )
        worker.start()
        time.sleep(0.2)
        started = time.perf_counter()
        assert client.get("/health").status_code == 200
        other = client.post("/v1/categorize", data={"title": "rubber duck"})  # another model's worker
        assert other.status_code == 200
        assert time.perf_counter() - started < 5
        assert "r" not in result
    finally:
        gate.set()
        model.batcher.fn = original
    worker.join(10)
    assert result["r"].status_code == 200


def test_reviews_only_folder(models_dir):
    """A models folder holding only a reviews model serves reviews and says no categorizer is loaded."""
    with TestClient(create_app(models_dir / "tiny-reviews", warm_up=False)) as c:
        assert c.post("/v1/reviews", json={"texts": ["terrible fit, cheap"]}).json()["results"][0]["sentiment"] == "negative"
        assert [m["task"] for m in c.get("/models").json()["models"]] == ["reviews"]
        assert_error(c.post("/v1/categorize", data={"title": "pan"}), 404, "no 'categorize' model")


def test_cli_fails_fast_on_broken_models(tmp_path):
    import typer
    from typer.testing import CliRunner

    from skulens.cli.serve import app as serve_cli
    from skulens.cli.serve import register

    broken = tmp_path / "models" / "broken"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("{not json")
    runner = CliRunner()
    result = runner.invoke(serve_cli, ["serve", "--models", str(tmp_path / "models")])
    assert result.exit_code == 2 and "broken" in result.output
    result = runner.invoke(serve_cli, ["ui", "--models", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist" in result.output
    main = typer.Typer()
    register(main)
    assert {c.name for c in main.registered_commands} == {"serve", "ui"}


def test_in_memory_path_matches_predictor(client, models_dir, tmp_path):
    """What the service computes from in-memory inputs (decoded, prepared image + joined text, through the
    model's worker) equals what the predictor gives for the same product read from files."""
    import pandas as pd

    from skulens.catalog.images import decode_image
    from skulens.catalog.schema import Catalog
    from skulens.runtime import image_resolution, prepare_image
    from skulens.tasks.categorize import CategoryPredictor

    model = client.app.state.models["tiny-categorizer"]
    predictor = CategoryPredictor.load(models_dir / "tiny-categorizer", cache_dir=tmp_path / "cache")
    data = image_bytes("Toys", seed=303)
    (tmp_path / "p.jpg").write_bytes(data)
    frame = pd.DataFrame({"id": ["a", "b"], "title": ["toy car", "rake"]})
    frame["description"] = pd.Series(["red", None], dtype=object)
    frame["image"] = pd.Series(["p.jpg", None], dtype=object)
    expected = predictor.predict_proba(Catalog(frame, root=tmp_path))
    image = prepare_image(model.predictor, decode_image(data, draft_size=image_resolution(model.predictor)))
    got = model.batcher([(image, model.text_of("toy car", "red")), (None, model.text_of("rake", None))])
    np.testing.assert_allclose(np.stack(got), expected, atol=1e-5)


def test_every_route_is_named_in_serve_help_and_the_docs(client):
    from typer.testing import CliRunner

    from skulens.cli import app as cli

    routes = set(client.get("/openapi.json").json()["paths"]) - {"/"}
    assert {"/health", "/v1/categorize", "/v1/reviews"} <= routes
    help_text = " ".join(CliRunner().invoke(cli, ["serve", "--help"], terminal_width=200).output.split())
    description = client.app.description
    for route in routes:
        assert route in help_text, f"{route} missing from `skulens serve --help`"
        assert f"`{route}`" in description, f"{route} missing from the /docs description"
