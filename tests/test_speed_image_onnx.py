"""EfficientNet-Lite's ONNX graph is cached: a later encoder runs from the file, equal, without PyTorch."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from PIL import Image, ImageDraw

from skulens.encoders.image import EfficientNetLiteEncoder


def _images() -> list[Image.Image]:
    out = []
    for i, colour in enumerate(("red", "navy", "olive")):
        image = Image.new("RGB", (120, 90), "white")
        ImageDraw.Draw(image).rectangle((10 + 5 * i, 10, 80, 70 - 5 * i), fill=colour)
        out.append(image)
    return out


def test_cached_graph_gives_the_same_features_and_needs_no_torch(tmp_path, monkeypatch):
    monkeypatch.setenv("SKULENS_ONNX_CACHE", str(tmp_path))
    first = EfficientNetLiteEncoder("lite0")
    cached = list(tmp_path.glob("efficientnet-lite0-*.onnx"))
    assert len(cached) == 1
    again = EfficientNetLiteEncoder("lite0")
    assert again._model is None and again.version == first.version and again.backend == "onnx"
    images = _images()
    np.testing.assert_allclose(again.encode(images), first.encode(images), atol=1e-5)
    reference = first.model.features(first.preprocess(images)).detach().numpy()  # the PyTorch network
    np.testing.assert_allclose(again.encode(images), reference, atol=1e-3)
    probe = (
        "import sys; from skulens.encoders.image import EfficientNetLiteEncoder as E; "
        "e = E('lite0'); assert e.backend == 'onnx'; print('torch' in sys.modules)"
    )
    env = {**os.environ, "SKULENS_ONNX_CACHE": str(tmp_path), "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "False"


def test_a_given_network_is_run_not_the_cached_imagenet_graph(tmp_path, monkeypatch):
    import torch

    from skulens.encoders.efficientnet_lite import load_pretrained

    monkeypatch.setenv("SKULENS_ONNX_CACHE", str(tmp_path))
    EfficientNetLiteEncoder("lite0")  # fills the cache with the ImageNet graph
    changed = load_pretrained("lite0")
    with torch.no_grad():
        changed._conv_head.weight.mul_(0.5)
    own = EfficientNetLiteEncoder("lite0", model=changed)
    images = _images()
    reference = own.model.features(own.preprocess(images)).detach().numpy()
    np.testing.assert_allclose(own.encode(images), reference, atol=1e-3)
    assert np.abs(own.encode(images) - EfficientNetLiteEncoder("lite0").encode(images)).max() > 1e-2
    assert len(list(tmp_path.glob("*.onnx"))) == 1
