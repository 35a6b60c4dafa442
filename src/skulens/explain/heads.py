"""Differentiable copies of a fitted late-fusion model's heads (PyTorch), for gradient-based explanations.

A :class:`~skulens.heads.fusion.LateFusion` model predicts ``softmax(sum_b w_b * log p_b)`` over the blocks
present in a row, with ``p_b`` the probabilities of block ``b``'s head (a standardised linear probe or an
MLP probe). :func:`block_log_proba` rebuilds ``log p_b`` as a torch function of the block's features, with
the fitted weights and the same clipping, so gradients flow from the fused probability back into an
encoder's feature map.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from skulens.errors import SkulensError
from skulens.heads.fusion import EPS, LateFusion
from skulens.heads.linear import LinearProbe
from skulens.heads.mlp import MLPProbe

LOG_EPS = math.log(EPS)


def log_odds(proba: np.ndarray, target: int) -> np.ndarray:
    """``log p_c - log sum_{k != c} p_k`` per row: the target's log-odds, which (unlike ``log p_c``) does
    not flatten out when the model is very sure (the other classes' small probabilities are kept exactly)."""
    proba = np.atleast_2d(np.asarray(proba, dtype=np.float64))
    rest = np.delete(proba, target, axis=1).sum(axis=1)
    return np.log(np.clip(proba[:, target], 1e-300, None)) - np.log(np.clip(rest, 1e-300, None))


class ExplainError(SkulensError, ValueError):
    """An explanation that cannot be made for this model or input; the message says why and what works."""

    code = "explain"


class UnknownClassError(ExplainError):
    """The class asked to be explained is not one of the model's classes."""

    code = "unknown_class"


def _head_logits(head: LinearProbe | MLPProbe) -> Callable[[torch.Tensor], torch.Tensor]:
    """Features (n, d), float64 -> the head's class scores (n, head classes), as the fitted head computes them."""
    if isinstance(head, LinearProbe):
        coef = torch.as_tensor(np.asarray(head.coef_, dtype=np.float64))
        intercept = torch.as_tensor(np.asarray(head.intercept_, dtype=np.float64))
        mean = None if head.mean_ is None else torch.as_tensor(np.asarray(head.mean_, dtype=np.float64))
        scale = None if head.scale_ is None else torch.as_tensor(np.asarray(head.scale_, dtype=np.float64))

        def linear(x: torch.Tensor) -> torch.Tensor:
            if mean is not None:
                x = (x - mean) / scale
            scores = x @ coef.T + intercept
            return torch.cat([torch.zeros_like(scores), scores], dim=1) if scores.shape[1] == 1 else scores

        return linear
    if isinstance(head, MLPProbe):
        mean = torch.as_tensor(np.asarray(head.mean_, dtype=np.float32))
        scale = torch.as_tensor(np.asarray(head.scale_, dtype=np.float32))
        net = head.net_.eval()
        return lambda x: net(((x - mean) / scale).float()).double()
    raise ExplainError(f"heads of type {type(head).__name__} have no differentiable copy; linear and mlp heads do")


def block_log_proba(fusion: LateFusion, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Features of block ``name`` (n, d) -> ``log clip(p_b, EPS, 1)`` over all of the fusion's classes
    (n, classes): the term late fusion weighs, equal to ``log(fusion.block_proba(...)[name])`` clipped.

    The clipping acts on the values only: gradients are those of the unclipped log-probabilities (a
    straight-through clip), so a very sure head still shows which features it relies on."""
    head = fusion.heads_[name]
    logits = _head_logits(head)
    index = torch.as_tensor(np.searchsorted(fusion.classes_, head.classes_))
    n_classes = len(fusion.classes_)

    def log_proba(x: torch.Tensor) -> torch.Tensor:
        raw = torch.log_softmax(logits(x.double()), dim=1)
        own = raw + (raw.clamp(min=LOG_EPS) - raw).detach()
        out = torch.full((x.shape[0], n_classes), LOG_EPS, dtype=torch.float64)
        return out.index_copy(1, index, own)

    return log_proba


def fused_scores(
    fusion: LateFusion, name: str, others: dict[str, np.ndarray], present: dict[str, bool]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Features of block ``name`` (n, d) -> the fused scores ``sum_b w_b log p_b`` (n, classes; their
    softmax is the model's probability), with every other block's probabilities ``others[b]`` (1, classes)
    held fixed; blocks with ``present[b] False`` are left out."""
    if not isinstance(fusion, LateFusion):
        raise ExplainError("Grad-CAM follows late-fusion models (the default, --fusion late); this model uses early fusion")
    weights = fusion.block_weights
    own = block_log_proba(fusion, name)
    fixed = sum(
        (weights[b] * np.log(np.clip(others[b], EPS, 1.0)) for b in fusion.names_ if b != name and present.get(b, False)),
        start=np.zeros((1, len(fusion.classes_))),
    )
    fixed_t = torch.as_tensor(fixed, dtype=torch.float64)
    return lambda x: weights[name] * own(x) + fixed_t
