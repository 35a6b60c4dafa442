"""Embeddings on disk, keyed by encoder identity + content hash of each input.

Layout: ``<root>/<encoder slug>/identity.json`` plus ``part-<n>.npz`` shards, each holding ``keys``
(sha256 hex strings) and ``vectors`` (float32). Shards are written atomically (temp file + rename), so
an interrupted run keeps every shard it finished and the next run resumes from there. Shards are read
with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np

CACHE_ENV = "SKULENS_CACHE"


def default_cache_dir() -> Path:
    """``$SKULENS_CACHE``, else ``~/.cache/skulens/embeddings``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "skulens" / "embeddings"


def content_key(data: bytes | str) -> str:
    """The sha256 hex digest of image bytes or UTF-8 text."""
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def _slug(identity: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", identity)[:60]
    return f"{readable}-{hashlib.sha256(identity.encode()).hexdigest()[:10]}"


class EmbeddingCache:
    """Vectors of one encoder identity. ``get`` looks keys up; ``put`` buffers; ``flush`` persists."""

    def __init__(self, root: str | Path, identity: str, dim: int) -> None:
        self.identity = identity
        self.dim = dim
        self.folder = Path(root) / _slug(identity)
        self.folder.mkdir(parents=True, exist_ok=True)
        marker = self.folder / "identity.json"
        if not marker.exists():
            marker.write_text(json.dumps({"identity": identity, "dim": dim}))
        self._vectors: dict[str, np.ndarray] = {}
        self._pending: dict[str, np.ndarray] = {}
        for shard in sorted(self.folder.glob("part-*.npz")):
            with np.load(shard, allow_pickle=False) as data:
                keys, vectors = data["keys"], data["vectors"]
            if vectors.ndim != 2 or vectors.shape[1] != dim:
                continue  # a shard from a different dimension cannot be trusted; it is re-encoded
            self._vectors.update(zip(keys.tolist(), vectors))

    def __len__(self) -> int:
        return len(self._vectors) + len(self._pending)

    def __contains__(self, key: str) -> bool:
        return key in self._vectors or key in self._pending

    def get(self, key: str) -> np.ndarray | None:
        vector = self._vectors.get(key)
        return vector if vector is not None else self._pending.get(key)

    def put(self, keys: list[str], vectors: np.ndarray) -> None:
        for key, vector in zip(keys, np.asarray(vectors, dtype=np.float32)):
            self._pending[key] = vector

    def flush(self) -> None:
        """Write buffered vectors as a new shard (atomic)."""
        if not self._pending:
            return
        keys = np.array(list(self._pending), dtype="<U64")
        vectors = np.stack(list(self._pending.values())).astype(np.float32)
        index = len(list(self.folder.glob("part-*.npz")))
        target = self.folder / f"part-{index:06d}-{os.getpid()}.npz"
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, keys=keys, vectors=vectors)
        os.replace(tmp, target)
        self._vectors.update(self._pending)
        self._pending = {}
