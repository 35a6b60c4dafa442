"""Loaded models for the service and the UI: a folder of model folders, and a micro-batching worker.

No modelling happens here. Products arrive as in-memory inputs (a decoded PIL image and/or text); they
are turned into the predictor's own feature blocks with the predictor's own encoders and scored by
the predictor's heads (``proba_from_features``). Requests that arrive while the model is busy are
run together as one batch, which is what lets one CPU-bound model serve many clients.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Tasks the service can serve, and how to import their predictor (imported lazily).
TASK_PREDICTORS = {
    "categorize": ("skulens.tasks.categorize", "CategoryPredictor"),
    "reviews": ("skulens.tasks.reviews", "ReviewPredictor"),
}


class ModelLoadError(RuntimeError):
    """A models folder that cannot be served; the message names the folder and what to do."""


# --------------------------------------------------------------------------------------------------
# Products in memory -> feature blocks -> probabilities
# --------------------------------------------------------------------------------------------------


def product_text(product: dict, fields: Sequence[str]) -> str:
    """The text a catalog row would give (fields joined like :meth:`Catalog.texts`)."""
    parts = [str(product.get(f) or "").strip() for f in fields]
    return ". ".join(p for p in parts if p)


def image_resolution(predictor: Any) -> int | None:
    """The largest input resolution of the predictor's image encoders (JPEG draft decoding size)."""
    sizes = []
    for name in predictor.encoders:
        encoder = predictor.extractor.encoder(name)
        if encoder.modality == "image":
            sizes.append(getattr(encoder, "resolution", None) or 0)
    return max(sizes) if sizes else None


def prepare_image(predictor: Any, image: Any) -> Any:
    """Do the image encoder's per-image preprocessing now (in the caller's thread, e.g. the decode pool).

    With exactly one image encoder that offers ``prepare`` (resize to its input array), the model worker
    then only runs the network; otherwise the decoded image is returned as it is.
    """
    encoders = [predictor.extractor.encoder(n) for n in predictor.encoders]
    images = [e for e in encoders if e.modality == "image"]
    if image is not None and len(images) == 1 and hasattr(images[0], "prepare"):
        return images[0].prepare(image)
    return image


def uses_images(predictor: Any) -> bool:
    return any(predictor.extractor.encoder(n).modality == "image" for n in predictor.encoders)


def categorize_inputs(predictor: Any, images: Sequence[Any], texts: Sequence[str]) -> np.ndarray:
    """Class probabilities for products given as decoded images (or ``None``) and texts.

    Uses ``predictor.predict_inputs`` when the predictor has one; otherwise builds the same
    :class:`~skulens.tasks.features.Features` that ``predict_proba(catalog)`` would, straight from
    memory (no temp files, no embedding cache), and asks the predictor's heads.
    """
    if hasattr(predictor, "predict_inputs"):
        return predictor.predict_inputs(list(images), list(texts))
    from skulens.encoders.base import as_float32
    from skulens.tasks.features import Features

    n = len(texts)
    blocks, present = {}, {}
    for name in predictor.encoders:
        encoder = predictor.extractor.encoder(name)
        if encoder.modality == "image":
            mask = np.array([image is not None for image in images], dtype=bool)
            vectors = np.zeros((n, encoder.dim), dtype=np.float32)
            if mask.any():
                vectors[mask] = as_float32(encoder.encode([images[i] for i in np.flatnonzero(mask)]))
        else:
            mask = np.array([bool(t.strip()) for t in texts], dtype=bool)
            if encoder.requires_fit:
                vectors = encoder.encode(list(texts))
            else:
                vectors = np.zeros((n, encoder.dim), dtype=np.float32)
                if mask.any():
                    vectors[mask] = as_float32(encoder.encode([texts[i] for i in np.flatnonzero(mask)]))
        blocks[name], present[name] = vectors, mask
    return predictor.proba_from_features(Features(blocks, present))


def top_k_from_proba(classes: Sequence[str], proba: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
    order = np.argsort(-proba, axis=1)[:, :k]
    return [[(str(classes[j]), float(proba[i, j])) for j in row] for i, row in enumerate(order)]


# --------------------------------------------------------------------------------------------------
# Micro-batching worker
# --------------------------------------------------------------------------------------------------


class MicroBatcher:
    """One worker thread runs ``fn(items) -> results`` for everything submitted.

    The worker takes whatever has queued up while it was busy (up to ``max_batch``) and runs it as one
    batch; a lone request is run at once, so batching adds no latency to a single client. Model calls
    are serialised through this one thread, so no lock is needed around the predictor.
    """

    _STOP = object()

    def __init__(self, fn: Callable[[list], list], max_batch: int = 32, name: str = "model") -> None:
        self.fn, self.max_batch = fn, max_batch
        self.name = name
        self.queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self._ensure_worker()

    def _ensure_worker(self) -> None:
        """(Re)start the worker thread; after :meth:`close` (e.g. an ASGI shutdown) the next submit revives it."""
        with self._lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name=f"skulens-{self.name}", daemon=True)
                self.thread.start()

    def submit(self, item: Any) -> Future:
        self._ensure_worker()
        future: Future = Future()
        self.queue.put((item, future))
        return future

    def __call__(self, items: Sequence[Any]) -> list:
        """Run ``items`` through the worker and wait (for callers that are threads themselves)."""
        futures = [self.submit(item) for item in items]
        return [f.result() for f in futures]

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is self._STOP:
                if self.queue.empty():
                    return
                continue  # requests arrived after the stop: serve them first
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is self._STOP:
                    self.queue.put(nxt)
                    break
                batch.append(nxt)
            # Requests whose caller went away (cancelled futures) are dropped, not computed.
            batch = [(item, future) for item, future in batch if future.set_running_or_notify_cancel()]
            if not batch:
                continue
            started = time.perf_counter()
            try:
                results = self.fn([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"model returned {len(results)} results for {len(batch)} inputs")
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting request
                for _, future in batch:
                    future.set_exception(exc)
                continue
            compute_ms = (time.perf_counter() - started) * 1000
            for (_, future), result in zip(batch, results):
                future.compute_ms, future.batch_size = compute_ms, len(batch)  # reported in Server-Timing
                future.set_result(result)

    def close(self) -> None:
        """Stop the worker after the requests already queued."""
        if self.thread is not None and self.thread.is_alive():
            self.queue.put(self._STOP)
            self.thread.join(timeout=5)


# --------------------------------------------------------------------------------------------------
# Loaded models
# --------------------------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    name: str
    task: str
    predictor: Any
    folder: Path
    batcher: MicroBatcher | None = field(default=None, repr=False)

    @property
    def classes(self) -> list[str]:
        classes = getattr(self.predictor, "classes_", None)
        return [str(c) for c in classes] if classes is not None else []

    @property
    def encoders(self) -> dict[str, str]:
        extractor = getattr(self.predictor, "extractor", None)
        if extractor is not None:
            try:
                return extractor.identities()
            except Exception:  # noqa: BLE001 - informational only
                pass
        names = getattr(self.predictor, "encoders", None) or []
        return {str(n): str(n) for n in names}

    @property
    def metrics(self) -> dict:
        metrics = getattr(self.predictor, "metrics_", None) or {}
        return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}

    # ----- categorize ----------------------------------------------------------------------------
    def _categorize_batch(self, items: list[tuple[Any, str]]) -> list[np.ndarray]:
        proba = categorize_inputs(self.predictor, [i for i, _ in items], [t for _, t in items])
        return list(proba)

    def text_of(self, title: str | None, description: str | None) -> str:
        fields = getattr(self.predictor, "text_fields", ("title", "description"))
        return product_text({"title": title, "description": description}, fields)

    # ----- reviews -------------------------------------------------------------------------------
    def _reviews_batch(self, texts: list[str]) -> list[dict]:
        return list(self.predictor.predict_texts(list(texts)))

    def start(self, max_batch: int = 8) -> LoadedModel:
        fn = self._categorize_batch if self.task == "categorize" else self._reviews_batch
        self.batcher = MicroBatcher(fn, max_batch=max_batch, name=self.name)
        return self

    def warm_up(self) -> None:
        """One tiny prediction so the first real request does not pay for lazy initialisation."""
        if self.task == "categorize":
            from PIL import Image

            image = Image.new("RGB", (64, 64), (128, 128, 128)) if uses_images(self.predictor) else None
            self.batcher([(prepare_image(self.predictor, image), "warm up")])
        elif self.task == "reviews":
            self.batcher(["warm up"])


def _load_predictor(folder: Path, task: str) -> Any:
    from importlib import import_module

    module_name, class_name = TASK_PREDICTORS[task]
    try:
        cls = getattr(import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ModelLoadError(f"model {folder} is a '{task}' model, but this install cannot load it: {exc}") from None
    return cls.load(folder)


def model_folders(models_dir: Path) -> list[Path]:
    """``models_dir`` itself when it is one model folder, else its sub-folders that hold a config.json."""
    from skulens.tasks.model_folder import CONFIG

    if (models_dir / CONFIG).is_file():
        return [models_dir]
    found = sorted(p for p in models_dir.iterdir() if p.is_dir() and (p / CONFIG).is_file())
    for other in sorted(p for p in models_dir.iterdir() if p.is_dir() and not (p / CONFIG).is_file()):
        log.info("skipping %s: not a model folder (no config.json)", other)
    return found


def load_models(models_dir: str | Path, max_batch: int = 8, warm_up: bool = True) -> dict[str, LoadedModel]:
    """Load every model folder under ``models_dir``; raise :class:`ModelLoadError` on the first broken one.

    ``max_batch`` caps how many queued requests one model call takes (CPU inference gains little from
    large batches, and smaller ones keep tail latency down).
    """
    from skulens.tasks.model_folder import ModelFolderError, read_task

    models_dir = Path(models_dir).expanduser()
    if not models_dir.is_dir():
        raise ModelLoadError(f"models folder {models_dir} does not exist; train one with `skulens train` or `make demo`")
    models: dict[str, LoadedModel] = {}
    for folder in model_folders(models_dir):
        try:
            task = read_task(folder)
        except (ModelFolderError, ValueError) as exc:  # ValueError: bad JSON
            raise ModelLoadError(f"model folder {folder} is broken: {exc}") from None
        if task not in TASK_PREDICTORS:
            log.warning("skipping %s: the service does not serve '%s' models", folder, task)
            continue
        started = time.perf_counter()
        try:
            predictor = _load_predictor(folder, task)
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to load is a broken model folder
            raise ModelLoadError(f"model folder {folder} is broken: {exc}") from None
        model = LoadedModel(folder.name, task, predictor, folder).start(max_batch)
        if warm_up:
            model.warm_up()
        models[model.name] = model
        log.info("loaded %s (%s) from %s in %.2fs", model.name, task, folder, time.perf_counter() - started)
    if not models:
        raise ModelLoadError(
            f"no servable model folders under {models_dir}: it needs sub-folders written by a predictor's save() "
            "(config.json + weights.npz)"
        )
    return models


def default_models(models: dict[str, LoadedModel]) -> dict[str, str]:
    """Per task, the model used when a request names none: the one with the most encoders, then by name."""
    defaults: dict[str, str] = {}
    for model in sorted(models.values(), key=lambda m: (-len(m.encoders), m.name)):
        defaults.setdefault(model.task, model.name)
    return defaults
