"""Label-shift adaptation fitted on a validation part (BCTS + EM / BBSE / RLLS, chosen on simulated shifts) and its
guards, on drawn data whose true class mix is known: an adapted batch is reported with its interval; EM that does
not converge, an implausible mix and a batch from another domain are refused with a one-line reason."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression

from skulens.heads.prior_shift import (
    Calibration,
    LabelShift,
    bbse_priors,
    em_priors,
    fit_bcts,
    fit_label_shift,
    outside_interval,
    rlls_priors,
    shifted_rows,
    soft_confusion,
)

CENTRES = np.array([[0.0, 0.0], [1.6, 0.0], [0.0, 1.6]])


def _sample(priors, n: int, seed: int, offset: float = 0.0):
    rng = np.random.default_rng(seed)
    y = rng.choice(len(priors), size=n, p=priors)
    x = CENTRES[y] + rng.normal(size=(n, 2)) + offset
    return x, y


def _vectors(x: np.ndarray) -> np.ndarray:
    """Embedding-like features of the drawn points (a constant column keeps them off the origin)."""
    return np.c_[x, np.ones(len(x))]


@pytest.fixture(scope="module")
def fitted():
    x, y = _sample([1 / 3] * 3, 3000, seed=0)
    model = LogisticRegression().fit(x, y)
    xv, yv = _sample([1 / 3] * 3, 1200, seed=1)
    shift = fit_label_shift(model.predict_proba(xv), yv, _vectors(xv), n_shifts=20)
    return model, shift


def test_estimators_recover_a_drawn_mix():
    x, y = _sample([1 / 3] * 3, 3000, seed=0)
    model = LogisticRegression().fit(x, y)
    xv, yv = _sample([1 / 3] * 3, 2000, seed=1)
    calibration = fit_bcts(model.predict_proba(xv), yv)
    assert 0.5 < calibration.temperature < 2 and len(calibration.bias) == 3
    confusion = soft_confusion(calibration.apply(model.predict_proba(xv)), yv, 3)
    xt, yt = _sample([0.7, 0.2, 0.1], 3000, seed=2)
    calibrated = calibration.apply(model.predict_proba(xt))
    realised = np.bincount(yt, minlength=3) / len(yt)
    for priors in (
        em_priors(calibrated, confusion.sum(0))[0],
        bbse_priors(calibrated, confusion),
        rlls_priors(calibrated, confusion),
    ):
        assert np.abs(priors - realised).max() < 0.08, priors  # the training mix is 0.36 off


def test_adaptation_is_reported_with_its_interval(fitted):
    model, shift = fitted
    assert shift.estimator in ("em", "bbse", "rlls") and shift.domain is not None
    assert set(shift.simulation["estimators"]) == {"em", "bbse", "rlls"}
    xt, yt = _sample([0.75, 0.15, 0.1], 800, seed=3)
    proba = model.predict_proba(xt)
    adapted, report = shift.adapt(proba, _vectors(xt))
    assert report.applied, report.reason
    interval = np.array(report.interval)
    estimate = np.array(report.estimated_priors)
    realised = np.bincount(yt, minlength=3) / len(yt)
    assert interval.shape == (3, 2) and np.all(interval[:, 0] <= estimate + 1e-9) and np.all(estimate <= interval[:, 1] + 1e-9)
    assert np.all(interval[:, 0] - 0.03 <= realised) and np.all(realised <= interval[:, 1] + 0.03)
    assert (adapted.argmax(1) == yt).mean() > (proba.argmax(1) == yt).mean() + 0.03
    assert report.domain_shift is not None and report.domain_shift <= report.domain_limit


def test_no_shift_is_left_alone(fitted):
    model, shift = fitted
    xt, _ = _sample([1 / 3] * 3, 600, seed=4)
    proba = model.predict_proba(xt)
    same, report = shift.adapt(proba, _vectors(xt))
    assert not report.applied and ("no clear class-mix shift" in report.reason or "standard error" in report.reason)
    assert np.array_equal(same, proba)


def test_em_that_does_not_converge_is_refused():
    # classes 0 and 1 are drawn from one centre: the likelihood is flat along their split and EM crawls
    rng = np.random.default_rng(5)
    y = rng.choice(3, size=900, p=[0.45, 0.45, 0.1])
    x = np.where((y == 2)[:, None], [2.5, 0.0], [0.0, 0.0]) + rng.normal(size=(900, 2))
    model = LogisticRegression().fit(x, y)
    source = np.bincount(y, minlength=3) / len(y)
    shift = LabelShift("em", source.tolist(), Calibration(1.0, [0.0, 0.0, 0.0]), np.diag(source).tolist())
    xt = np.r_[rng.normal(size=(500, 2)), rng.normal(size=(100, 2)) + [2.5, 0.0]]
    proba = model.predict_proba(xt)
    assert not em_priors(proba, source)[1]
    same, report = shift.adapt(proba)
    assert not report.applied and not report.converged and "did not converge" in report.reason
    assert np.array_equal(same, proba)


def test_implausible_mix_is_refused(fitted):
    model, shift = fitted
    # a confusion matrix that does not describe this classifier: BBSE and EM then disagree far beyond the interval
    wrong = np.array([[0.05, 0.25, 0.03], [0.25, 0.05, 0.03], [0.03, 0.03, 0.28]])
    broken = LabelShift("em", wrong.sum(0).tolist(), shift.calibration, wrong.tolist())
    xt, _ = _sample([0.7, 0.2, 0.1], 800, seed=6)
    proba = model.predict_proba(xt)
    same, report = broken.adapt(proba)
    assert not report.applied and "implausible class mix" in report.reason and report.interval is not None
    assert np.array_equal(same, proba)
    named = broken.adapt(proba, names=["shoes", "shirts", "watches"])[1].reason
    assert re.search(r"puts '(shoes|shirts|watches)' at", named), named  # the class by its name, not its column
    interval = np.array([[0.2, 0.3], [0.3, 0.4], [0.3, 0.4]])
    assert list(outside_interval(np.array([0.25, 0.35, 0.35]), interval)) == []
    assert list(outside_interval(np.array([0.6, 0.05, 0.35]), interval)) == [0, 1]


def test_a_batch_from_another_domain_is_refused(fitted):
    model, shift = fitted
    xt, _ = _sample([0.7, 0.2, 0.1], 800, seed=7)
    far = np.c_[xt, np.ones(len(xt))] + [0.0, 0.0, 3.0]  # the embeddings moved; the classifier's inputs did not
    same, report = shift.adapt(model.predict_proba(xt), far)
    assert not report.applied and "too far from the training domain" in report.reason
    assert report.domain_shift > report.domain_limit


def test_label_shift_round_trips_through_json_and_arrays(fitted):
    import json

    _, shift = fitted
    restored = LabelShift.restore(json.loads(json.dumps(shift.config())), shift.to_arrays())
    xt, _ = _sample([0.7, 0.2, 0.1], 300, seed=8)
    proba = LogisticRegression().fit(*_sample([1 / 3] * 3, 600, seed=9)).predict_proba(xt)
    assert np.allclose(restored.estimate(proba)[0], shift.estimate(proba)[0])
    assert restored.domain.limit == pytest.approx(shift.domain.limit)


def test_noisy_class_biases_are_shrunk_and_systematic_ones_kept():
    # one class has 10 validation rows (its fitted bias is mostly noise); class 3's posteriors are 1.5 nats too low
    centres = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    rng = np.random.default_rng(0)

    def draw(counts):
        y = np.repeat(np.arange(4), counts)
        return centres[y] + rng.normal(size=(len(y), 2)), y

    model = LogisticRegression().fit(*draw([4000, 100, 4000, 4000]))
    offset = np.array([0.0, 0.0, 0.0, -1.5])
    noisy, shrunk = [], []
    for _ in range(6):
        xv, yv = draw([400, 10, 400, 400])
        proba = softmax(np.log(model.predict_proba(xv)) + offset, axis=1)
        plain, kept = np.array(fit_bcts(proba, yv, resamples=0).bias), np.array(fit_bcts(proba, yv).bias)
        assert kept[3] - np.delete(kept, 3).mean() == pytest.approx(1.5, abs=0.4)  # the systematic offset stays corrected
        noisy.append(abs(plain[1] - plain[0]))
        shrunk.append(abs(kept[1] - kept[0]))
    assert np.mean(shrunk) < 0.6 * np.mean(noisy)


def test_adaptation_with_rare_look_alike_classes_never_costs_accuracy():
    # six look-alike pairs, classes from 25% down to 2% of the rows, a validation part of 600 rows (a dozen rows for
    # the rare classes): noisy per-class calibration must not turn into lost accuracy on shifted batches
    k = 12
    centres = np.array([[2.0 * (c // 2), 0.8 * (c % 2)] for c in range(k)])
    mix = np.array([0.25, 0.2, 0.1, 0.1, 0.08, 0.08, 0.05, 0.04, 0.03, 0.03, 0.02, 0.02])

    def draw(n, seed, priors=mix):
        rng = np.random.default_rng(seed)
        y = rng.choice(k, n, p=priors / priors.sum())
        return centres[y] + rng.normal(scale=0.45, size=(n, 2)), y

    model = LogisticRegression(max_iter=3000).fit(*draw(8000, 0))
    xv, yv = draw(600, 1)
    shift = fit_label_shift(model.predict_proba(xv), yv, n_shifts=20)
    xt, yt = draw(20000, 2, np.ones(k))
    proba = model.predict_proba(xt)
    rng = np.random.default_rng(3)
    changes = []
    for _ in range(12):
        rows = shifted_rows(yt, rng.dirichlet(np.ones(k)), 800, rng)
        adapted, _ = shift.adapt(proba[rows], resamples=30)
        changes.append((adapted.argmax(1) == yt[rows]).mean() - (proba[rows].argmax(1) == yt[rows]).mean())
    assert min(changes) >= -0.01 and np.mean(changes) >= 0, changes
