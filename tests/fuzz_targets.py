"""Fuzz targets shared by the property tests (tests/test_fuzz_properties.py) and benchmarks/fuzz.py.

Each target feeds one input to a skulens entry point and returns normally when skulens gives a result
or its own error (``ImageLoadError``, ``CatalogError``, ``ModelFolderError``); any other exception
propagates and is a crash.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from skulens.catalog.images import ImageLoadError, decode_image
from skulens.catalog.readers import read_catalog, read_reviews
from skulens.catalog.schema import CatalogError
from skulens.tasks.model_folder import ModelFolderError

#: Small pixel budgets so a fuzzed header cannot make one execution slow.
FUZZ_MAX_PIXELS = 4_000_000
FUZZ_MAX_DECODED = 1_000_000
CATALOG_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")


def seed_images() -> list[bytes]:
    """One small valid image per format Pillow writes (mutations of these reach the decoders)."""
    rng = np.random.default_rng(0)
    pixels = Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8))
    seeds = []
    for fmt, image in (
        ("PNG", pixels),
        ("PNG", pixels.convert("P")),
        ("JPEG", pixels),
        ("GIF", pixels.convert("P")),
        ("BMP", pixels),
        ("TIFF", pixels),
        ("WEBP", pixels),
        ("ICO", pixels),
        ("PPM", pixels),
    ):
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        seeds.append(buffer.getvalue())
    return seeds


def image_target(data: bytes) -> None:
    """Decode ``data`` as the service does."""
    try:
        image = decode_image(data, name="fuzz", max_pixels=FUZZ_MAX_PIXELS, draft_size=64, max_decoded_pixels=FUZZ_MAX_DECODED)
    except ImageLoadError:
        return
    assert image.mode == "RGB" and image.width * image.height <= FUZZ_MAX_DECODED


def catalog_target(data: bytes, suffix: str, folder: Path) -> None:
    """Read ``data`` as a catalog file and as a reviews file with ``suffix``."""
    path = folder / f"fuzz{suffix}"
    path.write_bytes(data)
    for reader in (read_catalog, read_reviews):
        try:
            catalog = reader(path)
        except CatalogError:
            continue
        assert all(isinstance(value, str) for value in catalog.frame["id"])


class ModelTemplate:
    """A real saved model folder, copied and mutated for each fuzz input."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.config = json.loads((self.folder / "config.json").read_text())
        self.weights = (self.folder / "weights.npz").read_bytes()
        self.task = self.config["task"]

    def load(self, config: dict | bytes, weights: bytes, workdir: Path) -> None:
        """Load a copy of the template with ``config`` (a dict, or raw bytes) and ``weights`` bytes;
        a model that loads must predict finite probabilities."""
        from skulens.tasks.categorize import CategoryPredictor
        from skulens.tasks.reviews import ReviewPredictor

        target = Path(tempfile.mkdtemp(dir=workdir))
        try:
            raw = config if isinstance(config, bytes) else json.dumps(config).encode("utf-8", "surrogatepass")
            (target / "config.json").write_bytes(raw)
            (target / "weights.npz").write_bytes(weights)
            try:
                if self.task == "reviews":
                    predictor = ReviewPredictor.load(target)
                    out = predictor.predict_texts(["fine product"])[0]
                    assert np.isfinite(out["expected_rating"])
                else:
                    predictor = CategoryPredictor.load(target)
                    proba = predictor.predict_inputs([None], ["garden hose"])
                    assert proba.shape == (1, len(predictor.classes_)) and np.isfinite(proba).all()
            except ModelFolderError:
                return
        finally:
            shutil.rmtree(target, ignore_errors=True)


def mutate(data: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    """``data`` with bytes replaced at (position % len, value) and optionally cut to ``cut`` bytes."""
    buffer = bytearray(data)
    for position, value in flips:
        if buffer:
            buffer[position % len(buffer)] = value
    return bytes(buffer[:cut] if cut is not None else buffer)


class IndexTemplate:
    """A real saved product index (``VectorIndex``), copied with one of its files replaced per fuzz input."""

    FILES = ("manifest.json", "index.faiss", "metadata.parquet")

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.files = {name: (self.folder / name).read_bytes() for name in self.FILES}

    def load(self, name: str, data: bytes, workdir: Path) -> None:
        """Load a copy with file ``name`` replaced by ``data``: a ``SearchIndexError`` or an index that
        searches with finite scores."""
        from skulens.index import SearchIndexError, VectorIndex

        target = Path(tempfile.mkdtemp(dir=workdir))
        try:
            for file, content in self.files.items():
                (target / file).write_bytes(data if file == name else content)
            try:
                index = VectorIndex.load(target)
            except SearchIndexError:
                return
            query = np.ones((1, index.dim), dtype=np.float32) / np.sqrt(index.dim)
            hits = index.search(query, k=min(3, len(index)))[0]
            assert all(np.isfinite(hit.score) for hit in hits)
        finally:
            shutil.rmtree(target, ignore_errors=True)


def build_index_template(folder: Path) -> IndexTemplate:
    """A 60-vector flat index saved in ``folder``."""
    from skulens.index import VectorIndex

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    VectorIndex.build(vectors, [f"p{i}" for i in range(60)], "fuzz@1", kind="flat").save(folder)
    return IndexTemplate(folder)
