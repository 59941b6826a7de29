"""``parity.diverge``: which entries the trajectory bound leaves out
(``parity.twins.cancelled_keys``), and why — measured gradients of the Linear biases that feed
a normalization layer."""

import numpy as np
import pytest
import torch
from torch import nn

from parity import transfer
from parity.catalogue import zoo
from parity.catalogue.checks import first_batch
from parity.twins import cancelled_keys

MODELS = list(zoo.CATALOGUE)


NORMS = {"batchnorm": (nn.BatchNorm1d, nn.BatchNorm2d), "layernorm": (nn.LayerNorm,)}


def _norm_fed(spec, norm: str) -> list[int]:
    """Indices of the Linear (or Conv2d: one bias per channel) layers of ``spec``'s torch
    twin directly followed by ``norm`` (batchnorm | layernorm): read from torch's modules,
    independently of the NumPy layers that ``cancelled_keys`` inspects."""
    m = spec.build_torch()
    return [i for i in range(len(m) - 1)
            if isinstance(m[i], nn.Linear | nn.Conv2d) and isinstance(m[i + 1], NORMS[norm])]


def _first_step_grads(spec) -> tuple[dict, dict]:
    """Float64 gradients of the first recipe batch, seed 0: ``(numpy, torch)``, each keyed by
    torch ``state_dict`` names (NumPy Linear weights transposed to torch layout). Each side
    draws its own dropout masks: the quantities checked here hold for every mask."""
    X, y = first_batch(spec, 0)
    np_model, t_model = spec.build_numpy(0, "float64"), spec.build_torch("float64")
    transfer.numpy_to_torch(np_model, t_model)
    loss = spec.numpy_loss()
    loss.forward(np_model.forward(X, training=True), y)
    np_model.backward(loss.backward())
    mine = transfer.to_torch_layout(np_model.gradients(), t_model)
    t_model.train()
    X_t = torch.from_numpy(X)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        spec.torch_loss()(t_model(X_t), spec.torch_targets(y, X_t.dtype)).backward()
    theirs = {k: p.grad.numpy() for k, p in t_model.named_parameters()}
    return mine, theirs


LN_MODELS = [m for m in MODELS if _norm_fed(zoo.get(m), "layernorm")]
BN_MODELS = [m for m in MODELS if _norm_fed(zoo.get(m), "batchnorm")]


def test_the_catalogue_has_both_kinds_of_norm_fed_bias():
    assert "spiral003-layernorm" in LN_MODELS and "spiral003" in BN_MODELS


@pytest.mark.parametrize("name", LN_MODELS)
def test_a_bias_feeding_layernorm_has_a_nonzero_gradient(name):
    """LayerNorm removes only the mean of the bias vector: ``db = Σ_n dh_n`` is projected off
    the ones vector (``Σ_j db_j = 0`` up to rounding) but is not 0. Measured on
    spiral003-layernorm, seed 0, first batch of 64: max |db| = 0.144, 0.0165, 0.0196 for
    ``0.bias``, ``4.bias``, ``8.bias`` (rounding noise would be ~1e-17)."""
    spec = zoo.get(name)
    for side, grads in zip(("numpy", "torch"), _first_step_grads(spec)):
        for i in _norm_fed(spec, "layernorm"):
            db = grads[f"{i}.bias"]
            size = float(np.abs(db).max())
            assert size > 1e-3, f"{name} {side}: max |grad {i}.bias| = {size:.3g}, expected > 1e-3"
            # the ones-component is rounding only: ≤ a few ulps of Σ|db_j| per summand
            along_ones = abs(float(db.sum()))
            assert along_ones <= 1e-12 * float(np.abs(db).sum()), (
                f"{name} {side}: Σ_j grad {i}.bias = {along_ones:.3g} is not ~0")


@pytest.mark.parametrize("name", BN_MODELS)
def test_a_bias_feeding_batchnorm_has_a_zero_gradient(name):
    """BatchNorm removes the batch mean of every feature, so ``b`` cancels entirely and
    ``db = 0``: what each side computes is rounding noise, far below the scale of the same
    layer's weight gradient."""
    spec = zoo.get(name)
    for side, grads in zip(("numpy", "torch"), _first_step_grads(spec)):
        for i in _norm_fed(spec, "batchnorm"):
            db, dW = grads[f"{i}.bias"], grads[f"{i}.weight"]
            scale = float(np.abs(dW).max())
            assert float(np.abs(db).max()) <= 1e-12 * max(scale, 1.0), (
                f"{name} {side}: grad {i}.bias = {np.abs(db).max():.3g} is not rounding noise "
                f"(weight grad scale {scale:.3g})")


@pytest.mark.parametrize("name", MODELS)
def test_cancelled_keys_are_the_batchnorm_fed_biases_and_their_running_means(name):
    """BN-fed biases (and the following ``running_mean``) are out of the trajectory bound;
    LN-fed biases, whose gradient is not 0, stay in; every key names a real state entry."""
    spec = zoo.get(name)
    keys = cancelled_keys(spec.build_numpy(0))
    bn = _norm_fed(spec, "batchnorm")
    expected = {f"{i}.bias" for i in bn} | {f"{i + 1}.running_mean" for i in bn}
    assert keys == expected, f"{name}: cancelled_keys {sorted(keys)}, expected {sorted(expected)}"
    for i in _norm_fed(spec, "layernorm"):
        assert f"{i}.bias" not in keys, f"{name}: LayerNorm-fed {i}.bias must stay in the bound"
    assert keys <= set(spec.build_torch().state_dict()), name
