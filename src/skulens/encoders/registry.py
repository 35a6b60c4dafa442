"""Encoder registry in the style of timm: ``register_encoder``, ``list_encoders``, ``create_encoder``."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skulens.encoders.base import Encoder, EncoderError
from skulens.threads import apply_thread_budget


@dataclass(frozen=True)
class EncoderInfo:
    name: str
    modality: str
    dim: int | None
    description: str


_FACTORIES: dict[str, tuple[EncoderInfo, Callable[..., Encoder]]] = {}
_PREFIXES: dict[str, tuple[EncoderInfo, Callable[..., Encoder]]] = {}


def register_encoder(
    name: str, modality: str, dim: int | None, description: str
) -> Callable[[Callable[..., Encoder]], Callable[..., Encoder]]:
    """Register a factory under ``name``. A name ending in ``:`` is a prefix: ``name<argument>``."""

    def decorate(factory: Callable[..., Encoder]) -> Callable[..., Encoder]:
        table = _PREFIXES if name.endswith(":") else _FACTORIES
        table[name] = (EncoderInfo(name, modality, dim, description), factory)
        return factory

    return decorate


def list_encoders(pattern: str = "*", modality: str | None = None) -> list[EncoderInfo]:
    """Registered encoders (prefix families shown as ``name:<path>``), filtered by glob and modality."""
    infos = [info for info, _ in _FACTORIES.values()] + [
        EncoderInfo(f"{info.name}<path>", info.modality, info.dim, info.description) for info, _ in _PREFIXES.values()
    ]
    return [
        info
        for info in sorted(infos, key=lambda i: i.name)
        if fnmatch.fnmatch(info.name, pattern) and (modality is None or info.modality == modality)
    ]


def create_encoder(name: str, **kwargs: Any) -> Encoder:
    """An encoder by registered name, e.g. ``efficientnet-lite0``, ``minilm``, ``hf-clip:/models/clip``."""
    apply_thread_budget()
    if name in _FACTORIES:
        return _FACTORIES[name][1](**kwargs)
    for prefix, (_, factory) in _PREFIXES.items():
        if name.startswith(prefix):
            return factory(name[len(prefix) :], **kwargs)
    known = ", ".join(info.name for info in list_encoders())
    raise EncoderError(f"unknown encoder '{name}'; available: {known}")


def encoder_info(name: str) -> EncoderInfo:
    """Registration info for ``name`` without creating (loading) the encoder."""
    if name in _FACTORIES:
        return _FACTORIES[name][0]
    for prefix, (info, _) in _PREFIXES.items():
        if name.startswith(prefix):
            return EncoderInfo(name, info.modality, info.dim, info.description)
    raise EncoderError(f"unknown encoder '{name}'; run `skulens encoders` to list them")
