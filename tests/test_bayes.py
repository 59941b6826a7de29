"""The Bayes-ceiling estimator: exact posteriors, known answers, uncertainty, reproducibility."""

import math

import numpy as np
import pytest
from parity.reference import datasets as ds

from parity.audit import bayes

GAUSSIAN = ["two_spirals_as_written", "two_spirals_corrected", "two_spirals_seed004"]


def _phi(z):
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


@pytest.mark.parametrize("name", list(bayes.GENERATORS), ids=list(bayes.GENERATORS))
def test_posterior_is_a_distribution(name):
    gen, opts = bayes.GENERATORS[name]
    X, y = gen(np.random.default_rng(3), **opts)
    p = bayes.posterior(name, X)
    assert p.shape == (len(X), opts.get("n_classes", 2))
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", GAUSSIAN, ids=GAUSSIAN)
def test_latent_means_are_the_generator_at_noise_zero(name):
    gen, _ = bayes.GENERATORS[name]
    X, y = gen(np.random.default_rng(1), noise=0.0)
    mu = bayes.latent_means(name)
    for c in (0, 1):   # rows are shuffled: compare as sorted sets of points, bit for bit
        np.testing.assert_array_equal(np.sort(X[y == c], axis=0), np.sort(mu[c], axis=0))


@pytest.mark.parametrize("n,k,noise", [(100, 3, 0.2), (7, 5, 3.0), (2, 1, 0.0)],
                         ids=["document", "small-grid-big-noise", "two-point-grid"])
def test_cs231n_radius_identifies_the_grid_index_exactly(n, k, noise):
    X, y = ds.spiral_cs231n(np.random.default_rng(5), n_per_class=n, n_classes=k, noise=noise)
    np.testing.assert_array_equal(bayes.cs231n_index(X, n), np.tile(np.arange(n), k))


def test_cs231n_index_rejects_points_off_the_radius_grid():
    with pytest.raises(ValueError, match="not on the grid"):
        bayes.cs231n_index(np.array([[0.0, 0.5 / 99 + 1e-3]]), 100)
    with pytest.raises(ValueError, match="not on the grid"):
        bayes.cs231n_index(np.array([[0.0, 2.0]]), 100)


def test_cs231n_posterior_is_uniform_at_the_origin():
    X = np.zeros((1, 2))
    np.testing.assert_array_equal(bayes.posterior("cs231n_spiral", X), np.full((1, 3), 1 / 3))


def test_closed_form_two_latent_points_per_arm():
    """seed 004 with n = 2: class 0 at (0.5, 0), (2, 0), class 1 the negatives; the Bayes rule
    is sign(x_0), so acc* = (Φ(0.5/σ) + Φ(2/σ)) / 2."""
    sigma = 0.5
    exact = 0.5 * (_phi(0.5 / sigma) + _phi(2 / sigma))
    est = bayes.bayes_ceiling("two_spirals_seed004", np.random.default_rng(0), n_samples=4000,
                              n_per_class=2, noise=sigma)
    assert est.stderr < 0.003
    assert abs(est.mean - exact) <= 4 * est.stderr, (est, exact)
    assert est.consistent, est.consistency_z


def test_cs231n_small_noise_ceiling_is_set_by_the_origin():
    """Noise-free angles are separable except at r = 0, where x = 0 for every class."""
    n, k = 10, 3
    est = bayes.bayes_ceiling("cs231n_spiral", np.random.default_rng(0), n_samples=3000,
                              n_per_class=n, n_classes=k, noise=0.05)
    assert est.mean == pytest.approx(1 - (1 / n) * (1 - 1 / k), abs=1e-9)


def test_agrees_with_deterministic_quadrature_at_the_documents_setting():
    """∫ max_c p(x, c) dx on a grid (step 0.04 = σ/5, ±3.2 covers every mean ± 6σ)
    vs the Monte Carlo estimate for seed 004 at noise 0.2."""
    sigma, h = 0.2, 0.04
    mu = bayes.latent_means("two_spirals_seed004")
    g = np.arange(-3.2, 3.2 + h / 2, h)
    P = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    total = 0.0
    for s in range(0, len(P), 4096):
        d2 = ((P[s:s + 4096, None, None, :] - mu[None]) ** 2).sum(-1)
        joint = 0.5 * np.exp(-d2 / (2 * sigma ** 2)).mean(2) / (2 * np.pi * sigma ** 2)
        total += joint.max(axis=1).sum()
    quad = total * h * h
    est = bayes.bayes_ceiling("two_spirals_seed004", np.random.default_rng(0), n_samples=8000)
    assert abs(est.mean - quad) <= 4 * est.stderr, (est, quad)
    assert 0.70 < quad < 0.75          # not the ~0.8-0.85 a one-sided crossing estimate gives


def test_ceilings_at_the_extremes():
    as_written = bayes.bayes_ceiling("two_spirals_as_written", np.random.default_rng(0),
                                     n_samples=4000)
    assert as_written.ci95[1] <= 0.7 and as_written.mean > 0.55
    nearly_clean = bayes.bayes_ceiling("two_spirals_corrected", np.random.default_rng(0),
                                       n_samples=4000, noise=0.005)
    assert nearly_clean.mean > 0.99   # only the shared centre (r → 0) stays ambiguous
    clean_004 = bayes.bayes_ceiling("two_spirals_seed004", np.random.default_rng(0),
                                    n_samples=4000, noise=0.02)
    assert clean_004.mean > 0.999


def test_stderr_shrinks_like_one_over_sqrt_m():
    small = bayes.bayes_ceiling("two_spirals_seed004", np.random.default_rng(1), n_samples=8000)
    big = bayes.bayes_ceiling("two_spirals_seed004", np.random.default_rng(2), n_samples=32000)
    assert (small.n_samples, big.n_samples) == (8000, 32000)
    assert 1.3 < small.stderr / big.stderr < 3.0        # sqrt(4) = 2, sd estimates ±~20%
    for est in (small, big):
        lo, hi = est.ci95
        assert lo < est.mean < hi and hi - lo == pytest.approx(2 * 2.0 * est.stderr, rel=0.1)
        assert est.consistent, est.consistency_z


def test_same_seed_same_estimate_other_seed_other_estimate():
    a = bayes.bayes_ceiling("two_spirals_corrected", np.random.default_rng(7), n_samples=3000)
    b = bayes.bayes_ceiling("two_spirals_corrected", np.random.default_rng(7), n_samples=3000)
    c = bayes.bayes_ceiling("two_spirals_corrected", np.random.default_rng(8), n_samples=3000)
    fields = ("mean", "stderr", "ci95", "label_accuracy", "min_log_loss", "n_samples")
    assert all(getattr(a, f) == getattr(b, f) for f in fields)
    assert a.mean != c.mean


def test_bad_arguments_name_the_problem():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown generator"):
        bayes.bayes_ceiling("moons", rng)
    with pytest.raises(ValueError, match="noise must be finite and > 0"):
        bayes.bayes_ceiling("two_spirals_seed004", rng, noise=0.0)
    with pytest.raises(TypeError, match="unexpected generator options"):
        bayes.bayes_ceiling("two_spirals_seed004", rng, n_classes=3)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        bayes.bayes_ceiling("two_spirals_seed004", 0)
    with pytest.raises(ValueError, match="n_samples"):
        bayes.bayes_ceiling("two_spirals_seed004", rng, n_samples=0)
    with pytest.raises(ValueError, match="not an isotropic-Gaussian"):
        bayes.latent_means("cs231n_spiral")
