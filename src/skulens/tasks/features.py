"""Named encoders -> feature blocks for a catalog (the input every predictor's heads see)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skulens.catalog.schema import Catalog, RowIssue
from skulens.embed import embed_catalog
from skulens.encoders import Encoder, EncoderError, create_encoder
from skulens.encoders.text import TfidfEncoder
from skulens.tasks.model_folder import ModelFolderError


@dataclass
class Features:
    """``blocks[name]`` is the matrix of encoder ``name``; ``present[name]`` marks rows it could encode."""

    blocks: dict
    present: dict
    issues: list[RowIssue] = field(default_factory=list)

    def subset(self, rows: np.ndarray) -> Features:
        return Features({k: v[rows] for k, v in self.blocks.items()}, {k: v[rows] for k, v in self.present.items()})


class FeatureExtractor:
    """Creates the named encoders once (lazily) and turns catalogs into :class:`Features`.

    Fitted encoders (``tfidf``) are fitted on the training catalog in :meth:`fit` and saved with the
    model through :meth:`to_arrays` / :meth:`from_arrays`.
    """

    def __init__(
        self,
        encoders: Sequence[str],
        text_fields: Sequence[str] = ("title", "description"),
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
        progress: bool = False,
    ) -> None:
        self.names = list(encoders)
        self.text_fields = tuple(text_fields)
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        self.progress = progress
        self._encoders: dict[str, Encoder] = {}

    def encoder(self, name: str) -> Encoder:
        if name not in self._encoders:
            try:
                self._encoders[name] = create_encoder(name)
            except (EncoderError, ImportError, OSError) as exc:
                raise ModelFolderError(f"encoder '{name}' is not available: {exc}") from None
        return self._encoders[name]

    def fit(self, catalog: Catalog) -> FeatureExtractor:
        for name in self.names:
            encoder = self.encoder(name)
            if encoder.requires_fit:
                encoder.fit(catalog.texts(self.text_fields))
        return self

    def transform(self, catalog: Catalog) -> Features:
        blocks, present, issues = {}, {}, []
        for name in self.names:
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

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Put back fitted encoders saved by :meth:`to_arrays`."""
        for name in self.names:
            own = {k[len(name) + 1 :]: v for k, v in arrays.items() if k.startswith(f"{name}.")}
            if own:
                self._encoders[name] = TfidfEncoder.from_arrays(own)
