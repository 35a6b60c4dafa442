"""Grad-CAM (Selvaraju et al., 2017) with captum's ``LayerGradCam`` on an image encoder's last feature map.

Works for any image encoder whose PyTorch ``model`` exposes ``feature_map(x)`` (the last convolutional
map, pooled by its mean into the encoder's features, as :class:`~skulens.encoders.efficientnet_lite.EfficientNetLite`
does) and which offers ``prepare`` / ``preprocess`` for its input: the bundled EfficientNet-Lite encoders and
encoders fine-tuned from them. The gradient comes from the model's fused log-probability of the target
class, through a differentiable copy of the fitted head path (:mod:`skulens.explain.heads`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from skulens.explain.heads import ExplainError
from skulens.extras import require_extra


@dataclass
class ImageMap:
    """A Grad-CAM map of one image encoder for one class.

    ``cam`` is (r, r) in [0, 1] at the encoder's input resolution (the image as the network saw it,
    ``pixels``, resized without keeping the aspect); ``grid`` is the raw map at the feature-map
    resolution (before upsampling and scaling). ``log_proba`` is the fused log-probability of the
    target computed on the differentiable path.
    """

    encoder: str
    target: str
    cam: np.ndarray
    grid: np.ndarray
    pixels: np.ndarray
    log_proba: float
    log_odds: float


class _FeatureMap(nn.Module):
    """The encoder network up to its last feature map, as a module captum can hook."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.feature_map(x)


class _CamNet(nn.Module):
    """Pixels -> feature map -> mean pooling (the encoder's features) -> fused scores -> the target's
    log-odds, ``s_c - logsumexp_{k != c} s_k`` (one output; it does not saturate as ``p_c`` nears 1)."""

    def __init__(self, model: nn.Module, scores: Callable[[torch.Tensor], torch.Tensor], target: int) -> None:
        super().__init__()
        self.trunk = _FeatureMap(model)
        self.scores, self.target = scores, target

    def fused(self, x: torch.Tensor) -> torch.Tensor:
        return self.scores(self.trunk(x).mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.fused(x)
        others = scores.clone()
        others[:, self.target] = -torch.inf
        return (scores[:, self.target] - torch.logsumexp(others, dim=1))[:, None]


def supports_gradcam(encoder: object) -> bool:
    """Whether ``encoder`` is an image encoder with a torch model exposing ``feature_map`` and ``preprocess``."""
    model = getattr(encoder, "model", None)
    return (
        getattr(encoder, "modality", None) == "image"
        and isinstance(model, nn.Module)
        and callable(getattr(model, "feature_map", None))
        and callable(getattr(encoder, "preprocess", None))
        and callable(getattr(encoder, "prepare", None))
    )


def gradcam(
    encoder: object, scores: Callable[[torch.Tensor], torch.Tensor], image: object, target: int, target_name: str = ""
) -> ImageMap:
    """Grad-CAM of ``encoder`` for class index ``target``: the gradient of the target's fused log-odds
    (``scores``: pooled features -> fused class scores, see :func:`~skulens.explain.heads.fused_scores`).

    ``image`` is a decoded PIL image or an array from ``encoder.prepare``.
    """
    if not supports_gradcam(encoder):
        raise ExplainError(
            f"encoder '{getattr(encoder, 'name', encoder)}' has no feature map to explain; Grad-CAM needs an "
            "EfficientNet-Lite encoder (bundled or fine-tuned)"
        )
    require_extra("explain", "captum", feature="Grad-CAM")
    from captum.attr import LayerAttribution, LayerGradCam

    pixels = encoder.prepare(image)
    inputs = encoder.preprocess([pixels])
    net = _CamNet(encoder.model, scores, int(target))
    with torch.enable_grad():
        grid = LayerGradCam(net, net.trunk).attribute(inputs, target=0, relu_attributions=True)
    with torch.no_grad():
        log_proba = float(torch.log_softmax(net.fused(inputs), dim=1)[0, int(target)])
        log_odds = float(net(inputs)[0, 0])
    cam = LayerAttribution.interpolate(grid.detach(), tuple(pixels.shape[:2]), interpolate_mode="bilinear")
    cam = cam[0, 0].numpy().astype(np.float32)
    cam = np.clip(cam, 0.0, None)
    peak = float(cam.max())
    cam = cam / peak if peak > 0 else cam
    return ImageMap(
        encoder=str(getattr(encoder, "name", "image")),
        target=target_name,
        cam=cam,
        grid=grid.detach()[0, 0].numpy().astype(np.float32),
        pixels=np.asarray(pixels),
        log_proba=log_proba,
        log_odds=log_odds,
    )
