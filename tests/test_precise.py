"""σ's perturbations (``parity.precise.rounding``): every one at least the rounding bound and
at most 1.5 times it, with both signs — a smaller |δ| would let σ fall below the error a
kernel may legitimately make (``parity.tolerances``)."""

import numpy as np
import pytest

from parity import precise


@pytest.mark.parametrize("dtype", sorted(precise.ROUNDOFF))
@pytest.mark.parametrize("axis", [None, 1], ids=["elementwise", "shared-along-axis"])
def test_every_perturbation_is_within_one_to_one_and_a_half_roundoffs(dtype, axis):
    """x = 0 with amplitude 1: the perturbed value is ``u·δ`` exactly (u a power of two;
    the smallest-normal floor ``tiny`` is below half an ulp of it), so ``δ`` is read back
    without rounding. 8 × 25 000 draws of each kind."""
    u, tiny = precise.ROUNDOFF[dtype]
    assert tiny < u * 2.0 ** -60
    rng = np.random.default_rng(23)
    perturb = precise.rounding(rng, u, tiny)
    deltas = []
    for _ in range(8):
        x = np.zeros((500, 50))
        out = perturb(x, np.ones_like(x), axis=axis)
        assert out.shape == x.shape and out.dtype == np.float64
        deltas.append(out / u)
        if axis is not None:                     # one δ per row, shared along the axis
            assert (out == out[:, :1]).all()
    d = np.abs(np.concatenate(deltas))
    assert d.min() >= 1.0 and d.max() <= 1.5, (d.min(), d.max())
    signs = np.sign(np.concatenate(deltas))
    assert (signs > 0).any() and (signs < 0).any() and (signs != 0).all()
    assert 0.4 < (signs > 0).mean() < 0.6


@pytest.mark.parametrize("dtype", sorted(precise.ROUNDOFF))
def test_the_default_amplitude_moves_a_value_by_at_least_its_rounding_bound(dtype):
    """Without an amplitude a value moves by ``u·δ·|x|`` and by the smallest normal
    ``tiny`` (either sign: near underflow a float32 value of 3e-30 moved by 0.95·u·|x|),
    computed in float64: the realized move is that within half an ulp of the result — and in
    the float64 tier (u = half an ulp) never rounded away: at least ``u·|x|`` (a value at a
    tie, ``m·δ/2 = 1/2`` ulps, has probability 0)."""
    u, tiny = precise.ROUNDOFF[dtype]
    rng = np.random.default_rng(5)
    x = rng.standard_normal(40_000) * 10.0 ** rng.uniform(-30, 30, 40_000)
    moved = np.abs(precise.rounding(rng, u, tiny)(x) - x)
    slack = np.spacing(np.abs(x) + moved) / 2 + tiny
    assert (moved >= u * np.abs(x) - slack).all()
    assert (moved <= 1.5 * u * np.abs(x) + slack).all()
    if dtype == "float64":
        assert (moved >= u * np.abs(x)).all()


@pytest.mark.parametrize("dtype", sorted(precise.ROUNDOFF))
def test_a_scalar_below_the_floors_reach_with_its_own_amplitude_is_perturbed(dtype):
    """The loss is perturbed as a 0-d value with an amplitude of its own
    (``forward_backward``). A loss below ``2⁵⁴·tiny`` (a batch fitted to 1e-30 in the
    float32 tier) goes through the smallest-normal floor, which writes into its array: the
    product must be an array there, not a NumPy scalar (it raised TypeError)."""
    u, tiny = precise.ROUNDOFF[dtype]
    x = np.float64(1e3 * tiny)
    for seed in range(8):
        out = precise.rounding(np.random.default_rng(seed), u, tiny)(x, 10 * tiny)
        assert np.ndim(out) == 0 and abs(float(out) - float(x)) <= tiny + 15 * u * tiny
