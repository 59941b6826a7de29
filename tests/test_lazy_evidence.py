"""Evidence only where a verdict needs it (``parity.judge.judge_lazily``): the float64
evaluation of a step only for a pair the table fails, σ only for one ``FACTOR`` alone fails,
the layer-by-layer localization only for a comparison that failed. Each comparison here runs
twice — as it runs, and with the float64 evaluation and σ of every pair collected before
judging (what every comparison paid for before) — and must give the same checks (label,
verdict, rule, message) and the same report; the localization ``compare_models`` reports
(``parity.localize.after``) must be the one ``localize`` gives from the twins' start. The
catalogue models with σ-decided checks and injected errors run in the fast tier, every
catalogue model in both dtypes in the slow one; drawn nets (``tests/test_properties``) in both.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from test_properties import cases, has_batchnorm
from verdict_records import catalogue_twins, check_records

from parity import compare as compare_mod
from parity import localize
from parity.catalogue import zoo
from parity.catalogue.checks import compare, default_steps, first_batch, from_spec
from parity.compare import compare_twins
from parity.judge import judge

# (model, dtype, inject): σ decides a check of cs231n-linear, cs231n-2layer and blog-2layer in
# float32; the injected gradient errors fail by the table, precision and rounding rules
FAST = [("cs231n-linear", "float32", False), ("cs231n-2layer", "float32", False),
        ("blog-2layer", "float32", False), ("digits-convnet-bn", "float32", False),
        ("spiral003-layernorm", "float64", False), ("digits-dropout", "float32", True),
        ("spiral004-momentum", "float32", True), ("spiral004-momentum", "float64", True),
        ("digits-convnet-bn", "float64", True)]
SLOW = [(name, dtype, inject) for name in zoo.CATALOGUE for dtype in ("float64", "float32")
        for inject in (False, True) if (name, dtype, inject) not in FAST]


def eager(pairs, dtype, evidence):
    """The float64 evaluation and σ of every pair, then the rules: the verdicts by
    definition (``parity.judge.judge_lazily``)."""
    evidence(pairs, True)
    return judge(pairs, dtype)


def catalogue_run(name: str, dtype: str, inject: bool):
    """compare_twins and the localization of one catalogue model (the last weight's gradient
    scaled by 1 + 1e-4 / 1 + 1e-8 with ``inject``), as ``compare_models`` runs them."""
    spec, twins, X, y = catalogue_twins(name, dtype, inject)
    state, kept = localize.start_state(twins), {}
    comp = compare_twins(twins, X, y, steps=default_steps(spec), kept=kept)
    return comp, localize.after(comp, twins, X, y, 0, state, kept), twins, X, y


def assert_same(lazy, full, what: str):
    assert lazy.report() == full.report(), f"{what}: the reports differ"
    a, b = check_records(lazy.checks), check_records(full.checks)
    diff = [(x, z) for x, z in zip(a, b) if x != z]
    assert len(a) == len(b) and not diff, f"{what}: checks differ (lazy, full): {diff[:3]}"


@pytest.mark.parametrize(("name", "dtype", "inject"), [
    *FAST, *(pytest.param(*c, marks=pytest.mark.slow) for c in SLOW)])
def test_lazy_evidence_gives_the_verdicts_of_full_evidence(name, dtype, inject, monkeypatch):
    what = f"{name} [{dtype}]{' injected' if inject else ''}"
    lazy, loc, *_ = catalogue_run(name, dtype, inject)
    monkeypatch.setattr(compare_mod, "judge_lazily", eager)
    monkeypatch.setattr(localize, "judge_lazily", eager)
    full, *_ = catalogue_run(name, dtype, inject)
    assert_same(lazy, full, what)
    # the localization as it was always run: from the start, every pair's evidence collected
    twins = from_spec(zoo.get(name), dtype, 0)
    if inject:
        from test_verdicts import inject_grad, last_weight
        inject_grad(twins, last_weight(name))
    X, y = first_batch(zoo.get(name), 0)
    always = localize.localize(twins, X, y, 0)
    assert loc.lines() == always.lines(), f"{what}: localization {loc.lines()} vs {always.lines()}"
    if not lazy.passed:     # σ from the comparison's step 1 (its own seed): verdicts and rules
        assert ([c[:3] for c in check_records(loc.checks)]
                == [c[:3] for c in check_records(always.checks)]), what


def drawn_pair(case, monkeypatch):
    X, y = case.batch()
    lazy = compare(case.spec, case.dtype, case.seed, batch=(X, y), np_model=case.np_model())
    with monkeypatch.context() as m:
        m.setattr(compare_mod, "judge_lazily", eager)
        full = compare(case.spec, case.dtype, case.seed, batch=(X, y), np_model=case.np_model())
    return lazy, full


DRAWN = settings(max_examples=10, derandomize=True, database=None, deadline=None,
                 suppress_health_check=list(HealthCheck))


def _drawn(case, monkeypatch):
    if case.n == 1 and has_batchnorm(case.spec):
        return      # refused before any step (tests/test_properties)
    lazy, full = drawn_pair(case, monkeypatch)
    assert_same(lazy, full, f"{case.spec.layers} {case.spec.loss} {case.dtype}")


@DRAWN
@given(case=cases())
def test_lazy_evidence_on_drawn_nets(case):
    with pytest.MonkeyPatch.context() as mp:
        _drawn(case, mp)


@pytest.mark.slow
@settings(DRAWN, max_examples=200)
@given(case=cases())
def test_lazy_evidence_on_many_drawn_nets(case):
    with pytest.MonkeyPatch.context() as mp:
        _drawn(case, mp)
