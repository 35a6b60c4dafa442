"""The one training loop of skulens: AdamW, a learning-rate schedule (constant, linear warm-up + cosine, or
one-cycle), gradient clipping, early stopping on a validation score, the best epoch's weights kept, and
optionally a checkpoint after every epoch (resumed to the same state) and batch-size back-off on out-of-memory.

What differs between models stays with the caller: how an epoch's batches are drawn (``batches``), the loss of
a batch (``loss_of``) and the validation record of an epoch (``validate``). The MLP probe, the alignment heads,
the captioner's decoder and fine-tuning all train through :class:`TrainingLoop`.

Low-level on purpose: it imports torch, the progress helper and the error root only, so heads may use it.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from skulens.errors import SkulensError
from skulens.progress import progress_bar

CHECKPOINT_NAME = "checkpoint.pt"
SCHEDULES = ("constant", "warmup_cosine", "one_cycle")


class CheckpointError(SkulensError, ValueError):
    """A checkpoint that cannot be read; the message names it and how to go on."""

    code = "checkpoint"


@dataclass(frozen=True)
class LoopConfig:
    """How a model is trained.

    ``schedule``: ``constant`` (AdamW's ``lr`` throughout), ``warmup_cosine`` (linear warm-up over ``warmup``
    epochs, then a half cosine to 0) or ``one_cycle`` (PyTorch's ``OneCycleLR``, warming up over the ``warmup``
    share of the steps). ``patience=None`` runs every epoch and keeps the last one. An epoch improves when its
    ``monitor`` value beats the best so far by more than ``min_delta`` (``mode`` ``max`` or ``min``).
    """

    epochs: int
    lr: float
    weight_decay: float
    monitor: str | None = None
    mode: Literal["max", "min"] = "max"
    min_delta: float = 0.0
    patience: int | None = None
    schedule: str = "constant"
    warmup: float = 0.0
    clip_norm: float | None = None

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule '{self.schedule}'; use one of {', '.join(SCHEDULES)}")


@dataclass(frozen=True)
class TrainingSettings:
    """What every trained model's config holds: epochs, batch size, AdamW's rate and weight decay, early-stopping
    patience (epochs without a better validation score; None: every epoch) and seed. The fine-tuning, alignment-head
    and captioner configs inherit these fields, each restating only the defaults it changes."""

    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int | None = 5
    seed: int = 0

    def loop_config(self, **how: Any) -> LoopConfig:
        """The :class:`LoopConfig` of these settings and ``how`` the loop runs (``monitor``, ``schedule``...)."""
        return LoopConfig(epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay, patience=self.patience, **how)


@dataclass
class LoopResult:
    """What a run did: the best epoch (1-based) and its score, epochs run in all, the per-epoch records, the batch
    size that worked, the epoch a checkpoint resumed after (or None), and whether training ran to its end."""

    best_epoch: int
    best_score: float
    epochs_run: int
    history: list[dict] = field(default_factory=list)
    batch_size: int = 0
    resumed_from: int | None = None
    finished: bool = True


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


def _save_atomic(state: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    torch.save(state, temp)
    os.replace(temp, path)


def run_key(loop: TrainingLoop, steps_per_epoch: int, data_key: str) -> str:
    """What a checkpoint must have been written with to be resumed: the loop's settings, the steps per epoch,
    each parameter group's learning rate, the model's parameter names and shapes, and ``data_key`` (the
    caller's digest of its data)."""
    parts = {
        "config": dataclasses.asdict(loop.config),
        "steps_per_epoch": steps_per_epoch,
        "group_lrs": [group["lr"] for group in loop.optimizer.param_groups],
        "shapes": [(name, list(value.shape)) for name, value in loop.model.state_dict().items()],
        "data": data_key,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def data_digest(*arrays) -> str:
    """A digest of training data (tensors or arrays): shapes, dtypes and values (inputs of more than a million
    values are sampled at a fixed stride)."""
    digest = hashlib.sha256()
    for array in arrays:
        values = torch.as_tensor(array).detach().reshape(-1)
        digest.update(f"{tuple(torch.as_tensor(array).shape)}{values.dtype}".encode())
        step = max(1, values.numel() // 1_000_000)
        digest.update(values[::step].contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def load_checkpoint(path: Path) -> dict:
    """A checkpoint written by :class:`TrainingLoop`, read with ``weights_only=True`` (tensors and plain values only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: say which and how to go on
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); delete it to start over"
        ) from None


class TrainingLoop:
    """Trains ``model``'s parameters (or the AdamW parameter ``groups`` given) with ``config``.

    ``steps_per_epoch`` sizes the schedule. ``generator`` is the torch generator the caller's ``batches`` draw
    from: a checkpoint saves and restores it (with torch's global RNG), as does the batch-size back-off when
    it repeats an epoch. ``checkpoint_dir`` turns on a checkpoint after every epoch; a later run with the same
    arguments resumes from it.
    """

    def __init__(
        self,
        model: nn.Module,
        config: LoopConfig,
        steps_per_epoch: int,
        groups: list[dict] | None = None,
        generator: torch.Generator | None = None,
        checkpoint_dir: Path | None = None,
        data_key: str = "",
    ) -> None:
        self.model, self.config, self.generator = model, config, generator
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(groups or [{"params": self.params}], lr=config.lr, weight_decay=config.weight_decay)
        total = config.epochs * steps_per_epoch
        self.scheduler: Any = None
        if config.schedule == "warmup_cosine":
            self.scheduler = cosine_with_warmup(self.optimizer, int(config.warmup * steps_per_epoch), total)
        elif config.schedule == "one_cycle" and config.warmup * total >= 2:
            # (too few steps for a warm-up phase: a constant rate, as OneCycleLR divides by zero there)
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
                self.optimizer, max_lr=config.lr, total_steps=max(total, 1), pct_start=config.warmup
            )
        self.checkpoint = checkpoint_dir / CHECKPOINT_NAME if checkpoint_dir is not None else None
        self.batch_size = 0  # the batch size the last epoch ran with (smaller after a back-off)
        self.run_key = run_key(self, steps_per_epoch, data_key)

    @property
    def lr(self) -> float:
        """The learning rate of the first parameter group now."""
        return float(self.optimizer.param_groups[0]["lr"])

    def _improved(self, score: float, best: float) -> bool:
        delta = self.config.min_delta
        return score > best + delta if self.config.mode == "max" else score < best - delta

    def _snapshot(self) -> tuple:
        return (
            copy.deepcopy(self.model.state_dict()),
            copy.deepcopy(self.optimizer.state_dict()),
            None if self.scheduler is None else self.scheduler.state_dict(),
            None if self.generator is None else self.generator.get_state(),
        )

    def _restore(self, snapshot: tuple) -> None:
        model, optimizer, scheduler, generator = snapshot
        self.model.load_state_dict(model)
        self.optimizer.load_state_dict(optimizer)
        if scheduler is not None:
            self.scheduler.load_state_dict(scheduler)
        if generator is not None:
            self.generator.set_state(generator)

    def _save(self, state: dict, best_weights: dict) -> None:
        _save_atomic(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "generator": None if self.generator is None else self.generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "best_model": best_weights,
                "state": {**state, "run_key": self.run_key},
            },
            self.checkpoint,
        )

    def _resume(self, log: Callable[[str], None]) -> tuple[dict, dict] | None:
        if self.checkpoint is None or not self.checkpoint.exists():
            return None
        saved = load_checkpoint(self.checkpoint)
        if saved["state"].get("run_key") != self.run_key:
            log(
                f"the checkpoint {self.checkpoint} was written by a run with other arguments or data "
                "(learning rate, epochs, classes, schedule, training rows...); starting fresh"
            )
            return None
        self._restore((saved["model"], saved["optimizer"], saved["scheduler"], saved["generator"]))
        torch.set_rng_state(saved["torch_rng"])
        log(f"resuming from {self.checkpoint} after epoch {saved['state']['epoch']}")
        return saved["state"], saved["best_model"]

    def _epoch(self, batches: Callable[[int], Iterable], loss_of: Callable, weight_of: Callable | None, size: int) -> float:
        """One pass over ``batches(size)``; the mean loss (weighted by ``weight_of(batch)`` when given)."""
        self.model.train()
        total, seen = 0.0, 0
        for batch in batches(size):
            self.optimizer.zero_grad(set_to_none=True)
            loss = loss_of(batch)
            loss.backward()
            if self.config.clip_norm is not None:
                nn.utils.clip_grad_norm_(self.params, self.config.clip_norm)
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            weight = weight_of(batch) if weight_of is not None else 1
            total, seen = total + loss.item() * weight, seen + weight
        return total / max(seen, 1)

    def run(
        self,
        batches: Callable[[int], Iterable],
        loss_of: Callable[[Any], torch.Tensor],
        validate: Callable[[int, float], dict],
        batch_size: int = 0,
        weight_of: Callable[[Any], int] | None = None,
        backoff: bool = False,
        on_epoch: Callable[[dict], None] | None = None,
        stop_after: int | None = None,
        progress: str | None = None,
        log: Callable[[str], None] = print,
    ) -> LoopResult:
        """Train epoch after epoch until ``config.epochs`` or early stopping; returns what happened.

        ``batches(batch_size)`` yields one epoch's batches; ``loss_of(batch)`` is a batch's loss;
        ``validate(epoch, train_loss)`` (epoch 1-based) returns the epoch's record, holding ``config.monitor``
        when there is a validation score. The best epoch's weights are loaded at the end (the last epoch's
        without a score). ``backoff`` repeats an epoch that ran out of memory with half the batch size.
        ``stop_after`` ends this call after that many epochs, as an interrupt would (the weights stay as they
        are). ``progress`` labels a progress bar over the epochs.
        """
        cfg = self.config
        worst = -math.inf if cfg.mode == "max" else math.inf
        state = {"epoch": 0, "best_epoch": 0, "best_score": worst, "bad_epochs": 0, "history": [], "batch_size": batch_size}
        best_weights: dict | None = None
        resumed = self._resume(log)
        if resumed is not None:
            state, best_weights = resumed
        resumed_from = int(state["epoch"]) if resumed is not None else None
        patience = cfg.patience if cfg.patience is not None else math.inf
        ran = 0
        with progress_bar(cfg.epochs, progress or "epochs", enabled=progress is not None) as bar:
            bar.advance(state["epoch"])
            while state["epoch"] < cfg.epochs and state["bad_epochs"] < patience:
                if stop_after is not None and ran >= stop_after:
                    break
                if backoff:
                    snapshot = self._snapshot()

                    def attempt(size: int, snapshot=snapshot) -> float:
                        self._restore(snapshot)
                        return self._epoch(batches, loss_of, weight_of, size)

                    train_loss, state["batch_size"] = with_batch_backoff(attempt, state["batch_size"], log)
                else:
                    train_loss = self._epoch(batches, loss_of, weight_of, state["batch_size"])
                self.batch_size = state["batch_size"]
                state["epoch"] += 1
                ran += 1
                record = validate(state["epoch"], train_loss)
                state["history"].append(record)
                score = record.get(cfg.monitor) if cfg.monitor else None
                if score is None:  # no validation score: the last epoch is the one kept
                    state["best_epoch"] = state["epoch"]
                elif self._improved(score, state["best_score"]):
                    state.update(best_score=score, best_epoch=state["epoch"], bad_epochs=0)
                    best_weights = copy.deepcopy(self.model.state_dict())
                else:
                    state["bad_epochs"] += 1
                bar.advance()
                if on_epoch is not None:
                    on_epoch(record)
                if self.checkpoint is not None:
                    self._save(state, best_weights if best_weights is not None else self.model.state_dict())
        finished = state["epoch"] >= cfg.epochs or state["bad_epochs"] >= patience
        if finished and best_weights is not None:
            self.model.load_state_dict(best_weights)
        return LoopResult(
            best_epoch=int(state["best_epoch"]),
            best_score=float(state["best_score"]),
            epochs_run=int(state["epoch"]),
            history=list(state["history"]),
            batch_size=int(state["batch_size"]),
            resumed_from=resumed_from,
            finished=finished,
        )
