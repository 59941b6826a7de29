"""``torch.autograd.gradcheck`` on the torch twin of every catalogue model: autograd against
finite differences of torch's own forward, loss included, as a function of the input batch
AND of every parameter (``torch.func.functional_call`` makes the parameters explicit inputs).

This checks torch against itself. Nothing from the NumPy reference is tested here (it only
supplies the initial weights and picks kink-free rows): torch's backward is compared with
torch's forward, so a torch forward that computes the wrong function (or a twin built from
the wrong modules) passes. The NumPy backward is checked against the NumPy forward in
tests/test_finite_differences.py, and the two forwards against each other in
tests/test_parity.py / tests/test_components.py; only the three together tie both twins'
gradients to the math.

- float64 only: gradcheck (eps 1e-6, atol 1e-5, rtol 1e-3) is meant for float64 and fails on
  float32 (shared/PARITY_NOTES.md); ``loss_function`` refuses anything else.
- Weights: the NumPy twin's initial weights, copied by ``parity.transfer.numpy_to_torch``.
- Batch: ≤ 6 rows from ``parity.catalogue.checks.kink_free_batch`` (no ReLU pre-activation within
  1e-4 of 0 on the NumPy side, no max pooling lead below 1e-4 and no exact tie that a random
  step parts; XOR's (0, 0) row is dropped; an image model's pixels with ``IMAGE_NOISE``:
  ``check_data``), fixed targets.
- Dropout: a fixed mask — every call of the function re-seeds torch's RNG (inside
  ``torch.random.fork_rng``, so the global stream is untouched) and so draws the same mask;
  gradcheck then differentiates through dropout rather than around it (eval mode would
  make it the identity). These torch masks differ from the NumPy-side ones used to choose the
  rows; for the fixed seeds here no ReLU sits within eps of its kink.
- BatchNorm: training mode, so the Jacobian includes the batch statistics; running buffers
  are cloned per call (their in-place update never leaks into the next evaluation).

Fast tier, one model per gradient class (models that differ only in optimizer or recipe share
their gradient): ``fast_mode=True`` (one random projection of the Jacobian per input), the
full Jacobian for models of ≤ 200 parameters, and ``gradgradcheck`` (fast mode) for the small
models without BatchNorm/Dropout. Slow tier: the full Jacobian for every model
(weight matrices of > 4096 entries held constant: full gradcheck of a 128×128 weight alone
takes ~30 s; fast mode covers them) and full ``gradgradcheck`` for the small ones.
"""

import pytest
import torch
from torch.func import functional_call

from parity import layerspec as S
from parity import transfer
from parity.catalogue import zoo
from parity.catalogue.checks import gradient_classes, kink_free_batch
from parity.runtime import seed_torch

MODELS = list(zoo.CATALOGUE)
# fast tier: one model per group of identical gradients (same layers, loss, init, data; the
# models that differ only in optimizer or recipe): parity.catalogue.checks.gradient_classes
CLASSES = list(gradient_classes(zoo.CATALOGUE))
BATCH = 6
FULL_MAX_PARAMS = 200        # full Jacobian in the fast tier up to this many parameters
SLOW_MAX_ENTRIES = 4096      # slow tier: bigger tensors are held constant
GRADGRAD_MAX_PARAMS = 1000


def loss_function(spec, seed: int = 0, n: int = BATCH, dtype: str = "float64"):
    """``(f, inputs)``: ``f(X, *params) -> loss`` of the torch twin in training mode, and its
    float64 inputs (the batch ``X`` and every parameter, named as ``model.named_parameters()``,
    all requiring grad), ready for ``gradcheck(f, inputs)``."""
    if dtype != "float64":
        raise ValueError(f"gradcheck is meant for float64 (PARITY_NOTES), got {dtype}")
    _, X, y, _ = kink_free_batch(spec, seed, n)
    model = spec.build_torch(dtype)
    transfer.numpy_to_torch(spec.build_numpy(seed, dtype), model)
    model.train()
    names = [k for k, _ in model.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for _, p in model.named_parameters()]
    buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
    loss = spec.torch_loss()
    y_t = spec.torch_targets(y, torch.float64)

    def f(X_t, *ps):
        state = {**dict(zip(names, ps)), **{k: b.clone() for k, b in buffers.items()}}
        with torch.random.fork_rng(devices=[]):
            seed_torch(seed)          # the same dropout mask on every call (runtime.seed_torch)
            return loss(functional_call(model, state, (X_t,)), y_t)

    inputs = (torch.from_numpy(X).requires_grad_(True), *params)
    return f, inputs


def gradcheck(f, inputs, **kw) -> bool:
    assert all(t.dtype == torch.float64 for t in inputs), "gradcheck runs in float64 only"
    return torch.autograd.gradcheck(f, inputs, **kw)


@pytest.mark.parametrize("name", CLASSES, ids=CLASSES)
def test_gradcheck_fast_mode(name):
    assert gradcheck(*loss_function(zoo.get(name)), fast_mode=True)


SMALL = [m for m in CLASSES if zoo.get(m).num_parameters() <= FULL_MAX_PARAMS]


@pytest.mark.parametrize("name", SMALL, ids=SMALL)
def test_gradcheck_full_jacobian_small_models(name):
    assert gradcheck(*loss_function(zoo.get(name)))


SMOOTH_SMALL = [m for m in CLASSES if zoo.get(m).num_parameters() <= GRADGRAD_MAX_PARAMS
                and not zoo.get(m).has(S.BatchNorm1d, S.Dropout)]


@pytest.mark.parametrize("name", SMOOTH_SMALL, ids=SMOOTH_SMALL)
def test_gradgradcheck_fast_mode(name):
    f, inputs = loss_function(zoo.get(name))
    assert torch.autograd.gradgradcheck(f, inputs, fast_mode=True)


def test_gradcheck_inputs_are_float64_only():
    spec = zoo.get("spiral003")
    f, inputs = loss_function(spec)
    assert all(t.dtype == torch.float64 and t.requires_grad for t in inputs)
    assert len(inputs) == 1 + len(dict(spec.build_torch().named_parameters()))
    assert f(*inputs).dtype == torch.float64
    with pytest.raises(ValueError, match="float64"):
        loss_function(spec, dtype="float32")


def test_gradcheck_flags_a_wrong_backward():
    """The check can fail: a layer whose backward is 1 % too large is caught."""

    class OffByOnePercent(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return 1.01 * g

    f, inputs = loss_function(zoo.get("xor-sigmoid"))
    wrong = lambda X, *ps: f(OffByOnePercent.apply(X), *ps)  # noqa: E731
    assert gradcheck(f, inputs) and gradcheck(f, inputs, fast_mode=True)
    assert not gradcheck(wrong, inputs, raise_exception=False)
    assert not gradcheck(wrong, inputs, fast_mode=True, raise_exception=False)


def test_dropout_mask_is_fixed_across_calls():
    f, inputs = loss_function(zoo.get("spiral003"))
    assert f(*inputs).item() == f(*inputs).item()


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS, ids=MODELS)
def test_gradcheck_full_jacobian(name):
    f, inputs = loss_function(zoo.get(name))
    inputs = tuple(t.detach().requires_grad_(t.numel() <= SLOW_MAX_ENTRIES) for t in inputs)
    assert gradcheck(f, inputs)


SMOOTH = [m for m in MODELS if zoo.get(m).num_parameters() <= GRADGRAD_MAX_PARAMS
          and not zoo.get(m).has(S.BatchNorm1d, S.Dropout)]


@pytest.mark.slow
@pytest.mark.parametrize("name", SMOOTH, ids=SMOOTH)
def test_gradgradcheck_full(name):
    assert torch.autograd.gradgradcheck(*loss_function(zoo.get(name)))
