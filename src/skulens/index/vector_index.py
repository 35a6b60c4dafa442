"""A FAISS inner-product index over normalised vectors, with product ids, filter columns and a manifest.

Kinds: ``flat`` (exact), ``ivf`` (inverted lists, ``nprobe`` lists searched) and ``hnsw`` (graph).
``kind="auto"`` picks ``flat`` up to :data:`FLAT_LIMIT` vectors and ``ivf`` above; the choice is recorded.

On disk (format :data:`FORMAT_VERSION`): ``index.faiss`` (FAISS's own binary format), ``manifest.json``
(format version, kind, parameters, dimension, count, the identity of the model that made the vectors)
and ``metadata.parquet`` (``id`` plus the columns ``--where`` filters and results can show). Nothing is
pickled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from skulens.errors import SkulensError
from skulens.outputs import atomic_file, folder_lock, write_text

FORMAT_VERSION = 1
FLAT_LIMIT = 50_000
INDEX_FILE = "index.faiss"
MANIFEST = "manifest.json"
METADATA = "metadata.parquet"
KINDS = ("auto", "flat", "ivf", "hnsw")


class SearchIndexError(SkulensError, ValueError):
    """An index that cannot be built, read or queried as asked; the message says why and what to do."""

    code = "search_index"


class IndexIdentityError(SearchIndexError):
    """The index was built from vectors of a different model than the one querying it."""

    code = "index_mismatch"


class UnknownProductError(SearchIndexError):
    """A product id that is not in the index."""

    code = "unknown_product"


def _faiss():
    try:
        import faiss
    except ImportError:
        raise SearchIndexError("vector search needs FAISS: pip install faiss-cpu") from None
    return faiss


@dataclass(frozen=True)
class Hit:
    """One search result, in the shape of sentence-transformers' ``semantic_search`` (plus the product id)."""

    corpus_id: int
    id: str
    score: float
    metadata: dict


def _check_vectors(vectors: np.ndarray, dim: int | None = None) -> np.ndarray:
    array = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if array.ndim != 2:
        raise SearchIndexError(f"vectors must be a 2-D matrix (n, dim), got shape {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise SearchIndexError(f"vectors have dimension {array.shape[1]} but the index holds dimension {dim}")
    if not np.isfinite(array).all():
        raise SearchIndexError("vectors contain NaN or infinite values")
    return array


def _choose_kind(kind: str, n: int) -> str:
    if kind not in KINDS:
        raise SearchIndexError(f"unknown index kind '{kind}'; choose one of {', '.join(KINDS)}")
    if kind == "auto":
        return "flat" if n <= FLAT_LIMIT else "ivf"
    return kind


class VectorIndex:
    """Ids + metadata + a FAISS index. Build with :meth:`build`, query with :meth:`search`, persist with
    :meth:`save` / :meth:`load`."""

    def __init__(self, index, ids: list[str], metadata: pd.DataFrame, manifest: dict) -> None:
        self.index = index
        self.ids = ids
        self.metadata = metadata.reset_index(drop=True)
        self.manifest = manifest
        self._rows = {product_id: row for row, product_id in enumerate(ids)}

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def identity(self) -> str:
        return self.manifest["identity"]

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        ids: Sequence[str],
        identity: str,
        metadata: pd.DataFrame | None = None,
        kind: str = "auto",
        nlist: int | None = None,
        nprobe: int = 32,
        hnsw_m: int = 32,
        ef_search: int = 128,
        seed: int = 0,
        extra: dict | None = None,
    ) -> VectorIndex:
        """Index ``vectors`` (normalised, inner product = cosine) under ``ids``; ``identity`` names the model."""
        faiss = _faiss()
        array = _check_vectors(vectors)
        ids = [str(i) for i in ids]
        if len(ids) != len(array):
            raise SearchIndexError(f"{len(ids)} ids for {len(array)} vectors")
        if len(array) == 0:
            raise SearchIndexError("nothing to index: no vectors")
        if len(set(ids)) != len(ids):
            raise SearchIndexError("product ids must be unique in an index")
        kind = _choose_kind(kind, len(array))
        dim = array.shape[1]
        params: dict = {}
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "ivf":
            nlist = nlist or max(1, min(4096, int(math.sqrt(len(array)))))
            if len(array) < nlist:
                raise SearchIndexError(f"an IVF index with {nlist} lists needs at least {nlist} vectors; use kind='flat'")
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = seed
            sample = array
            limit = nlist * 64
            if len(array) > limit:
                sample = array[np.random.default_rng(seed).choice(len(array), limit, replace=False)]
            index.train(sample)
            index.nprobe = min(nprobe, nlist)
            params = {"nlist": nlist, "nprobe": index.nprobe}
        else:
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = ef_search
            params = {"M": hnsw_m, "efSearch": ef_search, "efConstruction": int(index.hnsw.efConstruction)}
        index.add(array)
        frame = metadata.reset_index(drop=True).copy() if metadata is not None else pd.DataFrame(index=range(len(ids)))
        if len(frame) != len(ids):
            raise SearchIndexError(f"metadata has {len(frame)} rows for {len(ids)} vectors")
        frame["id"] = ids
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": kind,
            "params": params,
            "dim": dim,
            "count": len(ids),
            "metric": "inner_product",
            "identity": identity,
            "faiss_version": faiss.__version__,
            **(extra or {}),
        }
        return cls(index, ids, frame, manifest)

    def check_identity(self, identity: str) -> None:
        """Refuse queries from a model other than the one whose vectors are indexed."""
        if identity != self.identity:
            raise IndexIdentityError(
                f"this index was built with model {self.identity}, but the query comes from model {identity}; "
                "query it with the model that built it or rebuild the index with this model"
            )

    def row(self, product_id: str) -> int:
        """The position of ``product_id``; a clear error when it is not indexed."""
        try:
            return self._rows[str(product_id)]
        except KeyError:
            shown = str(product_id) if len(str(product_id)) <= 200 else str(product_id)[:199] + "…"
            # no indexed ids are listed: the service answers with this message
            raise UnknownProductError(f"product id '{shown}' is not in this index ({len(self)} products)") from None

    def vector(self, product_id: str) -> np.ndarray:
        """The stored vector of one product."""
        row = self.row(product_id)
        if self.kind == "ivf":
            self.index.make_direct_map()
        return self.index.reconstruct(row)

    def _selector(self, where: dict | None):
        if not where:
            return None, len(self)
        mask = np.ones(len(self), dtype=bool)
        for column, wanted in where.items():
            if column not in self.metadata.columns:
                filterable = ", ".join(c for c in self.metadata.columns if c != "id") or "none"
                raise SearchIndexError(f"cannot filter on '{column}': the index has no such column (it has: {filterable})")
            values = wanted if isinstance(wanted, (list, tuple, set)) else [wanted]
            mask &= self.metadata[column].astype(str).isin([str(v) for v in values]).to_numpy()
        allowed = np.flatnonzero(mask).astype(np.int64)
        return _faiss().IDSelectorBatch(allowed), len(allowed)

    def search(self, queries: np.ndarray, k: int = 10, where: dict | None = None) -> list[list[Hit]]:
        """The ``k`` most similar products for each query row (fewer when a filter leaves fewer).

        ``where`` keeps products whose metadata column equals the value (or one of the values).
        """
        faiss = _faiss()
        array = _check_vectors(np.atleast_2d(queries), self.dim)
        if k < 1:
            raise SearchIndexError(f"k must be at least 1, not {k}")
        if k > len(self):
            raise SearchIndexError(f"k={k} is larger than the index ({len(self)} products); ask for at most {len(self)}")
        selector, available = self._selector(where)
        if available == 0:
            return [[] for _ in range(len(array))]
        if selector is None:
            scores, rows = self.index.search(array, k)
        elif self.kind == "ivf":
            params = faiss.SearchParametersIVF(sel=selector, nprobe=self.index.nprobe)
            scores, rows = self.index.search(array, k, params=params)
        elif self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=self.index.hnsw.efSearch)
            scores, rows = self.index.search(array, k, params=params)
        else:
            scores, rows = self.index.search(array, k, params=faiss.SearchParameters(sel=selector))
        results = []
        for score_row, id_row in zip(scores, rows):
            hits = []
            for score, row in zip(score_row, id_row):
                if row < 0:
                    continue
                meta = {c: _plain(v) for c, v in self.metadata.iloc[int(row)].items() if c != "id"}
                hits.append(Hit(int(row), self.ids[int(row)], float(score), meta))
            results.append(hits)
        return results

    def save(self, folder: str | Path) -> Path:
        faiss = _faiss()
        folder = Path(folder)
        # Under the folder's lock, each file written atomically, the manifest last (and removed first,
        # so a save killed half-way leaves no manifest beside new files).
        with folder_lock(folder, wait=True):
            (folder / MANIFEST).unlink(missing_ok=True)
            with atomic_file(folder / INDEX_FILE) as temp:
                faiss.write_index(self.index, str(temp))
            with atomic_file(folder / METADATA) as temp:
                strings = {c: "string" for c in self.metadata.columns if self.metadata[c].dtype == object}
                self.metadata.astype(strings).to_parquet(temp, index=False)
            write_text(folder / MANIFEST, json.dumps(self.manifest, indent=2, ensure_ascii=False))
        return folder

    @classmethod
    def load(cls, folder: str | Path, identity: str | None = None) -> VectorIndex:
        """Read an index folder; with ``identity``, refuse one built by another model.

        Everything is checked before it is used: the manifest (size, UTF-8 JSON object, version, kind,
        dim, params), the metadata (row count, an ``id`` column), the FAISS file (its size and header
        against the manifest and the metadata, before FAISS allocates anything; its type against the
        kind) and the stored vectors (finite). Any failure is one :class:`SearchIndexError`."""
        faiss = _faiss()
        folder = Path(folder)
        paths = [folder / INDEX_FILE, folder / MANIFEST, folder / METADATA]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise SearchIndexError(
                f"{folder} is not a skulens index: {', '.join(missing)} missing (build one with `skulens search index`)"
            )
        manifest = _read_manifest(folder / MANIFEST)
        try:
            import pyarrow.parquet as pq

            count = pq.ParquetFile(folder / METADATA).metadata.num_rows
        except Exception as exc:  # noqa: BLE001 - any reader failure means a damaged file
            raise SearchIndexError(
                f"{folder / METADATA} is not a readable Parquet file ({type(exc).__name__}); rebuild the index"
            ) from None
        _check_faiss_file(folder / INDEX_FILE, manifest["dim"], count)
        try:
            index = faiss.read_index(str(folder / INDEX_FILE))
        except (RuntimeError, MemoryError, ValueError) as exc:
            raise SearchIndexError(
                f"{folder / INDEX_FILE} is not a readable FAISS index ({type(exc).__name__}); rebuild the index"
            ) from None
        expected = INDEX_TYPES[manifest["kind"]]
        if type(index).__name__ not in expected:
            raise SearchIndexError(
                f"{folder / INDEX_FILE} holds a {type(index).__name__}, not the {manifest['kind']} index its manifest names; rebuild it"
            )
        try:
            metadata = pd.read_parquet(folder / METADATA)
            # text is decoded now, so a damaged file fails here rather than in a later query
            metadata = metadata.astype({c: object for c, t in metadata.dtypes.items() if isinstance(t, pd.StringDtype)})
        except Exception as exc:  # noqa: BLE001 - any reader failure means a damaged file
            raise SearchIndexError(f"{folder / METADATA} cannot be read ({type(exc).__name__}); rebuild the index") from None
        if "id" not in metadata.columns or index.ntotal != len(metadata) or index.d != manifest["dim"]:
            raise SearchIndexError(f"{folder} is inconsistent: {index.ntotal} vectors, {len(metadata)} metadata rows")
        if manifest["kind"] == "ivf":
            index.nprobe = manifest["params"]["nprobe"]
            index.make_direct_map()  # lets the vectors be read back (checked below, and for /similar)
        elif manifest["kind"] == "hnsw":
            index.hnsw.efSearch = manifest["params"]["efSearch"]
        for start in range(0, index.ntotal, 65_536):
            if not np.isfinite(index.reconstruct_n(start, min(65_536, index.ntotal - start))).all():
                raise SearchIndexError(f"{folder / INDEX_FILE} holds NaN or infinite vectors; the index is damaged, rebuild it")
        loaded = cls(index, metadata["id"].astype(str).tolist(), metadata, manifest)
        if identity is not None:
            loaded.check_identity(identity)
        return loaded


#: FAISS classes each index kind is saved as.
INDEX_TYPES = {"flat": ("IndexFlatIP", "IndexFlat"), "ivf": ("IndexIVFFlat",), "hnsw": ("IndexHNSWFlat",)}
#: Integer search parameters each kind's manifest must carry.
KIND_PARAMS = {"flat": (), "ivf": ("nprobe", "nlist"), "hnsw": ("efSearch",)}
#: Largest manifest read, and largest vector dimension accepted.
MAX_MANIFEST_BYTES = 1024**2
MAX_DIM = 65_536
#: Bytes per vector an index file may hold beyond its float32 values (HNSW links), plus a fixed allowance.
INDEX_OVERHEAD_PER_VECTOR = 2_048
INDEX_OVERHEAD_BYTES = 1024**2


def _read_manifest(path: Path) -> dict:
    """The checked manifest of an index folder (a JSON object with a known version, kind, dim and params)."""
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise SearchIndexError(f"{path} is over {MAX_MANIFEST_BYTES:,} bytes; it is not a skulens index manifest")
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SearchIndexError(f"{path} is not valid UTF-8 JSON ({type(exc).__name__}); rebuild the index") from None
    if not isinstance(manifest, dict):
        raise SearchIndexError(f"{path} holds a JSON {type(manifest).__name__}, not an object; rebuild the index")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise SearchIndexError(
            f"{path.parent} has index format {str(version)[:20]}; this skulens reads format {FORMAT_VERSION}: rebuild it"
        )
    kind, dim, params = manifest.get("kind"), manifest.get("dim"), manifest.get("params")
    if not isinstance(kind, str) or kind not in KIND_PARAMS:
        raise SearchIndexError(f"{path}: kind {str(kind)[:20]!r} is not one of {', '.join(KIND_PARAMS)}; rebuild the index")
    if type(dim) is not int or not 1 <= dim <= MAX_DIM:
        raise SearchIndexError(f"{path}: dim should be an integer in 1..{MAX_DIM}; rebuild the index")
    needed = KIND_PARAMS[kind]
    if needed and not (isinstance(params, dict) and all(type(params.get(p)) is int and params[p] >= 1 for p in needed)):
        raise SearchIndexError(f"{path}: a {kind} index needs positive integer params {', '.join(needed)}; rebuild the index")
    return manifest


def _check_faiss_file(path: Path, dim: int, count: int) -> None:
    """Refuse an index file whose size or header does not fit ``count`` vectors of ``dim`` (before FAISS
    reads it, so a header declaring gigabytes never gets them allocated)."""
    size = path.stat().st_size
    values = count * dim * 4
    if not values <= size <= values + count * INDEX_OVERHEAD_PER_VECTOR + INDEX_OVERHEAD_BYTES:
        raise SearchIndexError(
            f"{path} is {size:,} bytes, which cannot hold {count:,} vectors of dimension {dim}; rebuild the index"
        )
    with open(path, "rb") as handle:
        header = handle.read(64)
    if len(header) < 16:
        raise SearchIndexError(f"{path} is too short to be a FAISS index; rebuild the index")
    d, ntotal = int.from_bytes(header[4:8], "little", signed=True), int.from_bytes(header[8:16], "little", signed=True)
    if d != dim or ntotal != count:
        raise SearchIndexError(
            f"{path} declares {ntotal:,} vectors of dimension {d}, not the {count:,} of {dim} indexed; rebuild it"
        )
    if header[:4] in (b"IxFI", b"IxF2") and len(header) >= 45:
        # A flat index: after the common header (37 bytes) comes the length of its vector array (floats or bytes).
        declared = int.from_bytes(header[37:45], "little")
        if declared not in (count * dim, values):
            raise SearchIndexError(
                f"{path} declares a vector array of {declared:,}, not {count * dim:,} floats; rebuild the index"
            )


def _plain(value):
    """A JSON-friendly Python value (NaN -> None, numpy scalars -> Python)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, np.ndarray):  # a list-typed metadata column
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.item() if hasattr(value, "item") else value
