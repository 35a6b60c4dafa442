"""Alignment (image-text space), vector index, retrieval metrics, zero-shot, search and dedupe on tiny
self-drawn catalogs and random vectors."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from skulens.catalog import build_catalog
from skulens.heads.align import AlignConfig, AlignmentHeads, ClipLoss, InputDropout, SparseColumns
from skulens.index import IndexIdentityError, SearchIndexError, VectorIndex
from skulens.metrics.retrieval import category_consistent_r1, neighbour_recall, recall_at_k
from skulens.tasks.align import MIN_PAIRS, AlignmentError, AlignmentModel
from skulens.tasks.model_folder import ModelFolderError

COLOURS = {"red": (220, 20, 20), "green": (20, 170, 40), "blue": (30, 40, 220), "yellow": (240, 220, 10)}
SHAPES = ("circle", "square", "triangle")
FAST = {"image_encoders": ("classical-image",), "text_encoders": ("tfidf",)}


def _draw(colour: str, shape: str, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (96, 96), "white")
    draw = ImageDraw.Draw(image)
    size = int(rng.integers(40, 70))
    x, y = (int(v) for v in rng.integers(4, 96 - size - 4, size=2))
    box = [x, y, x + size, y + size]
    fill = COLOURS[colour]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(x, y + size), (x + size, y + size), (x + size // 2, y)], fill=fill)
    return image


def _shop(root, per_kind: int = 8, duplicates: int = 0):
    """``per_kind`` products per (colour, shape), titled with both words; ``duplicates`` listings re-posted
    with the same image bytes and title under a new id."""
    rows, k = [], 0
    for colour in COLOURS:
        for shape in SHAPES:
            for i in range(per_kind):
                name = f"{colour}-{shape}-{i}.png"
                _draw(colour, shape, seed=k).save(root / name)
                style = ("classic", "bright", "small", "large", "plain", "modern", "simple", "bold")[i % 8]
                rows.append(
                    {"id": f"p{k}", "title": f"{style} {colour} {shape} sticker", "image": name, "colour": colour, "shape": shape}
                )
                k += 1
    for j in range(duplicates):
        rows.append({**rows[j * 5], "id": f"dup{j}"})
    return build_catalog(pd.DataFrame(rows), root=root, name="shapes")


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return _shop(tmp_path_factory.mktemp("shapes"), per_kind=8, duplicates=4)


@pytest.fixture(scope="module")
def model(shop, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    config = AlignConfig(dim=32, epochs=60, patience=60, dropout=0.1, batch_size=32, lr=3e-3)
    return AlignmentModel(**FAST, head_config=config, cache_dir=cache).fit(shop)


def _consistent_at_1(model, shop) -> float:
    """Share of (colour, shape) text queries whose top image shows that colour and shape."""
    image = model.encode_images(shop)
    kinds = [(c, s) for c in COLOURS for s in SHAPES]
    text = model.encode_texts([f"{c} {s} sticker" for c, s in kinds])
    top = np.argmax(text @ image.T, axis=1)
    frame = shop.frame
    return float(np.mean([(frame["colour"][t], frame["shape"][t]) == kind for t, kind in zip(top, kinds)]))


def test_training_on_a_drawn_catalog_beats_chance(model, shop):
    assert _consistent_at_1(model, shop) >= 0.5  # chance is 1/12
    history = model.heads_.history
    assert history[-1]["loss"] < history[0]["loss"]
    emb = model.encode_texts(["red circle sticker"])
    assert emb.shape == (1, 32)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_folders_saved_with_max_epochs_still_load(model, shop, tmp_path):
    """Folders saved before the heads shared the training settings name the epoch limit ``max_epochs``."""
    import json

    model.save(tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    assert config["align"]["epochs"] == 60 and "max_epochs" not in config["align"]
    config["align"]["max_epochs"] = config["align"].pop("epochs")  # what older skulens wrote
    config_path.write_text(json.dumps(config))
    loaded = AlignmentModel.load(tmp_path / "m")
    assert loaded.config.heads == model.config.heads
    assert np.array_equal(loaded.encode_texts(["red circle sticker"]), model.encode_texts(["red circle sticker"]))


def test_training_is_deterministic(shop, tmp_path):
    config = AlignConfig(dim=16, epochs=3, batch_size=32)
    a = AlignmentModel(**FAST, head_config=config, cache_dir=tmp_path).fit(shop)
    b = AlignmentModel(**FAST, head_config=config, cache_dir=tmp_path).fit(shop)
    assert a.identity == b.identity
    assert np.array_equal(a.encode_texts(["blue square"]), b.encode_texts(["blue square"]))


def test_real_encoders_train_and_round_trip(shop, tmp_path):
    """The default frozen encoders (EfficientNet-Lite0 + classical, MiniLM + TF-IDF) with a saved/loaded model."""
    config = AlignConfig(dim=32, epochs=40, patience=40, dropout=0.1, batch_size=32, lr=3e-3)
    trained = AlignmentModel(head_config=config, cache_dir=tmp_path / "cache").fit(shop)
    assert _consistent_at_1(trained, shop) >= 0.5
    trained.save(tmp_path / "m")
    loaded = AlignmentModel.load(tmp_path / "m", cache_dir=tmp_path / "cache")
    assert loaded.identity == trained.identity
    assert np.allclose(loaded.encode_texts(["green triangle"]), trained.encode_texts(["green triangle"]), atol=1e-6)


def test_validation_picks_epochs_then_refits_on_every_pair(tmp_path):
    larger = _shop(tmp_path, per_kind=11)
    config = AlignConfig(dim=16, epochs=4, patience=4, batch_size=32)
    trained = AlignmentModel(**FAST, head_config=config, cache_dir=tmp_path).fit(larger)
    assert "val_recall1" in trained.heads_.history[0]
    assert trained.heads_.history[-1] == {"refit_on_all_pairs": len(larger), "epochs": trained.heads_.best_epoch + 1}
    assert trained.trained_pairs_ == len(larger)


def test_hard_negative_batches_train_a_catalog_deterministically(shop, tmp_path):
    config = AlignConfig(dim=16, epochs=3, batch_size=32, hard_negatives=0.5)
    a = AlignmentModel(**FAST, head_config=config, cache_dir=tmp_path).fit(shop)
    b = AlignmentModel(**FAST, head_config=config, cache_dir=tmp_path).fit(shop)
    plain = AlignmentModel(**FAST, head_config=AlignConfig(dim=16, epochs=3, batch_size=32), cache_dir=tmp_path).fit(shop)
    assert a.identity == b.identity != plain.identity
    assert a.config.heads.hard_negatives == 0.5


def test_too_small_catalog_says_how_many_pairs_are_needed(tmp_path):
    small = _shop(tmp_path, per_kind=2)
    with pytest.raises(AlignmentError, match=f"24 products.*at least {MIN_PAIRS}"):
        AlignmentModel(**FAST, cache_dir=tmp_path).fit(small)


def test_zero_shot_returns_ranked_probabilities(model, shop):
    labels = ["circle", "square", "triangle"]
    top = model.zero_shot(shop, labels, templates=("{label}", "a {label} sticker"), k=2)
    assert len(top) == len(shop) and all(len(row) == 2 for row in top)
    assert all(row[0][1] >= row[1][1] for row in top)
    probs = model.zero_shot_scores(shop, labels, use="text")
    assert np.allclose(probs.sum(axis=1), 1.0)
    predicted = np.array(labels)[probs.argmax(axis=1)]
    assert np.mean(predicted == shop.frame["shape"].to_numpy()) > 0.5
    with pytest.raises(AlignmentError, match="at least two"):
        model.zero_shot(shop, ["circle"])
    with pytest.raises(AlignmentError, match="'{label}'"):
        model.zero_shot(shop, labels, templates=("a photo",))


def test_few_shot_prototypes_blend_prompts_and_examples(model, shop):
    labels = list(COLOURS)
    examples = shop.head(24)
    protos = model.prototypes(labels, examples, examples.frame["colour"], prompt_weight=0.5)
    assert protos.shape == (4, 32)
    assert np.allclose(np.linalg.norm(protos, axis=1), 1.0, atol=1e-5)
    probs = model.zero_shot_scores(shop, labels, class_embeddings=protos)
    assert np.mean(np.array(labels)[probs.argmax(axis=1)] == shop.frame["colour"].to_numpy()) > 0.5


def test_search_similar_and_filters(model, shop):
    index = model.build_index(shop)
    assert index.kind == "flat" and len(index) == len(shop)
    hits = model.search(index, text="yellow square sticker", k=5)
    assert len(hits) == 5 and hits[0]["score"] >= hits[-1]["score"]
    assert {"id", "score", "title", "colour"} <= set(hits[0])
    filtered = model.search(index, text="yellow square sticker", k=5, where={"colour": "red"})
    assert filtered and all(hit["colour"] == "red" for hit in filtered)
    image = io.BytesIO()
    _draw("blue", "circle", seed=999).save(image, format="PNG")
    by_image = model.search(index, image=image.getvalue(), k=3)
    assert len(by_image) == 3
    near = model.similar(index, "p0", k=4)
    assert len(near) == 4 and all(hit["id"] != "p0" for hit in near)


def test_bad_queries_get_clear_errors(model, shop):
    index = model.build_index(shop)
    with pytest.raises(AlignmentError, match="empty"):
        model.search(index, text="   ")
    with pytest.raises(AlignmentError, match="CYRILLIC.*LATIN"):
        model.search(index, text="красные кроссовки")
    with pytest.raises(AlignmentError, match="not a usable image"):
        model.search(index, image=b"this is not an image")
    with pytest.raises(SearchIndexError, match="'nope' is not in this index"):
        model.similar(index, "nope")
    with pytest.raises(SearchIndexError, match=f"larger than the index \\({len(shop)} products"):
        model.search(index, text="red circle", k=len(shop) + 1)
    with pytest.raises(SearchIndexError, match="no such column"):
        model.search(index, text="red circle", where={"brand": "x"})


def test_index_refuses_another_models_queries(model, shop, tmp_path):
    index = model.build_index(shop)
    index.save(tmp_path / "idx")
    other = VectorIndex.build(np.eye(3, dtype=np.float32), ["a", "b", "c"], identity="align:other")
    with pytest.raises(IndexIdentityError) as info:
        model.search(other, text="red circle", k=1)
    assert "align:other" in str(info.value) and model.identity in str(info.value)
    with pytest.raises(IndexIdentityError, match="align:someone-else"):
        VectorIndex.load(tmp_path / "idx", identity="align:someone-else")
    assert len(VectorIndex.load(tmp_path / "idx", identity=model.identity)) == len(shop)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_index_round_trip_on_random_vectors(kind, tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(2000, 24)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"v{i}" for i in range(len(vectors))]
    meta = pd.DataFrame({"half": np.where(np.arange(2000) < 1000, "low", "high")})
    index = VectorIndex.build(vectors, ids, identity="m1", metadata=meta, kind=kind, nlist=32, nprobe=32)
    index.save(tmp_path / "idx")
    loaded = VectorIndex.load(tmp_path / "idx", identity="m1")
    assert loaded.kind == kind and loaded.manifest["format_version"] == 1 and len(loaded) == 2000
    hits = loaded.search(vectors[:20], k=10)
    assert [h[0].id for h in hits] == ids[:20]
    exact = np.argsort(-(vectors[:20] @ vectors.T), axis=1)[:, :10]
    found = np.array([[h.corpus_id for h in row] for row in hits])
    assert neighbour_recall(found, exact) >= 0.9
    low = loaded.search(vectors[1500:1505], k=5, where={"half": "low"})
    assert all(h.metadata["half"] == "low" for row in low for h in row)
    assert np.allclose(loaded.vector("v7"), vectors[7], atol=1e-6)


def test_auto_kind_is_flat_for_small_collections_and_recorded(tmp_path):
    index = VectorIndex.build(np.eye(4, dtype=np.float32), list("abcd"), identity="m")
    assert index.kind == "flat" and index.manifest["kind"] == "flat"
    with pytest.raises(SearchIndexError, match="not a skulens index"):
        VectorIndex.load(tmp_path)
    with pytest.raises(SearchIndexError, match="unique"):
        VectorIndex.build(np.eye(2, dtype=np.float32), ["a", "a"], identity="m")


def test_dedupe_finds_planted_duplicates(model, shop):
    result = model.dedupe(shop)
    found = {frozenset((a, b)) for a, b in zip(result.pairs.id_a, result.pairs.id_b)}
    planted = {frozenset((f"p{j * 5}", f"dup{j}")) for j in range(4)}
    assert planted <= found
    assert result.exact_pairs >= 4 and result.recall is not None and result.precision is not None
    assert result.threshold_source.startswith("chosen")


def test_retrieval_metrics():
    gallery = np.eye(4, dtype=np.float32)
    queries = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0.6, 0.8], [0.8, 0.5, 0, 0.3]], dtype=np.float32)
    assert recall_at_k(queries, gallery, ks=(1, 2, 3)) == {1: 0.5, 2: 0.75, 3: 1.0}  # own-item ranks 0, 0, 1, 2
    assert category_consistent_r1(queries, gallery, ["a", "b", "c", "c"]) == 0.75
    assert neighbour_recall(np.array([[0, 1]]), np.array([[1, 2]])) == 0.5


def test_clip_loss_prefers_matching_pairs():
    import torch

    a = torch.nn.functional.normalize(torch.randn(8, 4), dim=1)
    matched = ClipLoss()(a, a, torch.tensor(10.0))
    shuffled = ClipLoss()(a, a[torch.randperm(8, generator=torch.Generator().manual_seed(1))], torch.tensor(10.0))
    assert matched < shuffled


def test_heads_round_trip_through_arrays():
    config = AlignConfig(dim=8, hidden=16, epochs=2)
    rng = np.random.default_rng(0)
    heads = AlignmentHeads(6, 5, config).fit(rng.normal(size=(40, 6)), rng.normal(size=(40, 5)))
    again = AlignmentHeads.from_arrays(heads.to_arrays(), config)
    x = rng.normal(size=(3, 6)).astype(np.float32)
    assert np.allclose(heads.encode_image(x), again.encode_image(x))


def test_load_refuses_other_task(tmp_path):
    from skulens.tasks.model_folder import write_model_folder

    write_model_folder(tmp_path / "m", {"task": "categorize"}, {"x": np.zeros(1)})
    with pytest.raises(ModelFolderError, match="not a 'align' model"):
        AlignmentModel.load(tmp_path / "m")


def test_zero_shot_for_one_product_in_memory(model):
    image = io.BytesIO()
    _draw("green", "square", seed=5).save(image, format="PNG")
    top = model.zero_shot_inputs(["red", "green", "blue", "yellow"], image=image.getvalue(), text="green square sticker", k=2)
    assert len(top) == 2 and top[0][0] == "green" and top[0][1] >= top[1][1]
    with pytest.raises(AlignmentError, match="photo or a title"):
        model.zero_shot_inputs(["red", "green"])


def test_a_real_clip_checkpoint_needs_no_training(tiny_clip_dir, shop, tmp_path, monkeypatch):
    from pathlib import Path

    from skulens.encoders import create_encoder

    clip = AlignmentModel.from_clip(tiny_clip_dir, cache_dir=tmp_path)
    text = clip.encode_texts(["red circle sticker"])
    direct = create_encoder(f"hf-clip-text:{tiny_clip_dir}").encode(["red circle sticker"])
    assert text.shape == (1, 16) and np.allclose(text, direct, atol=1e-5)  # CLIP's own space, untouched
    index = clip.build_index(shop)
    assert len(clip.search(index, text="blue square", k=3)) == 3
    clip.save(tmp_path / "clip")
    with pytest.raises(ModelFolderError, match="outside the model folder"):  # the checkpoint lives elsewhere
        AlignmentModel.load(tmp_path / "clip", cache_dir=tmp_path)
    monkeypatch.setenv("SKULENS_MODELS_ROOT", str(Path(tiny_clip_dir).parent))
    assert AlignmentModel.load(tmp_path / "clip", cache_dir=tmp_path).identity == clip.identity


def test_ordinal_indicators_are_latin_letters():
    """Issue 24 (schemathesis): 'º' was counted as a script called MASCULINE, so a Latin query was refused."""
    from skulens.tasks.scripts import count_scripts

    assert count_scripts("1º piso, 2ª edición") == {"LATIN": 13}
    assert set(count_scripts("Кожаная сумка")) == {"CYRILLIC"}


@pytest.mark.parametrize("hidden", [0, 16])
def test_sparse_first_layer_equals_the_dense_projection(hidden):
    import torch

    rng = np.random.default_rng(0)
    words = np.zeros((200, 3000), dtype=np.float32)
    for row in words:
        row[rng.integers(0, 3000, 4)] = rng.random(4)
    x = np.hstack([rng.normal(size=(200, 12)).astype(np.float32), words])  # a dense block beside a TF-IDF-like one
    split = SparseColumns.of(x)
    assert split is not None and split.dense.shape == (200, 12) and split.csr.shape == (200, 3000)
    assert SparseColumns.of(rng.normal(size=(40, 20)).astype(np.float32)) is None  # nothing sparse: the dense path
    heads = AlignmentHeads(5, x.shape[1], AlignConfig(hidden=hidden))
    rows = torch.tensor([3, 0, 17, 39, 8])
    dense = heads.text_proj[1](torch.as_tensor(x)[rows])
    np.testing.assert_allclose(split.first_layer(rows, lambda t: t, heads.text_proj[1]).detach(), dense.detach(), atol=1e-5)


def test_input_dropout_is_seeded_and_keeps_the_expected_share():
    import torch

    x = torch.ones(400, 500)
    first, again = InputDropout(0.3, seed=1)(x), InputDropout(0.3, seed=1)(x)
    assert torch.equal(first, again)
    assert abs(float((first > 0).float().mean()) - 0.7) < 0.01
    assert first.unique().tolist() == pytest.approx([0.0, 1 / 0.7])
    assert InputDropout(0.0, seed=1)(x) is x
