"""A closed-form alternative to contrastive training: ridge regression from standardised photo features
into the (frozen, unit-normalised) text embedding space. The result is an ordinary :class:`AlignmentHeads`
(image projection = the ridge map, text projection = identity), so it saves, loads and searches like any
trained alignment."""

from __future__ import annotations

import math

import numpy as np
import torch

from skulens.heads.align import AlignConfig, AlignmentHeads
from skulens.heads.base import HeadError

#: Zero-shot softmax temperature of a ridge space (its cosines are not trained against a temperature).
RIDGE_TEMPERATURE = 0.02


def ridge_heads(
    image: np.ndarray, text: np.ndarray, alpha: float, seed: int = 0, start: AlignmentHeads | None = None
) -> AlignmentHeads:
    """Heads whose image side maps standardised ``image`` features onto ``text`` (n, d) by ridge regression
    with strength ``alpha``; the text side is the identity on the d-dimensional text features.

    With ``start`` (a ridge space, e.g. the packaged base space) the map is pulled towards ``start``'s
    instead of towards zero and ``start``'s standardisation is kept: ``argmin |XW - Y|^2 + alpha |W - W0|^2``,
    so a small catalog adapts the base space a little and a large one a lot.
    """
    return ridge_path(image, text, (alpha,), seed, start)[0]


def ridge_path(
    image: np.ndarray, text: np.ndarray, alphas, seed: int = 0, start: AlignmentHeads | None = None
) -> list[AlignmentHeads]:
    """:func:`ridge_heads` for each of ``alphas``, sharing one Gram matrix."""
    image, text = np.asarray(image, dtype=np.float64), np.asarray(text, dtype=np.float64)
    if len(image) != len(text) or len(image) < 2:
        raise HeadError(f"ridge alignment needs matching rows (>= 2): {len(image)} image, {len(text)} text")
    if start is not None:
        mean = start.image_mean.numpy().astype(np.float64)
        std = start.image_std.numpy().astype(np.float64)
        prior_weight = start.image_proj[1].weight.detach().numpy().T.astype(np.float64)
        if prior_weight.shape != (image.shape[1], text.shape[1]):
            raise HeadError(
                f"the starting space maps {prior_weight.shape} features; these have {image.shape[1]} -> {text.shape[1]}"
            )
    else:
        mean, std = image.mean(axis=0), image.std(axis=0)
        std = np.where(std < 1e-6, 1.0, std)
        prior_weight = np.zeros((image.shape[1], text.shape[1]))
    x = (image - mean) / std
    gram, target = x.T @ x, x.T @ text
    eye = np.eye(len(gram))
    out = []
    for alpha in alphas:
        weight = np.linalg.solve(gram + alpha * eye, target + alpha * prior_weight)  # (image_dim, text_dim)
        out.append(_as_heads(weight, mean, std, alpha, len(image), seed))
    return out


def _as_heads(weight: np.ndarray, mean: np.ndarray, std: np.ndarray, alpha: float, pairs: int, seed: int) -> AlignmentHeads:
    image_dim, dim = weight.shape
    config = AlignConfig(dim=dim, dropout=0.0, init_temperature=RIDGE_TEMPERATURE, seed=seed, ridge_alpha=alpha)
    heads = AlignmentHeads(image_dim, dim, config)
    with torch.no_grad():
        heads.image_proj[1].weight.copy_(torch.as_tensor(weight.T, dtype=torch.float32))
        heads.image_proj[1].bias.zero_()
        heads.text_proj[1].weight.copy_(torch.eye(dim))
        heads.text_proj[1].bias.zero_()
        heads.image_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        heads.image_std.copy_(torch.as_tensor(std, dtype=torch.float32))
        heads.logit_scale.fill_(math.log(1.0 / RIDGE_TEMPERATURE))
    heads.history = [{"ridge_alpha": alpha, "pairs": pairs}]
    heads.best_epoch = 0
    return heads.eval()
