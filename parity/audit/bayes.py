"""Bayes ceilings: the best accuracy ANY classifier can reach on a known spiral generator.

The generators of ``reference.datasets`` are fully known, so the class posterior of a point
is computable exactly, and the Bayes accuracy is its expected maximum:

    acc* = E_x[ max_c p(c | x) ]        (no classifier has a higher expected accuracy
                                         on a point drawn from the generator)

It is estimated by Monte Carlo over points drawn with the generator itself, with a standard
error and a 95% interval. A second, independent estimate — the Bayes classifier's hit rate
on the drawn labels, mean[argmax_c p(c|x) == y] — must agree with the first within the error
bars (``consistency_z``); the first is the Rao-Blackwellized (lower-variance) version of the
second. The expected minimum cross-entropy E_x[H(p(·|x))] (nats) — the lowest expected
log-loss any probabilistic classifier can have on fresh points — comes out of the same draws.

Posteriors (equal class priors 1/K, as every generator draws n points per class)
-------------------------------------------------------------------------------
Isotropic Gaussian generators (seed 003 as written / corrected, seed 004): class c has the
latent grid i = 0..n-1 (the generator's linspace, each index used exactly once per draw, so
uniform) with noise-free means mu_c(i), and x = mu_c(i) + sigma*eps, eps ~ N(0, I_2):

    p(x | c) = (1/n) sum_i N(x; mu_c(i), sigma^2 I)
    p(c | x) = softmax_c( logsumexp_i( -|x - mu_c(i)|^2 / (2 sigma^2) ) )

(the factors 1/n and 1/(2 pi sigma^2) are common to all classes and cancel). ``latent_means``
gives mu with shape (K, n, 2); at noise 0 each generator returns exactly these points.

cs231n (K classes, N per class): x = r_i (sin t, cos t) with r_i = i/(N-1) and
t = m_j(i) + sigma*eps, m_j(i) = linspace(4j, 4(j+1), N)[i]. Only the angle is noisy, so given
class j the law of x is degenerate in the plane: a mixture over i of laws on the circle of
radius r_i. The radius grid is the same for every class, hence |x| identifies i exactly:
i = rint(|x| (N-1)) (|x| = r_i up to rounding of sin/cos, ~1e-16, while the grid spacing is
1/(N-1)). Conditioning on the observed i (probability 1/N under every class, so it cancels),
the direction alpha = atan2(x_0, x_1) = t mod 2pi carries a wrapped normal density:

    p(alpha | j, i) = sum_k N(alpha + 2 pi k; m_j(i), sigma^2)
    p(j | x) = softmax_j( logsumexp_k( -(alpha - m_j(i) + 2 pi k)^2 / (2 sigma^2) ) )

the sum over k running over every wrap within 10 sigma + pi of the mean (the rest is below
e^-50 relative). For i = 0 the radius is 0, x = (0, 0) for every class and angle: the
posterior is uniform, 1/K — so the cs231n ceiling is at most 1 - (1/N)(1 - 1/K) (0.9933 for
N = 100, K = 3) however small the noise.

Monte Carlo and uncertainty
---------------------------
D independent generator calls, each with its own child Generator (``rng.spawn(D)``), each of
the generator's full size (n points per class). Within one call the (class, index) slots are
stratified — every slot exactly once — so points are not i.i.d.; the calls are. The estimate
is the mean of the D per-call means, its standard error sd(per-call means)/sqrt(D), the 95%
interval mean ± t_{0.975, D-1}·stderr (Student t, scipy.stats). D = max(min_draws,
ceil(n_samples / points per call)); ``n_samples`` reports the points actually used.

What the ceiling bounds
-----------------------
The expected accuracy on a point drawn from the generator independently of whatever the
classifier was trained on. It does NOT bound training accuracy (a model can fit the noise of
its own training sample), and a finite test set scatters binomially around the expected
accuracy. Seed 003 holds out the last 20% of the same stratified draw; a classifier that knew
which latent slots the training part used could in principle exploit it — no practical
classifier (certainly not the document's MLP) does, and the ceiling ignores it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from parity.fileio import json_text
from parity.reference import datasets as ds

__all__ = ["BayesEstimate", "GENERATORS", "bayes_ceiling", "cs231n_index", "latent_means",
           "posterior", "register"]

# name -> (generator function, default options); the defaults are each document's.
GENERATORS = {
    "cs231n_spiral": (ds.spiral_cs231n, {"n_per_class": 100, "n_classes": 3, "noise": 0.2}),
    "two_spirals_as_written": (ds.two_spirals_as_written, {"n_per_class": 300, "noise": 0.08}),
    "two_spirals_corrected": (ds.two_spirals_corrected, {"n_per_class": 300, "noise": 0.08}),
    "two_spirals_seed004": (ds.two_spirals_seed004, {"n_per_class": 200, "noise": 0.2}),
}
# Ranges of the estimator's inputs. Below NOISE_MIN, 2·sigma² nears float64's underflow
# (the posterior turns to 0/0 = NaN at ~1e-154, measured: "nan ± nan" at 1e-160); above
# NOISE_MAX every posterior is uniform to rounding and the cs231n wrap sum grows as 3.2·sigma
# terms per point. SAMPLES_MAX / DRAWS_MAX bound the run time and the (draws, 3) statistics.
NOISE_MIN, NOISE_MAX = 1e-100, 1e3
SAMPLES_MAX, DRAWS_MAX = 10**8, 10**6
N_PER_CLASS_MAX = 100_000
_CHUNK = 4096            # points per posterior evaluation (memory: chunk x K x n floats)


@dataclass(frozen=True)
class BayesEstimate:
    """Monte Carlo estimate of the Bayes accuracy E[max_c p(c|x)] of one generator setting.

    mean, stderr, ci95 = (low, high): the estimate, its standard error, its 95% interval.
    label_accuracy, label_stderr: the Bayes classifier's hit rate on the drawn labels (the
    consistency check); consistency_z = paired (mean - label_accuracy) / its stderr.
    min_log_loss, min_log_loss_stderr: E[H(p(.|x))] in nats, the lowest expected
    cross-entropy on fresh points. n_samples points in n_draws independent generator calls.
    """

    mean: float
    stderr: float
    ci95: tuple
    method: str
    n_samples: int
    generator: str = ""
    options: dict | None = None
    n_draws: int = 0
    label_accuracy: float = float("nan")
    label_stderr: float = float("nan")
    consistency_z: float = float("nan")
    min_log_loss: float = float("nan")
    min_log_loss_stderr: float = float("nan")
    seconds: float = 0.0

    @property
    def consistent(self) -> bool:
        """E[max posterior] and the hit rate on drawn labels agree (|z| <= 3)."""
        return bool(abs(self.consistency_z) <= 3.0)

    def to_json(self) -> dict:
        d = asdict(self)
        d["ci95"] = list(self.ci95)
        d["consistent"] = self.consistent
        return d

    def __str__(self) -> str:
        return (f"{self.mean:.4f} ± {self.stderr:.4f} (95% CI {self.ci95[0]:.4f}–"
                f"{self.ci95[1]:.4f}, {self.n_samples} points)")


# ── options and latent grids ─────────────────────────────────────────────────────────────

def _options(name: str, options: dict) -> tuple:
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; known: {', '.join(GENERATORS)}")
    gen, defaults = GENERATORS[name]
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"{name}: unexpected generator options {unknown}; "
                        f"expected some of {sorted(defaults)}")
    opts = {**defaults, **options}
    noise = opts["noise"]
    if isinstance(noise, (bool, np.bool_)) or not isinstance(noise, (int, float, np.floating)):
        raise TypeError(f"{name}: noise must be a real number, got {type(noise).__name__}")
    if not (math.isfinite(noise) and noise > 0):
        raise ValueError(f"{name}: noise must be finite and > 0 for a posterior density, "
                         f"got {noise!r}")
    if not NOISE_MIN <= noise <= NOISE_MAX:
        raise ValueError(f"{name}: noise must be in [{NOISE_MIN:g}, {NOISE_MAX:g}] (float64 "
                         f"cannot evaluate the posterior outside), got {noise!r}")
    for k in ("n_per_class", "n_classes"):
        if k in opts and (isinstance(opts[k], bool) or not isinstance(opts[k], (int, np.integer))
                          or opts[k] < (2 if k == "n_per_class" else 1)):
            raise ValueError(f"{name}: {k} must be an int >= {2 if k == 'n_per_class' else 1}, "
                             f"got {opts[k]!r}")
    if opts["n_per_class"] > N_PER_CLASS_MAX:
        raise ValueError(f"{name}: n_per_class must be <= {N_PER_CLASS_MAX}, "
                         f"got {opts['n_per_class']}")
    return gen, opts


def latent_means(name: str, **options) -> np.ndarray:
    """Noise-free means mu_c(i) of an isotropic-Gaussian generator: (K, n, 2) float64.

    Exactly the generator's grid (same linspace expressions), so at noise 0 the generator
    returns these points (shuffled). Not defined for ``cs231n_spiral`` (its noise is on the
    angle, see ``posterior``).
    """
    _, opts = _options(name, {**options, "noise": options.get("noise", 1.0)})
    n = opts["n_per_class"]
    if name == "two_spirals_as_written":
        arms = []
        for k in (0, 1):
            theta = np.linspace(0, 4 * np.pi, n) + k * np.pi   # offset first, as written
            r = theta / (4 * np.pi)
            arms.append(np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1))
        return np.stack(arms)
    if name == "two_spirals_corrected":
        theta = np.linspace(0, 4 * np.pi, n)
        r = theta / (4 * np.pi)
        return np.stack([np.stack([r * np.cos(theta + k * np.pi), r * np.sin(theta + k * np.pi)],
                                  axis=1) for k in (0, 1)])
    if name == "two_spirals_seed004":
        theta = np.linspace(0, 4 * np.pi, n)
        r = np.linspace(0.5, 2, n)
        return np.stack([np.stack([r * np.cos(theta + k * np.pi), r * np.sin(theta + k * np.pi)],
                                  axis=1) for k in (0, 1)])
    raise ValueError(f"latent_means: {name!r} is not an isotropic-Gaussian generator "
                     f"(cs231n's noise is on the angle; see posterior)")


def cs231n_index(X: np.ndarray, n_per_class: int = 100) -> np.ndarray:
    """Grid index i of cs231n points from their radius: rint(|x| (N-1)), (M,) int64.

    Raises ValueError if a radius is not on the grid r_i = i/(N-1) (within 1e-9 of a
    spacing) — such a point cannot come from the generator.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"cs231n_index: X must have shape (M, 2), got {X.shape}")
    u = np.hypot(X[:, 0], X[:, 1]) * (n_per_class - 1)
    i = np.rint(u)
    off = np.abs(u - i)
    if np.any(off > 1e-9) or np.any(i > n_per_class - 1):
        bad = int(np.argmax(off > 1e-9) if np.any(off > 1e-9) else np.argmax(i > n_per_class - 1))
        raise ValueError(f"cs231n_index: point {bad} {X[bad].tolist()} has radius "
                         f"{u[bad] / (n_per_class - 1)!r}, not on the grid i/{n_per_class - 1}, "
                         f"i = 0..{n_per_class - 1}")
    return i.astype(np.int64)


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _gauss_log_lik(X: np.ndarray, means: np.ndarray, sigma: float) -> np.ndarray:
    """(M, K) log p(x|c) up to a class-independent constant."""
    out = np.empty((len(X), means.shape[0]))
    for s in range(0, len(X), _CHUNK):
        xb = X[s:s + _CHUNK]
        d2 = ((xb[:, None, None, :] - means[None]) ** 2).sum(-1)   # (B, K, n)
        out[s:s + _CHUNK] = _logsumexp(-d2 / (2 * sigma * sigma), axis=2)
    return out


def _cs231n_log_lik(X: np.ndarray, n: int, k: int, sigma: float) -> np.ndarray:
    """(M, K) log p(alpha | j, i) (wrapped normal), rows of i = 0 set to 0 (uniform)."""
    i = cs231n_index(X, n)
    alpha = np.arctan2(X[:, 0], X[:, 1])                    # x = r (sin t, cos t)
    means = np.stack([np.linspace(4.0 * j, 4.0 * (j + 1), n) for j in range(k)], axis=1)[i]
    d = np.mod(alpha[:, None] - means + np.pi, 2 * np.pi) - np.pi     # (M, K) in [-pi, pi)
    w = int(math.ceil((10 * sigma + np.pi) / (2 * np.pi)))
    wraps = 2 * np.pi * np.arange(-w, w + 1)
    out = _logsumexp(-(d[..., None] + wraps) ** 2 / (2 * sigma * sigma), axis=2)
    out[i == 0] = 0.0
    return out


def posterior(name: str, X, **options) -> np.ndarray:
    """Exact class posterior p(c | x) of generator ``name`` at points X: (M, 2) -> (M, K).

    Rows sum to 1. Options as the generator's (n_per_class, noise, n_classes for cs231n),
    defaulting to the document's. For cs231n, X must lie on the generator's radius grid.
    """
    _, opts = _options(name, options)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"posterior({name}): X must have shape (M, 2), got {X.shape}")
    if name == "cs231n_spiral":
        ll = _cs231n_log_lik(X, opts["n_per_class"], opts["n_classes"], float(opts["noise"]))
    else:
        ll = _gauss_log_lik(X, latent_means(name, **opts), float(opts["noise"]))
    return _softmax_rows(ll)


# ── the estimator ────────────────────────────────────────────────────────────────────────

def _t975(dof: int) -> float:
    from scipy.stats import t  # scipy ships with scikit-learn (a project dependency)
    return float(t.ppf(0.975, dof))


def bayes_ceiling(generator_name: str, rng: np.random.Generator, n_samples: int = 20_000,
                  min_draws: int = 10, **generator_options) -> BayesEstimate:
    """Bayes accuracy of ``generator_name`` with ``generator_options``, by Monte Carlo.

    Draws D = max(min_draws, ceil(n_samples / points per call)) independent datasets with the
    generator (child Generators from ``rng.spawn(D)``), evaluates the exact posterior of every
    point and returns a ``BayesEstimate`` (see the module docstring for the method).
    Same rng state → identical estimate.
    """
    import time
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"bayes_ceiling: rng must be a numpy.random.Generator, "
                        f"got {type(rng).__name__}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"bayes_ceiling: n_samples must be an int >= 1, got {n_samples!r}")
    if n_samples > SAMPLES_MAX:
        raise ValueError(f"bayes_ceiling: n_samples must be <= {SAMPLES_MAX:.0e}, "
                         f"got {n_samples}")
    if isinstance(min_draws, bool) or not isinstance(min_draws, (int, np.integer)) or min_draws < 2:
        raise ValueError(f"bayes_ceiling: min_draws must be an int >= 2, got {min_draws!r}")
    gen, opts = _options(generator_name, generator_options)
    t0 = time.perf_counter()
    k = opts.get("n_classes", 2)
    per_call = opts["n_per_class"] * k
    n_draws = max(int(min_draws), -(-int(n_samples) // per_call))
    if n_draws > DRAWS_MAX:
        raise ValueError(f"bayes_ceiling: {n_samples} samples at {per_call} points per "
                         f"generator call is {n_draws} draws, more than {DRAWS_MAX:.0e}; "
                         f"lower n_samples or min_draws")
    stats = np.empty((n_draws, 3))          # per call: mean max-posterior, hit rate, entropy
    for d, child in enumerate(rng.spawn(n_draws)):
        X, y = gen(child, **opts)
        p = posterior(generator_name, X, **opts)
        ent = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=1)
        stats[d] = (p.max(axis=1).mean(), np.mean(p.argmax(axis=1) == y), ent.mean())
    if not np.all(np.isfinite(stats)):
        raise RuntimeError(f"bayes_ceiling({generator_name}, {opts}): non-finite posterior "
                           f"statistics inside the allowed noise range")
    mean, hits, ent = stats.mean(axis=0)
    se = stats.std(axis=0, ddof=1) / math.sqrt(n_draws)
    diff = stats[:, 0] - stats[:, 1]
    se_diff = diff.std(ddof=1) / math.sqrt(n_draws)
    z = float(diff.mean() / se_diff) if se_diff > 0 else (0.0 if diff.mean() == 0 else math.inf)
    half = _t975(n_draws - 1) * se[0]
    shape = ("wrapped-normal angle posterior on the radius-identified grid index "
             f"(i = rint(|x|·{opts['n_per_class'] - 1}), uniform at i = 0)"
             if generator_name == "cs231n_spiral" else
             f"exact posterior of the {opts['n_per_class']}-component isotropic Gaussian "
             f"mixture per class on the generator's latent grid")
    method = (f"{shape}, sigma = {opts['noise']:g}, equal priors; Monte Carlo E[max_c p(c|x)] "
              f"over {n_draws} independent generator draws × {per_call} points; stderr from "
              f"the spread of per-draw means, 95% CI Student t({n_draws - 1})")
    return BayesEstimate(
        mean=float(mean), stderr=float(se[0]), ci95=(float(mean - half), float(mean + half)),
        method=method, n_samples=n_draws * per_call, generator=generator_name,
        options={k_: (float(v) if k_ == "noise" else int(v)) for k_, v in opts.items()},
        n_draws=n_draws, label_accuracy=float(hits), label_stderr=float(se[1]),
        consistency_z=z, min_log_loss=float(ent), min_log_loss_stderr=float(se[2]),
        seconds=time.perf_counter() - t0)


# ── CLI hook (wired by the lead in parity/cli.py) ───────────────────────────────────────

def register(subparsers) -> None:
    """Add ``nn-parity bayes GENERATOR [--noise σ] [--n-per-class n] [--samples M] [--seed s]
    [--json]``."""
    p = subparsers.add_parser(
        "bayes", help="Bayes ceiling (best possible accuracy) of a spiral generator, with "
                      "standard error",
        description="Monte Carlo estimate of the best accuracy any classifier can reach on "
        "fresh points of GENERATOR: E[max_c p(c|x)] with the exact class posterior of the "
        "known generator, its standard error and 95% interval, the Bayes classifier's hit "
        "rate on the drawn labels as a consistency check (z), and the lowest expected "
        "cross-entropy in nats. Defaults are the generator's own options.")
    p.add_argument("generator", metavar="GENERATOR", choices=sorted(GENERATORS),
                   help="one of: " + ", ".join(sorted(GENERATORS)))
    p.add_argument("--noise", type=float, default=None,
                   help="the generator's noise sigma (default: the generator's)")
    p.add_argument("--n-per-class", type=int, default=None,
                   help="points per class of one generator call (default: the generator's)")
    p.add_argument("--samples", type=int, default=20_000,
                   help="Monte Carlo points at least (default 20000), rounded up to whole "
                        "generator calls, 10 calls at least")
    p.add_argument("--seed", type=int, default=0, help="seed of the Monte Carlo draws")
    p.add_argument("--json", action="store_true",
                   help="machine-readable output (JSON on stdout, the same information as the "
                        "table)")
    p.set_defaults(func=_cmd_bayes)


def _cmd_bayes(args) -> int:
    """Print the estimate as three lines, or ``BayesEstimate.to_json()`` with ``--json``."""
    opts = {k: v for k, v in (("noise", args.noise), ("n_per_class", args.n_per_class))
            if v is not None}
    est = bayes_ceiling(args.generator, np.random.default_rng(args.seed),
                        n_samples=args.samples, **opts)
    if args.json:
        print(json_text(est.to_json(), indent=2))
        return 0
    print(f"{args.generator} {est.options}: Bayes accuracy {est}")
    print(f"  hit rate on drawn labels {est.label_accuracy:.4f} ± {est.label_stderr:.4f} "
          f"(z = {est.consistency_z:+.2f}); min expected log-loss {est.min_log_loss:.4f} nats")
    print(f"  method: {est.method}")
    return 0
