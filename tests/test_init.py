"""Every initializer of ``reference.init.INITIALIZERS`` against its formula, on large draws.

Formulas (``W: (fan_in, fan_out)``, ``b: (fan_out,)``):
  normal0.01, normal0.5   W ~ N(0, s²) with s = 0.01, 0.5;            b = 0
  he                      W ~ N(0, 2/fan_in) (He et al. 2015);        b = 0
  uniform_torch           W, b ~ U(−1/√fan_in, 1/√fan_in) (torch.nn.Linear's default)

Statistical bounds. The draws are seeded, so each test is deterministic; a bound is set so
that a *correct* initializer would fail for a negligible fraction of seeds, while a wrong
formula fails for all of them. Each statistic is compared with its expected value within
``Z = 5`` standard errors of its sampling distribution (asymptotically normal at these n):
a two-sided 5σ excursion has probability 5.7e-7, so over the ≈ 50 such checks here a correct
implementation fails for < 3e-5 of seeds. Standard errors, n samples, true std σ:
  mean                 σ / √n
  sample std           √((μ₄ − σ⁴) / (4σ²n))  (delta method), i.e.
                       σ / √(2n) for a normal (μ₄ = 3σ⁴),
                       bound / √(15n) for U(±bound) (σ² = bound²/3, μ₄ = bound⁴/5)
  excess kurtosis      √(24/n) for a normal (0 for a normal, −1.2 for a uniform)
With n = 320 000 weights, 5 standard errors of the std are 0.6 % of σ: Xavier's
√(2/(fan_in+fan_out)) instead of He's √(2/fan_in), fan_out for fan_in, a variance used as a
std, or a uniform for a normal are all off by far more.

Exact rules: zero biases are exactly 0; a uniform draw lies in [−bound, bound] exactly — in
float32 against float32(bound), since rounding to nearest is monotone (w ≤ bound ⇒ fl(w) ≤
fl(bound)); and it uses the whole range: P(max|w| < bound·(1 − 20/n)) = (1 − 20/n)ⁿ ≈ e⁻²⁰.
"""

import math

import numpy as np
import pytest
import torch
from parity.reference.init import INITIALIZERS

Z = 5.0
SHAPES = [(16, 20_000), (400, 800)]   # fan_in ≠ fan_out; 320 000 weights each
FORMULAS = {   # name → (weight law, std or bound as a function of fan_in, bias law)
    "normal0.01": ("normal", lambda fan_in: 0.01, "zero"),
    "normal0.5": ("normal", lambda fan_in: 0.5, "zero"),
    "he": ("normal", lambda fan_in: math.sqrt(2.0 / fan_in), "zero"),
    "uniform_torch": ("uniform", lambda fan_in: 1.0 / math.sqrt(fan_in), "uniform"),
}


def test_every_initializer_has_a_formula_here():
    assert set(FORMULAS) == set(INITIALIZERS), "add the new initializer's formula to FORMULAS"


def assert_normal(x: np.ndarray, sigma: float, label: str) -> None:
    x, n = x.astype(np.float64).ravel(), x.size
    assert abs(x.mean()) <= Z * sigma / math.sqrt(n), f"{label}: mean {x.mean():.3g}"
    se = sigma / math.sqrt(2 * n)
    assert abs(x.std() - sigma) <= Z * se, f"{label}: std {x.std():.6g}, expected {sigma:.6g}"
    kurt = float(np.mean((x - x.mean()) ** 4) / x.var() ** 2 - 3)
    assert abs(kurt) <= Z * math.sqrt(24 / n), f"{label}: excess kurtosis {kurt:.3g} (normal: 0)"


def assert_uniform(x: np.ndarray, bound: float, label: str) -> None:
    b = x.dtype.type(bound)           # the bound in the draw's own dtype (see the docstring)
    assert np.all(np.abs(x) <= b), f"{label}: max |x| {np.abs(x).max()!r} > bound {b!r}"
    x, n = x.astype(np.float64).ravel(), x.size
    assert np.abs(x).max() >= bound * (1 - 20 / n), f"{label}: does not use the whole range"
    sigma = bound / math.sqrt(3)
    assert abs(x.mean()) <= Z * sigma / math.sqrt(n), f"{label}: mean {x.mean():.3g}"
    se = bound / math.sqrt(15 * n)
    assert abs(x.std() - sigma) <= Z * se, f"{label}: std {x.std():.6g}, expected {sigma:.6g}"


def assert_law(x: np.ndarray, law: str, scale: float, label: str) -> None:
    if law == "zero":
        assert not np.any(x), f"{label}: not all zero"
    elif law == "normal":
        assert_normal(x, scale, label)
    else:
        assert_uniform(x, scale, label)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{a}x{b}" for a, b in SHAPES])
@pytest.mark.parametrize("name", list(INITIALIZERS))
def test_initializer_matches_its_formula(name, shape, dtype):
    w_law, scale, b_law = FORMULAS[name]
    fan_in, fan_out = shape
    W, b = INITIALIZERS[name](np.random.default_rng(0), fan_in, fan_out, dtype)
    assert W.shape == shape and b.shape == (fan_out,)
    assert W.dtype == dtype and b.dtype == dtype
    assert_law(W, w_law, scale(fan_in), f"{name} {shape} weight")
    assert_law(b, b_law, scale(fan_in), f"{name} {shape} bias")


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{a}x{b}" for a, b in SHAPES])
def test_torch_linear_default_is_the_uniform_torch_formula(shape):
    """The formula itself is torch's: nn.Linear's own weight and bias pass the same test."""
    fan_in, fan_out = shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        lin = torch.nn.Linear(fan_in, fan_out, dtype=torch.float64)
    _, scale, _ = FORMULAS["uniform_torch"]
    assert_uniform(lin.weight.detach().numpy(), scale(fan_in), f"torch {shape} weight")
    assert_uniform(lin.bias.detach().numpy(), scale(fan_in), f"torch {shape} bias")


@pytest.mark.parametrize("wrong", ["xavier", "fan_out", "uniform"])
def test_a_wrong_formula_is_caught(wrong):
    """The statistics can fail: He's std with Xavier's or fan_out's denominator, or a
    uniform of He's std, are rejected."""
    rng, (fan_in, fan_out) = np.random.default_rng(0), SHAPES[1]
    sigma = math.sqrt(2.0 / fan_in)
    W = {"xavier": lambda: rng.standard_normal(SHAPES[1]) * math.sqrt(2 / (fan_in + fan_out)),
         "fan_out": lambda: rng.standard_normal(SHAPES[1]) * math.sqrt(2 / fan_out),
         "uniform": lambda: rng.uniform(-1, 1, SHAPES[1]) * sigma * math.sqrt(3)}[wrong]()
    with pytest.raises(AssertionError, match="std|kurtosis"):
        assert_normal(W, sigma, wrong)
