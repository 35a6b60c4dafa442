"""A MiniLM fine-tuned by ``skulens finetune text``, usable as encoder ``finetuned-text:<folder>``.

The folder is a complete sentence-transformers folder (the base model's tokenizer and pooling files,
``config.json`` and the fine-tuned ``model.safetensors``) plus ``encoder.json`` (recipe, classes, curves,
validation metrics) and ``head.safetensors`` (the fine-tuning classifier). It is run like any
sentence-transformers folder (:func:`skulens.encoders.text.sentence_encoder`: ONNX Runtime through the same
export, else PyTorch), giving L2-normalised mean-pooled 384-d embeddings; its identity carries a hash of
the folder's files, so new weights never reuse stale cached embeddings. No pickle: safetensors and JSON only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from skulens.encoders.base import Encoder, EncoderError
from skulens.encoders.finetuned import check_spec_file, read_safetensors
from skulens.encoders.text import sentence_encoder

SPEC_NAME = "encoder.json"
HEAD_NAME = "head.safetensors"
#: The fine-tuned transformer's weights (written by ``save_pretrained``; the only weights file read).
MODEL_WEIGHTS = "model.safetensors"
FORMAT = "skulens-finetuned-text/1"
#: Files of the base sentence-transformers folder copied unchanged (tokenizer, pooling, module list).
COPIED = (
    "modules.json",
    "config_sentence_transformers.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "1_Pooling/config.json",
)


def save_finetuned_text(
    folder: str | Path, base_folder: str | Path, model: nn.Module, classifier: nn.Linear, max_length: int, spec: dict[str, Any]
) -> Path:
    """Write the fine-tuned transformer ``model`` (a transformers ``BertModel``) as a sentence-transformers folder
    built from ``base_folder``, with ``classifier`` and ``spec``."""
    from safetensors.torch import save_file

    folder, base_folder = Path(folder), Path(base_folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        if (base_folder / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(base_folder / name, folder / name)
    st_config = json.loads((base_folder / "sentence_bert_config.json").read_text())
    (folder / "sentence_bert_config.json").write_text(json.dumps({**st_config, "max_seq_length": int(max_length)}, indent=2))
    model.save_pretrained(str(folder), safe_serialization=True)
    save_file({k: v.detach().contiguous().clone() for k, v in classifier.state_dict().items()}, str(folder / HEAD_NAME))
    (folder / SPEC_NAME).write_text(json.dumps({"format": FORMAT, "max_length": int(max_length), **spec}, indent=2))
    return folder


def read_text_spec(folder: str | Path) -> dict[str, Any]:
    """``encoder.json`` of a fine-tuned text encoder folder, checked."""
    path = Path(folder).expanduser() / SPEC_NAME
    check_spec_file(path)
    try:
        spec = json.loads(path.read_text())
    except FileNotFoundError:
        raise EncoderError(
            f"{folder} is not a fine-tuned text encoder folder: {SPEC_NAME} is missing (make one with `skulens finetune text`)"
        ) from None
    except (OSError, ValueError) as exc:
        raise EncoderError(f"{path} cannot be read: {exc}") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise EncoderError(f"{path} is not a fine-tuned text encoder spec (expected format {FORMAT!r})")
    return spec


def load_head(folder: str | Path) -> dict[str, torch.Tensor]:
    """The fine-tuning classifier's tensors (``weight``, ``bias``); safetensors only."""
    return read_safetensors(Path(folder).expanduser() / HEAD_NAME)


def finetuned_text_encoder(folder: str | Path, **kwargs: Any) -> Encoder:
    """The folder as a text encoder named ``finetuned-text:<folder>`` (keyword arguments as for
    :func:`~skulens.encoders.text.sentence_encoder`: ``backend``, ``threads``, ...)."""
    spec = read_text_spec(folder)
    # The weights must be this safetensors file: never a fallback to a pickled pytorch_model.bin beside it.
    read_safetensors(Path(folder).expanduser() / MODEL_WEIGHTS)
    encoder = sentence_encoder(str(Path(folder).expanduser()), f"finetuned-text:{folder}", **kwargs)
    encoder.spec = spec
    encoder.classes = list(spec.get("classes", []))
    return encoder
