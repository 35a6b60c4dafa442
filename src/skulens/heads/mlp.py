"""MLP probe (PyTorch): one hidden layer, dropout, early stopping on a validation split; seeded."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from skulens.heads.base import HeadError, check_training_labels, head_tags, validation_rows
from skulens.threads import apply_thread_budget
from skulens.training.loop import LoopConfig, TrainingLoop


def _network(dim: int, hidden: int, classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Dropout(dropout / 2), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, classes)
    )


class MLPProbe(ClassifierMixin, BaseEstimator):
    """A small MLP on standardised frozen embeddings, deterministic on CPU for a given ``seed``.

    Trained by :class:`~skulens.training.loop.TrainingLoop` (AdamW, constant rate) with cross-entropy (weighted by
    ``class_weight``: ``None``, ``"balanced"`` or a dict); the epoch with the lowest validation loss is kept. The validation rows and their
    probabilities are kept in ``holdout_rows_`` / ``holdout_proba_`` for late fusion (they chose the
    stopping epoch, so they are slightly optimistic).
    """

    def __init__(
        self,
        hidden: int = 512,
        dropout: float = 0.5,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        max_epochs: int = 200,
        patience: int = 15,
        batch_size: int = 128,
        val_size: float = 0.15,
        class_weight: str | dict | None = None,
        seed: int = 0,
    ) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.val_size = val_size
        self.class_weight = class_weight
        self.seed = seed

    def __sklearn_tags__(self):
        return head_tags(super().__sklearn_tags__())

    def _tensor(self, X) -> torch.Tensor:
        X = X.toarray() if sp.issparse(X) else np.asarray(X, dtype=np.float32)
        return torch.from_numpy(((X - self.mean_) / self.scale_).astype(np.float32))

    def fit(self, X, y, val_rows: np.ndarray | None = None) -> MLPProbe:
        """Fit with early stopping on ``val_rows`` (positions), or on a seeded stratified split."""
        apply_thread_budget()
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=(np.float32, np.float64))
        self.classes_ = check_training_labels(y)
        dense = (X.toarray() if sp.issparse(X) else X).astype(np.float32, copy=False)
        self.mean_, self.scale_ = dense.mean(axis=0), dense.std(axis=0) + 1e-6
        targets = torch.from_numpy(np.searchsorted(self.classes_, y))
        inputs = self._tensor(dense)
        val = validation_rows(y, self.val_size, self.seed) if val_rows is None else np.asarray(val_rows, dtype=int)
        train = np.setdiff1d(np.arange(len(y)), val)
        if len(val) == 0:
            train = val = np.arange(len(y))
        torch.manual_seed(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        net = _network(inputs.shape[1], self.hidden, len(self.classes_), self.dropout)
        weight = None
        if self.class_weight is not None:
            weights = compute_class_weight(self.class_weight, classes=self.classes_, y=y)
            weight = torch.tensor(weights, dtype=torch.float32)
        loss_fn = nn.CrossEntropyLoss(weight=weight)
        train_t = torch.from_numpy(train)
        batch_size = min(self.batch_size, max(8, len(train) // 10))  # small data still gets ~10 steps/epoch
        config = LoopConfig(
            epochs=self.max_epochs,
            lr=self.lr,
            weight_decay=self.weight_decay,
            monitor="val_loss",
            mode="min",
            min_delta=1e-4,
            patience=self.patience,
        )

        def batches(size: int):
            order = train_t[torch.randperm(len(train_t), generator=generator)]
            for start in range(0, len(order), size):
                yield order[start : start + size]

        def validate(epoch: int, train_loss: float) -> dict:
            net.eval()
            with torch.no_grad():  # the training objective, held out
                return {"epoch": epoch, "loss": train_loss, "val_loss": float(loss_fn(net(inputs[val]), targets[val]))}

        loop = TrainingLoop(net, config, steps_per_epoch=-(-len(train) // batch_size))
        loop.run(batches, lambda rows: loss_fn(net(inputs[rows]), targets[rows]), validate, batch_size=batch_size)
        self.net_ = net.eval()
        held_out = not np.array_equal(train, val)
        self.holdout_rows_ = val if held_out else np.array([], dtype=int)
        self.holdout_proba_ = self.predict_proba(dense[val]) if held_out else np.zeros((0, len(self.classes_)))
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=(np.float32, np.float64), reset=False)
        with torch.no_grad():
            return self.net_(self._tensor(X)).softmax(-1).numpy()

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"net.{k}": v.numpy() for k, v in self.net_.state_dict().items()}
        arrays.update(mean=self.mean_.astype(np.float32), scale=self.scale_.astype(np.float32))
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], classes: np.ndarray, hidden: int | None = None) -> MLPProbe:
        weight = arrays["net.1.weight"]
        probe = cls(hidden=hidden or weight.shape[0])
        probe.classes_ = np.asarray(classes)
        probe.mean_, probe.scale_ = arrays["mean"], arrays["scale"]
        probe.n_features_in_ = int(weight.shape[1])
        net = _network(weight.shape[1], weight.shape[0], len(classes), probe.dropout)
        try:
            net.load_state_dict({k[4:]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("net.")})
        except RuntimeError as exc:
            raise HeadError(f"saved MLP weights do not match {len(classes)} classes: {exc}") from None
        probe.net_ = net.eval()
        return probe
