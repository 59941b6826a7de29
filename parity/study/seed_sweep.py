"""Seed dependence: the fraction of seeds for which a model reaches its target, per twin.

XOR nets are the classic case: with some initializations the ReLUs die or the sigmoid net
sits on a saddle, and 2000 epochs are not enough.
"""

from __future__ import annotations

from parity.spec import ModelSpec
from parity.train import IMPLS, run


def success_rate(spec: ModelSpec, seeds, impls=IMPLS, epochs: int | None = None) -> dict:
    """Train each twin once per seed; returns per impl ``{"rate", "succeeded": [seeds],
    "accuracies": {seed: acc}}`` and ``"both"``: the seeds where every twin met the target."""
    if spec.target is None:
        raise ValueError(f"{spec.name} has no target to succeed at")
    out: dict = {}
    seeds = list(seeds)
    for impl in impls:
        acc, ok = {}, []
        for seed in seeds:
            res, _ = run(spec, impl, seed=seed, epochs=epochs)
            acc[seed] = res.test_accuracy if spec.target.split == "test" else res.train_accuracy
            if res.target_met:
                ok.append(seed)
        out[impl] = {"rate": len(ok) / len(seeds), "succeeded": ok, "accuracies": acc}
    out["both"] = sorted(set.intersection(*(set(out[i]["succeeded"]) for i in impls)))
    return out
