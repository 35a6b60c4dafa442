"""The built-in encoders' registrations.

Factories import their encoder's module (torch, transformers, scikit-image, scikit-learn...) only when
called, so importing :mod:`skulens.encoders` and listing encoders stays fast. Dimensions are stated
here for :func:`~skulens.encoders.list_encoders`; tests check them against the created encoders.
"""

from __future__ import annotations

from typing import Any

from skulens.encoders.base import Encoder
from skulens.encoders.registry import register_encoder

EFFICIENTNET_DIM = 1280
EFFICIENTNET_RESOLUTIONS = {"lite0": 224, "lite1": 240, "lite2": 260}
MINILM_DIM = 384
CLASSICAL_DIM = 8 * 4 * 4 + 9 * 7 * 7 * 2 * 2 + 8 + 2  # HSV histogram + HOG (64 px) + uniform LBP


def _efficientnet(variant: str, quantize: bool = False):
    def create(**kwargs: Any) -> Encoder:
        from skulens.encoders.image import EfficientNetLiteEncoder

        return EfficientNetLiteEncoder(variant, quantize=quantize, **kwargs)

    return create


def _regions(variant: str):
    def create(**kwargs: Any) -> Encoder:
        from skulens.encoders.spatial import RegionEncoder

        return RegionEncoder(variant, **kwargs)

    return create


for _variant, _resolution in EFFICIENTNET_RESOLUTIONS.items():
    register_encoder(
        f"efficientnet-{_variant}",
        "image",
        EFFICIENTNET_DIM,
        f"EfficientNet-Lite{_variant[-1]} ImageNet features ({_resolution}px)",
    )(_efficientnet(_variant))
    register_encoder(
        f"efficientnet-{_variant}-int8",
        "image",
        EFFICIENTNET_DIM,
        f"EfficientNet-Lite{_variant[-1]} int8, ONNX Runtime static quantisation ({_resolution}px)",
    )(_efficientnet(_variant, quantize=True))
    register_encoder(
        f"efficientnet-{_variant}-regions",
        "image",
        EFFICIENTNET_DIM * (-(-_resolution // 32)) ** 2,
        f"EfficientNet-Lite{_variant[-1]} last feature map, {(-(-_resolution // 32)) ** 2} regions x 1280 (captioner input)",
    )(_regions(_variant))


@register_encoder("classical-image", "image", CLASSICAL_DIM, "colour histogram + HOG + LBP (scikit-image; no weights)")
def _classical(**kwargs: Any) -> Encoder:
    from skulens.encoders.classical import ClassicalImageEncoder

    return ClassicalImageEncoder(**kwargs)


@register_encoder("minilm", "text", MINILM_DIM, "all-MiniLM-L6-v2 sentence embeddings (bundled weights)")
def _minilm(**kwargs: Any) -> Encoder:
    from skulens.encoders.text import minilm_path, sentence_encoder

    return sentence_encoder(minilm_path(), "minilm", **kwargs)


@register_encoder("st:", "text", None, "any sentence-transformers model folder on disk")
def _sentence_transformer(path: str, **kwargs: Any) -> Encoder:
    from skulens.encoders.text import sentence_encoder

    return sentence_encoder(path, f"st:{path}", **kwargs)


@register_encoder("tfidf", "text", None, "TF-IDF word 1-2 grams, fitted on training rows (sparse)")
def _tfidf(**kwargs: Any) -> Encoder:
    from skulens.encoders.text import TfidfEncoder

    return TfidfEncoder(**kwargs)


@register_encoder("hf-clip:", "image", None, "CLIP image tower from a local transformers checkpoint")
def _clip_image(path: str, **kwargs: Any) -> Encoder:
    from skulens.encoders.clip import ClipImageEncoder

    return ClipImageEncoder(path, **kwargs)


@register_encoder("hf-clip-text:", "text", None, "CLIP text tower from a local transformers checkpoint")
def _clip_text(path: str, **kwargs: Any) -> Encoder:
    from skulens.encoders.clip import ClipTextEncoder

    return ClipTextEncoder(path, **kwargs)


@register_encoder("finetuned:", "image", EFFICIENTNET_DIM, "EfficientNet-Lite fine-tuned by `skulens finetune image` (a folder)")
def _finetuned(path: str, **kwargs: Any) -> Encoder:
    from skulens.encoders.finetuned import FinetunedImageEncoder

    return FinetunedImageEncoder(path, **kwargs)


@register_encoder("finetuned-text:", "text", MINILM_DIM, "MiniLM fine-tuned by `skulens finetune text` (a folder)")
def _finetuned_text(path: str, **kwargs: Any) -> Encoder:
    from skulens.encoders.finetuned_text import finetuned_text_encoder

    return finetuned_text_encoder(path, **kwargs)
