"""The pretrained base space shipped inside skulens: an alignment model trained on the shared Myntra data
(MIT licence) by ``benchmarks/train_base_space.py``, so search, similar products, dedupe and zero-shot
work on a new catalog with no training (``--model base``). Its identity is the sha256 of its weights file,
recorded in ``manifest.json``; a base space whose weights do not match is refused."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

from skulens.tasks.align.common import AlignmentError

#: The name that selects the packaged base space wherever an alignment model folder is expected.
BASE_NAME = "base"
MANIFEST = "manifest.json"
WEIGHTS = "weights.npz"


def base_space_folder() -> Path:
    """The packaged base-space folder (``skulens/data/base_space``)."""
    return Path(str(resources.files("skulens.data").joinpath("base_space")))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise AlignmentError(
            f"no base space at {folder} ({MANIFEST} missing); reinstall skulens or train one with benchmarks/train_base_space.py"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def verify_base_space(folder: Path) -> dict:
    """The manifest of the base space in ``folder`` after checking its weights hash; refuses a mismatch."""
    manifest = read_manifest(folder)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise AlignmentError(f"base space {folder} has no {WEIGHTS}; reinstall skulens")
    actual = file_sha256(weights)
    if actual != manifest.get("weights_sha256"):
        raise AlignmentError(
            f"base space weights {weights} have sha256 {actual}, but {folder / MANIFEST} records "
            f"{manifest.get('weights_sha256')}; refusing to use them (reinstall skulens or re-run benchmarks/train_base_space.py)"
        )
    return manifest


def is_base(name: str | Path | None) -> bool:
    return name is not None and str(name) == BASE_NAME


def write_manifest(folder: Path, **fields) -> dict:
    """Record the weights hash (and ``fields``: data, licence, command) beside a saved base space."""
    manifest = {"weights_sha256": file_sha256(folder / WEIGHTS), **fields}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
