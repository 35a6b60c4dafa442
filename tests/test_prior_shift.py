"""Label-shift adaptation (EM re-estimation of class priors) on synthetic data whose true priors are known,
and its use by a saved categorizer (``evaluate(adapt_priors=True)``, majority-class baseline)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from skulens.catalog import build_catalog
from skulens.heads.prior_shift import adapt_priors, reweight
from skulens.metrics.classification import majority_baseline
from skulens.tasks.categorize import CategoryPredictor

CENTRES = np.array([[0.0, 0.0], [1.6, 0.0], [0.0, 1.6]])


def _sample(priors: list[float], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.choice(len(priors), size=n, p=priors)
    return CENTRES[y] + rng.normal(size=(n, 2)), y


@pytest.fixture(scope="module")
def balanced_model() -> LogisticRegression:
    x, y = _sample([1 / 3, 1 / 3, 1 / 3], 3000, seed=0)
    return LogisticRegression().fit(x, y)


def test_em_recovers_shifted_priors_and_improves_accuracy(balanced_model):
    true = np.array([0.7, 0.2, 0.1])
    x, y = _sample(list(true), 4000, seed=1)
    proba = balanced_model.predict_proba(x)
    adapted, shift = adapt_priors(proba, np.full(3, 1 / 3))
    assert shift.applied and shift.converged and shift.iterations > 1
    realised = np.bincount(y, minlength=3) / len(y)
    assert np.abs(np.array(shift.estimated_priors) - realised).max() < 0.05  # from 0.37 off before adaptation
    assert shift.log_likelihood_gain > 0
    assert np.allclose(adapted.sum(axis=1), 1)
    before, after = (proba.argmax(1) == y).mean(), (adapted.argmax(1) == y).mean()
    assert after > before + 0.03


def test_no_shift_keeps_priors_and_predictions(balanced_model):
    x, _ = _sample([1 / 3, 1 / 3, 1 / 3], 3000, seed=2)
    proba = balanced_model.predict_proba(x)
    adapted, shift = adapt_priors(proba, np.full(3, 1 / 3))
    assert shift.applied and np.abs(np.array(shift.estimated_priors) - 1 / 3).max() < 0.04
    assert (adapted.argmax(1) == proba.argmax(1)).mean() > 0.95


def test_unconverged_or_too_small_batches_are_left_unchanged(balanced_model):
    x, _ = _sample([0.8, 0.1, 0.1], 500, seed=3)
    proba = balanced_model.predict_proba(x)
    same, shift = adapt_priors(proba, np.full(3, 1 / 3), max_iter=2, tol=1e-12)
    assert not shift.applied and not shift.converged and "did not converge" in shift.reason
    assert same is proba or np.array_equal(same, proba)
    small, shift = adapt_priors(proba[:10], np.full(3, 1 / 3))
    assert not shift.applied and "needs 30" in shift.reason and np.array_equal(small, proba[:10])
    with pytest.raises(ValueError, match="training priors"):
        adapt_priors(proba, np.full(4, 0.25))


def test_reweight_is_bayes_rule():
    proba = np.array([[0.5, 0.5], [0.9, 0.1]])
    out = reweight(proba, np.array([0.5, 0.5]), np.array([0.2, 0.8]))
    assert np.allclose(out[0], [0.2, 0.8]) and np.allclose(out.sum(1), 1)


def _shop(counts: dict[str, int], seed: int):
    words = {"Watches": "analog wrist watch strap dial", "Mugs": "ceramic coffee mug handle", "Towels": "cotton bath towel soft"}
    rng = np.random.default_rng(seed)
    rows = []
    for label, n in counts.items():
        vocab = words[label].split()
        for i in range(n):
            noise = " ".join(rng.choice(["red", "blue", "gift", "set", "new", "large", "small"], size=3))
            rows.append({"id": f"{seed}-{label}-{i}", "title": f"{rng.choice(vocab)} {noise} {i}", "category": label})
    return build_catalog(pd.DataFrame(rows), name=f"shop{seed}")


def test_categorizer_reports_priors_and_majority_baseline(tmp_path):
    model = CategoryPredictor(["tfidf"], label=0).fit(_shop({"Watches": 60, "Mugs": 30, "Towels": 30}, seed=0))
    assert np.allclose(model.class_prior_, [0.25, 0.25, 0.5])  # classes sorted: Mugs, Towels, Watches
    loaded = CategoryPredictor.load(model.save(tmp_path / "model"))
    assert np.allclose(loaded.class_prior_, model.class_prior_)
    other = _shop({"Watches": 10, "Mugs": 80, "Towels": 20}, seed=1)
    metrics = loaded.evaluate(other, adapt_priors=True)
    assert metrics["majority_baseline"] == majority_baseline(other.labels(0).to_numpy(), "Watches")
    assert metrics["majority_baseline"]["accuracy"] == pytest.approx(10 / 110)
    shift = metrics["prior_shift"]
    assert shift["n_rows"] == 110 and shift["estimated_priors"][0] > shift["train_priors"][0]
    assert "prior_shift" not in loaded.evaluate(other)


def _reviews(stars_share: list[float], n: int, seed: int):
    from skulens.catalog import Catalog

    words = {
        1: "awful broken returned",
        2: "poor cheap thin",
        3: "okay average fine",
        4: "good nice comfy",
        5: "perfect love amazing",
    }
    rng = np.random.default_rng(seed)
    stars = rng.choice([1, 2, 3, 4, 5], size=n, p=stars_share)
    rows = [
        {
            "id": f"{seed}-{i}",
            "review_text": f"{rng.choice(words[s].split())} {rng.choice(words[min(5, s + 1)].split())} {i}",
            "rating": int(s),
        }
        for i, s in enumerate(stars)
    ]
    return Catalog(pd.DataFrame(rows), name=f"reviews{seed}")


def test_review_model_adapts_to_another_shops_star_mix():
    from skulens.tasks.reviews import ReviewPredictor

    model = ReviewPredictor(encoders=("tfidf",)).fit(_reviews([0.05, 0.05, 0.1, 0.2, 0.6], 400, seed=0))
    other = _reviews([0.4, 0.2, 0.2, 0.1, 0.1], 300, seed=1)
    plain = model.evaluate(other)
    assert "prior_shift" not in plain and plain["majority_baseline"]["class"] == "5"
    assert plain["majority_baseline"]["rating_mae"] == pytest.approx(np.mean(5 - other.frame["rating"]))
    adapted = model.evaluate(other, adapt_priors=True)
    shift = adapted["prior_shift"]
    assert shift["applied"] and shift["estimated_priors"][0] > 2 * shift["train_priors"][0]
    assert adapted["rating_mae"] < plain["rating_mae"]
    frame = model.predict(other, adapt_priors=True)
    assert model.last_prior_shift_.applied and len(frame) == 300


def test_cli_evaluate_and_predict_with_adapt_priors(tmp_path):
    import re

    from typer.testing import CliRunner

    from skulens.cli import app

    env = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    train, other = tmp_path / "train.csv", tmp_path / "other.csv"
    _shop({"Watches": 60, "Mugs": 30, "Towels": 30}, seed=0).frame.assign(
        category=lambda f: f["category"].map(" >> ".join)
    ).to_csv(train, index=False)
    _shop({"Watches": 10, "Mugs": 80, "Towels": 20}, seed=1).frame.assign(
        category=lambda f: f["category"].map(" >> ".join)
    ).to_csv(other, index=False)
    runner = CliRunner()
    trained = runner.invoke(
        app, ["categorize", "train", str(train), "-e", "tfidf", "--out", str(tmp_path / "m"), "--no-track"], env=env
    )
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(
        app,
        ["categorize", "evaluate", str(tmp_path / "m"), str(other), "--out", str(tmp_path / "eval"), "--adapt-priors"],
        env=env,
    )
    text = re.sub(r"\s+", " ", result.output)
    assert result.exit_code == 0, text
    assert "majority-class baseline (always 'Watches'): accuracy 0.091" in text and "priors adapted on 110 rows" in text
    out = tmp_path / "pred.csv"
    predicted = runner.invoke(
        app, ["categorize", "predict", str(tmp_path / "m"), "-i", str(other), "--output", str(out), "--adapt-priors"], env=env
    )
    assert predicted.exit_code == 0, predicted.output
    report = json.loads((tmp_path / "pred.prior_shift.json").read_text())
    assert report["applied"] and report["classes"] == ["Mugs", "Towels", "Watches"]
    single = runner.invoke(app, ["categorize", "predict", str(tmp_path / "m"), "--text", "mug", "--adapt-priors"], env=env)
    assert single.exit_code != 0 and "--input" in re.sub(r"\s+", " ", single.output)


def test_bcts_with_its_exact_gradient_finds_the_finite_difference_optimum():
    """BCTS is minimised with the analytic gradient of its log-loss; the optimum equals the one L-BFGS-B
    finds from finite differences (the former, 7x slower fit)."""
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    from skulens.heads.prior_shift import _bcts

    rng = np.random.default_rng(3)
    logits = rng.normal(size=(600, 6)) * 3
    y = np.array([rng.choice(6, p=np.exp(r) / np.exp(r).sum()) for r in 0.6 * logits + [0.5, 0, 0, 0, 0, -0.5]])
    logits = log_softmax(logits, axis=1)

    def loss(params):
        scaled = log_softmax(logits / np.exp(params[0]) + params[1:], axis=1)
        return -scaled[np.arange(len(y)), y].mean() + 1e-6 * np.sum(params[1:] ** 2)

    reference = minimize(loss, np.zeros(7), method="L-BFGS-B").x
    fitted = _bcts(logits, y)
    assert np.abs(fitted - reference).max() < 1e-4
    assert loss(fitted) <= loss(reference) + 1e-9
