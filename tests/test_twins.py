"""Twins from a user's own pair of models, not from the catalogue (``parity.twins.from_models``):
the same core runs — trajectory divergence, the two trainers in lockstep, finite differences —
work on them; a pair that does not match is refused with a message naming what is wrong; and
on every catalogue model ``from_models`` builds the same twins as ``from_spec``."""

import numpy as np
import pytest
import torch
from parity.reference import layers as L
from torch import nn

from parity import reference
from parity.catalogue import zoo
from parity.catalogue.checks import diverge
from parity.distance import normwise_rel
from parity.diverge import diverge_twins
from parity.finite_diff import check_twins
from parity.lockstep import lockstep_twins
from parity.tolerances import TRAJECTORY
from parity.twins import cancelled_keys, evaluating, from_models, predict

DT = {"float64": torch.float64, "float32": torch.float32}


def hand_made_pair(dtype: str = "float64", seed: int = 0):
    """``Linear(4,8) → BatchNorm1d → ReLU → Dropout(0.25) → Linear(8,6) → Tanh → Linear(6,3)``
    written out on both sides; torch's default init (seeded locally), NumPy's Linear at 0."""
    np_dt = np.dtype(dtype)
    numpy_model = reference.Sequential(
        L.Linear(4, 8, dtype=np_dt), L.BatchNorm1d(8, dtype=np_dt), L.ReLU(),
        L.Dropout(0.25, rng=np.random.default_rng(seed)), L.Linear(8, 6, dtype=np_dt),
        L.Tanh(), L.Linear(6, 3, dtype=np_dt))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch_model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(),
                                    nn.Dropout(0.25), nn.Linear(8, 6), nn.Tanh(),
                                    nn.Linear(6, 3)).to(DT[dtype])
    return numpy_model, torch_model


def data(seed: int = 0, n: int = 40):
    """``X: (n, 4)`` standard normal, ``y: (n,)`` labels in 0..2 from a linear rule."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    return X, np.argmax(X[:, :3] + 0.5 * X[:, 3:], axis=1)


RECIPES = {
    "sgd-momentum": dict(optimizer="sgd", lr=0.1, options={"momentum": 0.9}),
    "adam-l2-all": dict(optimizer="adam", lr=0.01, weight_decay=1e-2),
    "sgd-cs231n-l2": dict(optimizer="sgd", lr=0.5, weight_decay=1e-3, decay="weights",
                          penalty_in_loss=True),
    "adamw": dict(optimizer="adamw", lr=0.01, options={"amsgrad": True}),
    "rmsprop": dict(optimizer="rmsprop", lr=0.01, weight_decay=1e-2,
                    options={"momentum": 0.5, "centered": True}),
    "adagrad": dict(optimizer="adagrad", lr=0.1, options={"lr_decay": 0.01}),
}


def hand_made_twins(recipe: str, dtype: str = "float64", init_from: str = "torch"):
    numpy_model, torch_model = hand_made_pair(dtype)
    return from_models(numpy_model, torch_model, "cross_entropy", init_from=init_from,
                       name=f"hand-made {recipe}", **RECIPES[recipe])


@pytest.mark.parametrize("recipe", RECIPES)
def test_diverge_runs_on_hand_made_twins(recipe):
    """40 steps in batches of 16 (one partial batch per epoch) stay within the float64
    trajectory bound; the BatchNorm-fed bias and running_mean are left out by default."""
    twins = hand_made_twins(recipe)
    X, y = data()
    k, bound = TRAJECTORY["float64"]
    r = diverge_twins(twins, X, y, 40, batch_size=16, order_rng=np.random.default_rng(1))
    assert 40 <= k and len(r.param_rel) == len(r.loss_rel) == 40
    assert max(r.param_rel) <= bound, (recipe, max(r.param_rel), r.worst_param)
    assert max(r.loss_rel) <= bound, (recipe, max(r.loss_rel))
    assert not set(r.worst_param) & {"0.bias", "1.running_mean"}


@pytest.mark.parametrize("recipe", RECIPES)
def test_lockstep_runs_on_hand_made_twins(recipe):
    """Both ``fit``s, two epochs of 3 batches (16, 16, 8), same masks: every step agrees."""
    twins = hand_made_twins(recipe)
    X, y = data()
    r = lockstep_twins(twins, X, y, epochs=2, batch_size=16,
                       order_rng=np.random.default_rng(1))
    assert r.passed, r.report()
    assert r.steps == 6 and r.model == f"hand-made {recipe}"
    if RECIPES[recipe].get("penalty_in_loss"):   # the reported loss carries 0.5·wd·Σ‖W‖²
        assert twins.penalty_keys == ["0.weight", "4.weight", "6.weight"]


@pytest.mark.parametrize("init_from", ["torch", "numpy"])
def test_finite_differences_run_on_hand_made_twins(init_from):
    """Every gradient of the NumPy twin against central differences, the BatchNorm-fed bias
    as a gradient that is 0 by construction. ``init_from="numpy"`` starts from weights filled
    in by hand on the NumPy side."""
    numpy_model, torch_model = hand_made_pair()
    if init_from == "numpy":
        rng = np.random.default_rng(3)
        for p in numpy_model.parameters().values():
            p[...] = rng.standard_normal(p.shape) * 0.7
    twins = from_models(numpy_model, torch_model, "cross_entropy", init_from=init_from)
    X, y = data(2)
    r = check_twins(twins, X, y, seed=0, n=8)
    assert set(r.tensors) == set(numpy_model.parameters()) | {"input"}
    assert r.tensors["0.bias"].zero and not r.tensors["4.bias"].zero
    assert r.kink_crossings == 0 and r.passed, r.report()


def test_hand_made_twins_start_from_the_same_weights():
    numpy_model, torch_model = hand_made_pair()
    twins = from_models(numpy_model, torch_model, "cross_entropy", init_from="torch")
    np.testing.assert_array_equal(numpy_model.parameters()["0.weight"],
                                  torch_model[0].weight.detach().numpy().T)
    out_n, out_t = twins.predict(data()[0])
    np.testing.assert_allclose(out_n, out_t, rtol=1e-12, atol=1e-14)
    assert twins.cancelled_keys() == cancelled_keys(numpy_model) == {"0.bias",
                                                                     "1.running_mean"}


def _np(*layers):
    return reference.Sequential(*layers)


@pytest.mark.parametrize("case, error, match", [
    ("loss", ValueError, "loss must be one of"),
    ("shape", ValueError, "4.weight"),
    ("dtype", ValueError, "0.weight"),
    ("numpy type", TypeError, "numpy_model must be a reference.Sequential"),
    ("torch type", TypeError, "torch_model must be a torch.nn.Sequential"),
    ("optimizer", ValueError, "optimizer must be one of"),
    ("decay", ValueError, "decay must be one of"),
    ("penalty", ValueError, "penalty_in_loss needs decay='weights'"),
    ("init_from", ValueError, "init_from must be one of"),
])
def test_from_models_refuses_a_pair_that_does_not_match(case, error, match):
    numpy_model, torch_model = hand_made_pair()
    kw: dict = {"loss": "cross_entropy"}
    if case == "loss":
        kw["loss"] = "quadratic"     # Nielsen's name; torch's is "mse"
    elif case == "shape":
        torch_model[4] = nn.Linear(8, 5).double()
    elif case == "dtype":
        torch_model = torch_model.float()
    elif case == "numpy type":
        numpy_model = [numpy_model]
    elif case == "torch type":
        torch_model = torch_model[0]
    elif case == "optimizer":
        kw["optimizer"] = "lamb"
    elif case == "decay":
        kw.update(weight_decay=1e-3, decay="biases")
    elif case == "penalty":
        kw.update(weight_decay=1e-3, penalty_in_loss=True)
    elif case == "init_from":
        kw["init_from"] = "both"
    with pytest.raises(error, match=match):
        from_models(numpy_model, torch_model, **kw)


MODELS = list(zoo.CATALOGUE)


@pytest.mark.parametrize("name", MODELS)
def test_from_models_builds_the_catalogue_twins_as_from_spec_does(name):
    """The catalogue's pair handed to ``from_models`` with the recipe's optimizer options
    runs the same operations in the same order as ``from_spec``'s twins: the 3-step
    trajectories are identical (same arithmetic, not a tolerance)."""
    spec, seed = zoo.get(name), 0
    o = spec.optimizer
    twins = from_models(spec.build_numpy(seed), spec.build_torch(), spec.loss,
                        optimizer=o.kind, lr=o.lr, options=o.options,
                        weight_decay=o.weight_decay, decay=o.decay,
                        penalty_in_loss=spec.reg_in_loss, name=spec.name)
    d = spec.data(seed)
    rng = spec.seeds(seed)["order"] if spec.batch_size is not None else None
    mine = diverge_twins(twins, d.X_train, d.y_train, 3, batch_size=spec.batch_size,
                         order_rng=rng, seed=seed)
    assert mine.to_json() == diverge(spec, 3, "float64", seed).to_json()


def test_evaluating_sets_eval_mode_and_restores_the_previous_one():
    numpy_model, torch_model = hand_made_pair()
    torch_model.train()
    with evaluating(torch_model) as m:
        assert m is torch_model and not any(x.training for x in torch_model.modules())
        assert not torch.is_grad_enabled()
    assert all(x.training for x in torch_model.modules())
    torch_model.eval()
    with pytest.raises(RuntimeError, match="inside"):
        with evaluating(torch_model):
            raise RuntimeError("inside")
    assert not torch_model.training
    torch_model.train()
    with pytest.raises(RuntimeError, match="inside"):
        with evaluating(torch_model):
            raise RuntimeError("inside")
    assert torch_model.training
    with evaluating(numpy_model) as m:
        assert m is numpy_model
    with pytest.raises(TypeError, match="evaluating: expected"):
        with evaluating(object()):
            pass


def test_predict_is_the_eval_forward_of_either_twin():
    """Eval mode: dropout off, BatchNorm on running statistics — so ``predict`` on either twin
    is deterministic and the two agree; the torch model's mode is restored."""
    numpy_model, torch_model = hand_made_pair()
    from_models(numpy_model, torch_model, "cross_entropy", init_from="torch")
    X = data()[0]
    torch_model.train()
    a, b = predict(torch_model, X), predict(torch_model, X)
    np.testing.assert_array_equal(a, b)
    assert torch_model.training
    np.testing.assert_allclose(predict(numpy_model, X), a, rtol=1e-12, atol=1e-14)


def test_normwise_rel_rules():
    a = np.array([[1.0, -2.0], [0.5, 4.0]])
    b = a + np.array([[0.0, 0.0], [0.0, 0.04]])
    assert normwise_rel(a, b) == pytest.approx(0.04 / 4.04)
    assert normwise_rel(a, b) == normwise_rel(b, a)                 # symmetric
    assert normwise_rel(np.zeros(3), np.zeros(3)) == 0.0             # both zero: equal
    assert normwise_rel(np.zeros(3), np.array([0.0, 1e-300, 0.0])) == 1.0
    nan = np.array([1.0, np.nan])
    assert normwise_rel(nan, nan.copy()) == 0.0                      # identical, NaNs included
    assert normwise_rel(nan, np.array([1.0, 2.0])) == float("inf")   # never "close"
    assert normwise_rel(np.array([np.inf]), np.array([1.0])) == float("inf")
    with pytest.raises(ValueError, match="shapes differ"):
        normwise_rel(np.zeros(2), np.zeros(3))
