"""Load benchmark of the skulens service: single-client latency and 20-client throughput.

Starts ``skulens serve`` (uvicorn) in a subprocess on 127.0.0.1 with the given models folder, waits for
``/ready``, then sends single-product ``POST /v1/categorize`` requests (image + title + description):
first from one client for ``--single-seconds`` (latency), then from ``--clients`` concurrent clients for
``--concurrent-seconds`` (throughput). Products are the Flipkart sample (``../shared/datasets``) when it
is there, else drawn images with short texts.

    python benchmarks/serve_load.py --models runs/demo/models

Writes ``benchmarks/results/serve_load.json`` and ``serve_load.md``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
TARGETS = {
    "single_p50_ms": ("<=", 50.0),
    "single_p99_ms": ("<=", 150.0),
    "concurrent_rps": (">=", 40.0),
    "concurrent_p99_ms": ("<=", 1000.0),
    "errors": ("<=", 0),
    "ready_seconds": ("<=", 5.0),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def products(limit: int = 64) -> list[tuple[bytes, str, str, str]]:
    """(image bytes, file name, title, description) for up to ``limit`` products."""
    try:
        from skulens.catalog import load_catalog
        from skulens.catalog.images import read_image_bytes

        catalog = load_catalog("flipkart")
        out = []
        for row in catalog.frame.head(limit).itertuples(index=False):
            data = read_image_bytes(row.image, catalog.root)
            out.append((data, Path(row.image).name, str(row.title), str(row.description)[:2000]))
        return out
    except Exception as exc:  # noqa: BLE001 - fall back to drawn products
        print(f"flipkart not available ({exc}); using drawn images", file=sys.stderr)
    from PIL import Image, ImageDraw

    out = []
    rng = np.random.default_rng(0)
    for i in range(limit):
        image = Image.new("RGB", (500, 500), tuple(int(v) for v in rng.integers(0, 256, 3)))
        ImageDraw.Draw(image).ellipse((50, 50, 450, 450), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        out.append((buffer.getvalue(), f"p{i}.jpg", f"product {i}", f"a product numbered {i}"))
    return out


def server_timing(header: str) -> dict[str, float]:
    """``decode;dur=1.2, queue;dur=0.0, model;dur=30.1;desc="batch of 3"`` -> {decode: 1.2, ..., batch: 3}."""
    out = {}
    for part in header.split(","):
        fields = [f.strip() for f in part.split(";")]
        for f in fields[1:]:
            if f.startswith("dur="):
                out[fields[0]] = float(f[4:])
            elif f.startswith('desc="batch of '):
                out["batch"] = float(f[len('desc="batch of ') : -1])
    return out


def request(
    client: httpx.Client, url: str, product, fields: dict | None = None, timings: list | None = None
) -> tuple[float, bool, str]:
    data, name, title, description = product
    started = time.perf_counter()
    try:
        response = client.post(
            url, files={"image": (name, data, "image/jpeg")}, data={"title": title, "description": description, **(fields or {})}
        )
        ok = response.status_code == 200
        why = "" if ok else f"{response.status_code} {response.text[:200]}"
        if ok and timings is not None and "server-timing" in response.headers:
            timings.append(server_timing(response.headers["server-timing"]))
    except httpx.HTTPError as exc:
        ok, why = False, f"{type(exc).__name__}: {exc}"
    return (time.perf_counter() - started) * 1000, ok, why


def run_clients(url: str, items, clients: int, seconds: float, fields: dict) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    timings: list[dict] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker(index: int) -> None:
        with httpx.Client(timeout=30) as client:
            i = index
            while time.perf_counter() < deadline:
                ms, ok, why = request(client, url, items[i % len(items)], fields, timings)
                i += clients
                with lock:
                    latencies.append(ms)
                    if not ok:
                        errors.append(why)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 2),
        "rps": round(len(latencies) / elapsed, 2),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p90_ms": round(float(np.percentile(lat, 90)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
        "max_ms": round(float(lat.max()), 1),
        "errors": len(errors),
        "error_examples": errors[:3],
        # where the time went inside the service (medians of the Server-Timing header)
        "server_median_ms": {
            key: round(float(np.median([t[key] for t in timings if key in t])), 1)
            for key in ("decode", "queue", "model", "batch")
            if any(key in t for t in timings)
        },
    }


def machine() -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", required=True, type=Path, help="folder of saved models (e.g. the demo models)")
    parser.add_argument("--single-seconds", type=float, default=15)
    parser.add_argument("--concurrent-seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--model-batch", type=int, default=None, help="the service's --model-batch (micro-batch cap)")
    parser.add_argument("--model", default=None, help="model name (default: the service's default categorizer)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "serve_load.json")
    parser.add_argument("--note", default="", help="free text stored with the result (e.g. machine shared with other jobs)")
    args = parser.parse_args(argv)

    items = products()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "skulens.cli.serve", "serve", "--models", str(args.models),
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    if args.model_batch:
        command += ["--model-batch", str(args.model_batch)]
    env = dict(os.environ)
    env.pop("SKULENS_API_KEY", None)
    at_start = machine()
    started = time.perf_counter()
    server = subprocess.Popen(command, env=env)
    try:
        ready_seconds = None
        while time.perf_counter() - started < 120:
            if server.poll() is not None:
                raise SystemExit(f"the service exited with code {server.returncode} before it was ready")
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    ready_seconds = time.perf_counter() - started
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        if ready_seconds is None:
            raise SystemExit("the service was not ready within 120 s")
        models = httpx.get(f"{base}/models").json()["models"]
        url = f"{base}/v1/categorize"
        fields = {"model": args.model} if args.model else {}
        with httpx.Client(timeout=30) as client:  # warm-up requests, not measured
            for product in items[:5]:
                request(client, url, product, fields)
        single = run_clients(url, items, 1, args.single_seconds, fields)
        concurrent = run_clients(url, items, args.clients, args.concurrent_seconds, fields)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()

    default = next((m for m in models if m["name"] == args.model), None) or next(
        (m for m in models if m["task"] == "categorize" and m["default"]), models[0]
    )
    result = {
        "single_p50_ms": single["p50_ms"],
        "single_p99_ms": single["p99_ms"],
        "concurrent_rps": concurrent["rps"],
        "concurrent_p99_ms": concurrent["p99_ms"],
        "errors": single["errors"] + concurrent["errors"],
        "ready_seconds": round(ready_seconds, 2),
        "single": single,
        "concurrent": {**concurrent, "clients": args.clients},
        "model": {"name": default["name"], "encoders": default["encoders"], "classes": len(default["classes"])},
        "payload": "one product per request: multipart image (Flipkart JPEG) + title + description",
        "machine": {**at_start, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "note": args.note,
        "command": " ".join(
            shlex.quote(a) for a in [Path(sys.executable).name, "benchmarks/serve_load.py", *(argv or sys.argv[1:])]
        ),
    }
    result["targets"] = {
        key: {"target": f"{op} {value}", "met": (result[key] <= value) if op == "<=" else (result[key] >= value)}
        for key, (op, value) in TARGETS.items()
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return result


def markdown(result: dict) -> str:
    lines = [
        "# Service load benchmark",
        "",
        f"Model `{result['model']['name']}` ({', '.join(result['model']['encoders'])}); {result['payload']}.",
        "",
        "| metric | value | target | met |",
        "|---|---:|---|---|",
    ]
    for key, check in result["targets"].items():
        lines.append(f"| {key} | {result[key]} | {check['target']} | {'yes' if check['met'] else 'no'} |")
    m = result["machine"]
    lines += [
        "",
        f"Single client: {result['single']['requests']} requests in {result['single']['seconds']} s. "
        f"{result['concurrent']['clients']} clients: {result['concurrent']['requests']} requests in "
        f"{result['concurrent']['seconds']} s (p50 {result['concurrent']['p50_ms']} ms).",
        "",
        f"Inside the service (medians, ms; `batch` = requests per model call): single client "
        f"{result['single']['server_median_ms']}; {result['concurrent']['clients']} clients {result['concurrent']['server_median_ms']}.",
        "",
        f"Machine: {m['platform']}, {m['cpus']} CPUs, torch {m.get('torch')} ({m.get('torch_threads')} threads); "
        f"load average {m['load_average_at_start']} at start, {m['load_average_at_end']} at end.",
    ]
    if result.get("note"):
        lines += ["", f"Note: {result['note']}"]
    lines += ["", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
