"""The embedding cache (hits, misses, resume after interruption) and embed_catalog end to end."""

from __future__ import annotations

import json

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


def _shards(cache_dir):
    return sorted(cache_dir.glob("*/part-*.npz"))


def _shard_keys(cache_dir) -> list[str]:
    keys: list[str] = []
    for shard in _shards(cache_dir):
        with np.load(shard, allow_pickle=False) as data:
            keys.extend(data["keys"].tolist())
    return keys


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
    keys = [content_key(f"item {i}") for i in range(4)]
    vectors = np.arange(12, dtype=np.float64).reshape(4, 3)
    cache.put(keys[:2], vectors[:2])
    assert len(cache) == 2 and keys[0] in cache and cache.get(keys[3]) is None
    assert not list(cache.folder.glob("part-*.npz"))  # buffered until flush
    cache.flush()
    cache.put(keys[2:], vectors[2:])
    cache.flush()
    cache.flush()  # nothing pending: no empty shard
    shards = sorted(cache.folder.glob("part-*.npz"))
    assert len(shards) == 2
    for shard in shards:
        with np.load(shard, allow_pickle=False) as data:
            assert data["vectors"].dtype == np.float32 and data["keys"].dtype.kind == "U"
    assert not list(cache.folder.glob("*.tmp"))
    assert json.loads((cache.folder / "identity.json").read_text()) == {"identity": "enc@1", "dim": 3}

    again = EmbeddingCache(tmp_path, "enc@1", 3)
    assert len(again) == 4
    np.testing.assert_array_equal(np.stack([again.get(k) for k in keys]), vectors.astype(np.float32))
    other = EmbeddingCache(tmp_path, "enc@2", 3)  # another identity: another folder, empty
    assert len(other) == 0 and other.folder != again.folder
    wrong_dim = EmbeddingCache(tmp_path, "enc@1", 5)  # shards of another size are not trusted
    assert len(wrong_dim) == 0


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
    assert len(set(_shard_keys(cache_dir))) == N_IMAGES

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
    assert len(set(_shard_keys(tmp_path / "cache"))) == 1


def test_interrupted_run_resumes(image_catalog, lite0, counting, tmp_path):
    cache_dir = tmp_path / "cache"
    failing = counting(lite0, batch_size=2, fail_after=1)  # the second batch raises
    with pytest.raises(RuntimeError, match="simulated interruption"):
        embed_catalog(image_catalog, failing, cache_dir=cache_dir)
    assert failing.items == 2
    persisted = _shard_keys(cache_dir)
    assert len(persisted) == 2  # the finished batch was flushed to disk
    assert set(persisted) == {content_key((image_catalog.root / f"img/p{i}.jpg").read_bytes()) for i in (0, 1)}

    resumed_encoder = counting(lite0, batch_size=2)
    resumed = embed_catalog(image_catalog, resumed_encoder, cache_dir=cache_dir)
    assert resumed_encoder.items == N_IMAGES - 2
    assert resumed.encoded == N_IMAGES - 2 and resumed.cached == 2
    assert resumed.present.all()
    assert len(set(_shard_keys(cache_dir))) == N_IMAGES

    # the resumed result equals a clean, uncached run
    clean = embed_catalog(image_catalog, lite0, use_cache=False)
    np.testing.assert_allclose(resumed.vectors, clean.vectors, rtol=1e-4, atol=1e-5)


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


def test_tfidf_embedding_needs_fit_and_is_sparse(text_catalog, tmp_path):
    with pytest.raises(CatalogError, match="must be fitted"):
        embed_catalog(text_catalog, TfidfEncoder(), cache_dir=tmp_path / "cache")
    encoder = TfidfEncoder().fit(text_catalog.subset([0, 1]).texts())  # training rows only
    result = embed_catalog(text_catalog, encoder, cache_dir=tmp_path / "cache")
    assert sp.issparse(result.vectors) and result.vectors.shape == (4, encoder.dim)
    assert result.vectors[3].nnz == 0  # "Steel knife" was not in the training rows
    assert not (tmp_path / "cache").exists()  # fitted encoders are never cached
