"""The int8 EfficientNet-Lite encoder: its own name and version (caches never mix), features close to float."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from skulens.encoders import create_encoder, list_encoders
from skulens.encoders.base import EncoderError
from skulens.encoders.image import EfficientNetLiteEncoder
from skulens.encoders.image_int8 import calibration_pixels


def _photos() -> list[Image.Image]:
    """Drawn products unlike the calibration set: gradients, outlines, off-centre, several sizes."""
    out = []
    for i in range(6):
        ramp = np.linspace(0, 255, 160 + 20 * i, dtype=np.float32)
        base = np.stack([np.add.outer(ramp[:120], ramp) / 2 % 256] * 3, -1) * (0.3 + 0.1 * i)
        image = Image.fromarray(base.clip(0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        draw.ellipse((10 * i, 15, 60 + 12 * i, 100), fill=(200 - 30 * i, 40 * i, 90), outline="black", width=3)
        draw.text((20, 5 + 10 * i), "SKU", fill="white")
        out.append(image)
    return out


def test_calibration_set_is_deterministic():
    first, again = calibration_pixels(64, count=4), calibration_pixels(64, count=4)
    assert first.shape == (4, 64, 64, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, calibration_pixels(64, count=4, seed=1))


def test_int8_features_are_close_to_float_and_never_share_an_identity(tmp_path, monkeypatch):
    monkeypatch.setenv("SKULENS_ONNX_CACHE", str(tmp_path))
    assert "efficientnet-lite0-int8" in {info.name for info in list_encoders(modality="image")}
    fp32 = create_encoder("efficientnet-lite0")
    int8 = create_encoder("efficientnet-lite0-int8")
    assert int8.name == "efficientnet-lite0-int8" and int8.name != fp32.name
    assert int8.version != fp32.version and "int8" in int8.version
    assert len(list(tmp_path.glob("*-int8q*.onnx"))) == 1  # quantised once, cached beside the float graph
    images = _photos()
    a, b = int8.encode(images), fp32.encode(images)
    assert a.shape == b.shape == (len(images), 1280)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    # Measured on 32 Flipkart photos: min 0.9885, mean 0.995; quantising every layer gives ~0.86, so 0.97 tells them apart.
    assert cosine.min() > 0.97, cosine
    assert np.abs(a - b).max() > 1e-4  # really another network, not the float graph
    again = EfficientNetLiteEncoder("lite0", quantize=True)
    np.testing.assert_allclose(again.encode(images), a, atol=1e-6)


def test_int8_refuses_the_torch_backend():
    with pytest.raises(EncoderError, match="ONNX Runtime"):
        EfficientNetLiteEncoder("lite0", quantize=True, backend="torch")
