"""What every ``skulens finetune`` command adds to the training loop (:mod:`skulens.training.loop`): AdamW,
cosine schedule with linear warm-up, label smoothing, gradient clipping, early stopping on validation macro-F1,
a checkpoint after every epoch (resumed after an interrupt to the same state) and batch-size back-off when
memory runs out.

Inputs are precomputed tensors: ``views[v, i]`` is view ``v`` (an augmentation) of training example ``i``;
each epoch draws one view per example (seeded), so a network trained on cached frozen-layer outputs still
sees augmented inputs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn

from skulens.errors import SkulensError
from skulens.outputs import atomic_file
from skulens.training.loop import CheckpointError, TrainingLoop, TrainingSettings, data_digest

#: Fewest examples a class needs: at least one for validation and enough left to learn from.
MIN_PER_CLASS = 5


class FinetuneError(SkulensError, ValueError):
    """Fine-tuning cannot run on this input; the message says what to change."""

    code = "finetune"


@dataclass(frozen=True)
class TrainConfig(TrainingSettings):
    """Fine-tuning hyper-parameters: the :class:`TrainingSettings` (patience counts epochs without a better
    validation macro-F1), warm-up epochs, label smoothing and the gradient-norm clip."""

    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    clip_norm: float = 1.0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    """What a fine-tuning run did: best epoch (1-based) and its validation macro-F1, epochs run, per-epoch records,
    the batch size that worked, the epoch a checkpoint resumed after, and whether training ran to its end."""

    best_epoch: int
    best_val_macro_f1: float
    epochs_run: int
    history: list[dict]
    batch_size: int
    resumed_from: int | None
    finished: bool


def check_class_counts(labels: np.ndarray, minimum: int = MIN_PER_CLASS, noun: str = "images") -> None:
    """Refuse classes with fewer than ``minimum`` usable examples (``noun``), naming them and the number needed."""
    names, counts = np.unique(labels, return_counts=True)
    if len(names) < 2:
        raise FinetuneError(f"fine-tuning needs at least 2 classes with {noun}; found {len(names)}")
    short = {str(n): int(c) for n, c in zip(names, counts) if c < minimum}
    if short:
        listed = ", ".join(f"'{n}' ({c})" for n, c in list(short.items())[:10])
        raise FinetuneError(
            f"fine-tuning needs at least {minimum} {noun} per class; too few in {len(short)} class(es): {listed}. "
            f"Add {noun}, merge these classes, or drop them (e.g. `--min-class-count {minimum}`)"
        )


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(f1_score(y_true, y_pred, average="macro", labels=np.unique(y_true), zero_division=0))


@torch.no_grad()
def predict_logits(model: nn.Module, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
    model.eval()
    return torch.cat([model(inputs[i : i + batch_size].float()) for i in range(0, len(inputs), batch_size)])


def train(
    model: nn.Module,
    views: torch.Tensor,
    y_train: np.ndarray,
    val_inputs: torch.Tensor,
    y_val: np.ndarray,
    config: TrainConfig,
    checkpoint_dir: Path | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
    loss_fn: nn.Module | None = None,
) -> TrainResult:
    """Train ``model`` (its trainable parameters) on ``views`` / integer labels ``y_train``; keeps the weights
    of the epoch with the best validation macro-F1 (ties: the earlier epoch) and loads them at the end.

    With ``checkpoint_dir``, the state after each epoch (model, optimizer, schedule, RNG, best weights,
    history) is saved there and a later call with the same arguments resumes from it. ``stop_after`` ends
    the call after that many epochs of this call, as an interrupt would (for tests and time budgets).
    ``loss_fn(logits, targets)`` replaces the default label-smoothed cross-entropy (e.g. an ordinal loss). A
    model with a ``param_groups(lr)`` method gives its own AdamW parameter groups (e.g. a faster new head).
    """
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    n = views.shape[1]
    targets = torch.as_tensor(y_train, dtype=torch.long)
    val_targets = torch.as_tensor(y_val, dtype=torch.long)
    batch_size = max(1, min(config.batch_size, n))
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    loop_config = config.loop_config(
        monitor="val_macro_f1", schedule="warmup_cosine", warmup=config.warmup_epochs, clip_norm=config.clip_norm
    )
    groups = model.param_groups(config.lr) if hasattr(model, "param_groups") else None
    data_key = data_digest(views, y_train, val_inputs, y_val) + json.dumps(config.as_dict(), sort_keys=True, default=str)
    loop = TrainingLoop(model, loop_config, math.ceil(n / batch_size), groups, generator, checkpoint_dir, data_key)

    def batches(size: int):
        order = torch.randperm(n, generator=generator)
        pick = torch.randint(views.shape[0], (n,), generator=generator)
        for start in range(0, n, size):
            rows = order[start : start + size]
            yield views[pick[rows], rows].float(), targets[rows]

    def validate(epoch: int, train_loss: float) -> dict:
        logits = predict_logits(model, val_inputs, loop.batch_size)
        record = {"epoch": epoch, "train_loss": train_loss, "val_loss": float(loss_fn(logits, val_targets))}
        record |= {"val_macro_f1": macro_f1(y_val, logits.argmax(1).numpy()), "lr": loop.lr}
        return record

    def report(record: dict) -> None:
        log(
            f"epoch {record['epoch']}/{config.epochs}: train loss {record['train_loss']:.4f}, "
            f"val loss {record['val_loss']:.4f}, val macro-F1 {record['val_macro_f1']:.4f}"
        )
        if on_epoch is not None:
            on_epoch(record)

    try:
        result = loop.run(
            batches,
            lambda batch: loss_fn(model(batch[0]), batch[1]),
            validate,
            batch_size=batch_size,
            weight_of=lambda batch: len(batch[1]),
            backoff=True,
            on_epoch=report,
            stop_after=stop_after,
            log=log,
        )
    except CheckpointError as exc:
        raise FinetuneError(str(exc)) from None
    return TrainResult(
        best_epoch=result.best_epoch,
        best_val_macro_f1=result.best_score,
        epochs_run=result.epochs_run,
        history=result.history,
        batch_size=result.batch_size,
        resumed_from=result.resumed_from,
        finished=result.finished,
    )


def seed_summary(per_seed: dict[int, dict[str, float]]) -> dict:
    """Metrics of runs that differ only in their seed: each seed's values and, per metric, the mean, sample std and
    95% Student-t interval of the mean across seeds (the spread due to the seed: split, order, initialisation)."""
    from skulens.metrics.classification import mean_std_ci

    metrics = list(next(iter(per_seed.values())))
    return {
        "per_seed": {str(seed): values for seed, values in per_seed.items()},
        "across_seeds": {name: mean_std_ci([values[name] for values in per_seed.values()]) for name in metrics},
    }


def plot_curves(history: list[dict], path: Path, title: str) -> Path:
    """Training and validation loss, and validation macro-F1, per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train loss")
    left.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation loss")
    left.set_xlabel("epoch")
    left.legend()
    right.plot(epochs, [h["val_macro_f1"] for h in history], marker="o", color="tab:green")
    right.set_xlabel("epoch")
    right.set_ylabel("validation macro-F1")
    figure.suptitle(title)
    figure.tight_layout()
    with atomic_file(path) as temp:  # a killed run never leaves half a picture
        figure.savefig(temp, dpi=110, format="png")
    plt.close(figure)
    return path
