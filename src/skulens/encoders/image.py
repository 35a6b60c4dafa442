"""Image encoders on pretrained ImageNet CNNs."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from skulens.encoders.base import Encoder, EncoderError
from skulens.encoders.fingerprint import weights_fingerprint
from skulens.encoders.image_int8 import INT8_VERSION
from skulens.encoders.lite_variants import HEAD_CHANNELS, VARIANTS, pretrained_weights_path
from skulens.encoders.pixels import config_pixels
from skulens.encoders.text_onnx import onnx_cache_dir
from skulens.threads import available_cores, thread_budget  # noqa: F401  (available_cores: re-exported)

if TYPE_CHECKING:
    import torch

    from skulens.encoders.efficientnet_lite import EfficientNetLite

BACKENDS = ("auto", "onnx", "torch")
#: Images per ONNX Runtime call; a batch runs as chunks of this size on parallel threads.
CHUNK = 8


#: Bumped when :func:`~skulens.encoders.efficientnet_lite.to_onnx` builds a different graph (cached files are named by it).
GRAPH_VERSION = 1


def onnx_session(source: bytes | Path) -> Any:
    """A single-threaded ONNX Runtime CPU session running a serialised graph (bytes or file), safe to call
    from several threads at once; None without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(source if isinstance(source, bytes) else str(source), options, providers=["CPUExecutionProvider"])


def cached_graph(variant: str, fingerprint: str, model: Callable[[], EfficientNetLite]) -> bytes | Path | None:
    """The ONNX graph of ``variant``: the cached file (``$SKULENS_ONNX_CACHE``) when there is one, else built from
    ``model()`` with :func:`to_onnx` and cached (atomically; an unwritable cache only costs the rebuild next time).
    None without the ``onnx`` package."""
    target = onnx_cache_dir() / f"efficientnet-{variant}-{fingerprint}-g{GRAPH_VERSION}.onnx"
    if target.is_file():
        return target
    try:
        import onnx  # noqa: F401  (needed by to_onnx)
    except ImportError:
        return None
    from skulens.encoders.efficientnet_lite import to_onnx

    graph = to_onnx(model())
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(graph)
        os.replace(temp, target)
    except OSError:
        pass
    return graph


def _own_graph(model: EfficientNetLite) -> bytes | None:
    """The ONNX graph of ``model`` (not cached: its weights are not the packaged ones); None without ``onnx``."""
    try:
        import onnx  # noqa: F401  (needed by to_onnx)
    except ImportError:
        return None
    from skulens.encoders.efficientnet_lite import to_onnx

    return to_onnx(model)


def _int8_graph(graph: bytes | Path, variant: str, fingerprint: str, cache: bool) -> bytes | Path:
    """The int8 version of ``graph``: cached beside the float one for the packaged weights (``cache``), else
    quantised in a temporary folder and returned as bytes."""
    from skulens.encoders.image_int8 import INT8_VERSION, cached_int8_graph, calibration_pixels, quantize_graph

    resolution = VARIANTS[variant].resolution
    if cache:
        target = onnx_cache_dir() / f"efficientnet-{variant}-{fingerprint}-g{GRAPH_VERSION}-int8q{INT8_VERSION}.onnx"
        return cached_int8_graph(graph, target, resolution)
    with tempfile.TemporaryDirectory() as work:
        return quantize_graph(graph, Path(work) / "int8.onnx", calibration_pixels(resolution)).read_bytes()


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
        self,
        variant: str = "lite0",
        threads: int | None = None,
        backend: str = "auto",
        model: EfficientNetLite | None = None,
        quantize: bool = False,
    ) -> None:
        """``model``: a network of this variant to run instead of the ImageNet one (fine-tuned weights); its
        ONNX graph is built from it and never taken from or put in the cache. ``quantize``: run the int8 graph
        (:mod:`skulens.encoders.image_int8`; about 1.6x faster, cosine to the float features ~0.99), named
        ``efficientnet-<variant>-int8``."""
        if variant not in VARIANTS:
            raise EncoderError(f"unknown EfficientNet-Lite variant '{variant}'; choose from {list(VARIANTS)}")
        if backend not in BACKENDS:
            raise EncoderError(f"unknown backend '{backend}'; choose from {list(BACKENDS)}")
        if quantize and backend == "torch":
            raise EncoderError("quantize=True runs on ONNX Runtime; use backend='auto' or 'onnx'")
        self.name = f"efficientnet-{variant}" + ("-int8" if quantize else "")
        self.variant, self.threads = variant, threads
        self.pretrained = VARIANTS[variant].pretrained
        self.resolution = self.pretrained.input_size
        self._model: EfficientNetLite | None = None
        fingerprint = weights_fingerprint([pretrained_weights_path(variant)])
        graph = None
        if model is not None:
            import torch

            self._model = model.eval().to(memory_format=torch.channels_last)
            graph = _own_graph(self._model) if backend != "torch" else None
        elif backend != "torch":
            graph = cached_graph(variant, fingerprint, lambda: self.model)
        if quantize and graph is not None:
            graph = _int8_graph(graph, variant, fingerprint, cache=model is None)
        self.session = onnx_session(graph) if graph is not None else None
        if self.session is None and (backend == "onnx" or quantize):
            raise EncoderError("backend='onnx' needs onnxruntime and onnx: pip install onnxruntime onnx")
        if self.session is None and backend == "auto":
            warnings.warn(
                "onnxruntime/onnx not installed; EfficientNet-Lite runs on PyTorch (several times slower)", stacklevel=2
            )
        if self.session is None:
            self.model  # noqa: B018  (the torch backend: load it now, not inside the first encode)
        self.backend = "torch" if self.session is None else "onnx"
        backend_tag = ("-onnx" if self.session is not None else "") + (f"-int8q{INT8_VERSION}" if quantize else "")
        self.version = f"imagenet-{self.pretrained.tag}{backend_tag}-w{fingerprint}"
        self._pool = ThreadPoolExecutor(threads or thread_budget()) if self.session is not None else None

    @property
    def model(self) -> EfficientNetLite:
        """The PyTorch reference network (Grad-CAM uses it), loaded with PyTorch on first use: the ONNX
        backend, once its graph is cached, never imports torch."""
        if self._model is None:
            import torch

            from skulens.encoders.efficientnet_lite import load_pretrained

            if self.threads:
                torch.set_num_threads(self.threads)
            self._model = load_pretrained(self.variant).to(memory_format=torch.channels_last)
        return self._model

    def prepare(self, image: Image.Image | np.ndarray) -> np.ndarray:
        """One image as the network's uint8 (r, r, 3) input; arrays from an earlier call pass through.

        :func:`skulens.embed.embed_catalog` calls this in its decode threads, off the inference path.
        """
        if isinstance(image, np.ndarray):
            return image
        return config_pixels(image, self.resolution, self.pretrained.interpolation, self.pretrained.crop)

    def pixels(self, batch: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        """The batch as one uint8 (n, r, r, 3) array (see :meth:`prepare`)."""
        return np.stack([self.prepare(item) for item in batch])

    def preprocess(self, batch: Sequence[Image.Image | np.ndarray]) -> torch.Tensor:
        """A normalised (n, 3, r, r) batch for :attr:`model`, as the variant's pretrained config says."""
        import torch

        from skulens.encoders.efficientnet_lite import to_input

        return to_input(self.pixels(batch), self.pretrained).contiguous(memory_format=torch.channels_last)

    def encode(self, batch: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.session is None:
            import torch

            with torch.inference_mode():
                return self.model.features(self.preprocess(batch)).numpy()
        # Whole images per thread beat intra-op threads on few cores: no per-layer synchronisation.
        pixels = self.pixels(batch)
        chunks = [pixels[i : i + CHUNK] for i in range(0, len(pixels), CHUNK)]
        run = self.session.run
        return np.concatenate(list(self._pool.map(lambda chunk: run(["features"], {"pixels": chunk})[0], chunks)))

    def classify(self, batch: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        """ImageNet class probabilities, shape (n, 1000)."""
        import torch

        features = self.encode(batch)
        with torch.inference_mode():
            return self.model._fc(torch.from_numpy(features)).softmax(-1).numpy()
