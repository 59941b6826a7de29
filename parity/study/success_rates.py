"""Success rates over many seeds (``nn-parity study --seeds 0-99``), with Wilson intervals.

Every model with a target is trained in both twins once per seed; a seed succeeds when its
run met the target. The rate k/n comes with a Wilson score interval (95%): unlike the Wald
interval p ± z·√(p(1−p)/n) it does not collapse to zero width at 0/n or n/n, and its coverage
stays near the nominal 95% at the small n and extreme rates a seed sweep produces (Brown, Cai
& DasGupta 2001, "Interval estimation for a binomial proportion"), without Clopper–Pearson's
extra width.
"""

from __future__ import annotations

import math

from parity.catalogue import zoo
from parity.runtime import check_seed
from parity.study.seed_sweep import success_of
from parity.twins import IMPLS

Z95 = 1.959963984540054       # the standard normal's 97.5% quantile
MAX_SWEEP_SEEDS = 100_000     # --seeds: at most this many seeds


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion with ``k`` successes in ``n`` trials:
    ``(c − h, c + h)`` with ``p = k/n``, ``c = (p + z²/2n) / (1 + z²/n)`` and
    ``h = z·√(p(1−p)/n + z²/4n²) / (1 + z²/n)``. At ``k = 0`` the lower end is 0 and at
    ``k = n`` the upper end is 1 exactly (where the formula lands one rounding off)."""
    if not (isinstance(k, int) and isinstance(n, int) and 0 <= k <= n and n >= 1):
        raise ValueError(f"wilson_interval: need integers 0 <= k <= n, n >= 1; got k={k!r}, "
                         f"n={n!r}")
    p, z2 = k / n, z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return (0.0 if k == 0 else centre - half), (1.0 if k == n else centre + half)


def parse_seeds(text: str, what: str = "--seeds") -> tuple[int, ...]:
    """``"0-99"``, ``"0,3,7"`` or a mix (``"0-3,10"``) → the seeds, ascending, each once.
    ValueError naming ``what`` and the part at fault."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{what}: give seeds as A-B (a range, both ends included) or "
                         f"A,B,C, got {text!r}")
    seeds: set[int] = set()
    for part in text.split(","):
        lo_text, dash, hi_text = part.strip().partition("-")
        try:
            lo = int(lo_text)
            hi = int(hi_text) if dash else lo
        except ValueError:
            raise ValueError(f"{what}: {part.strip()!r} is not a seed or a range A-B of "
                             f"seeds (in {text!r})") from None
        check_seed(lo, what)
        check_seed(hi, what)
        if hi < lo:
            raise ValueError(f"{what}: the range {part.strip()!r} is empty (its end is below "
                             f"its start)")
        if hi - lo + 1 + len(seeds) > MAX_SWEEP_SEEDS:
            raise ValueError(f"{what}: at most {MAX_SWEEP_SEEDS} seeds, {text!r} gives more")
        seeds.update(range(lo, hi + 1))
    return tuple(sorted(seeds))


def swept_models(models) -> list[str]:
    """The models of ``models`` that have a target to succeed at."""
    return [m for m in models if zoo.get(m).target is not None]


def rate(succeeded: list, seeds: list) -> dict:
    """``{"successes", "n", "rate", "low", "high"}``: the Wilson 95% interval of the rate."""
    k, n = len(succeeded), len(seeds)
    low, high = wilson_interval(k, n)
    return {"successes": k, "n": n, "rate": k / n, "low": low, "high": high}


def sweep_result(plan, runs: dict) -> dict:
    """results.json's ``seed_sweep``: per swept model and twin the success rate over
    ``plan.sweep_seeds`` with its interval, the failed seeds and every seed's accuracy (on
    the target's split) and final loss; ``both``: the seeds where both twins succeeded.
    ``runs``: ``{(model, impl, seed, epochs): RunResult JSON}``, whichever job trained it."""
    seeds = list(plan.sweep_seeds)
    models: dict = {}
    for name in swept_models(plan.models):
        spec = zoo.get(name)
        epochs = plan.epochs_for(spec)
        entry: dict[str, object] = {"target": str(spec.target), "epochs": epochs,
                                    "recipe_epochs": spec.epochs}
        met: dict[str, list] = {}
        for impl in IMPLS:
            rs = {s: runs[(name, impl, s, epochs)] for s in seeds}
            won = success_of(spec, rs)     # the seeds that met the target, accuracies
            met[impl] = won["succeeded"]
            entry[impl] = {**rate(met[impl], seeds),
                           "failed": [s for s in seeds if s not in met[impl]],
                           "accuracy": {str(s): a for s, a in won["accuracies"].items()},
                           "final_loss": {str(s): rs[s]["final_loss"] for s in seeds}}
        both = [s for s in met["numpy"] if s in met["torch"]]
        split = [s for s in seeds if (s in met["numpy"]) != (s in met["torch"])]
        entry["both"] = {**rate(both, seeds), "split": split}
        models[name] = entry
    return {"seeds": seeds, "interval": "Wilson score, 95%", "models": models,
            "left_out": [m for m in plan.models if m not in models]}
