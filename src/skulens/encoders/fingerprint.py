"""Content hashes of model weight files, for encoder identities (and so for the embedding cache's keys).

A file is hashed (sha256) once; the digest is remembered by (path, size, mtime_ns) in memory and in
``weight-hashes.json`` in the embedding cache folder, so creating an encoder again costs a ``stat``
per file. A file replaced in place (fine-tuned weights, another checkpoint) changes size or mtime
and is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

#: Files of a model folder that decide its outputs: weights, configs, tokenizers and vocabularies.
WEIGHT_PATTERNS = (
    "*.safetensors",
    "*.bin",
    "*.onnx",
    "*.pt",
    "*.pth",
    "*.ckpt",
    "*.h5",
    "*.msgpack",
    "*.json",
    "*.txt",
    "*.model",
)
MEMO_NAME = "weight-hashes.json"
#: Characters of the combined digest kept in an identity.
SHORT = 12
_CHUNK = 1 << 20

_lock = threading.Lock()
_memory: dict[str, tuple[int, int, str]] = {}


def memo_path() -> Path:
    """``weight-hashes.json`` in the embedding cache folder (``$SKULENS_CACHE``, else
    ``~/.cache/skulens/embeddings``; the same folder as :func:`skulens.cache.default_cache_dir`,
    which sits above this layer)."""
    env = os.environ.get("SKULENS_CACHE")
    folder = Path(env).expanduser() if env else Path.home() / ".cache" / "skulens" / "embeddings"
    return folder / MEMO_NAME


def _read_memo(path: Path) -> dict[str, list]:
    try:
        memo = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def _write_memo(path: Path, updates: dict[str, tuple[int, int, str]]) -> None:
    """Merge ``updates`` into the memo file (atomic replace); a read-only folder just skips it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        memo = _read_memo(path)
        memo.update({name: list(entry) for name, entry in updates.items()})
        fd, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump(memo, handle)
        os.replace(temp, path)
    except OSError:
        pass


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def file_digests(paths: Iterable[str | Path]) -> dict[str, str]:
    """sha256 of each file, from the memo when its size and mtime are unchanged."""
    digests: dict[str, str] = {}
    fresh: dict[str, tuple[int, int, str]] = {}
    memo_file = memo_path()
    disk: dict[str, list] | None = None
    for given in paths:
        path = Path(given).resolve()
        name, stat = str(path), path.stat()
        with _lock:
            entry = _memory.get(name)
        if entry is None or entry[:2] != (stat.st_size, stat.st_mtime_ns):
            disk = _read_memo(memo_file) if disk is None else disk
            stored = disk.get(name)
            if isinstance(stored, list) and len(stored) == 3 and tuple(stored[:2]) == (stat.st_size, stat.st_mtime_ns):
                entry = (stat.st_size, stat.st_mtime_ns, str(stored[2]))
            else:
                entry = fresh[name] = (stat.st_size, stat.st_mtime_ns, sha256_file(path))
            with _lock:
                _memory[name] = entry
        digests[name] = entry[2]
    if fresh:
        _write_memo(memo_file, fresh)
    return digests


def weights_fingerprint(files: Iterable[str | Path], base: str | Path | None = None) -> str:
    """A short hash of the contents of ``files`` (names taken relative to ``base`` when given)."""
    paths = sorted(Path(f) for f in files)
    digests = file_digests(paths)
    combined = hashlib.sha256()
    for path in paths:
        name = path.relative_to(base).as_posix() if base is not None else path.name
        combined.update(f"{name}\0{digests[str(path.resolve())]}\n".encode())
    return combined.hexdigest()[:SHORT]


def folder_fingerprint(folder: str | Path, patterns: Iterable[str] = WEIGHT_PATTERNS) -> str:
    """A short hash of the weight, config and tokenizer files in ``folder`` and its subfolders
    (hidden folders such as ``.cache`` or ``.git`` are skipped)."""
    root = Path(folder).expanduser()
    files = {
        path
        for pattern in patterns
        for path in root.rglob(pattern)
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
    }
    return weights_fingerprint(files, base=root)
