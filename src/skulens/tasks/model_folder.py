"""Saved models are folders: ``config.json`` (task, encoders, classes, metrics) + ``weights.npz``.

Weights are plain numeric/string arrays read with ``allow_pickle=False``: a model folder handed to
skulens can never run code. Everything read from a folder is checked before use: sizes (the file and
every array, against zip bombs), the config's keys and types, finite weights, encoder paths (inside the
model folder or a root listed in ``$SKULENS_MODELS_ROOT``), and that the weights fit the encoders and
classes (:func:`check_restored`). A folder that fails any check raises one :class:`ModelFolderError`.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from skulens.errors import SkulensError
from skulens.outputs import atomic_file, folder_lock, write_text

CONFIG = "config.json"
WEIGHTS = "weights.npz"
#: Folders (separated by ``os.pathsep``) where encoders named by path in a saved model may live,
#: besides the model folder itself.
MODELS_ROOT_ENV = "SKULENS_MODELS_ROOT"
#: Largest ``weights.npz`` read, on disk and decompressed (all arrays together).
MAX_WEIGHTS_BYTES = 2 * 1024**3
#: Largest ``config.json`` read.
MAX_CONFIG_BYTES = 10 * 1024**2


class ModelFolderError(SkulensError, ValueError):
    """A folder that is not a skulens model of the expected task, or one that cannot be used here."""

    code = "model_folder"


def write_model_folder(folder: str | Path, config: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Save a model: weights then config, each written atomically, under the folder's lock (concurrent
    saves to one folder take turns, so the folder always holds one save's complete files)."""
    folder = Path(folder)
    with folder_lock(folder, wait=True):
        with atomic_file(folder / WEIGHTS) as temp, open(temp, "wb") as handle:
            np.savez(handle, **arrays)
        write_text(folder / CONFIG, json.dumps(config, indent=2, ensure_ascii=False))
    return folder


def _read_config(folder: Path) -> dict:
    config_path = folder / CONFIG
    if config_path.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelFolderError(f"{config_path} is over {MAX_CONFIG_BYTES:,} bytes; it is not a skulens model config")
    try:
        config = json.loads(config_path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelFolderError(f"{config_path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ModelFolderError(f"{config_path} holds a JSON {type(config).__name__}, not an object")
    return config


def _read_weights(weights_path: Path) -> dict[str, np.ndarray]:
    """The arrays of ``weights.npz``, refused when too large (compressed or not), pickled or not finite."""
    size = weights_path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise ModelFolderError(f"{weights_path} is {size:,} bytes, over the {MAX_WEIGHTS_BYTES:,}-byte limit for model weights")
    try:
        with zipfile.ZipFile(weights_path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > MAX_WEIGHTS_BYTES:
            raise ModelFolderError(
                f"{weights_path} unpacks to {unpacked:,} bytes, over the {MAX_WEIGHTS_BYTES:,}-byte limit for model weights"
            )
        with np.load(weights_path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except ModelFolderError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
        raise ModelFolderError(f"{weights_path} cannot be read safely: {exc}") from None
    for key, array in arrays.items():
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            raise ModelFolderError(
                f"{weights_path}: array '{key}' holds NaN or infinite values; the model is damaged, retrain it"
            )
        if array.dtype.kind not in "biufcSU":
            raise ModelFolderError(f"{weights_path}: array '{key}' has dtype {array.dtype}, which skulens never writes")
    return arrays


def read_model_folder(folder: str | Path, task: str) -> tuple[dict, dict[str, np.ndarray]]:
    """``(config, arrays)`` of a saved ``task`` model, after the size, JSON and finiteness checks."""
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG, folder / WEIGHTS
    if not folder.is_dir():
        raise ModelFolderError(f"model folder {folder} does not exist")
    if not config_path.is_file() or not weights_path.is_file():
        raise ModelFolderError(f"{folder} is not a skulens model: it needs {CONFIG} and {WEIGHTS} (written by save())")
    config = _read_config(folder)
    if config.get("task") != task:
        raise ModelFolderError(f"{folder} holds a {str(config.get('task'))[:50]!r} model, not a '{task}' model")
    return config, _read_weights(weights_path)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_encoders(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


#: Checks of the config keys a saved model must have, by kind of value.
SCHEMA_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "label": (lambda v: isinstance(v, (str, int)) and not isinstance(v, bool), "a column name or a level number"),
    "str_list": (_is_str_list, "a list of strings"),
    "classes": (lambda v: _is_str_list(v) and len(v) >= 2 and len(set(v)) == len(v), "a list of at least 2 distinct names"),
    "encoders": (_is_encoders, "a non-empty object of encoder name -> identity"),
    "dict": (lambda v: isinstance(v, dict), "an object"),
    "int_list": (lambda v: isinstance(v, list) and bool(v) and all(type(x) is int for x in v), "a non-empty list of integers"),
    "float_list": (
        lambda v: isinstance(v, list) and all(type(x) in (int, float) and np.isfinite(x) for x in v),
        "a list of finite numbers",
    ),
}


def array_part(arrays: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays saved under ``prefix.`` with the prefix removed (one component of a model's weights)."""
    return {k[len(prefix) + 1 :]: v for k, v in arrays.items() if k.startswith(f"{prefix}.")}


def saved_training_ids(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """The sha256 of each training row's id saved with a model (empty for models saved without them)."""
    return np.asarray(arrays.get("training.id_sha256", np.zeros(0, dtype="S64")), dtype="S64")


def training_record(label_shift: Any, training_ids: np.ndarray) -> tuple[dict, dict[str, np.ndarray]]:
    """The ``config.json`` entries and arrays of a predictor's label-shift adaptation (``None``: none) and the
    sha256 of its training rows' ids (read back by :func:`restore_label_shift` and :func:`saved_training_ids`)."""
    config = {
        "label_shift": label_shift.config() if label_shift is not None else None,
        "training_rows": int(len(training_ids)),
        "training_ids": "sha256 of each training row's id, in weights.npz 'training.id_sha256'",
    }
    arrays = {"training.id_sha256": training_ids}
    if label_shift is not None:
        arrays.update({f"label_shift.{k}": v for k, v in label_shift.to_arrays().items()})
    return config, arrays


def restore_label_shift(config: dict, arrays: Mapping[str, np.ndarray], folder: str | Path):
    """The label-shift adaptation saved by :func:`training_record` (None for models saved before it: plain EM then)."""
    from skulens.heads.prior_shift import LabelShift

    shift = config.get("label_shift")
    try:
        return LabelShift.restore(shift, array_part(arrays, "label_shift")) if shift else None
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFolderError(f"model {folder}: 'label_shift' is damaged ({exc}); retrain the model") from None


def check_config(config: dict, required: Mapping[str, str], folder: str | Path) -> None:
    """Refuse a config missing a ``required`` key or holding a value of the wrong kind (see SCHEMA_CHECKS)."""
    for key, kind in required.items():
        check, what = SCHEMA_CHECKS[kind]
        if key not in config:
            raise ModelFolderError(f"model {folder}: {CONFIG} has no '{key}'; the folder is damaged or not written by skulens")
        if not check(config[key]):
            raise ModelFolderError(f"model {folder}: '{key}' in {CONFIG} should be {what}; the folder is damaged")


#: A number setting's kind and inclusive range: ``(int | float | bool, low, high)``.
NumberLimit = tuple[type, float, float]


def check_numbers(values: Any, limits: Mapping[str, NumberLimit], folder: str | Path, where: str) -> None:
    """Refuse settings of a model (``where``: the config key holding them) of the wrong type or outside
    their range, before anything is allocated from them (a tampered ``dim`` of 200,000 is refused, not built).
    Settings missing from ``values`` keep their defaults; keys not in ``limits`` are not read."""
    if not isinstance(values, dict):
        raise ModelFolderError(f"model {folder}: '{where}' in {CONFIG} should be an object; the folder is damaged")
    for key, (kind, low, high) in limits.items():
        if key not in values:
            continue
        value = values[key]
        if kind is bool:
            fits = isinstance(value, bool)
        elif kind is int:
            fits = type(value) is int and low <= value <= high
        else:
            fits = type(value) in (int, float) and bool(np.isfinite(value)) and low <= value <= high
        if not fits:
            what = "true or false" if kind is bool else f"{'an integer' if kind is int else 'a number'} in {low:g}..{high:g}"
            raise ModelFolderError(f"model {folder}: '{where}.{key}' in {CONFIG} should be {what}; the folder is damaged")


def models_roots() -> list[Path]:
    """The folders listed in ``$SKULENS_MODELS_ROOT`` (resolved), where path-named encoders may live."""
    value = os.environ.get(MODELS_ROOT_ENV, "")
    return [Path(part).expanduser().resolve() for part in value.split(os.pathsep) if part.strip()]


def encoder_sources(names: list[str], folder: str | Path) -> dict[str, str]:
    """For encoders named by path (``st:PATH``, ``hf-clip:PATH``...), the name to create them from.

    A relative ``PATH`` is taken inside the model folder. The resolved path (symlinks followed) must be
    inside the model folder or one of :func:`models_roots`; anything else is refused, so a model folder
    cannot make skulens load files from anywhere on disk.
    """
    folder = Path(folder).resolve()
    allowed = [folder, *models_roots()]
    sources = {}
    for name in names:
        prefix, colon, argument = name.partition(":")
        if not colon:
            continue
        if not argument or "\x00" in argument:
            raise ModelFolderError(f"model {folder}: encoder {name[:200]!r} names no usable path")
        path = Path(argument).expanduser()
        full = (path if path.is_absolute() else folder / path).resolve()
        if not any(full == root or root in full.parents for root in allowed):
            raise ModelFolderError(
                f"model {folder} names encoder {name[:200]!r} at {full}, outside the model folder and the models "
                f"root; put the encoder inside the model folder or list its folder in ${MODELS_ROOT_ENV}"
            )
        sources[name] = f"{prefix}:{full}"
    return sources


def training_encoder_names(names: list[str], out: str | Path) -> tuple[list[str], list[str]]:
    """Encoder names for a model about to be trained into ``out``: a path-named encoder given relative
    to the working folder (``finetuned:runs/ft``) becomes absolute, as a saved model would otherwise look
    for it inside its own folder. Also returns a warning for each one that a saved model in ``out`` will
    not be allowed to load (outside ``out`` and ``$SKULENS_MODELS_ROOT``), saying what to do."""
    out = Path(out).expanduser().resolve()
    allowed = [out, *models_roots()]
    resolved, warnings = [], []
    for name in names:
        prefix, colon, argument = name.partition(":")
        path = Path(argument).expanduser()
        if not colon or not argument or not path.exists():
            resolved.append(name)
            continue
        full = path.resolve()
        resolved.append(f"{prefix}:{full}")
        if not any(full == root or root in full.parents for root in allowed):
            warnings.append(
                f"encoder {name} is stored as {prefix}:{full}, outside {out}; to load the model later (predict, serve) "
                f"set {MODELS_ROOT_ENV}={full.parent} or put the encoder folder inside the model folder"
            )
    return resolved, warnings


def check_restored(fusion: Any, zero_row: Mapping[str, Any], n_classes: int, folder: str | Path) -> None:
    """Refuse restored heads that do not take the encoders' features or do not give ``n_classes``
    finite probabilities (a tampered or mismatched ``weights.npz``), by predicting ``zero_row``: one
    all-zero feature row per encoder, as the encoders would give it."""
    dims = {name: block.shape[1] for name, block in zero_row.items()}
    heads = getattr(fusion, "heads_", None) or {"head": getattr(fusion, "head_", None)}
    for name, head in heads.items():
        rows = getattr(getattr(head, "coef_", None), "shape", (None,))[0]
        if rows is not None and rows != (1 if n_classes == 2 else n_classes):
            raise ModelFolderError(
                f"model {folder}: the head for '{name}' scores {rows} classes but {CONFIG} names {n_classes}; "
                "the folder is damaged (retrain the model)"
            )
    for name, head in getattr(fusion, "heads_", {}).items():
        takes = getattr(head, "n_features_in_", None)
        if name in dims and takes is not None and takes != dims[name]:
            raise ModelFolderError(
                f"model {folder}: the head for encoder '{name}' takes {takes} features but the encoder gives {dims[name]}; "
                "the weights do not belong to these encoders (retrain the model)"
            )
    present = {name: np.ones(1, dtype=bool) for name in dims}
    try:
        proba = np.asarray(fusion.predict_proba(zero_row, present))
    except Exception as exc:  # noqa: BLE001 - any failure here means the weights do not fit
        raise ModelFolderError(
            f"model {folder}: its weights do not fit its encoders and classes ({type(exc).__name__}: {exc})"
        ) from None
    if proba.shape != (1, n_classes) or not np.isfinite(proba).all():
        raise ModelFolderError(
            f"model {folder}: its weights give {proba.shape[-1] if proba.ndim else 0} finite-or-not scores for "
            f"{n_classes} classes; the folder is damaged (retrain the model)"
        )


@contextmanager
def restoring(folder: str | Path) -> Iterator[None]:
    """Turn the errors of restoring a damaged folder (missing arrays, wrong types) into one
    :class:`ModelFolderError` naming it."""
    try:
        yield
    except ModelFolderError:
        raise
    except KeyError as exc:
        raise ModelFolderError(
            f"model {folder} is damaged or not written by this skulens (missing array or key {exc}); retrain it"
        ) from None
    except (IndexError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise ModelFolderError(
            f"model {folder} is damaged or not written by this skulens ({type(exc).__name__}: {exc}); retrain it"
        ) from None


def read_task(folder: str | Path) -> str:
    """The task a model folder holds (``categorize``, ``reviews``...)."""
    config_path = Path(folder) / CONFIG
    if not config_path.is_file():
        raise ModelFolderError(f"{folder} is not a skulens model (no {CONFIG})")
    task = _read_config(Path(folder)).get("task", "unknown")
    return task if isinstance(task, str) else "unknown"
