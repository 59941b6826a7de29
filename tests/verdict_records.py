"""Every verdict of a set of comparisons, as plain records: what ``compare_twins`` and
``localize`` decided for each check (label, verdict, rule, message) and the report text.

Two runs of the same comparisons — before and after a change to how evidence is collected
(``parity.compare``, ``parity.precise``, ``parity.localize``) — must give the same records.
``python tests/verdict_records.py OUT.json`` writes them for the catalogue (both dtypes, with
and without an injected 1e-4 / 1e-8 gradient error) and for drawn nets; ``--compare A B``
lists the differences. ``tests/test_lazy_evidence.py`` runs the same records in-process.
"""

from __future__ import annotations

import copy
import json
import re
import sys

import numpy as np

from parity import localize
from parity.catalogue import zoo
from parity.catalogue.checks import compare, default_steps, first_batch, from_spec
from parity.compare import compare_twins

DTYPES = ("float64", "float32")
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def check_records(checks) -> list[list]:
    return [[c.label, bool(c.passed), c.rule, c.detail] for c in checks]


def comparison_record(comp, loc=None) -> dict:
    out = {"passed": comp.passed, "checks": check_records(comp.checks),
           "report": comp.report()}
    if loc is not None:
        out["localization"] = loc.lines()
        if not comp.passed:     # the layer checks of a passing comparison are not reported
            out["layer_checks"] = check_records(loc.checks)
    return out


def localization_after(twins, X, y, seed, run):
    """``run(twins)`` → the comparison; the localization of the same start, as the API
    reports it (``parity.localize.after`` where it exists: only on failure)."""
    if hasattr(localize, "after"):
        state, kept = localize.start_state(twins), {}
        comp = run(twins, kept)
        return comp, localize.after(comp, twins, X, y, seed, state, kept)
    loc = localize.localize(twins, X, y, seed)
    return run(twins, None), loc


def catalogue_twins(name: str, dtype: str, inject) -> tuple:
    """``(spec, twins, X, y)`` of one catalogue model in ``dtype`` at seed 0, with ``inject``
    the last weight's gradient scaled by 1 + 1e-4 (float32) / 1 + 1e-8 (float64) in NumPy
    (``tests/test_verdicts.inject_grad``)."""
    spec = zoo.get(name)
    X, y = first_batch(spec, 0)
    twins = from_spec(spec, dtype, 0)
    if inject:
        from test_verdicts import inject_grad, last_weight
        inject_grad(twins, last_weight(name))
    return spec, twins, np.asarray(X, dtype=dtype), y


def catalogue_record(name: str, dtype: str, inject: str | None = None) -> dict:
    """One catalogue model in ``dtype`` (``catalogue_twins``), its checks and localization."""
    spec, twins, X, y = catalogue_twins(name, dtype, inject)
    comp, loc = localization_after(
        twins, X, y, 0, lambda t, kept: compare_twins(t, X, y, steps=default_steps(spec),
                                                      **({} if kept is None else {"kept": kept})))
    return comparison_record(comp, loc)


def drawn_cases(n: int) -> list:
    """``n`` cases of ``tests/test_properties.cases`` (derandomized: the same every run)."""
    from hypothesis import HealthCheck, given, settings
    from test_properties import cases, has_batchnorm
    found: list = []

    @settings(derandomize=True, database=None, max_examples=n, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(case=cases())
    def collect(case):
        if not (case.n == 1 and has_batchnorm(case.spec)) and len(found) < n:
            found.append(case)
    collect()
    return found


def drawn_record(case) -> dict:
    X, y = case.batch()
    comp = compare(case.spec, case.dtype, case.seed, batch=(X, y), np_model=case.np_model())
    return comparison_record(comp)


def all_records(models=None, drawn: int = 40) -> dict:
    out = {}
    for name in models or list(zoo.CATALOGUE):
        for dtype in DTYPES:
            out[f"{name} {dtype}"] = catalogue_record(name, dtype)
            out[f"{name} {dtype} injected"] = catalogue_record(name, dtype, inject="grad")
    for i, case in enumerate(drawn_cases(drawn)):
        out[f"drawn {i} {case.dtype}"] = drawn_record(case)
    return out


def differences(old: dict, new: dict, numbers: bool = True) -> list[str]:
    """Where ``new`` differs from ``old``; ``numbers=False`` masks every number in messages
    and reports (a σ drawn differently prints differently; the verdicts must not change)."""
    def norm(v):
        if isinstance(v, str) and not numbers:
            return NUMBER.sub("#", v)
        if isinstance(v, list):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        return v
    def passing(records):   # the layer checks of a passing comparison are not reported
        return {k: {f: x for f, x in v.items() if f != "layer_checks" or not v["passed"]}
                for k, v in records.items()}
    old, new = passing(old), passing(new)
    diffs = []
    for key in old.keys() | new.keys():
        a, b = norm(copy.deepcopy(old.get(key))), norm(copy.deepcopy(new.get(key)))
        if a != b:
            diffs.append(key)
    return sorted(diffs)


def verdicts(records: dict) -> dict:
    """Only (label, verdict, rule) of every check and layer check."""
    return {k: {"passed": v["passed"], **{f: [c[:3] for c in v[f]] for f in
                                          ("checks", "layer_checks") if f in v}}
            for k, v in records.items()}


if __name__ == "__main__":
    sys.path.insert(0, "tests")
    if sys.argv[1] == "--compare":
        old, new = (json.load(open(p)) for p in sys.argv[2:4])
        print("compared", len(old), "comparisons,",
              sum(len(v["checks"]) for v in old.values()), "checks")
        print("verdict/rule differences:", differences(verdicts(old), verdicts(new)))
        print("text differences (numbers masked):", differences(old, new, numbers=False))
        print("text differences (exact):", differences(old, new))
    else:
        records = all_records(drawn=int(sys.argv[2]) if len(sys.argv) > 2 else 40)
        json.dump(records, open(sys.argv[1], "w"), indent=1)
