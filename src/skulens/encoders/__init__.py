"""Encoders: a registry of image and text encoders with bundled pretrained weights.

Importing this package loads no model library (torch, transformers...): each built-in encoder's
module is imported when the encoder is created (see :mod:`skulens.encoders.builtin`).
"""

from skulens.encoders import builtin  # noqa: F401  (registers the built-in encoders)
from skulens.encoders.base import MODALITIES, Encoder, EncoderError
from skulens.encoders.registry import EncoderInfo, create_encoder, encoder_info, list_encoders, register_encoder

__all__ = [
    "MODALITIES",
    "Encoder",
    "EncoderError",
    "EncoderInfo",
    "create_encoder",
    "encoder_info",
    "list_encoders",
    "register_encoder",
]
