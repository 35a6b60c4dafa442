"""Encoders: a registry of image and text encoders with bundled pretrained weights."""

from skulens.encoders import classical, clip, image, text  # noqa: F401  (registers the encoders)
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
