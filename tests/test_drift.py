"""Drift: the statistical tests on synthetic data both ways, the HTML report, and Myntra (integration)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from skulens.evaluation.drift import (
    DriftReport,
    confidence_test,
    distribution_test,
    embedding_test,
    mmd_test,
    write_drift_report,
)

#: The real datasets live beside the checkout: <repo>/../shared/datasets.
DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def test_mmd_flags_a_shift_and_not_two_samples_of_one_distribution():
    rng = np.random.default_rng(0)
    same_a, same_b = rng.normal(size=(120, 8)), rng.normal(size=(100, 8))
    shifted = rng.normal(size=(100, 8)) + np.r_[0.8, np.zeros(7)]
    assert mmd_test(same_a, same_b, permutations=200).p_value > 0.05
    moved = mmd_test(same_a, shifted, permutations=200)
    assert moved.p_value < 0.01 and moved.statistic > mmd_test(same_a, same_b, permutations=200).statistic


def test_embedding_test_reduces_sparse_and_dense_alike():
    import scipy.sparse as sp

    rng = np.random.default_rng(1)
    reference = sp.csr_matrix(rng.random((80, 300)) * (rng.random((80, 300)) < 0.05))
    current = sp.csr_matrix(rng.random((80, 300)) * (rng.random((80, 300)) < 0.05))
    test = embedding_test("tfidf", reference, current, permutations=100, seed=0)
    assert test.name == "embedding:tfidf" and test.p_value > 0.05
    other = sp.csr_matrix(np.hstack([np.zeros((80, 150)), rng.random((80, 150)) * (rng.random((80, 150)) < 0.1)]))
    assert embedding_test("tfidf", reference, other, permutations=100, seed=0).p_value < 0.01


def test_distribution_and_confidence_tests_both_ways():
    rng = np.random.default_rng(2)
    classes = np.array(["a", "b", "c"])
    reference = rng.choice(classes, size=400, p=[0.5, 0.3, 0.2])
    assert distribution_test("predictions", reference, rng.choice(classes, size=400, p=[0.5, 0.3, 0.2])).p_value > 0.05
    moved = distribution_test("predictions", reference, rng.choice(classes, size=400, p=[0.2, 0.3, 0.5]))
    assert moved.p_value < 1e-6 and moved.detail["shares"]["a"][0] > moved.detail["shares"]["a"][1]
    assert distribution_test("labels", np.array(["a"] * 5), np.array(["a"] * 7)).p_value == 1.0
    confident = rng.beta(8, 2, size=300)
    assert confidence_test(confident, rng.beta(8, 2, size=300)).p_value > 0.05
    assert confidence_test(confident, rng.beta(2, 2, size=300)).p_value < 1e-6


def test_report_verdict_uses_bonferroni_and_html_names_it(tmp_path):
    rng = np.random.default_rng(3)
    tests = [mmd_test(rng.normal(size=(40, 4)), rng.normal(size=(40, 4)), permutations=100) for _ in range(3)]
    for index, test in enumerate(tests):
        test.name = f"embedding:e{index}"
    calm = DriftReport("ref", "cur", 40, 40, 0.05, tests)
    assert calm.verdict == "no drift" and calm.threshold == pytest.approx(0.05 / 3)
    tests[1].p_value = 0.02  # below alpha but not below alpha / 3 tests
    assert calm.verdict == "no drift"
    tests[1].p_value = 0.001
    assert calm.verdict == "drift" and calm.drifted == ["embedding:e1"]
    page = write_drift_report(calm, tmp_path / "out")
    text = page.read_text()
    assert "Verdict: drift" in text and "embedding:e1" in text and "<script" not in text
    saved = json.loads((tmp_path / "out" / "drift.json").read_text())
    assert saved["verdict"] == "drift" and len(saved["tests"]) == 3


@pytest.fixture(scope="module")
def myntra_split():
    if not (DATASETS / "myntra").is_dir():
        pytest.skip(f"Myntra not found at {DATASETS / 'myntra'}")
    from skulens.catalog.datasets import load_myntra
    from skulens.tasks.categorize import CategoryPredictor

    catalog = load_myntra(DATASETS / "myntra")
    master = catalog.labels(0)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(catalog))
    train = order[:300]
    rest = order[300:]
    apparel = [i for i in rest if master[i] == "Apparel"][:240]
    footwear = [i for i in rest if master[i] == "Footwear"][:120]
    predictor = CategoryPredictor(["tfidf", "minilm"], label=0, min_class_count=5).fit(catalog.subset(train))
    return catalog, predictor, apparel, footwear


@pytest.mark.integration
def test_myntra_apparel_vs_footwear_drifts_and_random_halves_do_not(myntra_split, tmp_path):
    from skulens.evaluation.drift import detect_drift

    catalog, predictor, apparel, footwear = myntra_split
    shifted = detect_drift(catalog.subset(apparel[:120]), catalog.subset(footwear), predictor, permutations=200)
    assert shifted.verdict == "drift"
    assert {"embedding:tfidf", "embedding:minilm", "predictions", "labels"} <= set(shifted.drifted)
    halves = detect_drift(catalog.subset(apparel[:120]), catalog.subset(apparel[120:]), predictor, permutations=200)
    assert halves.verdict == "no drift", [(t.name, t.p_value) for t in halves.tests]
    assert len(halves.tests) == 5
    page = write_drift_report(shifted, tmp_path)
    assert "Verdict: drift" in page.read_text()
