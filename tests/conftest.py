"""Shared fixtures: real encoders loaded once per session, small image factories, a tiny CLIP checkpoint."""

from __future__ import annotations

import io
import json
import os
import string
import struct
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

#: The real datasets live beside the checkout: <repo>/../shared/datasets.
DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(scope="session", autouse=True)
def _modest_threads():
    """The suite runs on a small shared machine: keep torch to a single thread."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _no_user_env(monkeypatch, tmp_path_factory):
    """Tests never read the user's dataset/cache settings; the cache default points into a temp folder.
    Commands do not track to MLflow unless a test turns it on (and then into a temp store, never the repo)."""
    monkeypatch.delenv("SKULENS_DATA", raising=False)
    monkeypatch.setenv("SKULENS_CACHE", str(tmp_path_factory.getbasetemp() / "default-cache"))
    monkeypatch.setenv("SKULENS_NO_TRACK", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(tmp_path_factory.getbasetemp() / "mlruns"))


# --------------------------------------------------------------------------------------------------
# Real encoders, one instance per session
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def lite0():
    from skulens.encoders import create_encoder

    return create_encoder("efficientnet-lite0")


@pytest.fixture(scope="session")
def lite2():
    from skulens.encoders import create_encoder

    return create_encoder("efficientnet-lite2")


@pytest.fixture(scope="session")
def minilm():
    from skulens.encoders import create_encoder

    return create_encoder("minilm")


class CountingEncoder:
    """Wraps a real encoder, counting the items passed to ``encode``.

    ``fail_after`` makes the ``(fail_after + 1)``-th call raise, simulating an interrupted run.
    ``batch_size`` overrides the wrapped encoder's batch size without touching the shared instance.
    """

    def __init__(self, inner: Any, batch_size: int | None = None, fail_after: int | None = None) -> None:
        self.inner = inner
        self.batch_size = batch_size or inner.batch_size
        self.fail_after = fail_after
        self.calls = 0
        self.items = 0

    def __getattr__(self, name: str) -> Any:  # name, modality, dim, identity, resolution, requires_fit...
        return getattr(self.inner, name)

    def encode(self, batch: Sequence[Any]) -> Any:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("simulated interruption")
        self.calls += 1
        self.items += len(batch)
        return self.inner.encode(batch)


@pytest.fixture
def counting() -> Callable[..., CountingEncoder]:
    return CountingEncoder


# --------------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------------


def _jpeg_bytes(size: tuple[int, int] = (64, 64), seed: int = 0, exif: Image.Exif | None = None) -> bytes:
    """A small JPEG with random-ish but deterministic content (so different seeds give different vectors)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    image = Image.fromarray(base).resize(size, Image.NEAREST)
    buffer = io.BytesIO()
    kwargs = {"exif": exif} if exif is not None else {}
    image.save(buffer, "JPEG", quality=90, **kwargs)
    return buffer.getvalue()


@pytest.fixture
def jpeg_bytes() -> Callable[..., bytes]:
    return _jpeg_bytes


@pytest.fixture
def write_jpeg() -> Callable[..., Path]:
    def write(path: Path, size: tuple[int, int] = (64, 64), seed: int = 0) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_jpeg_bytes(size, seed))
        return path

    return write


def write_huge_png(path: Path, width: int = 20_000, height: int = 20_000) -> Path:
    """A valid 1-bit grayscale PNG of ``width`` x ``height`` written chunk by chunk (tens of KB, no
    400-megapixel buffer is ever built)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row * 1000) for _ in range(height // 1000))
    idat += compressor.compress(row * (height % 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="session")
def huge_png(tmp_path_factory) -> Path:
    return write_huge_png(tmp_path_factory.mktemp("huge") / "huge.png")


# --------------------------------------------------------------------------------------------------
# A tiny, randomly initialised CLIP checkpoint with a real CLIP tokenizer (no network)
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder = tmp_path_factory.mktemp("tiny-clip")
    symbols = string.ascii_lowercase + string.digits + string.punctuation
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for symbol in symbols:
            vocab[symbol + suffix] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(str(folder))

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=32,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8
        ),
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(str(folder))
    return folder


# --------------------------------------------------------------------------------------------------
# Real data (integration)
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def datasets_root(monkeypatch) -> Path:
    if not DATASETS.is_dir():
        pytest.skip(f"real datasets not found at {DATASETS}")
    monkeypatch.setenv("SKULENS_DATA", str(DATASETS))
    return DATASETS
