"""What a hostile or careless client can send the service: each case is refused cleanly, never a 5xx,
never a body read past its limit, never input echoed back (issue 16)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
from conftest import write_huge_png  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402
from serve_helpers import image_bytes, shared_models  # noqa: E402

from skulens.serve.app import FORM_OVERHEAD_BYTES, create_app  # noqa: E402

MAX_UPLOAD = 200_000
LIMIT = MAX_UPLOAD + FORM_OVERHEAD_BYTES
CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    return shared_models(tmp_path_factory)


@pytest.fixture(scope="module")
def app(models_dir):
    return create_app(models_dir, max_upload_bytes=MAX_UPLOAD, max_batch=4, body_timeout_s=0.5)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def roomy(models_dir):
    """The service with its default 10 MB upload limit."""
    with TestClient(create_app(models_dir)) as c:
        yield c


def call_asgi(
    app, path: str, headers: list[tuple[bytes, bytes]], chunks, stall_after: int | None = None
) -> tuple[int, int, dict]:
    """Send ``chunks`` as a streamed body (no Content-Length) straight to the ASGI app; returns
    (status, body bytes the app read, JSON answer)."""
    state = {"read": 0, "sent": 0}
    chunks = list(chunks)
    answer: dict = {"status": None, "body": b""}

    async def receive():
        if stall_after is not None and state["sent"] >= stall_after:
            await asyncio.sleep(3600)
        if state["sent"] < len(chunks):
            chunk = chunks[state["sent"]]
            state["sent"] += 1
            state["read"] += len(chunk)
            return {"type": "http.request", "body": chunk, "more_body": state["sent"] < len(chunks)}
        await asyncio.sleep(3600)  # the body is over: wait for a disconnect that never comes

    async def send(message):
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"transfer-encoding", b"chunked"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 30))
    return answer["status"], state["read"], json.loads(answer["body"] or b"{}")


def _multipart_chunks(total: int, boundary: str = "xyz") -> list[bytes]:
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
    body = head.encode() + b"\x00" * total + f"\r\n--{boundary}--\r\n".encode()
    return [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]


@pytest.mark.parametrize(
    "path, content_type, chunks",
    [
        ("/v1/reviews", b"application/json", [b'{"texts": ["' + b"a" * (CHUNK - 12)] + [b"a" * CHUNK] * 60 + [b'"]}']),
        (
            "/v1/categorize/batch",
            b"application/json",
            [b'{"products": [{"title": "' + b"a" * CHUNK] + [b"a" * CHUNK] * 60 + [b'"}]}'],
        ),
        ("/v1/categorize", b"multipart/form-data; boundary=xyz", _multipart_chunks(60 * CHUNK)),
    ],
)
def test_chunked_oversize_body_is_refused_while_it_streams(app, path, content_type, chunks):
    status, read, body = call_asgi(app, path, [(b"content-type", content_type)], chunks)
    assert status == 413 and body["error"] == "too_large", body
    assert read <= LIMIT + CHUNK  # refused at the first chunk over the limit, the rest never read
    assert read < sum(map(len, chunks))


def test_chunked_body_under_the_limit_is_served(app):
    payload = json.dumps({"texts": ["great quality, love the fit"]}).encode()
    status, read, body = call_asgi(app, "/v1/reviews", [(b"content-type", b"application/json")], [payload[:10], payload[10:]])
    assert status == 200 and body["results"][0]["stars"] in range(1, 6)
    assert read == len(payload)


def test_stalled_body_times_out(app):
    chunks = [b'{"texts": ["slow', b' body"]}']
    status, _, body = call_asgi(app, "/v1/reviews", [(b"content-type", b"application/json")], chunks, stall_after=1)
    assert status == 408 and body["error"] == "timeout"


def test_uploads_are_kept_in_memory_not_spooled_to_disk(models_dir, monkeypatch):
    rollovers = []
    original = tempfile.SpooledTemporaryFile.rollover
    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover", lambda self: (rollovers.append(1), original(self))[1])
    with TestClient(create_app(models_dir, max_upload_bytes=3_000_000)) as c:
        noise = Image.effect_noise((900, 900), 80).convert("RGB")
        buffer = io.BytesIO()
        noise.save(buffer, format="PNG")
        assert len(buffer.getvalue()) > 1_100_000  # over starlette's 1 MB in-memory spool
        response = c.post("/v1/categorize", files={"image": ("big.png", buffer.getvalue(), "image/png")})
    assert response.status_code == 200, response.text
    assert rollovers == []


def test_palette_png_pixel_bomb_is_refused_before_decoding(client, tmp_path):
    bomb = write_huge_png(tmp_path / "bomb.png", 7_900, 7_900).read_bytes()  # 62 MP in a few KB, under 64 MP
    assert len(bomb) < MAX_UPLOAD
    response = client.post("/v1/categorize", files={"image": ("bomb.png", bomb, "image/png")})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_image" and "decoded pixels" in response.json()["detail"]


def test_large_jpeg_is_draft_decoded_under_the_pixel_cap(roomy):
    buffer = io.BytesIO()
    Image.new("RGB", (6_000, 3_000), (200, 40, 40)).save(buffer, format="JPEG", quality=70)  # 18 MP > the 16 MP cap
    response = roomy.post("/v1/categorize", files={"image": ("big.jpg", buffer.getvalue(), "image/jpeg")})
    assert response.status_code == 200, response.text
    assert response.json()["used_image"] is True


@pytest.mark.parametrize(
    "path, raw",
    [
        ("/v1/reviews", '{"texts": ["\\ud800"]}'),
        ("/v1/reviews", '{"texts": ["ok"], "model": "\\udfff"}'),
        ("/v1/categorize/batch", '{"products": [{"id": "\\ud800", "title": "a watch"}]}'),
        ("/v1/categorize/batch", '{"products": [{"\\ud800": 1}]}'),
    ],
)
def test_lone_surrogates_get_a_clean_422(client, path, raw):
    response = client.post(path, content=raw.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert "\ud800" not in json.dumps(body, ensure_ascii=False) and "\udfff" not in json.dumps(body, ensure_ascii=False)


def test_errors_never_echo_a_huge_input(roomy):
    title = "x" * 5_000_000
    response = roomy.post("/v1/categorize", data={"title": title[:900_000]})
    assert response.status_code == 422, response.status_code
    assert len(response.content) < 5_000
    response = roomy.post("/v1/categorize", data={"title": title})  # over the form parser's 1 MB per field
    assert response.status_code == 400 and len(response.content) < 5_000
    response = roomy.post("/v1/categorize/batch", json={"products": [{"title": title}]})
    assert response.status_code == 422 and len(response.content) < 5_000
    response = roomy.post("/v1/reviews", json={"texts": [title]})
    assert response.status_code == 422 and len(response.content) < 5_000
    response = roomy.post("/v1/reviews", json={"texts": ["ok"], "model": title[:1_000_000]})
    assert response.status_code == 422 and len(response.content) < 5_000


def test_wrong_content_type_is_415(client):
    as_json = client.post("/v1/categorize", json={"title": "a red watch"})
    assert as_json.status_code == 415 and as_json.json()["error"] == "unsupported_media_type"
    as_text = client.post("/v1/reviews", content=b'{"texts": ["ok"]}', headers={"content-type": "text/plain"})
    assert as_text.status_code == 415
    as_form = client.post("/v1/reviews", data={"texts": "ok"})
    assert as_form.status_code == 415


def test_truncated_multipart_image_part_is_400(client):
    boundary = "cut"
    part = image_bytes("Kitchen", 0)
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nsteel pan\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    ).encode() + part[: len(part) // 2]  # the connection dropped mid-image: no closing boundary
    response = client.post("/v1/categorize", content=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "truncated_body"


def test_data_uri_and_line_wrapped_base64_are_accepted(client):
    raw = image_bytes("Garden", 1)
    plain = base64.b64encode(raw).decode()
    wrapped = "\n".join(plain[i : i + 76] for i in range(0, len(plain), 76))
    products = [
        {"id": "uri", "image_base64": "data:image/jpeg;base64," + plain},
        {"id": "wrapped", "image_base64": wrapped},
        {"id": "bad", "image_base64": "data:image/jpeg;base64,@@@"},
    ]
    response = client.post("/v1/categorize/batch", json={"products": products})
    assert response.status_code == 200, response.text
    results = {r["id"]: r for r in response.json()["results"]}
    assert results["uri"]["categories"] and results["uri"]["error"] is None
    assert results["wrapped"]["categories"] and results["wrapped"]["error"] is None
    assert "base64" in results["bad"]["error"]


def test_public_address_without_api_key_warns(models_dir, monkeypatch):
    from typer.testing import CliRunner

    from skulens.cli.serve import app as serve_cli
    from skulens.serve import server

    assert server.exposure_warning("0.0.0.0", None) and server.exposure_warning("192.168.1.5", "")
    assert server.exposure_warning("127.0.0.1", None) is None and server.exposure_warning("::1", None) is None
    assert server.exposure_warning("0.0.0.0", "secret") is None
    started = []
    monkeypatch.setattr(server, "run_server", lambda *a, **k: started.append(k))
    monkeypatch.delenv("SKULENS_API_KEY", raising=False)
    result = CliRunner().invoke(serve_cli, ["serve", "--models", str(models_dir), "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    assert "no API key" in result.output and started


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_slow_connections_are_closed(app):
    import uvicorn

    from skulens.serve.server import uvicorn_config

    port = _free_port()
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, log_level="warning", header_timeout_s=0.5))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        slow = socket.create_connection(("127.0.0.1", port), timeout=10)
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # the head never finishes
        assert idle.recv(1024) == b"" and slow.recv(1024) == b""  # both closed by the server (recv would time out)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as ok:
            ok.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert ok.recv(1024).startswith(b"HTTP/1.1 200")
    finally:
        server.should_exit = True
        thread.join(10)
