"""The encoder contract: a named, versioned function from a batch of inputs to a float32 matrix."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from skulens.errors import SkulensError

MODALITIES = ("image", "text")


class EncoderError(SkulensError, ValueError):
    """An encoder that cannot be created or used; the message says what to do."""

    code = "encoder"


class Encoder(ABC):
    """Turns a batch of images (PIL, RGB) or texts (str) into an ``(n, dim)`` float32 matrix.

    ``identity`` names the encoder, its weights and its preprocessing; the embedding cache keys on it,
    so anything that changes the output must change the identity. Encoders that learn from data
    (``requires_fit``) are fitted on training rows only and are not cached.
    """

    name: str
    modality: str
    dim: int
    version: str = "1"
    batch_size: int = 32
    requires_fit: bool = False

    @property
    def identity(self) -> str:
        return f"{self.name}@{self.version}"

    @abstractmethod
    def encode(self, batch: Sequence[Any]) -> Any:
        """Embeddings for ``batch``, one row per item, float32."""

    def fit(self, batch: Sequence[Any]) -> Encoder:
        """Learn from training inputs (no-op for pretrained encoders)."""
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, modality={self.modality!r}, dim={self.dim})"


def as_float32(matrix: Any) -> np.ndarray:
    array = np.asarray(matrix, dtype=np.float32)
    if array.ndim != 2:
        raise EncoderError(f"encoder returned shape {array.shape}; expected (batch, dim)")
    return array
