"""Seed dependence: the fraction of seeds for which a model reaches its target, per twin.

XOR nets are the classic case: with some initializations the ReLUs die or the sigmoid net
sits on a saddle, and 2000 epochs are not enough.
"""

from __future__ import annotations

from parity.catalogue.spec import ModelSpec
from parity.catalogue.train import run
from parity.twins import IMPLS


def success_rate(spec: ModelSpec, seeds, impls=IMPLS, epochs: int | None = None) -> dict:
    """Train each twin once per seed; returns per impl ``{"rate", "succeeded": [seeds],
    "accuracies": {seed: acc}}`` and ``"both"``: the seeds where every twin met the target."""
    if spec.target is None:
        raise ValueError(f"{spec.name} has no target to succeed at")
    out: dict = {}
    seeds = list(seeds)
    for impl in impls:
        out[impl] = success_of(spec, {seed: run(spec, impl, seed=seed, epochs=epochs)[0].to_json()
                                      for seed in seeds})
    out["both"] = sorted(set.intersection(*(set(out[i]["succeeded"]) for i in impls)))
    return out


def success_of(spec: ModelSpec, runs: dict) -> dict:
    """One twin's ``{"rate", "succeeded": [seeds], "accuracies": {seed: acc}}`` from its runs
    ``{seed: RunResult JSON}`` (the study's, trained by whichever job): a seed succeeds when
    its run met the target; the accuracy is on the target's split."""
    if spec.target is None:
        raise ValueError(f"{spec.name}: no target, so no success rule")
    split = "test_accuracy" if spec.target.split == "test" else "train_accuracy"
    ok = [s for s, r in runs.items() if r["target_met"]]
    return {"rate": len(ok) / len(runs), "succeeded": ok,
            "accuracies": {s: r[split] for s, r in runs.items()}}
