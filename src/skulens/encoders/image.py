"""Image encoders on pretrained ImageNet CNNs."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from PIL import Image

from skulens.encoders.base import Encoder, EncoderError
from skulens.encoders.efficientnet_lite import (
    HEAD_CHANNELS,
    VARIANTS,
    EfficientNetLite,
    load_pretrained,
    pretrained_weights_path,
    to_onnx,
)
from skulens.encoders.fingerprint import weights_fingerprint
from skulens.encoders.pixels import to_square_array
from skulens.threads import available_cores, thread_budget  # noqa: F401  (available_cores: re-exported)

BACKENDS = ("auto", "onnx", "torch")
#: Images per ONNX Runtime call; a batch runs as chunks of this size on parallel threads.
CHUNK = 8


def onnx_session(model: EfficientNetLite) -> Any:
    """A single-threaded ONNX Runtime CPU session running ``model`` (see :func:`to_onnx`), safe to call
    from several threads at once; None without onnxruntime and onnx."""
    try:
        import onnx  # noqa: F401  (needed by to_onnx)
        import onnxruntime as ort
    except ImportError:
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(to_onnx(model), options, providers=["CPUExecutionProvider"])


class EfficientNetLiteEncoder(Encoder):
    """1280-d pooled features of EfficientNet-Lite0/1/2 with bundled ImageNet weights.

    ``backend="auto"`` runs the network with ONNX Runtime when onnxruntime and onnx are installed
    (3-6x faster on CPU than PyTorch eager) and otherwise with PyTorch; the two agree to float rounding,
    and the backend is part of :attr:`version`, as is a hash of the weight file. ``threads`` (default: all available cores) run chunks of
    a batch in parallel. :attr:`model` is always the PyTorch reference (Grad-CAM uses it).
    """

    modality = "image"
    dim = HEAD_CHANNELS
    batch_size = 32

    def __init__(
        self, variant: str = "lite0", threads: int | None = None, backend: str = "auto", model: EfficientNetLite | None = None
    ) -> None:
        """``model``: a network of this variant to run instead of the ImageNet one (fine-tuned weights)."""
        if variant not in VARIANTS:
            raise EncoderError(f"unknown EfficientNet-Lite variant '{variant}'; choose from {list(VARIANTS)}")
        if backend not in BACKENDS:
            raise EncoderError(f"unknown backend '{backend}'; choose from {list(BACKENDS)}")
        self.name = f"efficientnet-{variant}"
        self.resolution = VARIANTS[variant].resolution
        if threads:
            torch.set_num_threads(threads)
        self.model = (load_pretrained(variant) if model is None else model.eval()).to(memory_format=torch.channels_last)
        self.session = onnx_session(self.model) if backend != "torch" else None
        if self.session is None and backend == "onnx":
            raise EncoderError("backend='onnx' needs onnxruntime and onnx: pip install onnxruntime onnx")
        if self.session is None and backend == "auto":
            warnings.warn(
                "onnxruntime/onnx not installed; EfficientNet-Lite runs on PyTorch (several times slower)", stacklevel=2
            )
        self.backend = "torch" if self.session is None else "onnx"
        backend_tag = "-onnx" if self.session is not None else ""
        self.version = (
            f"imagenet-{self.resolution}px-squash{backend_tag}-w{weights_fingerprint([pretrained_weights_path(variant)])}"
        )
        self._pool = ThreadPoolExecutor(threads or thread_budget()) if self.session is not None else None

    def prepare(self, image: Image.Image | np.ndarray) -> np.ndarray:
        """One image as the network's uint8 (r, r, 3) input; arrays from an earlier call pass through.

        :func:`skulens.embed.embed_catalog` calls this in its decode threads, off the inference path.
        """
        return image if isinstance(image, np.ndarray) else to_square_array(image, self.resolution)

    def pixels(self, batch: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        """The batch as one uint8 (n, r, r, 3) array (see :meth:`prepare`)."""
        return np.stack([self.prepare(item) for item in batch])

    def preprocess(self, batch: Sequence[Image.Image | np.ndarray]) -> torch.Tensor:
        """A normalised (n, 3, r, r) batch for :attr:`model`: pixels scaled to [-1, 1] as the TF-Lite
        models expect."""
        tensor = torch.from_numpy(self.pixels(batch)).permute(0, 3, 1, 2).float()
        return (tensor / 127.5 - 1.0).contiguous(memory_format=torch.channels_last)

    def encode(self, batch: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.session is None:
            with torch.inference_mode():
                return self.model.features(self.preprocess(batch)).numpy()
        # Whole images per thread beat intra-op threads on few cores: no per-layer synchronisation.
        pixels = self.pixels(batch)
        chunks = [pixels[i : i + CHUNK] for i in range(0, len(pixels), CHUNK)]
        run = self.session.run
        return np.concatenate(list(self._pool.map(lambda chunk: run(["features"], {"pixels": chunk})[0], chunks)))

    @torch.inference_mode()
    def classify(self, batch: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        """ImageNet class probabilities, shape (n, 1000)."""
        return self.model._fc(torch.from_numpy(self.encode(batch))).softmax(-1).numpy()
