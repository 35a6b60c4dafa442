"""Independent tasks run side by side in forked processes give what they give one after the other."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from skulens import side_by_side
from skulens.side_by_side import SideBySideError, run_side_by_side
from skulens.tasks.reviews import ReviewPredictor


@pytest.fixture(autouse=True)
def _fork_despite_torch(monkeypatch):
    """The suite's conftest loads PyTorch (single-threaded there); these tests fork anyway."""
    monkeypatch.setattr(side_by_side, "FORK_UNSAFE_MODULES", ())


def test_results_come_back_in_order_from_other_processes():
    pids = run_side_by_side([os.getpid, os.getpid, os.getpid], threads=2)
    assert pids[0] == os.getpid() and pids[1] != os.getpid() and pids[2] == os.getpid()  # two at a time, the first here
    assert run_side_by_side([lambda: 1, lambda: "two", lambda: [3]], threads=2) == [1, "two", [3]]


def test_one_thread_runs_everything_here():
    assert run_side_by_side([os.getpid, os.getpid], threads=1) == [os.getpid()] * 2


def test_each_child_gets_its_share_of_the_budget():
    assert run_side_by_side([lambda: os.environ.get("SKULENS_THREADS")] * 2, threads=4)[1] == "2"


def test_a_failure_in_a_child_is_raised_with_its_traceback():
    def broken():
        raise ValueError("no such column 'rating'")

    with pytest.raises(SideBySideError, match="no such column 'rating'"):
        run_side_by_side([lambda: 1, broken], threads=2)


def test_a_dead_child_is_reported():
    with pytest.raises(SideBySideError, match="ended without a result"):
        run_side_by_side([lambda: 1, lambda: os._exit(3)], threads=2)


def _reviews(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = {
        1: "awful broken refund",
        2: "poor cheap thin",
        3: "okay average fine",
        4: "good nice comfy",
        5: "perfect love great",
    }
    stars = rng.choice([1, 2, 3, 4, 5], size=n, p=[0.1, 0.1, 0.2, 0.25, 0.35])
    noise = ["dress", "shirt", "fits", "colour", "size", "fabric", "wash", "length"]
    texts = [" ".join([*rng.choice(words[s].split(), 2), *rng.choice(noise, 4)]) for s in stars]
    return pd.DataFrame({"id": [f"r{i}" for i in range(n)], "review_text": texts, "rating": stars, "recommended": stars >= 4})


def test_review_training_side_by_side_equals_one_after_the_other(monkeypatch):
    """Class-weight candidates, the final star head, label-shift adaptation and the recommendation head fitted
    in two processes choose and predict as fitted in one."""
    frame = _reviews(400, seed=3)
    models = {}
    for threads in ("1", "2"):
        monkeypatch.setenv("SKULENS_THREADS", threads)
        models[threads] = ReviewPredictor(["tfidf"], class_weight="auto").fit(frame)
    serial, parallel = models["1"], models["2"]
    assert [c["score"] for c in serial.selection_["candidates"]] == [c["score"] for c in parallel.selection_["candidates"]]
    assert serial.selection_["class_weight"] == parallel.selection_["class_weight"]
    numbers = ["expected_rating", "recommend_proba", "p1", "p2", "p3", "p4", "p5"]
    one, two = serial.predict(frame, adapt_priors=True), parallel.predict(frame, adapt_priors=True)
    np.testing.assert_allclose(one[numbers].to_numpy(float), two[numbers].to_numpy(float), rtol=0, atol=1e-6)
    assert one["stars"].tolist() == two["stars"].tolist()
    assert serial.label_shift_.config() == parallel.label_shift_.config()


def test_torch_loaded_keeps_tasks_here(monkeypatch):
    monkeypatch.setattr(side_by_side, "FORK_UNSAFE_MODULES", ("torch",))
    monkeypatch.setitem(side_by_side.sys.modules, "torch", object())
    assert run_side_by_side([os.getpid, os.getpid], threads=2) == [os.getpid()] * 2
