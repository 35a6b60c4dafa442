"""The one training loop: early stopping (max and min), the best epoch's weights, schedules, clipping, checkpoints."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from skulens.training.loop import CHECKPOINT_NAME, CheckpointError, LoopConfig, TrainingLoop


def _problem(seed: int = 0):
    """A linear model (initialised from ``seed``) and a fixed regression problem; batches drawn from ``generator``."""
    data = torch.Generator().manual_seed(0)  # the same problem whatever the seed
    x = torch.randn(64, 5, generator=data)
    y = x @ torch.randn(5, 1, generator=data)
    torch.manual_seed(seed)
    model = nn.Linear(5, 1)
    generator = torch.Generator().manual_seed(seed)

    def batches(size: int):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), size):
            yield order[start : start + size]

    return model, generator, batches, (lambda rows: ((model(x[rows]) - y[rows]) ** 2).mean())


def _scripted(scores: list[float], key: str = "score"):
    """A ``validate`` returning the given score per epoch."""
    return lambda epoch, loss: {"epoch": epoch, "loss": loss, key: scores[epoch - 1]}


@pytest.mark.parametrize(
    ("mode", "scores", "best", "ran"),
    [
        ("max", [0.1, 0.5, 0.4, 0.5, 0.3, 0.9], 2, 4),  # a tie is no improvement; stops after 2 epochs without one
        ("min", [3.0, 2.0, 2.5, 1.0, 1.5, 1.2], 4, 6),
    ],
)
def test_early_stopping_keeps_the_best_epochs_weights(mode, scores, best, ran):
    model, _, batches, loss_of = _problem()
    weights = []
    config = LoopConfig(epochs=6, lr=0.05, weight_decay=0.0, monitor="score", mode=mode, patience=2)
    result = TrainingLoop(model, config, steps_per_epoch=4).run(
        batches, loss_of, _scripted(scores), batch_size=16, on_epoch=lambda r: weights.append(copy.deepcopy(model.state_dict()))
    )
    assert (result.best_epoch, result.epochs_run, result.finished) == (best, ran, True)
    assert result.best_score == scores[best - 1] and len(result.history) == ran
    assert torch.equal(model.weight, weights[best - 1]["weight"]) and not torch.equal(model.weight, weights[-1]["weight"])


def test_without_a_score_every_epoch_runs_and_the_last_is_kept():
    model, _, batches, loss_of = _problem()
    result = TrainingLoop(model, LoopConfig(epochs=3, lr=0.05, weight_decay=0.0, monitor="score", patience=1), 4).run(
        batches, loss_of, lambda epoch, loss: {"epoch": epoch, "loss": loss}, batch_size=16
    )
    assert (result.best_epoch, result.epochs_run) == (3, 3)
    assert result.history[-1]["loss"] < result.history[0]["loss"]  # it learns


@pytest.mark.parametrize("schedule", ["constant", "warmup_cosine", "one_cycle"])
def test_schedules(schedule):
    model, _, batches, loss_of = _problem()
    config = LoopConfig(epochs=4, lr=0.1, weight_decay=0.0, schedule=schedule, warmup=1 if schedule == "warmup_cosine" else 0.25)
    loop = TrainingLoop(model, config, steps_per_epoch=4)
    rates = []
    loop.run(batches, loss_of, lambda epoch, loss: rates.append(loop.lr) or {"epoch": epoch}, batch_size=16)
    if schedule == "constant":
        assert rates == [0.1] * 4
    else:  # the rate peaks at lr near the end of the warm-up, then falls towards 0
        assert max(rates) <= 0.1 + 1e-9 and rates[-1] < 0.01 and rates.index(max(rates)) <= 1


def test_clipping_bounds_the_gradient_norm():
    model, _, batches, loss_of = _problem()
    norms = []

    def grad_norm(optimizer, args, kwargs) -> None:  # called right before each optimiser step, after clipping
        norms.append(float(torch.cat([p.grad.flatten() for p in model.parameters()]).norm()))

    loop = TrainingLoop(model, LoopConfig(epochs=1, lr=1e-6, weight_decay=0.0, clip_norm=0.5), 4)
    loop.optimizer.register_step_pre_hook(grad_norm)
    loop.run(batches, lambda rows: loss_of(rows) * 1000, lambda e, loss: {}, batch_size=16)
    assert len(norms) == 4 and max(norms) == pytest.approx(0.5, rel=1e-4)  # the unclipped norms are far larger


def test_a_resumed_run_ends_where_a_straight_run_ends(tmp_path):
    config = LoopConfig(epochs=5, lr=0.05, weight_decay=0.01, monitor="score", patience=5, schedule="warmup_cosine", warmup=1)
    scores = [0.1, 0.3, 0.2, 0.6, 0.5]
    straight, generator, batches, loss_of = _problem()
    TrainingLoop(straight, config, 4, generator=generator).run(batches, loss_of, _scripted(scores), batch_size=16)

    first, generator, batches, loss_of = _problem()
    loop = TrainingLoop(first, config, 4, generator=generator, checkpoint_dir=tmp_path)
    stopped = loop.run(batches, loss_of, _scripted(scores), batch_size=16, stop_after=2)
    assert (stopped.epochs_run, stopped.finished) == (2, False) and (tmp_path / CHECKPOINT_NAME).is_file()

    resumed, generator, batches, loss_of = _problem(seed=7)  # other initial weights and draws: all restored
    loop = TrainingLoop(resumed, config, 4, generator=generator, checkpoint_dir=tmp_path)
    result = loop.run(batches, loss_of, _scripted(scores), batch_size=16, log=lambda m: None)
    assert (result.resumed_from, result.epochs_run, result.best_epoch) == (2, 5, 4)
    for name, value in straight.state_dict().items():
        assert torch.allclose(value, resumed.state_dict()[name], atol=1e-6), name


def test_an_unreadable_checkpoint_is_named(tmp_path):
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    model, _, batches, loss_of = _problem()
    loop = TrainingLoop(model, LoopConfig(epochs=1, lr=0.1, weight_decay=0.0), 4, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="delete it to start over"):
        loop.run(batches, loss_of, lambda e, loss: {}, batch_size=16)


def test_unknown_schedule():
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        LoopConfig(epochs=1, lr=0.1, weight_decay=0.0, schedule="step")
