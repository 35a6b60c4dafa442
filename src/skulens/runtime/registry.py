"""The model registry: model folders loaded into predictors, each with its own micro-batching worker.

``load_models(folder)`` loads every saved model folder under ``folder``; :class:`LoadedModel` runs a
model's requests through its :class:`~skulens.runtime.batcher.MicroBatcher`. Categorize batches go
to ``CategoryPredictor.predict_inputs`` and review batches to ``ReviewPredictor.predict_texts``; no
features are built here.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skulens.errors import SkulensError
from skulens.runtime.batcher import MicroBatcher
from skulens.runtime.inputs import prepare_image, product_text, uses_images, uses_text

log = logging.getLogger(__name__)

#: Tasks the service and the UI serve, and how to import their predictor (imported lazily).
TASK_PREDICTORS = {
    "categorize": ("skulens.tasks.categorize", "CategoryPredictor"),
    "reviews": ("skulens.tasks.reviews", "ReviewPredictor"),
    "align": ("skulens.tasks.align", "AlignmentModel"),
    "caption": ("skulens.tasks.caption", "CaptionModel"),
}


class ModelLoadError(SkulensError, RuntimeError):
    """A models folder that cannot be served; the message names the folder and what to do."""

    code = "model_load"


@dataclass
class LoadedModel:
    """One loaded predictor, its folder, and the worker that runs its requests."""

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
        """Encoder name -> identity (name, version and weights hash)."""
        if self.task in ("align", "caption"):
            return dict(self.predictor.encoder_identities)
        return self.predictor.extractor.identities()

    @property
    def metrics(self) -> dict:
        """The scalar metrics saved with the model (accuracy, macro_f1...)."""
        metrics = getattr(self.predictor, "metrics_", None) or {}
        return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}

    @property
    def reads_images(self) -> bool:
        return self.task == "categorize" and uses_images(self.predictor)

    @property
    def reads_text(self) -> bool:
        return self.task == "reviews" or uses_text(self.predictor)

    def text_of(self, title: str | None, description: str | None) -> str:
        """The product text this model reads from a title and a description."""
        fields = getattr(self.predictor, "text_fields", ("title", "description"))
        return product_text({"title": title, "description": description}, fields)

    def _categorize_batch(self, items: list[tuple[Any, str]]) -> list[np.ndarray]:
        proba = self.predictor.predict_inputs([image for image, _ in items], [text for _, text in items])
        return list(proba)

    def _reviews_batch(self, texts: list[str]) -> list[dict]:
        return list(self.predictor.predict_texts(list(texts)))

    def start(self, max_batch: int = 8) -> LoadedModel:
        """Start the worker. Categorize items are ``(prepared image or None, text)``; review items are texts.
        Alignment models (search, zero-shot) are called directly and have no worker."""
        if self.task in ("align", "caption"):
            return self
        fn = self._categorize_batch if self.task == "categorize" else self._reviews_batch
        self.batcher = MicroBatcher(fn, max_batch=max_batch, name=self.name)
        return self

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()

    def warm_up(self) -> None:
        """One tiny prediction so the first real request does not pay for lazy initialisation."""
        if self.task == "categorize":
            from PIL import Image

            image = Image.new("RGB", (64, 64), (128, 128, 128)) if self.reads_images else None
            self.batcher([(prepare_image(self.predictor, image), "warm up")])
        elif self.task == "align":
            self.predictor.encode_texts(["warm up"])
        elif self.task == "caption":
            from PIL import Image

            self.predictor.generate([Image.new("RGB", (64, 64), (128, 128, 128))], beam=1)
        else:
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
            log.warning("skipping %s: '%s' models are not served", folder, task)
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
            try:
                model.warm_up()
            except Exception as exc:  # noqa: BLE001 - e.g. weights that do not fit the encoders
                model.close()
                raise ModelLoadError(f"model folder {folder} loads but cannot predict: {exc}") from None
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
    for model in sorted(models.values(), key=lambda m: (-len(m.predictor.encoders), m.name)):
        defaults.setdefault(model.task, model.name)
    return defaults


def task_models(models: dict[str, LoadedModel], task: str) -> list[str]:
    """The names of the loaded models of ``task``, the default first (what a model picker offers)."""
    default = default_models(models).get(task)
    return sorted((m.name for m in models.values() if m.task == task), key=lambda n: (n != default, n))
