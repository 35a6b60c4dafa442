"""Sentence-transformers text encoders (BERT-like, mean pooling, normalised) on ONNX Runtime.

The model folder's transformer with mean pooling and L2 normalisation is exported once with
``torch.onnx.export`` into ``$SKULENS_ONNX_CACHE`` (default ``~/.cache/skulens/onnx``), named by a hash of
the folder's weight, config and tokenizer files, and optionally quantised to int8 (ONNX Runtime dynamic
quantisation). Nothing is exported at import; the first encoder created for a folder exports it.

Texts are tokenised with the folder's fast tokenizer (``tokenizers``, no transformers import), sorted
by length and cut into batches padded to their own longest text (dynamic padding), so short titles
never pay for the longest description.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from skulens.encoders.base import Encoder, EncoderError
from skulens.encoders.fingerprint import folder_fingerprint
from skulens.threads import ort_session_options

ONNX_CACHE_ENV = "SKULENS_ONNX_CACHE"
#: Tokens per batch (rows x padded length) the length buckets aim for; at most ``batch_size`` rows.
TOKENS_PER_BATCH = 8192
_export_lock = threading.Lock()


def onnx_cache_dir() -> Path:
    env = os.environ.get(ONNX_CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "skulens" / "onnx"


def _folder_config(path: Path) -> tuple[int, bool]:
    """(max sequence length, lower-case flag) from the sentence-transformers folder; refuses a pooling other
    than mean or a missing Normalize module (the exported graph implements exactly those)."""
    try:
        modules = json.loads((path / "modules.json").read_text())
        pooling = json.loads(
            (path / next(m["path"] for m in modules if m["type"].endswith("Pooling")) / "config.json").read_text()
        )
        st_config = json.loads((path / "sentence_bert_config.json").read_text())
    except (OSError, ValueError, StopIteration, KeyError) as error:
        raise EncoderError(f"'{path}' is not a sentence-transformers folder ONNX export understands: {error}") from None
    if not pooling.get("pooling_mode_mean_tokens") or not any(m["type"].endswith("Normalize") for m in modules):
        raise EncoderError(f"'{path}': only mean pooling with normalisation is exported to ONNX; use backend='torch'")
    return int(st_config.get("max_seq_length", 256)), bool(st_config.get("do_lower_case", False))


def export_onnx(path: Path, target: Path) -> Path:
    """Export the folder's transformer + mean pooling + L2 normalisation to ``target`` (atomic write).

    Inputs ``input_ids``, ``attention_mask`` (int64, batch x tokens); output ``embedding`` (batch x dim).
    """
    import torch
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            tokens = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    model = Pooled(AutoModel.from_pretrained(str(path), local_files_only=True).eval())
    example = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            # the exporter's notes on its own internals (UserWarning, TracerWarning) are not the user's business
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                example,
                temp,
                input_names=["input_ids", "attention_mask"],
                output_names=["embedding"],
                dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}},
                opset_version=17,
                dynamo=False,
            )
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
    return target


def quantize_int8(source: Path, target: Path) -> Path:
    """Dynamic int8 quantisation of ``source``'s MatMul weights (ONNX Runtime ``quantize_dynamic``, per channel,
    reduced range: plain per-tensor int8 drops the cosine to the float model to ~0.91 on MiniLM), atomically."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fd, temp = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        quantize_dynamic(
            str(source), temp, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"], per_channel=True, reduce_range=True
        )
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
    return target


def exported_model(path: Path, quantize: bool = False) -> tuple[Path, str]:
    """(ONNX file, weights fingerprint) for the folder, exporting (and quantising) it on first use."""
    fingerprint = folder_fingerprint(str(path))
    base = onnx_cache_dir() / f"{path.name}-{fingerprint}.onnx"
    target = base.with_name(base.stem + "-int8pc.onnx") if quantize else base
    with _export_lock:
        try:
            if not base.exists():
                export_onnx(path, base)
            if quantize and not target.exists():
                quantize_int8(base, target)
        except (OSError, RuntimeError, ValueError, TypeError) as error:
            raise EncoderError(f"exporting '{path}' to ONNX failed: {error}") from None
    return target, fingerprint


class OnnxSentenceEncoder(Encoder):
    """A sentence-transformers folder run by ONNX Runtime; L2-normalised embeddings equal (cosine >= 0.9999)
    to :class:`~skulens.encoders.text.SentenceTransformerEncoder`'s, or close to them with ``quantize=True``.

    :attr:`version` holds the maximum sequence length, the weights hash and the backend (``onnx`` or
    ``onnx-int8``), so vectors from another backend are never mixed in the cache. ``threads``: ONNX
    Runtime intra-op threads (default: the process budget, :mod:`skulens.threads`).
    """

    modality = "text"
    batch_size = 64

    def __init__(
        self, path: str, name: str, max_seq_length: int | None = None, quantize: bool = False, threads: int | None = None
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise EncoderError(f"'{path}' is not a sentence-transformers model folder; pass a local folder")
        default_length, self.lower_case = _folder_config(folder)
        if not (folder / "tokenizer.json").is_file():
            raise EncoderError(f"'{path}' has no tokenizer.json (a fast tokenizer), which the ONNX backend needs")
        self.name = name
        self.max_seq_length = int(max_seq_length or default_length)
        model_file, fingerprint = exported_model(folder, quantize)
        self.session = ort.InferenceSession(str(model_file), ort_session_options(threads), providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_seq_length)
        self.dim = int(self.session.get_outputs()[0].shape[1] or self._probe_dim())
        self.quantized = quantize
        self.version = f"maxlen{self.max_seq_length}-w{fingerprint}-onnx{'-int8' if quantize else ''}"

    def _probe_dim(self) -> int:
        return int(self._run([[101, 102]]).shape[1])

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        """Embeddings of token-id lists, padded to the longest in the list."""
        length = max(len(row) for row in ids)
        input_ids = np.zeros((len(ids), length), dtype=np.int64)
        mask = np.zeros((len(ids), length), dtype=np.int64)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return self.session.run(["embedding"], {"input_ids": input_ids, "attention_mask": mask})[0]

    def token_ids(self, batch: Sequence[str]) -> list[list[int]]:
        """The token ids the network reads for each text (cut at :attr:`max_seq_length`): texts with equal
        ids have equal embeddings."""
        texts = [(text.lower() if self.lower_case else text) if text.strip() else " " for text in batch]
        return [encoding.ids for encoding in self.tokenizer.encode_batch(texts)]

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids = self.token_ids(batch)
        order = np.argsort([len(row) for row in ids], kind="stable")
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        start = 0
        while start < len(order):  # length buckets: rows sorted by length, batches of similar lengths
            longest = len(ids[order[min(start + self.batch_size, len(order)) - 1]])
            rows = max(1, min(self.batch_size, TOKENS_PER_BATCH // max(longest, 1)))
            chosen = order[start : start + rows]
            out[chosen] = self._run([ids[i] for i in chosen])
            start += rows
        return out
