"""int8 EfficientNet-Lite graphs: ONNX Runtime static quantisation (QDQ, per-channel weights).

Activations are calibrated on a deterministic set of synthetic catalogue-like pictures (products drawn on
light backgrounds, plus darker full-frame scenes), so the quantised graph is the same on every install
and needs no user data. The first :data:`FLOAT_CONVS` convolutions stay in float: their high-resolution,
wide-range activations are what per-tensor int8 loses most on (quantising them drops the cosine to the
float features from ~0.99 to ~0.86 on Flipkart photos), and they cost little of the speed-up.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

#: Leading convolutions kept in float (stem, block 0, block 1's expand + depthwise).
FLOAT_CONVS = 5
CALIBRATION_IMAGES = 256
CALIBRATION_SEED = 0
#: Bumped when the calibration set or the quantisation settings change (cached files are named by it).
INT8_VERSION = 1


def _product_picture(rng: np.random.Generator, size: int) -> Image.Image:
    """One synthetic catalogue photo: a light or dark background with a few filled shapes, stripes and noise."""
    dark = rng.random() < 0.25
    background = tuple(int(v) for v in (rng.integers(0, 90, 3) if dark else rng.integers(200, 256, 3)))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(1, 5))):
        corner = rng.integers(0, size // 2, 2)
        x0, y0 = corner
        x1, y1 = corner + rng.integers(size // 5, size // 2 + 1, 2)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = rng.integers(0, 3)
        if shape == 0:
            draw.ellipse((int(x0), int(y0), int(x1), int(y1)), fill=colour)
        elif shape == 1:
            draw.rectangle((int(x0), int(y0), int(x1), int(y1)), fill=colour)
        else:
            draw.polygon([tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(3)], fill=colour)
        for offset in range(0, int(x1 - x0), int(rng.integers(4, 16))):  # stripes: texture and edges
            stripe = tuple(int(v) for v in rng.integers(0, 256, 3))
            draw.line((int(x0 + offset), int(y0), int(x0 + offset), int(y1)), fill=stripe, width=1)
    image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.0, 1.5))))
    noisy = np.asarray(image, dtype=np.int16) + rng.normal(0, rng.uniform(0, 12), (size, size, 3)).astype(np.int16)
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8))


def calibration_pixels(resolution: int, count: int = CALIBRATION_IMAGES, seed: int = CALIBRATION_SEED) -> np.ndarray:
    """``count`` deterministic synthetic catalogue pictures as a uint8 (count, r, r, 3) array."""
    rng = np.random.default_rng(seed)
    return np.stack([np.asarray(_product_picture(rng, resolution), dtype=np.uint8) for _ in range(count)])


def quantize_graph(source: bytes | Path, target: Path, pixels: np.ndarray, batch: int = 16) -> Path:
    """Static int8 (QDQ, per-channel) quantisation of an EfficientNet-Lite graph from :func:`~skulens.encoders.
    efficientnet_lite.to_onnx`, activations calibrated (min/max) on ``pixels``; written atomically to ``target``."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader

    model = onnx.load_from_string(source) if isinstance(source, bytes) else onnx.load(str(source))
    for index, node in enumerate(model.graph.node):  # nodes_to_exclude needs names; to_onnx leaves them empty
        node.name = node.name or f"n{index}"
    kept_float = [node.name for node in model.graph.node if node.op_type == "Conv"][:FLOAT_CONVS]

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter({"pixels": pixels[i : i + batch]} for i in range(0, len(pixels), batch))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    target.parent.mkdir(parents=True, exist_ok=True)
    # onnxruntime advises shape-inference pre-processing on the root logger; to_onnx graphs do not need it
    advice = _DropAdvice()
    logging.getLogger().addFilter(advice)
    try:
        _quantize(model, kept_float, Batches(), target)
    finally:
        logging.getLogger().removeFilter(advice)
    return target


class _DropAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


def _quantize(model: object, kept_float: list[str], batches: object, target: Path) -> None:
    """``quantize_static`` (QDQ, per-channel) of ``model`` with ``kept_float`` convolutions left alone, into ``target``."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        named = Path(work) / "named.onnx"
        onnx.save(model, str(named))
        quantized = Path(work) / "int8.onnx"
        quantize_static(
            str(named),
            str(quantized),
            batches,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv"],
            nodes_to_exclude=kept_float,
        )
        os.replace(quantized, target)


def cached_int8_graph(source: bytes | Path, target: Path, resolution: int) -> Path:
    """``target``, quantised from the float graph ``source`` on first use (its name should hold :data:`INT8_VERSION`)."""
    if not target.is_file():
        quantize_graph(source, target, calibration_pixels(resolution))
    return target
