"""Training to the documents' targets in both twins (slow), and the recipe features
(early stopping, LR finder, hidden PCA, seed sweeps) in both twins (fast)."""

import dataclasses

import numpy as np
import pytest

from parity import zoo
from parity.train import run

TARGETED = [m for m in zoo.CATALOGUE if zoo.get(m).target is not None]
UNTARGETED = [m for m in zoo.CATALOGUE if zoo.get(m).target is None]


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["numpy", "torch"])
@pytest.mark.parametrize("name", TARGETED)
def test_full_training_meets_target(name, impl):
    spec = zoo.get(name)
    res, _ = run(spec, impl, seed=spec.pinned_seed)
    acc = res.test_accuracy if spec.target.split == "test" else res.train_accuracy
    assert res.target_met, f"{name} [{impl}]: {spec.target}, got {acc:.4f}"


@pytest.mark.slow
@pytest.mark.parametrize("name", UNTARGETED)
def test_untargeted_settings_train_and_both_twins_agree(name):
    """The as-written settings whose claims are out of reach are reported, not asserted ≥95%.
    Both twins must still train to the same accuracy (same weights, data, batches; only
    dropout draws differ, so models with dropout agree within 5 points)."""
    spec = zoo.get(name)
    a, _ = run(spec, "numpy", seed=spec.pinned_seed)
    b, _ = run(spec, "torch", seed=spec.pinned_seed)
    assert np.isfinite(a.final_loss) and np.isfinite(b.final_loss)
    tol = 0.05 if any(item[0] == "dropout" for item in spec.layers) else 1e-9
    assert abs(a.test_accuracy - b.test_accuracy) <= tol


@pytest.mark.slow
@pytest.mark.parametrize("name", ["xor-relu", "xor-sigmoid"])
def test_xor_success_rate_over_20_seeds_and_pinned_seed(name):
    from parity.seed_sweep import success_rate
    spec = zoo.get(name)
    r = success_rate(spec, range(20))
    assert spec.pinned_seed in r["both"]
    assert r["numpy"]["succeeded"] == r["torch"]["succeeded"]   # float64: same trajectories
    assert r["numpy"]["rate"] >= 0.9                      # measured: xor-relu 0.95, sigmoid 1.0


def test_cs231n_linear_fails_fast_check():
    """The document's point in 200 steps: a linear model cannot separate the spiral."""
    res, _ = run(zoo.get("cs231n-linear"), "numpy", seed=0)
    assert res.test_accuracy < 0.60 and res.train_accuracy < 0.60


def test_spiral004_has_193_parameters_on_both_sides():
    spec = zoo.get("spiral004")
    assert spec.num_parameters() == 193
    assert sum(p.numel() for p in spec.build_torch().parameters()) == 193
    assert spec.build_numpy(0).num_parameters() == 193
    assert zoo.get("spiral004-deeper").num_parameters() == 225   # + (8·4 + 4) + (4·1 + 1) − 9


def test_early_stopping_stops_at_the_same_epoch_in_float64():
    spec = dataclasses.replace(zoo.get("spiral004-early-stopping"), patience=20)
    a, _ = run(spec, "numpy", seed=0)
    b, _ = run(spec, "torch", seed=0)
    assert a.stopped_epoch == b.stopped_epoch < spec.epochs - 1
    assert a.best_epoch == b.best_epoch == a.stopped_epoch - 20
    np.testing.assert_allclose(a.val_loss, b.val_loss, rtol=1e-9)


def test_lr_finder_curves_agree_and_suggest_the_same_lr():
    from parity.lr_finder import lr_finder, suggest
    spec = zoo.get("digits-minibatch")
    a, b = lr_finder(spec, "numpy"), lr_finder(spec, "torch")
    assert a["lr"] == b["lr"] and len(a["loss"]) == len(b["loss"]) > 10
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-9)
    assert suggest(a) == suggest(b)
    assert 1e-3 < suggest(a) < 1.0
    assert a["loss"][-1] > 2 * min(a["loss"])       # it ran until the loss blew up


def test_hidden_representation_pca_agrees_between_twins():
    from parity import transfer
    from parity.hidden import hidden_numpy, hidden_torch, pca_2d
    spec = zoo.get("digits-2layer")
    res, np_model = run(spec, "numpy", seed=0, epochs=20)
    t_model = spec.build_torch()
    transfer.numpy_to_torch(np_model, t_model)
    X = spec.data(0).X_test
    Hn, Ht = hidden_numpy(np_model, X), hidden_torch(t_model, X)
    assert Hn.shape == (360, 128)
    np.testing.assert_allclose(Hn, Ht, rtol=1e-12, atol=1e-12)
    (Pn, vn), (Pt, _) = pca_2d(Hn), pca_2d(Ht)
    assert Pn.shape == (360, 2) and 0 < vn[1] <= vn[0] < 1
    np.testing.assert_allclose(Pn, Pt, rtol=1e-9, atol=1e-9)
