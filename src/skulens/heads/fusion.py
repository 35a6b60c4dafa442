"""Combine several embeddings (image, text...) into one classifier: early or late fusion.

Blocks are named feature matrices (dense or sparse) with a ``present`` mask each: a row whose image is
missing has ``present[image] == False`` and is still predicted from what it has.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from sklearn.preprocessing import normalize

from skulens.heads.base import HeadError, align_proba, check_training_labels, softmax, validation_rows
from skulens.heads.linear import LinearProbe

if TYPE_CHECKING:
    from skulens.heads.mlp import MLPProbe

#: Head kinds; the MLP head (PyTorch) is imported only when one is made, so linear-only work never loads torch.
HEADS = ("linear", "mlp")
FUSIONS = ("late", "early")
EPS = 1e-6

Blocks = Mapping[str, np.ndarray | sp.csr_matrix]
Masks = Mapping[str, np.ndarray]
#: Heads fitted earlier, keyed by :func:`head_key`; see ``fitted_heads`` of :meth:`LateFusion.fit`.
FittedHeads = dict[tuple, "LinearProbe | MLPProbe"]


def head_class(kind: str) -> type[LinearProbe] | type[MLPProbe]:
    """The class of head ``kind`` (one of :data:`HEADS`)."""
    if kind == "mlp":
        from skulens.heads.mlp import MLPProbe

        return MLPProbe
    return LinearProbe


def make_head(kind: str, seed: int = 0, **params) -> LinearProbe | MLPProbe:
    if kind not in HEADS:
        raise HeadError(f"unknown head '{kind}'; choose from {', '.join(HEADS)}")
    return head_class(kind)(seed=seed, **params)


def restore_head(kind: str, arrays: dict[str, np.ndarray], classes: np.ndarray) -> LinearProbe | MLPProbe:
    if kind not in HEADS:
        raise HeadError(f"saved head kind '{kind}' is unknown to this install; choose from {', '.join(HEADS)}")
    return head_class(kind).from_arrays(arrays, classes)


def head_key(block: str, kind: str, params: Mapping, seed: int, val_size: float | None) -> tuple:
    """What identifies a head fit given its rows and labels: block, head kind, parameters, seed, split."""
    return (block, kind, repr(sorted(params.items())), seed, val_size)


def _fit_head(
    fitted_heads: FittedHeads | None, key: tuple, kind: str, seed: int, params: dict, X, y: np.ndarray, **fit_args
) -> LinearProbe | MLPProbe:
    """A head fitted on ``X``, ``y``, or the one in ``fitted_heads`` under ``key`` (then stored there)."""
    if fitted_heads is not None and key in fitted_heads:
        return fitted_heads[key]
    head = make_head(kind, seed, **params).fit(X, y, **fit_args)
    if fitted_heads is not None:
        fitted_heads[key] = head
    return head


def _nll(scores: np.ndarray, target: np.ndarray) -> float:
    return float(-np.log(np.clip(softmax(scores)[np.arange(len(target)), target], EPS, 1.0)).mean())


def _rows(X, mask: np.ndarray):
    return X[np.flatnonzero(mask)] if sp.issparse(X) else X[mask]


class LateFusion:
    """One head per block, combined as a weighted product of experts.

    The fused log-probability is ``sum_b w_b * log p_b`` (renormalised) over the blocks present in a
    row. All heads share one seeded, stratified validation split: each picks its regularisation (or
    stopping epoch) there and predicts those rows with a model that did not train on them; the weights
    ``w_b`` in [0, 5] are fitted on these held-out predictions by minimising log-loss, so a weak block
    is down-weighted; their sum also acts as a temperature on the fused confidence. With a single block
    the weight stays 1 (the head's probabilities as they are). A row missing a block is predicted from
    the blocks it has.

    Every block uses ``head`` with ``head_params``; ``block_params[name]`` overrides them for one block
    and may name its own head kind, e.g. ``{"minilm": {"head": "mlp"}, "tfidf": {"Cs": (3.0,)}}``.
    """

    def __init__(
        self,
        head: str = "linear",
        seed: int = 0,
        val_size: float = 0.2,
        head_params: dict | None = None,
        block_params: dict[str, dict] | None = None,
    ) -> None:
        self.head, self.seed, self.val_size = head, seed, val_size
        self.head_params = dict(head_params or {})
        self.block_params = {name: dict(p) for name, p in (block_params or {}).items()}

    def _block_head(self, name: str) -> tuple[str, dict]:
        """(head kind, head parameters) of block ``name``."""
        params = {**self.head_params, **self.block_params.get(name, {})}
        return params.pop("head", self.head), params

    def fit(self, blocks: Blocks, present: Masks, y: np.ndarray, fitted_heads: FittedHeads | None = None) -> LateFusion:
        """Fit the block heads and their weights. ``fitted_heads``, a dict shared by fits on exactly the same
        rows, blocks and labels (the configurations of one cross-validation fold), reuses a block head fitted
        before with the same settings instead of fitting it again, and receives the new ones."""
        y = np.asarray(y)
        self.classes_ = check_training_labels(y)
        self.names_ = list(blocks)
        self.heads_, self.head_kinds_ = {}, {}
        is_val = np.zeros(len(y), dtype=bool)
        is_val[validation_rows(y, self.val_size, self.seed)] = True
        held_out = {}
        for name in self.names_:
            rows = np.flatnonzero(present[name])
            kind, params = self._block_head(name)
            key = head_key(name, kind, params, self.seed, self.val_size)
            X = _rows(blocks[name], present[name])
            head = _fit_head(fitted_heads, key, kind, self.seed, params, X, y[rows], val_rows=np.flatnonzero(is_val[rows]))
            self.heads_[name], self.head_kinds_[name] = head, kind
            proba = np.full((len(y), len(self.classes_)), np.nan)
            proba[rows[head.holdout_rows_]] = align_proba(head.holdout_proba_, head.classes_, self.classes_)
            held_out[name] = proba
        self.weights_ = np.ones(len(self.names_))
        usable = np.logical_and.reduce([~np.isnan(held_out[n][:, 0]) for n in self.names_])
        if usable.any() and len(self.names_) > 1:  # one block: nothing to weigh, its head is used as it is
            logs = np.stack([np.log(np.clip(held_out[n][usable], EPS, 1.0)) for n in self.names_])
            target = np.searchsorted(self.classes_, y[usable])
            fitted = minimize(
                lambda w: _nll(np.tensordot(w, logs, axes=1), target),
                self.weights_,
                bounds=[(0.0, 5.0)] * len(self.names_),
                method="L-BFGS-B",
            )
            self.weights_ = fitted.x
        # the fused held-out posteriors (rows no head saw), for calibration and label-shift fitting
        self.holdout_rows_ = np.flatnonzero(usable)
        held = np.stack([np.log(np.clip(held_out[n][usable], EPS, 1.0)) for n in self.names_])
        self.holdout_proba_ = softmax(np.tensordot(self.weights_, held, axes=1)).reshape(
            len(self.holdout_rows_), len(self.classes_)
        )
        return self

    @property
    def block_weights(self) -> dict[str, float]:
        """The fitted weight of each block."""
        return {name: float(w) for name, w in zip(self.names_, self.weights_)}

    @staticmethod
    def _log_sum(probas: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
        """``sum_b weights[b] * log(probas[b])``; ``weights`` is (blocks, rows)."""
        return sum(np.log(np.clip(p, EPS, 1.0)) * w[:, None] for p, w in zip(probas, weights))

    def block_proba(self, blocks: Blocks) -> dict[str, np.ndarray]:
        """Each block's own class probabilities (all rows; meaningless where the block is absent)."""
        return {
            name: align_proba(self.heads_[name].predict_proba(blocks[name]), self.heads_[name].classes_, self.classes_)
            for name in self.names_
        }

    def view_proba(self, blocks: Blocks, present: Masks, names: set[str]) -> np.ndarray:
        """What the blocks ``names`` (say, the photo's) predict on their own: their heads combined with the
        fusion weights rescaled to sum to 1 within the view, per row over the blocks present (equal weights
        where those are all 0). A view the fusion down-weights thus still speaks at full strength, which is
        what a photo-vs-text comparison needs; rows with none of the blocks are uniform."""
        chosen = [name for name in self.names_ if name in names]
        n = len(next(iter(present.values())))
        if not chosen:
            return np.full((n, len(self.classes_)), 1.0 / len(self.classes_))
        per_block = {
            name: align_proba(self.heads_[name].predict_proba(blocks[name]), self.heads_[name].classes_, self.classes_)
            for name in chosen
        }
        masks = np.stack([np.asarray(present[name], dtype=float) for name in chosen])
        weights = masks * np.array([self.weights_[self.names_.index(name)] for name in chosen])[:, None]
        total = weights.sum(axis=0)
        weights = np.where(total > 0, weights / np.where(total > 0, total, 1.0), masks / np.maximum(masks.sum(axis=0), 1.0))
        return softmax(self._log_sum([per_block[name] for name in chosen], weights)).reshape(n, len(self.classes_))

    def predict_proba(self, blocks: Blocks, present: Masks) -> np.ndarray:
        per_block = self.block_proba(blocks)
        n = next(iter(per_block.values())).shape[0]
        masks = np.stack([np.asarray(present[name], dtype=float) for name in self.names_])
        log_sum = self._log_sum([per_block[name] for name in self.names_], masks * self.weights_[:, None])
        return softmax(log_sum).reshape(n, len(self.classes_))

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"{name}.{k}": v for name in self.names_ for k, v in self.heads_[name].to_arrays().items()}
        for name in self.names_:
            arrays[f"{name}.class_index"] = np.searchsorted(self.classes_, self.heads_[name].classes_).astype(np.int64)
            arrays[f"{name}.head_kind"] = np.array(self.head_kinds_[name])
        arrays["block_weights"] = self.weights_.astype(np.float32)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], names: list[str], classes: np.ndarray, head: str) -> LateFusion:
        """Restore :meth:`to_arrays`; a block without a saved ``head_kind`` uses ``head``."""
        fusion = cls(head=head)
        fusion.classes_, fusion.names_ = np.asarray(classes), list(names)
        fusion.heads_, fusion.head_kinds_ = {}, {}
        for name in names:
            own = {k[len(name) + 1 :]: v for k, v in arrays.items() if k.startswith(f"{name}.")}
            kind = str(own.pop("head_kind", head))
            fusion.heads_[name] = restore_head(kind, own, fusion.classes_[own.pop("class_index")])
            fusion.head_kinds_[name] = kind
        fusion.weights_ = np.asarray(arrays["block_weights"], dtype=np.float64)
        return fusion


class EarlyFusion:
    """One head on the concatenation of per-block L2-normalised features (absent blocks are zeros)."""

    def __init__(self, head: str = "linear", seed: int = 0, head_params: dict | None = None) -> None:
        self.head, self.seed, self.head_params = head, seed, head_params or {}

    def _concat(self, blocks: Blocks, present: Masks):
        parts = []
        for name in self.names_:
            X = blocks[name]
            mask = np.asarray(present[name], dtype=float)[:, None]
            if sp.issparse(X):
                parts.append(sp.csr_matrix(normalize(X).multiply(mask)))
            else:
                parts.append(normalize(np.asarray(X, dtype=np.float32)) * mask)
        if any(sp.issparse(p) for p in parts):
            return sp.hstack([sp.csr_matrix(p) for p in parts]).tocsr()
        return np.hstack(parts).astype(np.float32)

    def fit(self, blocks: Blocks, present: Masks, y: np.ndarray, fitted_heads: FittedHeads | None = None) -> EarlyFusion:
        """Fit the head; ``fitted_heads`` as in :meth:`LateFusion.fit`."""
        self.names_ = list(blocks)
        key = head_key("early:" + "+".join(self.names_), self.head, self.head_params, self.seed, None)
        X = self._concat(blocks, present) if fitted_heads is None or key not in fitted_heads else None
        self.head_ = _fit_head(fitted_heads, key, self.head, self.seed, self.head_params, X, y)
        self.classes_ = self.head_.classes_
        return self

    def predict_proba(self, blocks: Blocks, present: Masks) -> np.ndarray:
        return self.head_.predict_proba(self._concat(blocks, present))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {f"head.{k}": v for k, v in self.head_.to_arrays().items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], names: list[str], classes: np.ndarray, head: str) -> EarlyFusion:
        fusion = cls(head=head)
        fusion.names_, fusion.classes_ = list(names), np.asarray(classes)
        fusion.head_ = restore_head(head, {k[5:]: v for k, v in arrays.items() if k.startswith("head.")}, classes)
        return fusion


def make_fusion(
    kind: str, head: str, seed: int = 0, head_params: dict | None = None, block_params: dict[str, dict] | None = None
) -> LateFusion | EarlyFusion:
    """A fusion of ``kind``; ``block_params`` (per-block head settings) apply to late fusion only."""
    if kind == "late":
        return LateFusion(head=head, seed=seed, head_params=head_params, block_params=block_params)
    if kind == "early":
        return EarlyFusion(head=head, seed=seed, head_params=head_params)
    raise HeadError(f"unknown fusion '{kind}'; choose from {', '.join(FUSIONS)}")


def restore_fusion(kind: str, arrays: dict[str, np.ndarray], names: list[str], classes: np.ndarray, head: str):
    if kind not in FUSIONS:
        raise HeadError(f"saved fusion '{kind}' is not supported by this version of skulens; retrain the model")
    return (LateFusion if kind == "late" else EarlyFusion).from_arrays(arrays, names, classes, head)
