"""A worked failure for the report: one planted bug and what parity says about it.

A selftest mutant (``parity.tools.selftest``: a realistic bug injected into the NumPy side at
run time, restored on exit) is planted, and the ordinary checks run on its model: the one-step
comparison (``parity.compare``: the mine-vs-torch table by quantity, the failing labels) and,
because it fails, the layer-by-layer localization (``parity.localize``) from the same start,
batch and dropout masks — the first layer that disagrees, in forward and in backward order.
The default bug drops BatchNorm's variance path from its input gradient: the forward pass and
the layers nearer the loss agree, the last BatchNorm's input gradient is the first to
disagree, and every layer below it inherits the difference.
"""

from __future__ import annotations

MUTANT = "batchnorm-backward-no-variance-path"
DTYPE = "float64"   # the selftest's mutants are chosen for the exact tier


def measure(mutant: str = MUTANT, seed: int = 0) -> dict:
    """``{"mutant", "description", "model", "dtype", "seed", "steps", "passed", "report",
    "quantities", "failures", "localization", "layers"}`` of ``mutant`` planted: ``report``
    is ``Comparison.report()`` followed by ``Localization.lines()`` (what a user reads),
    ``layers`` the localization's rows (``layer_agreement.rows_of``)."""
    from parity import localize
    from parity.catalogue.checks import default_steps, first_batch, from_spec
    from parity.compare import compare_twins
    from parity.study.layer_agreement import rows_of
    from parity.tools import selftest
    if mutant not in selftest.BY_NAME:
        raise ValueError(f"worked failure: unknown selftest mutant {mutant!r}")
    m = selftest.BY_NAME[mutant]
    spec = m.spec()
    setup = m.setup(spec, DTYPE, seed)
    if set(setup) - {"steps"}:
        raise ValueError(f"worked failure: mutant {mutant!r} needs a prepared input "
                         f"({', '.join(setup)}); choose a one-step mutant on the recipe's batch")
    steps = setup.get("steps") or default_steps(spec)
    X, y = first_batch(spec, seed)
    with selftest.injected(m.apply()), selftest._quiet_numerics():
        twins = from_spec(spec, DTYPE, seed)
        state = localize.start_state(twins)
        comparison = compare_twins(twins, X, y, steps=steps, seed=seed)
        loc = localize.localize(twins, X, y, seed, state)
    return {"mutant": m.name, "description": m.description, "model": spec.name,
            "layer_summary": spec.layer_summary(), "dtype": DTYPE, "seed": seed,
            "steps": steps, "passed": comparison.passed,
            "report": "\n".join([comparison.report(), *loc.lines()]),
            "quantities": comparison.by_quantity(),
            "failures": [c.label for c in comparison.failures()],
            "localization": loc.to_json(), "layers": rows_of(loc.checks)}
