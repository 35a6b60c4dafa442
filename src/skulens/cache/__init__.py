"""The embedding cache: vectors on disk, keyed by encoder identity + a content hash of each input.

- :mod:`skulens.cache.keys`: content keys, the default folder, folder names.
- :mod:`skulens.cache.index`: the SQLite index (key -> shard row, plus a journal of recent vectors).
- :mod:`skulens.cache.shards`: durable ``.npy`` shard files, memory-mapped on read.
- :mod:`skulens.cache.compaction`: journal -> shard, size-tiered shard merges.
- :mod:`skulens.cache.store`: :class:`EmbeddingCache`, which ties them together.
"""

from skulens.cache.keys import CACHE_ENV, content_key, default_cache_dir
from skulens.cache.store import EmbeddingCache

__all__ = ["CACHE_ENV", "EmbeddingCache", "content_key", "default_cache_dir"]
