"""The model registry: model folders loaded into predictors, each with its own micro-batching worker.

``load_models(folder)`` loads every saved model folder under ``folder``; :class:`LoadedModel` serves a
predictor through the :class:`~skulens.tasks.predictor.Predictor` contract alone: a predictor that says it
is ``batched`` gets a :class:`~skulens.runtime.batcher.MicroBatcher` over its ``serve_batch``, every one is
warmed up with its own ``warm_up``, and what it reads and which encoders it uses come from ``modalities``
and ``encoder_identities()``. Nothing here depends on the task; no features are built here.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from skulens.errors import SkulensError
from skulens.runtime.batcher import MicroBatcher
from skulens.runtime.inputs import product_text
from skulens.tasks.predictor import Predictor

log = logging.getLogger(__name__)

#: Tasks the service and the UI serve, and how to import their predictor (imported lazily).
TASK_PREDICTORS = {
    "categorize": ("skulens.tasks.categorize", "CategoryPredictor"),
    "reviews": ("skulens.tasks.reviews", "ReviewPredictor"),
    "align": ("skulens.tasks.align", "AlignmentModel"),
    "caption": ("skulens.tasks.caption", "CaptionModel"),
    "rating": ("skulens.tasks.product_rating", "RatingPredictor"),
}


class ModelLoadError(SkulensError, RuntimeError):
    """A models folder that cannot be served; the message names the folder and what to do."""

    code = "model_load"


@dataclass
class LoadedModel:
    """One loaded predictor, its folder, and the worker that runs its requests."""

    name: str
    task: str
    predictor: Predictor
    folder: Path
    batcher: MicroBatcher | None = field(default=None, repr=False)

    @property
    def classes(self) -> list[str]:
        classes = getattr(self.predictor, "classes_", None)
        return [str(c) for c in classes] if classes is not None else []

    @property
    def encoders(self) -> dict[str, str]:
        """Encoder name -> identity (name, version and weights hash)."""
        return self.predictor.encoder_identities()

    @property
    def metrics(self) -> dict:
        """The scalar metrics saved with the model (accuracy, macro_f1...)."""
        metrics = getattr(self.predictor, "metrics_", None) or {}
        return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}

    @property
    def reads_images(self) -> bool:
        return "image" in self.predictor.modalities

    @property
    def reads_text(self) -> bool:
        return "text" in self.predictor.modalities

    def text_of(self, title: str | None, description: str | None) -> str:
        """The product text this model reads from a title and a description."""
        fields = getattr(self.predictor, "text_fields", ("title", "description"))
        return product_text({"title": title, "description": description}, fields)

    def start(self, max_batch: int = 8) -> LoadedModel:
        """Start the worker of a ``batched`` predictor (its requests then go through ``batcher``); the others
        are called directly."""
        if self.predictor.batched:
            self.batcher = MicroBatcher(self.predictor.serve_batch, max_batch=max_batch, name=self.name)
        return self

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()

    def warm_up(self) -> None:
        """One tiny prediction so the first real request does not pay for lazy initialisation."""
        self.predictor.warm_up()


def _load_predictor(folder: Path, task: str) -> Predictor:
    from importlib import import_module

    module_name, class_name = TASK_PREDICTORS[task]
    try:
        cls = getattr(import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ModelLoadError(f"model {folder} is a '{task}' model, but this install cannot load it: {exc}") from None
    predictor = cls.load(folder)
    if not isinstance(predictor, Predictor):
        raise ModelLoadError(f"model {folder}: {class_name} does not keep the Predictor contract (skulens.tasks.predictor)")
    return predictor


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
    for model in sorted(models.values(), key=lambda m: (-len(m.encoders), m.name)):
        defaults.setdefault(model.task, model.name)
    return defaults


def task_models(models: dict[str, LoadedModel], task: str) -> list[str]:
    """The names of the loaded models of ``task``, the default first (what a model picker offers)."""
    default = default_models(models).get(task)
    return sorted((m.name for m in models.values() if m.task == task), key=lambda n: (n != default, n))
