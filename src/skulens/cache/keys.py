"""Where the embedding cache lives and how its entries and folders are named."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

CACHE_ENV = "SKULENS_CACHE"


def default_cache_dir() -> Path:
    """``$SKULENS_CACHE``, else ``~/.cache/skulens/embeddings``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "skulens" / "embeddings"


def content_key(data: bytes | str) -> str:
    """The sha256 hex digest of image bytes or UTF-8 text."""
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def folder_name(identity: str, dim: int) -> str:
    """A readable, collision-free folder name for one (encoder identity, dimension) pair."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", identity)[:60]
    return f"{readable}-{hashlib.sha256(f'{identity}|{dim}'.encode()).hexdigest()[:10]}"
