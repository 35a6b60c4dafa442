"""Shared by benchmarks/abuse.py and soak.py: small real models trained here, a service started in a
child process on loopback, its memory read from /proc, and the products the clients send."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
#: Models are trained once into this folder and reused by later runs.
DEFAULT_WORK = Path(os.environ.get("SKULENS_RELIABILITY_WORK", "/tmp/skulens-reliability"))


def train_models(work: Path = DEFAULT_WORK, per_class: int = 40, review_rows: int = 3_000) -> Path:
    """``work/models`` with ``flipkart`` (EfficientNet-Lite0 + MiniLM + TF-IDF on ``per_class`` products
    of each Flipkart category), ``flipkart-text`` (TF-IDF) and ``reviews`` (TF-IDF on ``review_rows``)."""
    from skulens.catalog import load_catalog
    from skulens.tasks.categorize import CategoryPredictor
    from skulens.tasks.reviews import ReviewPredictor

    models = work / "models"
    done = work / "models.done"
    if done.is_file():
        return models
    catalog = load_catalog("flipkart")
    labels = catalog.labels(0)
    rows = [i for label in sorted(labels.dropna().unique()) for i in labels.index[labels == label][:per_class]]
    subset = catalog.subset(rows)
    cache = work / "cache"
    for name, encoders in (("flipkart", ["efficientnet-lite0", "minilm", "tfidf"]), ("flipkart-text", ["tfidf"])):
        CategoryPredictor(encoders=encoders, label=0, cache_dir=cache).fit(subset).save(models / name)
    reviews = load_catalog("reviews")
    ReviewPredictor(encoders=["tfidf"], cache_dir=cache).fit(reviews.head(review_rows)).save(models / "reviews")
    done.touch()
    return models


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """``create_app(models)`` served by :func:`skulens.serve.server.run_server` in a child process."""

    def __init__(self, models: Path, header_timeout_s: float = 10.0, body_timeout_s: float = 60.0, **limits) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        code = (
            "import sys, json\n"
            "from skulens.serve.app import create_app\n"
            "from skulens.serve.server import run_server\n"
            f"app = create_app({str(models)!r}, body_timeout_s={body_timeout_s}, **json.loads(sys.argv[1]))\n"
            f"run_server(app, '127.0.0.1', {self.port}, log_level='warning', header_timeout_s={header_timeout_s})\n"
        )
        import json

        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), HF_HUB_OFFLINE="1")
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, json.dumps(limits)], env=env, stderr=subprocess.PIPE, text=True
        )
        deadline = time.time() + 300
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service did not start: {self.process.stderr.read()[-2000:]}")
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.5)
        raise RuntimeError("the service did not become ready in 300 s")

    def memory_mb(self) -> dict[str, float]:
        """Current (VmRSS) and peak (VmHWM) resident memory of the service process, in MB."""
        fields = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
        return {"rss_mb": round(fields["VmRSS"], 1), "peak_rss_mb": round(fields["VmHWM"], 1)}

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> str:
        """Stop the service; its stderr (the log)."""
        self.process.terminate()
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return err


def products(limit: int = 64) -> list[tuple[bytes, str, str]]:
    """(image bytes, file name, title) of Flipkart products."""
    from skulens.catalog import load_catalog
    from skulens.catalog.images import read_image_bytes

    catalog = load_catalog("flipkart")
    rows = catalog.frame.sample(n=limit, random_state=1)
    return [(read_image_bytes(r.image, catalog.root), Path(r.image).name, str(r.title)) for r in rows.itertuples(index=False)]


def review_texts(limit: int = 200) -> list[str]:
    from skulens.catalog import load_catalog

    frame = load_catalog("reviews").frame
    return [str(t) for t in frame["review_text"].dropna().iloc[-limit:]]
