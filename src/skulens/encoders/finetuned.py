"""A fine-tuned EfficientNet-Lite saved by ``skulens finetune image``, usable as encoder ``finetuned:<folder>``.

The folder holds ``encoder.json`` (variant, recipe, classes, training curves) and ``weights.safetensors``
(the whole network, the fine-tuning classifier under ``classifier.*``). The encoder gives the network's
1280-d pooled features, like the bundled EfficientNet-Lite encoders (ONNX Runtime when available, the same
graph export); its identity carries a hash of the folder's files, so new weights never reuse stale cached
embeddings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from skulens.encoders.base import EncoderError
from skulens.encoders.efficientnet_lite import VARIANTS, EfficientNetLite
from skulens.encoders.fingerprint import folder_fingerprint
from skulens.encoders.image import EfficientNetLiteEncoder
from skulens.outputs import atomic_file, folder_lock, write_text

SPEC_NAME = "encoder.json"
WEIGHTS_NAME = "weights.safetensors"
CLASSIFIER_PREFIX = "classifier."
FORMAT = "skulens-finetuned-image/1"


def save_finetuned(folder: str | Path, model: EfficientNetLite, classifier: nn.Linear | None, spec: dict[str, Any]) -> Path:
    """Write ``model`` (and the fine-tuning ``classifier``) with ``spec`` into ``folder``, under the folder's lock:
    the spec is removed first and written last, each file atomically, so a run killed while saving leaves a
    folder that does not load (no spec) rather than new weights beside the previous run's spec."""
    from safetensors.torch import save_file

    folder = Path(folder)
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    if classifier is not None:
        tensors |= {f"{CLASSIFIER_PREFIX}{k}": v.detach().contiguous().clone() for k, v in classifier.state_dict().items()}
    with folder_lock(folder):
        (folder / SPEC_NAME).unlink(missing_ok=True)
        with atomic_file(folder / WEIGHTS_NAME) as temp:
            save_file(tensors, str(temp))
        write_text(folder / SPEC_NAME, json.dumps({"format": FORMAT, "variant": model.variant, **spec}, indent=2))
    return folder


#: Largest ``encoder.json`` read.
MAX_SPEC_BYTES = 10 * 1024**2


def check_spec_file(path: Path) -> None:
    """Refuse a spec that exists but is not a regular file (a FIFO would block the read forever, a device
    never end) or is over :data:`MAX_SPEC_BYTES`; a missing one is left to the caller's message."""
    if path.exists() and not path.is_file():
        raise EncoderError(f"{path} is not a regular file; the encoder folder is damaged")
    if path.is_file() and path.stat().st_size > MAX_SPEC_BYTES:
        raise EncoderError(f"{path} is over {MAX_SPEC_BYTES:,} bytes; it is not an encoder spec")


def read_spec(folder: str | Path) -> dict[str, Any]:
    path = Path(folder).expanduser() / SPEC_NAME
    check_spec_file(path)
    try:
        spec = json.loads(path.read_text())
    except FileNotFoundError:
        raise EncoderError(
            f"{folder} is not a fine-tuned encoder folder: {SPEC_NAME} is missing (make one with `skulens finetune image`)"
        ) from None
    except (OSError, ValueError) as exc:
        raise EncoderError(f"{path} cannot be read: {exc}") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT or spec.get("variant") not in VARIANTS:
        raise EncoderError(f"{path} is not a fine-tuned image encoder spec (expected format {FORMAT!r} and a known variant)")
    return spec


#: Largest weights file a fine-tuned encoder folder may hold.
MAX_WEIGHTS_BYTES = 4 * 1024**3


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, refused (one :class:`EncoderError`) when it is missing, not a
    regular file (a FIFO or a device would hang or never end), over the size cap, unreadable, or holds
    NaN or infinite values."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        what = "is not a regular file" if path.exists() else "is missing"
        raise EncoderError(f"{path} {what}; the fine-tuned encoder folder is incomplete (fine-tune again)")
    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise EncoderError(f"{path} is {size:,} bytes, over the {MAX_WEIGHTS_BYTES:,}-byte limit for encoder weights")
    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise EncoderError(f"{path} cannot be read: {exc}") from None
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise EncoderError(f"{path}: tensor '{name}' holds NaN or infinite values; the weights are damaged (fine-tune again)")
    return tensors


def load_finetuned(folder: str | Path) -> tuple[EfficientNetLite, dict[str, torch.Tensor], dict[str, Any]]:
    """The fine-tuned network (eval mode), its classifier tensors and its spec; safetensors only, no pickle."""
    spec = read_spec(folder)
    path = Path(folder).expanduser() / WEIGHTS_NAME
    tensors = read_safetensors(path)
    classifier = {k[len(CLASSIFIER_PREFIX) :]: v for k, v in tensors.items() if k.startswith(CLASSIFIER_PREFIX)}
    model = EfficientNetLite(spec["variant"])
    try:
        model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(CLASSIFIER_PREFIX)}, strict=True)
    except RuntimeError as exc:
        raise EncoderError(f"{path} does not match EfficientNet-{spec['variant']}: {str(exc)[:300]}") from None
    return model.eval(), classifier, spec


class FinetunedImageEncoder(EfficientNetLiteEncoder):
    """Pooled 1280-d features of a fine-tuned EfficientNet-Lite (see the module docstring)."""

    def __init__(self, folder: str | Path, threads: int | None = None, backend: str = "auto") -> None:
        model, classifier, spec = load_finetuned(folder)
        super().__init__(spec["variant"], threads=threads, backend=backend, model=model)
        self.folder = Path(folder).expanduser()
        self.spec = spec
        self.classes = list(spec.get("classes", []))
        self.classifier = classifier
        self.name = f"finetuned:{folder}"
        backend_tag = "-onnx" if self.session is not None else ""
        self.version = f"finetuned-{self.pretrained.tag}{backend_tag}-w{folder_fingerprint(self.folder)}"
