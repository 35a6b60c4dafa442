"""CLIP-family checkpoints on disk (Hugging Face ``transformers`` format), image and text towers.

``hf-clip:/path/to/model`` embeds images and ``hf-clip-text:/path/to/model`` embeds texts into the
same space. Nothing is downloaded: the folder must hold ``config.json`` and the weights (and, for
text, the tokenizer files).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from skulens.encoders.base import Encoder, EncoderError
from skulens.encoders.fingerprint import folder_fingerprint
from skulens.encoders.pixels import to_square_array
from skulens.encoders.quiet import quiet_loading

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: Files that hold a tokenizer's vocabulary (a tokenizer_config.json alone is not enough).
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")


@lru_cache(maxsize=4)
def _load(path: str, fingerprint: str) -> tuple[Any, Any]:
    """(model, tokenizer or None) for a local CLIP folder, loaded once per process and weights hash."""
    folder = Path(path).expanduser()
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers import AutoTokenizer, CLIPModel

    with quiet_loading():
        model = CLIPModel.from_pretrained(str(folder), local_files_only=True).eval()
        tokenizer = None
        # Without vocabulary files, recent transformers builds an empty CLIP tokenizer instead of failing.
        if any((folder / name).is_file() for name in TOKENIZER_FILES):
            try:
                tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            except (OSError, ValueError):
                tokenizer = None
    return model, tokenizer


class _ClipTower(Encoder):
    """:attr:`version` is a hash of the folder's weight, config and tokenizer files (the same for both towers)."""

    def __init__(self, path: str, prefix: str) -> None:
        if not (Path(path).expanduser() / "config.json").is_file():
            raise EncoderError(f"'{path}' is not a CLIP checkpoint folder (no config.json); pass a local folder")
        self.path = path
        self.name = f"{prefix}{path}"
        fingerprint = folder_fingerprint(path)
        self.model, self.tokenizer = _load(path, fingerprint)
        self.dim = int(self.model.config.projection_dim)
        self.version = f"w{fingerprint}"

    @staticmethod
    def _normalise(features: torch.Tensor) -> np.ndarray:
        features = features.pooler_output if hasattr(features, "pooler_output") else features
        return torch.nn.functional.normalize(features, dim=-1).numpy().astype(np.float32)


class ClipImageEncoder(_ClipTower):
    """Projected, L2-normalised CLIP image embeddings."""

    modality = "image"

    def __init__(self, path: str) -> None:
        super().__init__(path, "hf-clip:")
        self.resolution = int(self.model.config.vision_config.image_size)
        self.mean = torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(OPENAI_CLIP_STD).view(1, 3, 1, 1)

    @torch.inference_mode()
    def encode(self, batch: Sequence[Image.Image]) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        pixels = torch.from_numpy(np.stack([to_square_array(im, self.resolution) for im in batch]))
        pixels = (pixels.permute(0, 3, 1, 2).float() / 255.0 - self.mean) / self.std
        return self._normalise(self.model.get_image_features(pixel_values=pixels))


class ClipTextEncoder(_ClipTower):
    """Projected, L2-normalised CLIP text embeddings."""

    modality = "text"

    def __init__(self, path: str) -> None:
        super().__init__(path, "hf-clip-text:")
        if self.tokenizer is None:
            raise EncoderError(f"'{path}' has no tokenizer files; the text tower needs them")
        self.max_length = int(self.model.config.text_config.max_position_embeddings)

    @torch.inference_mode()
    def encode(self, batch: Sequence[str]) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        tokens = self.tokenizer(list(batch), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return self._normalise(
            self.model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        )
