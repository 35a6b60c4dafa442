"""Encode a catalog's images or texts in batches, through the embedding cache, with progress.

Image decoding runs in a thread pool one batch ahead of the model, so decode and inference overlap.
An image encoder with a ``prepare(image)`` method (resize, to array) has it run in those threads too,
and gets the prepared items in ``encode``.
A row whose image cannot be used is reported (``issues``) and marked absent (``present``); every other
row is still encoded. Cached rows are found with one vectorised :meth:`EmbeddingCache.get_many` per
batch (images) or per catalog (texts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from skulens.cache import EmbeddingCache, content_key, default_cache_dir
from skulens.catalog.images import DEFAULT_MAX_PIXELS, ImageLoadError, decode_image, read_image_bytes
from skulens.catalog.schema import Catalog, CatalogError, RowIssue
from skulens.encoders.base import Encoder, as_float32
from skulens.progress import progress_bar

#: The text a text encoder sees by default; the same fields ``Catalog.texts()`` joins, so an encoder
#: fitted on ``catalog.texts()`` (tfidf) encodes exactly what it was fitted on.
DEFAULT_TEXT_FIELDS = ("title", "description")


@dataclass
class Embeddings:
    """One encoder's vectors for a catalog: ``vectors[i]`` belongs to ``ids[i]``.

    Rows with nothing to encode (no image, unreadable image, empty text) have ``present[i] == False``
    and a zero vector. ``encoded`` and ``cached`` count what this run computed vs found in the cache.
    """

    encoder: str
    ids: list[str]
    vectors: np.ndarray | sp.csr_matrix
    present: np.ndarray
    issues: list[RowIssue] = field(default_factory=list)
    encoded: int = 0
    cached: int = 0

    def save(self, folder: str | Path, issue: Sequence[str | None] | None = None) -> Path:
        """Write ``embeddings.npz`` (ids, vectors, present, and ``issue``: each row's problems, "" when
        none) to ``folder``; no pickle needed to read it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        vectors = self.vectors.toarray() if sp.issparse(self.vectors) else self.vectors
        issue = [m or "" for m in (issue if issue is not None else [None] * len(self.ids))]
        path = folder / "embeddings.npz"
        np.savez(
            path,
            ids=np.array(self.ids, dtype=np.str_),
            vectors=vectors,
            present=self.present,
            issue=np.array(issue, dtype=np.str_),
        )
        return path


@dataclass(frozen=True)
class _ImageReader:
    """Reads, hashes and (unless cached) decodes and prepares one catalog image; runs in worker threads."""

    roots: tuple[Path, ...]
    draft: int | None
    max_pixels: int
    prepare: Callable[[Any], Any] | None
    cache: EmbeddingCache | None

    def __call__(self, path: str, skip_cached: bool = True) -> tuple[str, Any]:
        """The content key of the image at ``path`` and its pixels (None when already cached)."""
        data = read_image_bytes(path, self.roots)
        key = content_key(data)
        if skip_cached and self.cache is not None and key in self.cache:
            return key, None
        image = decode_image(data, name=path, max_pixels=self.max_pixels, draft_size=self.draft)
        return key, self.prepare(image) if self.prepare else image


def _embed_images(
    catalog: Catalog, encoder: Encoder, cache: EmbeddingCache | None, progress: bool, max_pixels: int, workers: int
) -> Embeddings:
    n = len(catalog)
    vectors = np.zeros((n, encoder.dim), dtype=np.float32)
    present = np.zeros(n, dtype=bool)
    issues: list[RowIssue] = []
    paths = catalog.frame["image"].tolist() if "image" in catalog.frame.columns else [None] * n
    rows = [i for i, path in enumerate(paths) if path]
    read = _ImageReader(
        catalog.image_roots, getattr(encoder, "resolution", None), max_pixels, getattr(encoder, "prepare", None), cache
    )
    batches = [rows[i : i + encoder.batch_size] for i in range(0, len(rows), encoder.batch_size)]
    encoded = cached = 0

    with ThreadPoolExecutor(max_workers=workers) as pool, progress_bar(len(rows), f"{encoder.name} images", progress) as bar:

        def submit(batch: list[int]) -> list[Future]:
            return [pool.submit(read, paths[i]) for i in batch]

        pending = submit(batches[0]) if batches else []
        try:
            for index, batch in enumerate(batches):
                futures, pending = pending, submit(batches[index + 1]) if index + 1 < len(batches) else []
                loaded: list[tuple[int, str, Any]] = []
                for row, future in zip(batch, futures):
                    try:
                        loaded.append((row, *future.result()))
                    except (ImageLoadError, OSError) as exc:
                        issues.append(RowIssue(catalog.source_row(row), catalog.frame.at[row, "id"], "image", str(exc)))
                if cache is not None and loaded:
                    hits, found = cache.get_many([key for _, key, _ in loaded])
                else:
                    hits, found = None, np.zeros(len(loaded), dtype=bool)
                todo_rows, todo_keys, todo_images = [], [], []
                for (row, key, image), hit in zip(loaded, found):
                    if hit:
                        continue
                    if image is None:  # listed in the cache but unreadable there (quarantined): decode now
                        try:
                            key, image = read(paths[row], skip_cached=False)
                        except (ImageLoadError, OSError) as exc:
                            issues.append(RowIssue(catalog.source_row(row), catalog.frame.at[row, "id"], "image", str(exc)))
                            continue
                    todo_rows.append(row)
                    todo_keys.append(key)
                    todo_images.append(image)
                if found.any():
                    hit_rows = [row for (row, _, _), hit in zip(loaded, found) if hit]
                    vectors[hit_rows], present[hit_rows] = hits[found], True
                    cached += len(hit_rows)
                if todo_images:
                    out = as_float32(encoder.encode(todo_images))
                    vectors[todo_rows], present[todo_rows] = out, True
                    encoded += len(todo_rows)
                    if cache is not None:
                        cache.put(todo_keys, out)
                        if index % 8 == 7:
                            cache.flush()
                bar.advance(len(batch))
        finally:
            for future in pending:
                future.cancel()
            if cache is not None:
                cache.flush()
    return Embeddings(encoder.identity, catalog.ids, vectors, present, issues, encoded, cached)


def _embed_texts(
    catalog: Catalog, encoder: Encoder, cache: EmbeddingCache | None, progress: bool, fields: Sequence[str]
) -> Embeddings:
    texts = catalog.texts(fields)
    present = np.array([bool(t.strip()) for t in texts], dtype=bool)
    if encoder.requires_fit:
        return Embeddings(encoder.identity, catalog.ids, encoder.encode(texts), present, encoded=len(texts))
    vectors = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    rows = np.flatnonzero(present)
    keys = [content_key(texts[row]) for row in rows]
    if cache is not None and len(rows):
        hits, found = cache.get_many(keys)
        vectors[rows[found]] = hits[found]
    else:
        found = np.zeros(len(rows), dtype=bool)
    todo = rows[~found].tolist()
    todo_keys = [key for key, hit in zip(keys, found) if not hit]
    step = max(encoder.batch_size * 4, 256)
    with progress_bar(len(todo), f"{encoder.name} texts", progress) as bar:
        try:
            for start in range(0, len(todo), step):
                batch = todo[start : start + step]
                out = as_float32(encoder.encode([texts[i] for i in batch]))
                vectors[batch] = out
                if cache is not None:
                    cache.put(todo_keys[start : start + step], out)
                    cache.flush()
                bar.advance(len(batch))
        finally:
            if cache is not None:
                cache.flush()
    return Embeddings(encoder.identity, catalog.ids, vectors, present, [], len(todo), int(found.sum()))


def embed_catalog(
    catalog: Catalog,
    encoder: Encoder,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: bool = False,
    text_fields: Sequence[str] = DEFAULT_TEXT_FIELDS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int = 2,
) -> Embeddings:
    """Embeddings of every row of ``catalog`` with ``encoder`` (cached unless ``use_cache=False``).

    ``text_fields`` are the columns a text encoder sees, joined as ``catalog.texts(text_fields)``; a
    fitted encoder must have been fitted on the same fields.
    """
    if encoder.requires_fit and not getattr(encoder, "is_fitted", True):
        raise CatalogError(f"encoder '{encoder.name}' must be fitted on training rows before embedding")
    if not use_cache or encoder.requires_fit:
        return _embed(catalog, encoder, None, progress, text_fields, max_pixels, workers)
    with EmbeddingCache(cache_dir or default_cache_dir(), encoder.identity, encoder.dim) as cache:
        return _embed(catalog, encoder, cache, progress, text_fields, max_pixels, workers)


def _embed(
    catalog: Catalog,
    encoder: Encoder,
    cache: EmbeddingCache | None,
    progress: bool,
    text_fields: Sequence[str],
    max_pixels: int,
    workers: int,
) -> Embeddings:
    if encoder.modality == "image":
        return _embed_images(catalog, encoder, cache, progress, max_pixels, workers)
    return _embed_texts(catalog, encoder, cache, progress, text_fields)
