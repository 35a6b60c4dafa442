"""Combine several embeddings (image, text...) into one classifier: early or late fusion.

Blocks are named feature matrices (dense or sparse) with a ``present`` mask each: a row whose image is
missing has ``present[image] == False`` and is still predicted from what it has.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import normalize

from skulens.heads.base import HeadError, check_training_labels
from skulens.heads.linear import LinearProbe
from skulens.heads.mlp import MLPProbe

HEADS = {"linear": LinearProbe, "mlp": MLPProbe}
FUSIONS = ("late", "early")
EPS = 1e-6

Blocks = Mapping[str, np.ndarray | sp.csr_matrix]
Masks = Mapping[str, np.ndarray]


def make_head(kind: str, seed: int = 0, **params) -> LinearProbe | MLPProbe:
    if kind not in HEADS:
        raise HeadError(f"unknown head '{kind}'; choose from {', '.join(HEADS)}")
    return HEADS[kind](seed=seed, **params)


def restore_head(kind: str, arrays: dict[str, np.ndarray], classes: np.ndarray) -> LinearProbe | MLPProbe:
    return HEADS[kind].from_arrays(arrays, classes)


def align_proba(proba: np.ndarray, head_classes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Columns of ``proba`` (ordered by ``head_classes``) placed in the order of ``classes``."""
    if np.array_equal(head_classes, classes):
        return proba
    out = np.zeros((proba.shape[0], len(classes)), dtype=proba.dtype)
    out[:, np.searchsorted(classes, head_classes)] = proba
    return out


def _rows(X, mask: np.ndarray):
    return X[np.flatnonzero(mask)] if sp.issparse(X) else X[mask]


class LateFusion:
    """One head per block, and a logistic-regression meta-learner over their log-probabilities.

    The meta-learner is fitted on out-of-fold probabilities of the training rows (stacking), so it
    learns how far to trust each modality on data the heads did not see. Rows missing a block are
    predicted from the normalised product of the present blocks' probabilities.
    """

    def __init__(self, head: str = "linear", folds: int = 5, seed: int = 0, head_params: dict | None = None) -> None:
        self.head, self.folds, self.seed, self.head_params = head, folds, seed, head_params or {}

    def fit(self, blocks: Blocks, present: Masks, y: np.ndarray) -> "LateFusion":
        y = np.asarray(y)
        self.classes_ = check_training_labels(y)
        self.names_ = list(blocks)
        self.heads_ = {}
        oof = {}
        for name in self.names_:
            mask = present[name]
            head = make_head(self.head, self.seed, **self.head_params).fit(_rows(blocks[name], mask), y[mask])
            self.heads_[name] = head
            oof[name] = self._out_of_fold(head, blocks[name], mask, y)
        complete = np.logical_and.reduce([present[n] for n in self.names_])
        if len(self.names_) > 1:
            features = self._meta_features([oof[n][complete] for n in self.names_])
            if len(np.unique(y[complete])) < 2:
                raise HeadError("late fusion needs rows with every modality for at least two classes")
            self.meta_ = LogisticRegression(C=1.0, max_iter=2000, random_state=self.seed).fit(features, y[complete])
        return self

    def _out_of_fold(self, head, X, mask: np.ndarray, y: np.ndarray) -> np.ndarray:
        proba = np.full((len(y), len(self.classes_)), np.nan)
        rows = np.flatnonzero(mask)
        folds = min(self.folds, int(np.unique(y[rows], return_counts=True)[1].min()))
        if folds < 2:
            proba[rows] = align_proba(head.predict_proba(_rows(X, mask)), head.classes_, self.classes_)
            return proba
        template = clone(head).set_params(Cs=(head.C_,)) if isinstance(head, LinearProbe) else clone(head)
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.seed)
        for train, test in splitter.split(rows, y[rows]):
            fold = clone(template).fit(X[rows[train]], y[rows[train]])
            proba[rows[test]] = align_proba(fold.predict_proba(X[rows[test]]), fold.classes_, self.classes_)
        return proba

    @staticmethod
    def _meta_features(probas: list[np.ndarray]) -> np.ndarray:
        return np.hstack([np.log(np.clip(p, EPS, 1.0)) for p in probas])

    def block_proba(self, blocks: Blocks) -> dict[str, np.ndarray]:
        """Each block's own class probabilities (all rows; meaningless where the block is absent)."""
        return {
            name: align_proba(self.heads_[name].predict_proba(blocks[name]), self.heads_[name].classes_, self.classes_)
            for name in self.names_
        }

    def predict_proba(self, blocks: Blocks, present: Masks) -> np.ndarray:
        per_block = self.block_proba(blocks)
        n = next(iter(per_block.values())).shape[0]
        masks = np.stack([np.asarray(present[name], dtype=bool) for name in self.names_], axis=1)
        log_sum = sum(np.log(np.clip(per_block[name], EPS, 1.0)) * masks[:, [i]] for i, name in enumerate(self.names_))
        log_sum = log_sum - log_sum.max(axis=1, keepdims=True)
        proba = np.exp(log_sum)
        proba /= proba.sum(axis=1, keepdims=True)
        complete = masks.all(axis=1)
        if len(self.names_) > 1 and complete.any():
            meta = self.meta_.predict_proba(self._meta_features([per_block[n][complete] for n in self.names_]))
            proba[complete] = align_proba(meta, self.meta_.classes_, self.classes_)
        return proba.reshape(n, len(self.classes_))

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"{name}.{k}": v for name in self.names_ for k, v in self.heads_[name].to_arrays().items()}
        for name in self.names_:
            arrays[f"{name}.class_index"] = np.searchsorted(self.classes_, self.heads_[name].classes_).astype(np.int64)
        if len(self.names_) > 1:
            arrays["meta.coef"] = self.meta_.coef_.astype(np.float32)
            arrays["meta.intercept"] = self.meta_.intercept_.astype(np.float32)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], names: list[str], classes: np.ndarray, head: str) -> "LateFusion":
        fusion = cls(head=head)
        fusion.classes_, fusion.names_ = np.asarray(classes), list(names)
        fusion.heads_ = {}
        for name in names:
            own = {k[len(name) + 1 :]: v for k, v in arrays.items() if k.startswith(f"{name}.")}
            fusion.heads_[name] = restore_head(head, own, fusion.classes_[own.pop("class_index")])
        if len(names) > 1:
            meta = LogisticRegression()
            meta.coef_, meta.intercept_, meta.classes_ = arrays["meta.coef"], arrays["meta.intercept"], fusion.classes_
            fusion.meta_ = meta
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

    def fit(self, blocks: Blocks, present: Masks, y: np.ndarray) -> "EarlyFusion":
        self.names_ = list(blocks)
        self.head_ = make_head(self.head, self.seed, **self.head_params).fit(self._concat(blocks, present), y)
        self.classes_ = self.head_.classes_
        return self

    def predict_proba(self, blocks: Blocks, present: Masks) -> np.ndarray:
        return self.head_.predict_proba(self._concat(blocks, present))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {f"head.{k}": v for k, v in self.head_.to_arrays().items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], names: list[str], classes: np.ndarray, head: str) -> "EarlyFusion":
        fusion = cls(head=head)
        fusion.names_, fusion.classes_ = list(names), np.asarray(classes)
        fusion.head_ = restore_head(head, {k[5:]: v for k, v in arrays.items() if k.startswith("head.")}, classes)
        return fusion


def make_fusion(kind: str, head: str, seed: int = 0, head_params: dict | None = None) -> LateFusion | EarlyFusion:
    if kind == "late":
        return LateFusion(head=head, seed=seed, head_params=head_params)
    if kind == "early":
        return EarlyFusion(head=head, seed=seed, head_params=head_params)
    raise HeadError(f"unknown fusion '{kind}'; choose from {', '.join(FUSIONS)}")


def restore_fusion(kind: str, arrays: dict[str, np.ndarray], names: list[str], classes: np.ndarray, head: str):
    return (LateFusion if kind == "late" else EarlyFusion).from_arrays(arrays, names, classes, head)
