"""Saved models are folders: ``config.json`` (task, encoders, classes, metrics) + ``weights.npz``.

Weights are plain numeric/string arrays read with ``allow_pickle=False``: a model folder handed to
skulens can never run code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

CONFIG = "config.json"
WEIGHTS = "weights.npz"


class ModelFolderError(ValueError):
    """A folder that is not a skulens model of the expected task, or one that cannot be used here."""


def write_model_folder(folder: str | Path, config: dict, arrays: dict[str, np.ndarray]) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (WEIGHTS + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, folder / WEIGHTS)
    (folder / CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False))
    return folder


def read_model_folder(folder: str | Path, task: str) -> tuple[dict, dict[str, np.ndarray]]:
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG, folder / WEIGHTS
    if not folder.is_dir():
        raise ModelFolderError(f"model folder {folder} does not exist")
    if not config_path.is_file() or not weights_path.is_file():
        raise ModelFolderError(f"{folder} is not a skulens model: it needs {CONFIG} and {WEIGHTS} (written by save())")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelFolderError(f"{config_path} is not valid JSON: {exc}") from None
    if config.get("task") != task:
        raise ModelFolderError(f"{folder} holds a '{config.get('task')}' model, not a '{task}' model")
    try:
        with np.load(weights_path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (ValueError, OSError) as exc:
        raise ModelFolderError(f"{weights_path} cannot be read safely: {exc}") from None
    return config, arrays


def read_task(folder: str | Path) -> str:
    """The task a model folder holds (``categorize``, ``reviews``...)."""
    config_path = Path(folder) / CONFIG
    if not config_path.is_file():
        raise ModelFolderError(f"{folder} is not a skulens model (no {CONFIG})")
    return json.loads(config_path.read_text()).get("task", "unknown")
