"""The embedding cache (hits, misses, resume after interruption) and embed_catalog end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from skulens.cache import EmbeddingCache, content_key, default_cache_dir
from skulens.catalog import CatalogError, read_catalog
from skulens.embed import embed_catalog
from skulens.encoders.text import TfidfEncoder

N_IMAGES = 6


@pytest.fixture
def image_catalog(tmp_path, write_jpeg):
    root = tmp_path / "shop"
    for i in range(N_IMAGES):
        write_jpeg(root / "img" / f"p{i}.jpg", seed=100 + i)
    pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(N_IMAGES)],
            "title": [f"Product number {i}" for i in range(N_IMAGES)],
            "image": [f"img/p{i}.jpg" for i in range(N_IMAGES)],
        }
    ).to_csv(root / "catalog.csv", index=False)
    return read_catalog(root / "catalog.csv")


def _stored(cache_dir, encoder) -> EmbeddingCache:
    """The cache ``embed_catalog`` used for ``encoder`` under ``cache_dir``."""
    return EmbeddingCache(cache_dir, encoder.identity, encoder.dim)


def _image_keys(catalog, rows) -> list[str]:
    return [content_key((catalog.root / f"img/p{i}.jpg").read_bytes()) for i in rows]


def _vector(i: int, dim: int = 16) -> np.ndarray:
    """A deterministic vector per item, so any process can check what another one wrote."""
    return np.random.default_rng(i).random(dim, dtype=np.float32)


def _keys(items) -> list[str]:
    return [content_key(f"item {i}") for i in items]


# A writer process: item vectors in batches (put + flush), checking every vector it reads back.
WRITER = """
import sys
import numpy as np
from skulens.cache import EmbeddingCache, content_key

root, start, stop, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cache = EmbeddingCache(root, "writer@1", 16, journal_rows=16)
for first in range(start, stop, batch):
    items = range(first, min(first + batch, stop))
    keys = [content_key(f"item {i}") for i in items]
    expected = np.stack([np.random.default_rng(i).random(16, dtype=np.float32) for i in items])
    vectors, found = cache.get_many(keys)
    if not np.array_equal(vectors[found], expected[found]):
        sys.exit(f"wrong vector read back near item {first}")
    cache.put(keys, expected)
    cache.flush()
    print(first, flush=True)
cache.close()
"""


def _writer(root, start, stop, batch=5) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", WRITER, str(root), str(start), str(stop), str(batch)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


# --------------------------------------------------------------------------------------------------
# EmbeddingCache on its own
# --------------------------------------------------------------------------------------------------


def test_content_key():
    assert content_key("abc") == content_key(b"abc")
    assert len(content_key(b"x")) == 64 and content_key(b"x") != content_key(b"y")


def test_default_cache_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SKULENS_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"


def test_cache_put_flush_reload(tmp_path):
    cache = EmbeddingCache(tmp_path, "enc@1", 3)
    keys = _keys(range(4))
    vectors = np.arange(12, dtype=np.float64).reshape(4, 3)
    cache.put(keys[:2], vectors[:2])
    assert len(cache) == 2 and keys[0] in cache and cache.get(keys[3]) is None
    assert EmbeddingCache(tmp_path, "enc@1", 3).get(keys[0]) is None  # buffered until flush
    cache.flush()
    cache.put(keys[2:], vectors[2:])
    cache.flush()
    cache.flush()  # nothing pending: nothing written
    assert len(cache.shard_files()) == 0 and not list(cache.shard_folder.iterdir())  # small writes go to the journal
    assert json.loads((cache.folder / "identity.json").read_text()) == {"identity": "enc@1", "dim": 3}
    cache.close()

    again = EmbeddingCache(tmp_path, "enc@1", 3)
    assert len(again) == 4
    np.testing.assert_array_equal(np.stack([again.get(k) for k in keys]), vectors.astype(np.float32))
    assert again.get(keys[0]).dtype == np.float32
    other = EmbeddingCache(tmp_path, "enc@2", 3)  # another identity: another folder, empty
    assert len(other) == 0 and other.folder != again.folder
    wrong_dim = EmbeddingCache(tmp_path, "enc@1", 5)  # vectors of another size are never returned
    assert len(wrong_dim) == 0 and wrong_dim.get(keys[0]) is None
    with pytest.raises(ValueError, match="dimension 3"):
        again.put(keys[:1], np.zeros((1, 4)))


def test_get_many_reads_buffer_journal_and_shards(tmp_path):
    cache = EmbeddingCache(tmp_path, "enc@1", 16)
    cache.put(_keys(range(0, 10)), np.stack([_vector(i) for i in range(0, 10)]))
    cache.compact()  # items 0-9 in a shard
    cache.put(_keys(range(10, 20)), np.stack([_vector(i) for i in range(10, 20)]))
    cache.flush()  # items 10-19 in the journal
    cache.put(_keys(range(20, 25)), np.stack([_vector(i) for i in range(20, 25)]))  # 20-24 buffered
    assert len(cache.shard_files()) == 1
    items = [24, 3, 99, 15, 3, 0, 19, 21, -1]
    vectors, found = cache.get_many(_keys(items))
    assert vectors.shape == (len(items), 16) and vectors.dtype == np.float32
    assert found.tolist() == [i >= 0 and i < 25 for i in items]
    for row, item in enumerate(items):
        np.testing.assert_array_equal(vectors[row], _vector(item) if found[row] else np.zeros(16, np.float32))
    empty, none_found = cache.get_many([])
    assert empty.shape == (0, 16) and none_found.shape == (0,)


def test_opening_reads_no_shard(tmp_path, monkeypatch):
    cache = EmbeddingCache(tmp_path, "enc@1", 16, journal_rows=10)
    for first in range(0, 100, 10):
        cache.put(_keys(range(first, first + 10)), np.stack([_vector(i) for i in range(first, first + 10)]))
        cache.flush()
    assert len(cache.shard_files()) >= 3
    cache.close()

    loads = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda *args, **kwargs: loads.append(args[0]) or real_load(*args, **kwargs))
    opened = EmbeddingCache(tmp_path, "enc@1", 16, journal_rows=10)
    assert len(opened) == 100 and _keys([5])[0] in opened and _keys([500])[0] not in opened
    assert loads == []  # opening, len and membership read the index only
    np.testing.assert_array_equal(opened.get(_keys([5])[0]), _vector(5))
    assert len(loads) == 2  # the one shard holding item 5, memory-mapped, and its row checksums
    vectors, found = opened.get_many(_keys(range(100)))
    assert found.all() and len(loads) == 2 * len(opened.shard_files())  # each shard (and checksums) read once, then reused
    np.testing.assert_array_equal(vectors, np.stack([_vector(i) for i in range(100)]))


def test_many_single_writes_keep_one_index_and_few_shards(tmp_path):
    cache = EmbeddingCache(tmp_path, "enc@1", 16, journal_rows=8, fanout=4)
    for i in range(1000):  # one product at a time, as single predictions write
        cache.put(_keys([i]), _vector(i)[None])
        cache.flush()
    # compaction ran ~125 times; size tiers of 8, 32, 128, 512 rows hold at most 3 shards each
    assert 1 <= len(cache.shard_files()) <= 12
    shards_and_checksums = sorted([*cache.shard_files(), *(f"{f}.crc32" for f in cache.shard_files())])
    assert sorted(p.name for p in cache.shard_folder.iterdir()) == shards_and_checksums
    assert [p.name for p in cache.folder.glob("*.sqlite")] == ["index.sqlite"]
    vectors, found = cache.get_many(_keys(range(1000)))
    assert found.all() and len(cache) == 1000
    np.testing.assert_array_equal(vectors, np.stack([_vector(i) for i in range(1000)]))

    result = cache.compact(full=True)
    assert len(cache.shard_files()) == 1 and len(list(cache.shard_folder.iterdir())) == 2 and result.written == 1
    vectors, found = cache.get_many(_keys(range(1000)))
    assert found.all()
    np.testing.assert_array_equal(vectors, np.stack([_vector(i) for i in range(1000)]))


def test_default_journal_takes_single_writes_without_files(tmp_path):
    cache = EmbeddingCache(tmp_path, "enc@1", 1280)
    for i in range(200):
        cache.put(_keys([i]), np.full((1, 1280), i, dtype=np.float32))
        cache.flush()
    assert len(cache.shard_files()) == 0 and not list(cache.shard_folder.iterdir())
    assert cache.get(_keys([199])[0])[0] == 199


def test_truncated_shard_is_quarantined(tmp_path):
    cache = EmbeddingCache(tmp_path, "enc@1", 16)
    cache.put(_keys(range(10)), np.stack([_vector(i) for i in range(10)]))
    cache.compact()
    cache.put(_keys(range(10, 20)), np.stack([_vector(i) for i in range(10, 20)]))
    cache.compact()
    damaged, _ = cache.shard_files()
    cache.close()
    path = cache.shard_folder / damaged
    path.write_bytes(path.read_bytes()[:200])  # a write cut short

    reopened = EmbeddingCache(tmp_path, "enc@1", 16)
    with pytest.warns(RuntimeWarning, match="unusable.*10 vector"):
        vectors, found = reopened.get_many(_keys(range(20)))
    assert found.tolist() == [False] * 10 + [True] * 10
    np.testing.assert_array_equal(vectors[10:], np.stack([_vector(i) for i in range(10, 20)]))
    assert not path.exists() and (reopened.quarantine_folder / f"{damaged}.corrupt").is_file()
    assert len(reopened) == 10 and len(reopened.shard_files()) == 1 and _keys([0])[0] not in reopened


def test_unreadable_index_is_set_aside(tmp_path):
    cache = EmbeddingCache(tmp_path, "enc@1", 4)
    cache.put(_keys([1]), np.ones((1, 4)))
    cache.close()
    (cache.folder / "index.sqlite").write_bytes(b"this is not a database" * 100)
    for extra in ("index.sqlite-wal", "index.sqlite-shm"):
        (cache.folder / extra).unlink(missing_ok=True)
    with pytest.warns(RuntimeWarning, match="index .* is unreadable"):
        fresh = EmbeddingCache(tmp_path, "enc@1", 4)
    assert len(fresh) == 0 and (fresh.quarantine_folder / "index.sqlite.corrupt").is_file()
    fresh.put(_keys([1]), np.ones((1, 4)))
    fresh.flush()
    assert len(fresh) == 1


def test_killed_writer_leaves_a_consistent_cache(tmp_path):
    """kill -9 at arbitrary points of flushes and compactions: every committed batch survives, every
    stored vector is right, and the leftovers of the killed writes are cleaned up."""
    done: list[int] = []
    for run in range(3):
        writer = _writer(tmp_path, 0, 100_000, batch=7)
        lines = [writer.stdout.readline() for _ in range(20 + 15 * run)]
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        done += [int(line) for line in lines if line.strip()]
        cache = EmbeddingCache(tmp_path, "writer@1", 16, journal_rows=16)
        committed = sorted({i for first in done for i in range(first, first + 7)})
        vectors, found = cache.get_many(_keys(committed))
        assert found.all()  # every batch whose flush returned is there
        np.testing.assert_array_equal(vectors, np.stack([_vector(i) for i in committed]))
        stored = len(cache)
        everything, found_all = cache.get_many(_keys(range(stored + 50)))
        assert found_all.sum() == stored  # nothing listed that cannot be read
        np.testing.assert_array_equal(everything[found_all], np.stack([_vector(i) for i in np.flatnonzero(found_all)]))
        cache.compact(full=True)
        assert sorted(p.name for p in cache.shard_folder.iterdir()) == [*cache.shard_files(), f"{cache.shard_files()[0]}.crc32"]
        cache.close()


def test_two_processes_write_the_same_cache(tmp_path):
    """Two writers with overlapping items, compacting often, each reading back what the other wrote."""
    first, second = _writer(tmp_path, 0, 400), _writer(tmp_path, 200, 600)
    for writer in (first, second):
        _, errors = writer.communicate(timeout=120)
        assert writer.returncode == 0, errors
    cache = EmbeddingCache(tmp_path, "writer@1", 16)
    assert len(cache) == 600
    vectors, found = cache.get_many(_keys(range(600)))
    assert found.all()
    np.testing.assert_array_equal(vectors, np.stack([_vector(i) for i in range(600)]))
    expected = sorted([*cache.shard_files(), *(f"{f}.crc32" for f in cache.shard_files())])
    assert sorted(p.name for p in cache.shard_folder.iterdir()) == expected  # each shard with its row checksums


# --------------------------------------------------------------------------------------------------
# Image embeddings through the cache, with the real EfficientNet-Lite0
# --------------------------------------------------------------------------------------------------


def test_second_run_reuses_the_cache(image_catalog, lite0, counting, tmp_path):
    cache_dir = tmp_path / "cache"
    first_encoder = counting(lite0)
    first = embed_catalog(image_catalog, first_encoder, cache_dir=cache_dir)
    assert first_encoder.items == N_IMAGES and first.encoded == N_IMAGES and first.cached == 0
    assert first.present.all() and first.vectors.shape == (N_IMAGES, 1280)
    assert first.encoder == lite0.identity
    stored = _stored(cache_dir, lite0)
    assert len(stored) == N_IMAGES
    vectors, found = stored.get_many(_image_keys(image_catalog, range(N_IMAGES)))
    assert found.all()
    np.testing.assert_array_equal(vectors, first.vectors)

    second_encoder = counting(lite0)
    second = embed_catalog(image_catalog, second_encoder, cache_dir=cache_dir)
    assert second_encoder.items == 0 and second_encoder.calls == 0
    assert second.encoded == 0 and second.cached == N_IMAGES
    np.testing.assert_array_equal(second.vectors, first.vectors)
    assert second.present.all() and second.ids == first.ids

    uncached_encoder = counting(lite0)
    uncached = embed_catalog(image_catalog, uncached_encoder, cache_dir=tmp_path / "other", use_cache=False)
    assert uncached_encoder.items == N_IMAGES and uncached.cached == 0
    assert not (tmp_path / "other").exists()
    np.testing.assert_allclose(uncached.vectors, first.vectors, rtol=1e-4, atol=1e-5)


def test_changed_image_is_re_encoded(image_catalog, lite0, counting, tmp_path, write_jpeg):
    cache_dir = tmp_path / "cache"
    first = embed_catalog(image_catalog, counting(lite0), cache_dir=cache_dir)
    write_jpeg(image_catalog.root / "img" / "p2.jpg", seed=999)  # same path, different bytes
    encoder = counting(lite0)
    second = embed_catalog(image_catalog, encoder, cache_dir=cache_dir)
    assert encoder.items == 1 and second.encoded == 1 and second.cached == N_IMAGES - 1
    assert not np.allclose(second.vectors[2], first.vectors[2])
    unchanged = [i for i in range(N_IMAGES) if i != 2]
    np.testing.assert_array_equal(second.vectors[unchanged], first.vectors[unchanged])


def test_identical_images_share_one_cache_entry(tmp_path, write_jpeg, lite0, counting):
    root = tmp_path / "dup"
    write_jpeg(root / "a.jpg", seed=1)
    (root / "b.jpg").write_bytes((root / "a.jpg").read_bytes())
    pd.DataFrame({"id": ["a", "b"], "image": ["a.jpg", "b.jpg"]}).to_csv(root / "c.csv", index=False)
    catalog = read_catalog(root / "c.csv")
    embed_catalog(catalog, counting(lite0), cache_dir=tmp_path / "cache")
    assert len(_stored(tmp_path / "cache", lite0)) == 1


def test_interrupted_run_resumes(image_catalog, lite0, counting, tmp_path):
    cache_dir = tmp_path / "cache"
    failing = counting(lite0, batch_size=2, fail_after=1)  # the second batch raises
    with pytest.raises(RuntimeError, match="simulated interruption"):
        embed_catalog(image_catalog, failing, cache_dir=cache_dir)
    assert failing.items == 2
    persisted = _stored(cache_dir, lite0)
    assert len(persisted) == 2  # the finished batch was flushed to disk
    assert persisted.get_many(_image_keys(image_catalog, range(N_IMAGES)))[1].tolist() == [True, True] + [False] * 4

    resumed_encoder = counting(lite0, batch_size=2)
    resumed = embed_catalog(image_catalog, resumed_encoder, cache_dir=cache_dir)
    assert resumed_encoder.items == N_IMAGES - 2
    assert resumed.encoded == N_IMAGES - 2 and resumed.cached == 2
    assert resumed.present.all()
    assert len(_stored(cache_dir, lite0)) == N_IMAGES

    # the resumed result equals a clean, uncached run
    clean = embed_catalog(image_catalog, lite0, use_cache=False)
    np.testing.assert_allclose(resumed.vectors, clean.vectors, rtol=1e-4, atol=1e-5)


def test_truncated_shard_rows_are_encoded_again(image_catalog, lite0, counting, tmp_path):
    cache_dir = tmp_path / "cache"
    first = embed_catalog(image_catalog, lite0, cache_dir=cache_dir)
    with _stored(cache_dir, lite0) as cache:
        cache.compact()  # the six vectors move from the journal into one shard
        (shard,) = cache.shard_files()
    path = cache.shard_folder / shard
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # e.g. a disk that filled up

    encoder = counting(lite0)
    with pytest.warns(RuntimeWarning, match="unusable"):
        second = embed_catalog(image_catalog, encoder, cache_dir=cache_dir)
    assert encoder.items == N_IMAGES and second.encoded == N_IMAGES and second.cached == 0
    assert second.present.all() and not second.issues
    np.testing.assert_allclose(second.vectors, first.vectors, rtol=1e-5, atol=1e-6)
    assert (cache.quarantine_folder / f"{shard}.corrupt").is_file()

    third = embed_catalog(image_catalog, counting(lite0), cache_dir=cache_dir)
    assert third.cached == N_IMAGES and third.encoded == 0


def test_embeddings_save_without_pickle(image_catalog, lite0, tmp_path):
    result = embed_catalog(image_catalog, lite0, cache_dir=tmp_path / "cache")
    path = result.save(tmp_path / "out")
    with np.load(path, allow_pickle=False) as data:
        assert data["ids"].tolist() == image_catalog.ids
        np.testing.assert_array_equal(data["vectors"], result.vectors)
        assert data["present"].dtype == bool and data["present"].all()


def test_catalog_without_images_embeds_nothing(tmp_path, lite0, counting):
    pd.DataFrame({"id": ["a", "b"], "title": ["x", "y"]}).to_csv(tmp_path / "t.csv", index=False)
    encoder = counting(lite0)
    result = embed_catalog(read_catalog(tmp_path / "t.csv"), encoder, cache_dir=tmp_path / "cache")
    assert encoder.calls == 0 and not result.present.any() and result.vectors.shape == (2, 1280)


# --------------------------------------------------------------------------------------------------
# Text embeddings
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def text_catalog(tmp_path):
    pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "title": ["Red cotton shirt", "Blue denim jeans", None, "Steel knife"],
            "description": ["Soft and light", None, None, "Sharp"],
        }
    ).to_csv(tmp_path / "texts.csv", index=False)
    return read_catalog(tmp_path / "texts.csv")


def test_text_embeddings_are_cached(text_catalog, minilm, counting, tmp_path):
    cache_dir = tmp_path / "cache"
    encoder = counting(minilm)
    first = embed_catalog(text_catalog, encoder, cache_dir=cache_dir)
    assert first.present.tolist() == [True, True, False, True]  # row c has no text
    assert encoder.items == 3 and first.encoded == 3 and first.cached == 0
    assert not first.vectors[2].any()
    np.testing.assert_allclose(first.vectors[0], minilm.encode(["Red cotton shirt. Soft and light"])[0], atol=1e-5)

    again = counting(minilm)
    second = embed_catalog(text_catalog, again, cache_dir=cache_dir)
    assert again.items == 0 and second.encoded == 0 and second.cached == 3
    np.testing.assert_array_equal(second.vectors, first.vectors)


def test_text_fields_default_to_what_tfidf_is_fitted_on(tmp_path):
    """``skulens embed -e tfidf`` fits on ``catalog.texts()``; embedding must encode those same fields."""
    pd.DataFrame(
        {
            "id": ["a", "b"],
            "title": ["Red shirt", "Steel knife"],
            "description": ["cotton", "sharp blade"],
            "review_text": ["love it, very comfortable", "arrived broken"],
        }
    ).to_csv(tmp_path / "r.csv", index=False)
    catalog = read_catalog(tmp_path / "r.csv")
    encoder = TfidfEncoder().fit(catalog.texts())
    result = embed_catalog(catalog, encoder)
    assert (result.vectors != encoder.encode(catalog.texts())).nnz == 0
    assert "broken" not in encoder.vectorizer.vocabulary_
    with_reviews = embed_catalog(catalog, TfidfEncoder().fit(catalog.texts(["review_text"])), text_fields=["review_text"])
    assert with_reviews.vectors[1].nnz == 3  # "arrived", "broken", "arrived broken"


def test_tfidf_embedding_needs_fit_and_is_sparse(text_catalog, tmp_path):
    with pytest.raises(CatalogError, match="must be fitted"):
        embed_catalog(text_catalog, TfidfEncoder(), cache_dir=tmp_path / "cache")
    encoder = TfidfEncoder().fit(text_catalog.subset([0, 1]).texts())  # training rows only
    result = embed_catalog(text_catalog, encoder, cache_dir=tmp_path / "cache")
    assert sp.issparse(result.vectors) and result.vectors.shape == (4, encoder.dim)
    assert result.vectors[3].nnz == 0  # "Steel knife" was not in the training rows
    assert not (tmp_path / "cache").exists()  # fitted encoders are never cached


@pytest.mark.parametrize("damage", ["nan", "random"])
def test_damaged_entries_fail_their_checksum_and_are_encoded_again(tmp_path, damage):
    """Issue 24: vectors replaced in place (NaN or random bytes of the same length) are never served;
    they are counted, dropped from the index and stored afresh when encoded again."""
    import sqlite3

    cache = EmbeddingCache(tmp_path, "enc@1", 16)
    cache.put(_keys(range(10)), np.stack([_vector(i) for i in range(10)]))
    cache.compact()  # rows 0-9 in a shard
    cache.put(_keys(range(10, 14)), np.stack([_vector(i) for i in range(10, 14)]))
    cache.flush()  # rows 10-13 in the journal
    shard = cache.shard_folder / cache.shard_files()[0]
    cache.close()
    rng = np.random.default_rng(0)
    bad = (np.full(16, np.nan, dtype=np.float32) if damage == "nan" else rng.random(16, dtype=np.float32)).tobytes()
    data = bytearray(shard.read_bytes())
    offset = len(data) - 10 * 16 * 4 + 3 * 16 * 4  # row 3 of the shard
    data[offset : offset + 64] = bad
    shard.write_bytes(bytes(data))
    with sqlite3.connect(cache.folder / "index.sqlite") as conn:
        blob = conn.execute("SELECT vector FROM journal WHERE key = ?", (_keys([11])[0],)).fetchone()[0]
        conn.execute("UPDATE journal SET vector = ? WHERE key = ?", (bad + blob[64:], _keys([11])[0]))

    reopened = EmbeddingCache(tmp_path, "enc@1", 16)
    with pytest.warns(RuntimeWarning, match="2 vector.*checksum"):
        vectors, found = reopened.get_many(_keys(range(14)))
    assert [i for i in range(14) if not found[i]] == [3, 11] and reopened.corrupt_entries == 2
    assert np.isfinite(vectors).all()
    reopened.put(_keys([3, 11]), np.stack([_vector(3), _vector(11)]))  # encoded again
    reopened.compact(full=True)
    again, found = reopened.get_many(_keys(range(14)))
    assert found.all()
    np.testing.assert_array_equal(again, np.stack([_vector(i) for i in range(14)]))
