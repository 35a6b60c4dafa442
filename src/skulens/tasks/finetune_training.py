"""The training loop every ``skulens finetune`` command shares: AdamW, cosine schedule with linear warm-up,
label smoothing, gradient clipping, early stopping on validation macro-F1, a checkpoint after every epoch
(resumed after an interrupt to the same state) and batch-size back-off when memory runs out.

Inputs are precomputed tensors: ``views[v, i]`` is view ``v`` (an augmentation) of training example ``i``;
each epoch draws one view per example (seeded), so a network trained on cached frozen-layer outputs still
sees augmented inputs.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn

from skulens.errors import SkulensError

CHECKPOINT_NAME = "checkpoint.pt"
#: Fewest examples a class needs: at least one for validation and enough left to learn from.
MIN_PER_CLASS = 5


class FinetuneError(SkulensError, ValueError):
    """Fine-tuning cannot run on this input; the message says what to change."""

    code = "finetune"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    clip_norm: float = 1.0
    patience: int = 5
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    best_epoch: int
    best_val_macro_f1: float
    epochs_run: int
    history: list[dict]
    batch_size: int
    resumed_from: int | None
    finished: bool


def cosine_with_warmup(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate rising linearly over ``warmup_steps``, then falling along a half cosine to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocator failure (CUDA or CPU) that a smaller batch may avoid."""
    text = str(exc).lower()
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
    )


def with_batch_backoff(run: Callable[[int], object], batch_size: int, log: Callable[[str], None] = print) -> tuple[object, int]:
    """``run(batch_size)``, halving the batch size after each out-of-memory failure (down to 1); returns
    (result, the batch size that worked). ``run`` must be safe to call again from the start."""
    while True:
        try:
            return run(batch_size), batch_size
        except (RuntimeError, MemoryError) as exc:
            if not is_out_of_memory(exc) or batch_size == 1:
                raise
            batch_size //= 2
            log(f"out of memory; retrying with batch size {batch_size}")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


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


def _save_atomic(state: dict, path: Path) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    torch.save(state, temp)
    os.replace(temp, path)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint written by :func:`train`, read with ``weights_only=True`` (tensors and plain values only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: say which and how to go on
        raise FinetuneError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); delete it to start over") from None


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
    params = [p for p in model.parameters() if p.requires_grad]
    groups = model.param_groups(config.lr) if hasattr(model, "param_groups") else [{"params": params}]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    n = views.shape[1]
    targets = torch.as_tensor(y_train, dtype=torch.long)
    batch_size = max(1, min(config.batch_size, n))
    steps_per_epoch = math.ceil(n / batch_size)
    scheduler = cosine_with_warmup(optimizer, int(config.warmup_epochs * steps_per_epoch), config.epochs * steps_per_epoch)
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    state = {"epoch": 0, "best_epoch": 0, "best_score": -1.0, "bad_epochs": 0, "history": [], "batch_size": batch_size}
    best_weights = copy.deepcopy(model.state_dict())
    resumed_from = None
    checkpoint = checkpoint_dir / CHECKPOINT_NAME if checkpoint_dir is not None else None
    if checkpoint is not None and checkpoint.exists():
        saved = load_checkpoint(checkpoint)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        best_weights = saved["best_model"]
        state = saved["state"]
        resumed_from = int(state["epoch"])
        log(f"resuming from {checkpoint} after epoch {resumed_from}")

    def one_epoch(size: int) -> float:
        model.train()
        order = torch.randperm(n, generator=generator)
        pick = torch.randint(views.shape[0], (n,), generator=generator)
        total, seen = 0.0, 0
        for start in range(0, n, size):
            rows = order[start : start + size]
            inputs = views[pick[rows], rows].float()
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs), targets[rows])
            loss.backward()
            nn.utils.clip_grad_norm_(params, config.clip_norm)
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(rows)
            seen += len(rows)
        return total / seen

    ran = 0
    while state["epoch"] < config.epochs and state["bad_epochs"] < config.patience:
        if stop_after is not None and ran >= stop_after:
            break
        snapshot = (
            copy.deepcopy(model.state_dict()),
            copy.deepcopy(optimizer.state_dict()),
            scheduler.state_dict(),
            generator.get_state(),
        )

        def attempt(size: int, snapshot=snapshot) -> float:
            model.load_state_dict(snapshot[0])
            optimizer.load_state_dict(snapshot[1])
            scheduler.load_state_dict(snapshot[2])
            generator.set_state(snapshot[3])
            return one_epoch(size)

        train_loss, state["batch_size"] = with_batch_backoff(attempt, state["batch_size"], log)
        logits = predict_logits(model, val_inputs, state["batch_size"])
        val_loss = float(loss_fn(logits, torch.as_tensor(y_val, dtype=torch.long)))
        score = macro_f1(y_val, logits.argmax(1).numpy())
        state["epoch"] += 1
        ran += 1
        record = {"epoch": state["epoch"], "train_loss": train_loss, "val_loss": val_loss, "val_macro_f1": score}
        record["lr"] = float(scheduler.get_last_lr()[0])
        state["history"].append(record)
        if score > state["best_score"]:
            state.update(best_score=score, best_epoch=state["epoch"], bad_epochs=0)
            best_weights = copy.deepcopy(model.state_dict())
        else:
            state["bad_epochs"] += 1
        log(
            f"epoch {state['epoch']}/{config.epochs}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, val macro-F1 {score:.4f}"
        )
        if on_epoch is not None:
            on_epoch(record)
        if checkpoint is not None:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            _save_atomic(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "best_model": best_weights,
                    "state": state,
                },
                checkpoint,
            )
    finished = state["epoch"] >= config.epochs or state["bad_epochs"] >= config.patience
    if finished:
        model.load_state_dict(best_weights)
    return TrainResult(
        best_epoch=int(state["best_epoch"]),
        best_val_macro_f1=float(state["best_score"]),
        epochs_run=int(state["epoch"]),
        history=list(state["history"]),
        batch_size=int(state["batch_size"]),
        resumed_from=resumed_from,
        finished=finished,
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
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
