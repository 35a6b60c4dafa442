"""Heads and fusion: the scikit-learn estimator contract, seeding, persistence and late-fusion weights."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from skulens.heads import EarlyFusion, HeadError, LateFusion, LinearProbe, MLPProbe
from skulens.heads.fusion import restore_fusion


@parametrize_with_checks([LinearProbe(), MLPProbe(hidden=16, max_epochs=30, patience=5)])
def test_probes_pass_scikit_learn_checks(estimator, check):
    check(estimator)


def _views(n: int = 600, classes: int = 3, noise: float = 2.0, seed: int = 0):
    """Two noisy views of the same class signal."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centers = rng.normal(size=(classes, 8)) * 1.2
    return y, centers[y] + rng.normal(size=(n, 8)) * noise, centers[y] + rng.normal(size=(n, 8)) * noise


def _part(blocks: dict, rows) -> dict:
    return {k: v[rows] for k, v in blocks.items()}


def test_late_fusion_beats_each_weak_modality():
    y, view_a, view_b = _views()
    train, test = np.arange(400), np.arange(400, 600)
    blocks = {"a": view_a, "b": view_b}
    present = {"a": np.ones(600, bool), "b": np.ones(600, bool)}
    fused = LateFusion().fit(_part(blocks, train), _part(present, train), y[train])
    acc_fused = (fused.classes_[fused.predict_proba(_part(blocks, test), _part(present, test)).argmax(1)] == y[test]).mean()
    acc_a = (LinearProbe().fit(view_a[train], y[train]).predict(view_a[test]) == y[test]).mean()
    acc_b = (LinearProbe().fit(view_b[train], y[train]).predict(view_b[test]) == y[test]).mean()
    assert acc_fused > max(acc_a, acc_b)
    early = EarlyFusion().fit(_part(blocks, train), _part(present, train), y[train])
    assert early.predict_proba(_part(blocks, test), _part(present, test)).shape == (200, 3)


def test_late_fusion_down_weights_a_useless_block():
    y, view_a, _ = _views(noise=1.0)
    noise = np.random.default_rng(5).normal(size=(600, 8))
    blocks = {"signal": view_a, "noise": noise}
    present = {"signal": np.ones(600, bool), "noise": np.ones(600, bool)}
    weights = LateFusion().fit(blocks, present, y).block_weights
    assert weights["signal"] > 0.5 and weights["noise"] < 0.1 * weights["signal"]


def test_late_fusion_of_one_block_is_its_head():
    y, view_a, _ = _views(n=300)
    present = {"a": np.ones(300, bool)}
    fusion = LateFusion(head_params={"Cs": (0.1,)}).fit({"a": view_a}, present, y)
    assert fusion.block_weights == {"a": 1.0}
    np.testing.assert_allclose(
        fusion.predict_proba({"a": view_a}, present), fusion.heads_["a"].predict_proba(view_a), rtol=1e-5, atol=1e-7
    )


def test_late_fusion_per_block_heads_round_trip():
    rng = np.random.default_rng(0)
    y = rng.integers(1, 6, 200)
    blocks = {"a": rng.normal(size=(200, 6)) + y[:, None], "b": sp.csr_matrix(np.abs(rng.normal(size=(200, 4))))}
    present = {"a": np.ones(200, bool), "b": np.r_[np.ones(150, bool), np.zeros(50, bool)]}
    fusion = LateFusion(block_params={"a": {"head": "mlp", "hidden": 8, "max_epochs": 5}, "b": {"Cs": (1.0,)}})
    fusion.fit(blocks, present, y)
    assert isinstance(fusion.heads_["a"], MLPProbe) and isinstance(fusion.heads_["b"], LinearProbe)
    assert fusion.heads_["b"].C_ == 1.0 and fusion.head_kinds_ == {"a": "mlp", "b": "linear"}
    restored = restore_fusion("late", fusion.to_arrays(), ["a", "b"], fusion.classes_, "linear")
    assert restored.head_kinds_ == {"a": "mlp", "b": "linear"}
    np.testing.assert_allclose(fusion.predict_proba(blocks, present), restored.predict_proba(blocks, present), rtol=1e-6)
    assert restored.block_weights == pytest.approx(fusion.block_weights)
    with pytest.raises(HeadError, match="retrain"):
        restore_fusion("weighted", fusion.to_arrays(), ["a", "b"], fusion.classes_, "linear")


def test_mlp_probe_is_seeded_and_round_trips():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 10)).astype(np.float32)
    y = np.where(X[:, 0] + X[:, 1] > 0, "pos", "neg")
    a = MLPProbe(hidden=16, max_epochs=30, seed=3).fit(X, y)
    b = MLPProbe(hidden=16, max_epochs=30, seed=3).fit(X, y)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-6)
    assert (a.predict(X) == y).mean() > 0.85
    restored = MLPProbe.from_arrays(a.to_arrays(), a.classes_)
    np.testing.assert_allclose(restored.predict_proba(X), a.predict_proba(X), atol=1e-6)
    assert restored.n_features_in_ == 10
    with pytest.raises(ValueError, match="10 features"):
        restored.predict(X[:, :5])


def test_linear_probe_binary_probabilities_match_sklearn():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(80, 4))
    y = np.where(X[:, 0] > 0, 1, 0)
    probe = LinearProbe(Cs=(1.0,), tol=1e-8).fit(X, y)
    scaled = (X - probe.mean_) / probe.scale_
    reference = LogisticRegression(C=1.0, max_iter=2000, tol=1e-8).fit(scaled, y)
    np.testing.assert_allclose(probe.predict_proba(X), reference.predict_proba(scaled), atol=1e-4)
    np.testing.assert_allclose(probe.decision_function(X), reference.decision_function(scaled), atol=1e-3)
    restored = LinearProbe.from_arrays(probe.to_arrays(), probe.classes_)
    np.testing.assert_allclose(restored.predict_proba(X), probe.predict_proba(X))


def test_probes_keep_held_out_predictions_for_fusion():
    y, view_a, _ = _views(n=200)
    val = np.arange(0, 200, 5)
    probe = LinearProbe(Cs=(0.1, 1.0)).fit(view_a, y, val_rows=val)
    np.testing.assert_array_equal(probe.holdout_rows_, val)
    assert probe.holdout_proba_.shape == (40, 3)
    mlp = MLPProbe(hidden=8, max_epochs=5).fit(view_a, y, val_rows=val)
    np.testing.assert_array_equal(mlp.holdout_rows_, val)
    np.testing.assert_allclose(mlp.holdout_proba_, mlp.predict_proba(view_a[val]), atol=1e-6)


def test_probe_errors():
    X = np.zeros((6, 2))
    with pytest.raises(HeadError, match="only one class"):
        LinearProbe().fit(X, ["a"] * 6)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        MLPProbe().fit(X, np.linspace(0, 1, 6))
    with pytest.raises(ValueError, match="NaN"):
        LinearProbe().fit(np.full((6, 2), np.nan), [0, 1] * 3)


def test_late_fusion_view_speaks_at_full_strength_when_down_weighted():
    from skulens.heads.fusion import LateFusion

    rng = np.random.default_rng(0)
    y = np.repeat(np.array(["a", "b", "c"]), 20)
    strong = np.eye(3)[np.repeat([0, 1, 2], 20)] * 4 + rng.normal(0, 0.3, (60, 3))
    weak = rng.normal(0, 1, (60, 3))
    blocks = {"photo": strong.astype(np.float32), "text": weak.astype(np.float32)}
    present = {name: np.ones(60, dtype=bool) for name in blocks}
    fusion = LateFusion(head="linear").fit(blocks, present, y)
    fusion.weights_ = np.array([0.0, 1.0])  # as if the fusion had learnt to ignore the photo
    alone = fusion.view_proba(blocks, present, {"photo"})
    masked = fusion.predict_proba(blocks, {"photo": present["photo"], "text": np.zeros(60, dtype=bool)})
    own = fusion.block_proba(blocks)["photo"]
    assert np.allclose(alone, own, atol=1e-6)  # the photo's own head, not a flattened copy
    assert np.allclose(masked, 1 / 3)  # what masking alone gives with a zero weight
    nothing = fusion.view_proba(blocks, {"photo": np.zeros(60, dtype=bool), "text": present["text"]}, {"photo"})
    assert np.allclose(nothing, 1 / 3)
