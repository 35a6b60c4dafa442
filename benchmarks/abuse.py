"""Abuse suite for the service, loopback only and bounded: what hostile or broken clients send.

Starts the service (small real models trained here: Flipkart EfficientNet-Lite0 + MiniLM + TF-IDF, a
TF-IDF reviews model) in a child process and sends it: chunked bodies far over the limit, pixel bombs,
large JPEGs, slow bodies, slow and idle connections, lone surrogates, malformed requests, many
concurrent connections; then starts ``skulens serve`` on tampered model folders. Records every status
code, the server's memory before/after and at peak, and writes ``abuse_*`` numbers into
``benchmarks/results/reliability.json``. Timeouts are shortened (head 5 s, body 5 s) to keep it bounded.

    OMP_NUM_THREADS=1 python benchmarks/abuse.py --connections 1000
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import re
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
from reliability_results import update_results
from reliability_service import ROOT, Service, train_models

RESULTS = ROOT / "benchmarks" / "results" / "reliability.json"
MAX_UPLOAD = 10 * 1024 * 1024
CHUNK = 64 * 1024
TIMEOUT_S = 5.0


def palette_png(width: int, height: int) -> bytes:
    """A valid 1-bit palette PNG of width x height built chunk by chunk (a few KB for ~62 MP)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row * 100) for _ in range(height // 100)) + compressor.compress(row * (height % 100))
    idat += compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 3, 0, 0, 0)
    plte = b"\xff\x00\x00\x00\x00\xff"
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"PLTE", plte) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def big_jpeg(width: int, height: int) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (230, 230, 230))
    ImageDraw.Draw(image).ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=(40, 90, 160))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=60)
    return buffer.getvalue()


def multipart(fields: dict[str, str], file: tuple[str, bytes, str] | None, boundary: str = "abuse") -> tuple[bytes, str]:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    if file is not None:
        name, data, kind = file
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\nContent-Type: {kind}\r\n\r\n'
        parts.append(head.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def status_of(data: bytes | None) -> str:
    if not data:
        return "closed"
    match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return match.group(1).decode() if match else "garbled"


class Recorder:
    def __init__(self) -> None:
        self.cases: dict[str, Counter] = {}

    def add(self, case: str, status: str | int) -> None:
        self.cases.setdefault(case, Counter())[str(status)] += 1

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.cases.values())

    @property
    def server_errors(self) -> int:
        return sum(n for c in self.cases.values() for s, n in c.items() if s.isdigit() and int(s) >= 500)


async def exchange(port: int, head: bytes, chunks=(), delay: float = 0.0, wait_s: float = 60.0) -> tuple[str, int]:
    """Send a request head then ``chunks`` (stopping as soon as an answer arrives); (status, body bytes sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.ensure_future(reader.read(65536))
    sent = 0

    async def send() -> None:
        nonlocal sent
        writer.write(head)
        await writer.drain()
        for chunk in chunks:
            if answer.done():
                return
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
            if delay:
                await asyncio.sleep(delay)

    try:
        await asyncio.wait_for(send(), wait_s)
    except (ConnectionError, TimeoutError, OSError):
        pass
    try:
        data = await asyncio.wait_for(answer, wait_s)
    except (TimeoutError, ConnectionError, OSError):
        data = None
    writer.close()
    return status_of(data), sent


def chunked(total: int, first: bytes = b"", last: bytes = b""):
    """HTTP/1.1 chunked framing of ``first`` + ``total`` filler bytes + ``last``, produced lazily."""
    filler = b"a" * CHUNK
    for piece in [first] + [filler] * (total // CHUNK) + [last]:
        if piece:
            yield b"%x\r\n" % len(piece) + piece + b"\r\n"
    yield b"0\r\n\r\n"


def request_head(method: str, path: str, content_type: str | None = None, extra: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return (head + extra + "\r\n").encode()


def bytes_read_in_process(models: Path) -> dict[str, int]:
    """Bytes the app reads of a 200 MB chunked body, per route, counted at the ASGI receive (exact)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_reliability_serve import call_asgi

    from skulens.serve.app import create_app

    app = create_app(text_models(models), max_upload_bytes=MAX_UPLOAD)
    total = 200 * 1024 * 1024 // CHUNK
    filler = [b"a" * CHUNK] * total
    routes = {
        "/v1/reviews": (b"application/json", [b'{"texts": ["', *filler, b'"]}']),
        "/v1/categorize/batch": (b"application/json", [b'{"products": [{"title": "', *filler, b'"}]}']),
        "/v1/categorize": (
            b"multipart/form-data; boundary=abuse",
            [b'--abuse\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n', *filler, b"\r\n--abuse--\r\n"],
        ),
    }
    read = {}
    for path, (kind, chunks) in routes.items():
        status, count, _ = call_asgi(app, path, [(b"content-type", kind)], chunks)
        read[path] = {"status": status, "bytes_read": count}
    for model in app.state.models.values():
        model.close()
    return read


async def abuse_service(service: Service, record: Recorder, connections: int, detail: dict) -> None:
    port = service.port
    memory = {"start": service.memory_mb()}

    # 1. chunked bodies of 200 MB with no Content-Length, every route
    oversize = {}
    for path, kind, first, last in (
        ("/v1/reviews", "application/json", b'{"texts": ["', b'"]}'),
        ("/v1/categorize/batch", "application/json", b'{"products": [{"title": "', b'"}]}'),
        (
            "/v1/categorize",
            "multipart/form-data; boundary=abuse",
            b'--abuse\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n',
            b"\r\n--abuse--\r\n",
        ),
    ):
        status, sent = await exchange(
            port, request_head("POST", path, kind, "Transfer-Encoding: chunked\r\n"), chunked(200 * 2**20, first, last)
        )
        record.add("chunked_oversize", status)
        oversize[path] = {"status": status, "client_sent_bytes": sent}
    detail["chunked_oversize_socket"] = oversize
    memory["after_chunked"] = service.memory_mb()

    # 2. pixel bombs (62 MP palette PNGs) and large JPEGs (64 MP, draft-decoded), 8 at once each
    for case, data, name in (
        ("pixel_bomb_png", palette_png(7_900, 7_900), "bomb.png"),
        ("large_jpeg", big_jpeg(8_000, 8_000), "big.jpg"),
    ):
        body, kind = multipart({"title": "a product"}, (name, data, "image/png" if name.endswith("png") else "image/jpeg"))
        head = request_head("POST", "/v1/categorize", kind, f"Content-Length: {len(body)}\r\n")
        for status, _ in await asyncio.gather(*[exchange(port, head, [body]) for _ in range(8)]):
            record.add(case, status)
        detail[f"{case}_bytes"] = len(data)
        memory[f"after_{case}"] = service.memory_mb()

    # 3. slow bodies (1 byte every 0.5 s of a declared 1,000) and slow/idle connections
    head = request_head("POST", "/v1/reviews", "application/json", "Content-Length: 1000\r\n")
    slow = [exchange(port, head, [b"{"] * 1000, delay=0.5, wait_s=TIMEOUT_S * 4) for _ in range(50)]
    slowloris = [
        exchange(port, b"", [b"GET /health HTTP/1.1\r\n", *[b"X-a: b\r\n"] * 100], delay=1.0, wait_s=TIMEOUT_S * 4)
        for _ in range(100)
    ]
    idle = [exchange(port, b"", [], wait_s=TIMEOUT_S * 4) for _ in range(100)]
    started = time.perf_counter()
    results = await asyncio.gather(*slow, *slowloris, *idle)
    detail["slow_connections_seconds"] = round(time.perf_counter() - started, 1)
    for index, (status, _) in enumerate(results):
        record.add("slow_body" if index < 50 else "slow_headers" if index < 150 else "idle_connection", status)

    # 4. lone surrogates and other malformed requests
    malformed = {
        "surrogate_text": ("/v1/reviews", "application/json", b'{"texts": ["\\ud800"]}'),
        "surrogate_id": ("/v1/categorize/batch", "application/json", b'{"products": [{"id": "\\udfff", "title": "x"}]}'),
        "surrogate_key": ("/v1/categorize/batch", "application/json", b'{"products": [{"\\ud800": 1}]}'),
        "surrogate_model": ("/v1/reviews", "application/json", b'{"texts": ["ok"], "model": "\\ud83d"}'),
        "invalid_utf8": ("/v1/reviews", "application/json", b'{"texts": ["\xff\xfe"]}'),
        "invalid_json": ("/v1/reviews", "application/json", b'{"texts": ['),
        "deep_json": ("/v1/reviews", "application/json", b"[" * 100_000 + b"]" * 100_000),
        "huge_text": ("/v1/reviews", "application/json", json.dumps({"texts": ["x" * 5_000_000]}).encode()),
        "wrong_type": ("/v1/categorize", "application/json", b'{"title": "watch"}'),
        "text_plain": ("/v1/reviews", "text/plain", b'{"texts": ["ok"]}'),
        "nan_k": ("/v1/categorize/batch", "application/json", b'{"k": NaN, "products": [{"title": "x"}]}'),
        "many_products": ("/v1/categorize/batch", "application/json", json.dumps({"products": [{"title": "x"}] * 5000}).encode()),
        "empty_texts": ("/v1/reviews", "application/json", b'{"texts": ["", ""]}'),
        "truncated_multipart": (
            "/v1/categorize",
            "multipart/form-data; boundary=abuse",
            multipart({"title": "x"}, ("a.jpg", b"\xff\xd8" * 5000, "image/jpeg"))[0][:-30],
        ),
        "bad_base64": (
            "/v1/categorize/batch",
            "application/json",
            b'{"products": [{"image_base64": "data:image/png;base64,!!!"}]}',
        ),
        "image_as_string": (
            "/v1/categorize",
            "multipart/form-data; boundary=abuse",
            multipart({"image": "not a file", "title": "x"}, None)[0],
        ),
    }
    for case, (path, kind, body) in malformed.items():
        status, _ = await exchange(port, request_head("POST", path, kind, f"Content-Length: {len(body)}\r\n"), [body])
        record.add(f"malformed:{case}", status)
    memory["after_malformed"] = service.memory_mb()

    # 5. many concurrent connections, each with a real request
    body = json.dumps({"texts": ["Lovely fabric, fits well."]}).encode()
    head = request_head("POST", "/v1/reviews", "application/json", f"Content-Length: {len(body)}\r\n")
    started = time.perf_counter()
    for status, _ in await asyncio.gather(*[exchange(port, head, [body], wait_s=120) for _ in range(connections)]):
        record.add("concurrent_connections", status)
    detail["concurrent_seconds"] = round(time.perf_counter() - started, 1)
    memory["end"] = service.memory_mb()
    detail["memory_mb"] = memory


def drawn_images(kinds: tuple[str, ...] = ("PNG", "JPEG", "WEBP")):
    """A hypothesis strategy of small real image files (``kinds`` of PIL formats, of a drawn shape): what the
    schema's image fields (multipart parts encoded ``image/*``, ``format: byte`` strings with
    ``contentMediaType: image/*``) hold; schemathesis draws arbitrary bytes or text for those otherwise."""
    from hypothesis import strategies as st
    from PIL import Image, ImageDraw

    def draw(size: tuple[int, int], colour: tuple[int, int, int], kind: str) -> bytes:
        image = Image.new("RGB", size, (235, 235, 235))
        ImageDraw.Draw(image).ellipse((size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4), fill=colour)
        buffer = io.BytesIO()
        image.save(buffer, kind)
        return buffer.getvalue()

    sides = st.integers(8, 96)
    colours = st.tuples(*[st.integers(0, 255)] * 3)
    return st.builds(draw, st.tuples(sides, sides), colours, st.sampled_from(list(kinds)))


def schemathesis_run(models: Path, examples: int, folder: Path | None = None) -> dict:
    """schemathesis on every operation, positive and negative cases: ``failures`` counts what ``make test``
    forbids (a 5xx, or a 4xx that is not JSON ``{"error", "detail"}``); ``conformance`` counts, by check,
    the stricter schema-conformance findings of ``call_and_validate`` (e.g. ST202, a schema-valid request
    answered 4xx). ``folder``: the models to serve (default: the text models of ``models``).

    Image fields and parts are generated as real image files (:func:`drawn_images`); a schema-violating request
    refused as too large (413) counts as rejected, like 400 and 422."""
    import base64

    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import InvalidArgument, Unsatisfiable
    from schemathesis.transport.serialization import Binary

    from skulens.serve.app import create_app

    app = create_app(folder or text_models(models), max_upload_bytes=100_000, max_batch=8)
    images = drawn_images()
    schemathesis.openapi.format("binary", images.map(Binary))
    schemathesis.openapi.format("byte", images.map(lambda data: base64.b64encode(data).decode()))
    for kind in ("PNG", "JPEG", "WEBP"):  # multipart image parts (their encoding says image/*)
        schemathesis.openapi.media_type(f"image/{kind.lower()}", drawn_images((kind,)))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    counts = {"cases": 0, "failures": 0}
    conformance: Counter = Counter()
    misjudged: Counter = Counter()
    examples_of: dict[str, str] = {}
    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]

    def run(operation, mode) -> None:
        strategy = operation.as_strategy(generation_mode=mode)

        @given(case=strategy)
        @settings(
            max_examples=-(-examples // len(modes)),  # ``examples`` per operation, shared by the modes
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.explicit, Phase.generate],
        )
        def check(case):
            counts["cases"] += 1
            response = case.call()
            bad = response.status_code >= 500
            if 400 <= response.status_code < 500:
                try:
                    body = json.loads(response.text)
                    bad = bad or not ({"error", "detail"} <= set(body))
                except ValueError:
                    bad = True
            counts["failures"] += int(bad)
            try:
                case.validate_response(response)
            except BaseException as exc:  # noqa: BLE001 - schemathesis raises a group of findings
                for code in sorted(set(re.findall(r"ST\d{3}[^\n]*", str(exc)))) or [type(exc).__name__]:
                    found = f"{operation.label}: {code}"
                    if code.startswith("ST201") and file_parts_hid_a_valid_form(case, response):
                        misjudged[found] += 1
                        found = f"misjudged: {found}"
                    else:
                        conformance[found] += 1
                    examples_of.setdefault(
                        found, f"{response.status_code} {response.text[:200]} <- {str(case.body or case.query)[:300]}"
                    )

        check()

    generation_errors: dict[str, str] = {}
    no_cases: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in modes:  # apart, so a mode schemathesis cannot generate for leaves the other one running
            for attempt in range(3):  # a mutation hypothesis cannot draw (a 100,001-character minimum) is random
                try:
                    run(operation, mode)
                    break
                except InvalidArgument as exc:  # schemathesis built a strategy hypothesis cannot draw from
                    if attempt == 2:
                        generation_errors[f"{operation.label} ({mode.value})"] = str(exc)[:300]
                except Unsatisfiable:  # nothing to generate in this mode (e.g. no schema-violating GET /health)
                    no_cases.append(f"{operation.label} ({mode.value})")
                    break
    for model in app.state.models.values():
        model.close()
    return {
        **counts,
        "conformance_findings": dict(conformance),
        "misjudged_by_schemathesis": dict(misjudged),
        "conformance_examples": examples_of,
        "generation_errors": generation_errors,
        "modes_without_cases": no_cases,
    }


def file_parts_hid_a_valid_form(case, response) -> bool:
    """Whether an ST201 ("schema-violating request accepted") on a multipart request is schemathesis misjudging it.

    schemathesis re-reads a multipart body as sent (a number or null in a text field goes out as text, which the
    schema allows) but keeps each file part's generated ``Binary`` object, which its JSON Schema validator cannot
    read (``ValueError: Unsupported type: 'Binary'``); it then counts the request as violating. Here the same
    judgment of schemathesis runs with each file part as the string it is on the wire (``type: string, format:
    binary``): True when the request, as sent, satisfies the schema after all."""
    from schemathesis.specs.openapi import checks
    from schemathesis.transport.serialization import Binary

    body = case.body
    if not (case.media_type or "").startswith("multipart/") or not isinstance(body, dict):
        return False
    if not any(isinstance(value, Binary) for value in body.values()):
        return False
    as_sent = {name: "<file>" if isinstance(value, Binary) else value for name, value in body.items()}
    original, case.body = case.body, as_sent
    try:
        return checks._body_negation_becomes_valid_after_serialization(response, case)
    finally:
        case.body = original


def text_models(models: Path) -> Path:
    """A models folder with only the text models (quick to load in this process)."""
    folder = Path(tempfile.mkdtemp()) / "models"
    folder.mkdir()
    for name in ("flipkart-text", "reviews"):
        shutil.copytree(models / name, folder / name)
    return folder


def tampered_models(models: Path, work: Path) -> dict[str, dict]:
    """``skulens serve`` on tampered copies of the text model: each must stop with one clear error."""
    from skulens.tasks.model_folder import CONFIG, WEIGHTS

    def weights(change):
        def apply(folder: Path) -> None:
            with np.load(folder / WEIGHTS, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            change(arrays)
            np.savez(folder / WEIGHTS, **arrays)

        return apply

    def config(change):
        def apply(folder: Path) -> None:
            values = json.loads((folder / CONFIG).read_text())
            change(values)
            (folder / CONFIG).write_text(json.dumps(values))

        return apply

    def first(arrays, suffix):
        return next(k for k in arrays if k.endswith(suffix))

    tampers = {
        "nan_weights": weights(lambda a: a.update({first(a, ".coef"): np.full_like(a[first(a, ".coef")], np.nan)})),
        "wrong_shape": weights(lambda a: a.update({first(a, ".coef"): a[first(a, ".coef")][:, :-5]})),
        "missing_array": weights(lambda a: a.pop(first(a, ".intercept"))),
        "pickled_array": lambda f: np.savez(f / WEIGHTS, x=np.array([{"a": 1}], dtype=object)),
        "truncated_weights": lambda f: (f / WEIGHTS).write_bytes((f / WEIGHTS).read_bytes()[:300]),
        "classes_not_list": config(lambda c: c.update(classes="Watches")),
        "encoder_outside": config(lambda c: c.update(encoders={"st:/usr/lib": "st:/usr/lib@1"})),
        "hf_clip_outside": config(lambda c: c.update(encoders={"hf-clip:/tmp": "hf-clip:/tmp@1"})),
        "bad_json": lambda f: (f / CONFIG).write_text("{"),
    }
    outcomes = {}
    for name, tamper in tampers.items():
        folder = work / "tampered" / name / "flipkart-text"
        shutil.rmtree(folder.parent, ignore_errors=True)
        shutil.copytree(models / "flipkart-text", folder)
        tamper(folder)
        command = [sys.executable, "-m", "skulens.cli.main", "serve", "--models", str(folder.parent), "--port", "1"]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=300,
            env={"PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        )
        output = done.stdout + done.stderr
        outcomes[name] = {
            "exit_code": done.returncode,
            "traceback": "Traceback" in output,
            "message": " ".join(output.split())[:300],
        }
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=1000, help="Concurrent connections (scaled to the open-file limit).")
    parser.add_argument("--schemathesis-examples", type=int, default=100, help="schemathesis cases per operation.")
    parser.add_argument(
        "--work", type=Path, default=None, help="Folder for the trained models (default /tmp/skulens-reliability)."
    )
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 4096), hard), hard))
    connections = min(args.connections, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 200)
    models = train_models(args.work) if args.work else train_models()
    work = models.parent
    record, detail = Recorder(), {"connections": connections}
    read = bytes_read_in_process(models)
    detail["chunked_oversize_in_process"] = read
    service = Service(models, header_timeout_s=TIMEOUT_S, body_timeout_s=TIMEOUT_S, max_upload_bytes=MAX_UPLOAD)
    try:
        asyncio.run(abuse_service(service, record, connections, detail))
        alive = service.alive()
        memory = service.memory_mb() if alive else {}
    finally:
        log = service.stop()
    detail["server_alive_after"] = alive
    detail["server_log_tracebacks"] = log.count("Traceback")
    detail["tampered_models"] = tampered_models(models, work)
    schemathesis_result = schemathesis_run(models, args.schemathesis_examples)
    for outcome in detail["tampered_models"].values():
        record.add(
            "tampered_model", "clean_error" if outcome["exit_code"] not in (0, None) and not outcome["traceback"] else "unclear"
        )
    limit = MAX_UPLOAD + 256 * 1024
    rejected = all(r["status"] == 413 and r["bytes_read"] <= limit + CHUNK for r in read.values()) and all(
        r["status"] == "413" for r in detail["chunked_oversize_socket"].values()
    )
    detail["statuses"] = {case: dict(counts) for case, counts in record.cases.items()}
    for case, counts in detail["statuses"].items():
        print(f"{case}: {counts}")
    print(f"schemathesis: {schemathesis_result['cases']} cases, {schemathesis_result['failures']} failures")
    print(f"peak RSS {memory.get('peak_rss_mb')} MB; chunked oversize rejected: {rejected}; 5xx: {record.server_errors}")
    update_results(
        RESULTS,
        {
            "abuse_cases": record.total,
            "abuse_5xx": record.server_errors,
            "abuse_peak_rss_mb": memory.get("peak_rss_mb"),
            "abuse_rss_before_mb": detail["memory_mb"]["start"]["rss_mb"],
            "abuse_rss_after_mb": memory.get("rss_mb"),
            "chunked_oversize_rejected": rejected,
            "abuse_detail": detail,
            "schemathesis_cases": schemathesis_result["cases"],
            "schemathesis_failures": schemathesis_result["failures"],
            "schemathesis_conformance_findings": sum(schemathesis_result["conformance_findings"].values()),
            "schemathesis_detail": schemathesis_result,
        },
        "abuse",
        "OMP_NUM_THREADS=1 python benchmarks/abuse.py " + " ".join(sys.argv[1:]),
    )


if __name__ == "__main__":
    main()
