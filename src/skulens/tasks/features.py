"""Named encoders -> feature blocks (the input every predictor's heads see), from a catalog or from memory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from PIL import Image

from skulens.catalog.schema import Catalog, CatalogError, RowIssue
from skulens.embed import embed_catalog
from skulens.encoders import Encoder, EncoderError, create_encoder
from skulens.encoders.base import as_float32
from skulens.encoders.text import TfidfEncoder
from skulens.tasks.model_folder import ModelFolderError, array_part, encoder_sources
from skulens.threads import thread_budget


@dataclass
class Features:
    """``blocks[name]`` is the matrix of encoder ``name``; ``present[name]`` marks rows it could encode."""

    blocks: dict
    present: dict
    issues: list[RowIssue] = field(default_factory=list)

    def subset(self, rows: np.ndarray) -> Features:
        return Features({k: v[rows] for k, v in self.blocks.items()}, {k: v[rows] for k, v in self.present.items()})


class FeatureExtractor:
    """Creates the named encoders once (lazily) and turns catalogs (:meth:`transform`, through the
    embedding cache) or in-memory products (:meth:`transform_inputs`, no cache) into :class:`Features`.

    Fitted encoders (``tfidf``) are fitted on the training catalog in :meth:`fit` and saved with the
    model through :meth:`to_arrays` / :meth:`restore`.
    """

    def __init__(
        self,
        encoders: Sequence[str],
        text_fields: Sequence[str] = ("title", "description"),
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
        progress: bool = False,
        sources: dict[str, str] | None = None,
        factory: Callable[[str], Encoder] = create_encoder,
    ) -> None:
        """``sources[name]`` is what to create encoder ``name`` from when it differs (a path-named
        encoder of a saved model, resolved inside its folder; see ``encoder_sources``); ``factory``
        creates an encoder from that source (the registry's ``create_encoder`` by default)."""
        self.names = list(encoders)
        self.sources = dict(sources or {})
        self.text_fields = tuple(text_fields)
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        self.progress = progress
        self.factory = factory
        self._encoders: dict[str, Encoder] = {}

    def encoder(self, name: str) -> Encoder:
        if name not in self._encoders:
            source = self.sources.get(name, name)
            try:
                encoder = self.factory(source)
            except (EncoderError, ImportError, OSError, ValueError) as exc:
                raise ModelFolderError(f"encoder '{name}' is not available: {exc}") from None
            if source != name:  # created from a resolved path, it keeps the name (and identity) it was saved with
                encoder.name = name
            self._encoders[name] = encoder
        return self._encoders[name]

    def fit(self, catalog: Catalog) -> FeatureExtractor:
        for name in self.names:
            encoder = self.encoder(name)
            if encoder.requires_fit:
                encoder.fit(catalog.texts(self.text_fields))
        return self

    def transform(self, catalog: Catalog, names: Sequence[str] | None = None) -> Features:
        """Blocks of ``names`` (default: every encoder) for each catalog row, through the embedding cache."""
        blocks, present, issues = {}, {}, []
        for name in self.names if names is None else names:
            result = embed_catalog(
                catalog,
                self.encoder(name),
                cache_dir=self.cache_dir,
                use_cache=self.use_cache,
                progress=self.progress,
                text_fields=self.text_fields,
            )
            blocks[name], present[name] = result.vectors, result.present
            issues.extend(result.issues)
        return Features(blocks, present, issues)

    def transform_inputs(self, images: Sequence, texts: Sequence[str], names: Sequence[str] | None = None) -> Features:
        """Features of products held in memory: the same blocks :meth:`transform` gives for a catalog
        with these images and texts, without the embedding cache or any file.

        ``images[i]`` is a decoded RGB PIL image, an array already made by the image encoder's
        ``prepare`` (one image encoder), or ``None``; ``texts[i]`` is the product's joined text fields.
        ``names`` restricts the blocks to those encoders (default: every encoder). With several encoders
        and a thread budget above one, the encoders run side by side (ONNX Runtime and PyTorch release the
        GIL), so a product's image and text are encoded at the same time.
        """
        texts = ["" if t is None else str(t) for t in texts]
        images = list(images)
        if len(images) != len(texts):
            raise CatalogError(f"got {len(images)} images for {len(texts)} texts; give one of each per product (None if absent)")
        names = list(self.names if names is None else names)
        encoders = [self.encoder(name) for name in names]  # created here, not concurrently in the threads
        for encoder in encoders:
            if encoder.requires_fit and not getattr(encoder, "is_fitted", True):
                raise CatalogError(f"encoder '{encoder.name}' must be fitted on training rows before use")
        if len(encoders) > 1 and thread_budget() > 1:
            with ThreadPoolExecutor(len(encoders), thread_name_prefix="skulens-encode") as pool:
                encoded = list(pool.map(lambda encoder: _encode_inputs(encoder, images, texts), encoders))
        else:
            encoded = [_encode_inputs(encoder, images, texts) for encoder in encoders]
        return Features({n: e[0] for n, e in zip(names, encoded)}, {n: e[1] for n, e in zip(names, encoded)})

    def zero_row(self) -> dict:
        """One all-zero feature row per encoder, dense or sparse as the encoder gives it (to check heads)."""
        return {
            name: sp.csr_matrix((1, enc.dim), dtype=np.float32)
            if isinstance(enc, TfidfEncoder)
            else np.zeros((1, enc.dim), np.float32)
            for name, enc in ((name, self.encoder(name)) for name in self.names)
        }

    def identities(self) -> dict[str, str]:
        return {name: self.encoder(name).identity for name in self.names}

    def check_identities(self, saved: dict[str, str], folder: str | Path) -> None:
        """Refuse a model whose encoders now produce different embeddings than when it was trained."""
        for name, identity in saved.items():
            current = self.encoder(name).identity
            if current != identity:
                raise ModelFolderError(
                    f"model {folder} was trained with encoder {identity}, but this install has {current}; "
                    "retrain the model or install the matching encoder version"
                )

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {}
        for name, encoder in self._encoders.items():
            if isinstance(encoder, TfidfEncoder):
                arrays.update({f"{name}.{k}": v for k, v in encoder.to_arrays().items()})
        return arrays

    def restore_saved(self, arrays: dict[str, np.ndarray], identities: dict[str, str], folder: str | Path) -> None:
        """Put back a saved model's encoders: path-named ones resolved inside ``folder``, fitted ones from
        its ``encoder.*`` arrays; then refuse encoders whose identity changed since training."""
        self.sources = encoder_sources(self.names, folder)
        self.restore(array_part(arrays, "encoder"))
        self.check_identities(identities, folder)

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Put back fitted encoders saved by :meth:`to_arrays`."""
        for name in self.names:
            own = {k[len(name) + 1 :]: v for k, v in arrays.items() if k.startswith(f"{name}.")}
            if own:
                self._encoders[name] = TfidfEncoder.from_arrays(own)


def _image_input(encoder: Encoder, image) -> object:
    """What ``encoder.encode`` takes for one product image (its ``prepare`` output when it has one)."""
    prepare = getattr(encoder, "prepare", None)
    if prepare is not None:
        return prepare(image)
    if isinstance(image, np.ndarray):  # prepared for another encoder: back to an image for this one
        return Image.fromarray(image)
    return image


def _encode_inputs(encoder: Encoder, images: list, texts: list[str]) -> tuple:
    """(block, present mask) of one encoder for in-memory products (see :meth:`FeatureExtractor.transform_inputs`)."""
    if encoder.modality == "image":
        mask = np.array([image is not None for image in images], dtype=bool)
        items = [_image_input(encoder, images[i]) for i in np.flatnonzero(mask)]
    else:
        mask = np.array([bool(t.strip()) for t in texts], dtype=bool)
        if encoder.requires_fit:  # fitted encoders (tfidf) encode every row, as in a catalog
            return encoder.encode(texts), mask
        items = [texts[i] for i in np.flatnonzero(mask)]
    vectors = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    step = max(1, encoder.batch_size)
    rows = np.flatnonzero(mask)
    for start in range(0, len(items), step):
        vectors[rows[start : start + step]] = as_float32(encoder.encode(items[start : start + step]))
    return vectors, mask
