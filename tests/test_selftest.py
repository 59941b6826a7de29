"""The harness self-test (parity.tools.selftest): every injected bug is caught by the parity checks,
the unmodified code passes the same checks, and every patch is undone afterwards."""

import argparse
import dataclasses
import inspect
import json

import numpy as np
import pytest
from parity.reference import init as initializers
from parity.reference import layers, losses, optim, sequential, spatial, training

from parity import transfer
from parity.catalogue import train, zoo
from parity.catalogue.spec import ModelSpec
from parity.kinds import record as kind_record
from parity.tools import selftest
from parity.tools.selftest import MUTANTS, Mutant, injected, run_mutant, run_selftest

# The check that must be among the failures of each mutant (the first one in compare's order
# unless noted), or the exception a user sees.
EXPECTED = {
    "linear-weight-grad-sign": "step 1 grad 0.weight",
    "linear-bias-grad-mean": "step 1 grad 0.bias",
    "softmax-no-max-shift": "step 1 loss",
    "batchnorm-biased-running-var": "step 1 buffer 1.running_var",
    "weight-decay-on-biases": "step 2 param 0.bias",
    "dropout-no-rescale": "step 1 loss",
    "adam-eps-inside-sqrt": "step 1 param 0.weight",
    "adam-no-bias-correction": "step 1 param 0.weight",
    "sgd-dampening-on-first-step": "step 1 state 0.weight.momentum_buffer",
    "transfer-transpose-by-shape": "step 1 loss",
    "transfer-no-transpose": "exception: ValueError: torch load: 0.weight",
    "transfer-reshape-not-transpose": "step 1 loss",
    "cross-entropy-sum-reduction": "step 1 loss",
    "relu-grad-at-zero": "step 1 grad 0.bias",
    "layernorm-unbiased-var": "step 1 loss",
    "batchnorm-backward-no-variance-path": "step 1 grad 0.weight",
    "bce-no-clamp": "step 1 loss",
    "sigmoid-backward-on-preactivation": "step 1 grad 0.weight",
    "adamw-decay-after-step": "step 1 param 0.weight",
    "sgd-nesterov-uses-buffer": "step 1 param 0.weight",
    "sgd-weight-decay-after-momentum": "step 1 state 0.weight.momentum_buffer",
    "adam-amsgrad-max-of-corrected-v": "step 1 state 0.weight.max_exp_avg_sq",
    "adam-amsgrad-max-not-kept": "step 1 state 0.weight.max_exp_avg_sq",
    "bce-with-logits-log-sigmoid": "step 1 loss",
    "fit-forward-in-eval-mode": "trainer epoch 1 loss",
    "fit-drops-last-partial-batch": "trainer steps after 1 epoch(s)",
    "he-init-fan-out": "init std 0.weight",
    "conv-kernel-not-rotated-in-backward": "step 1 grad 0.weight",
    "conv-padding-dropped-in-backward": "step 1 grad 0.weight",
    "conv-bias-grad-mean": "step 1 grad 0.bias",
    "maxpool-grad-to-every-tied-max": "step 1 grad 0.bias",
    "batchnorm2d-reshape-mixes-channels": "step 1 loss",
    "avgpool-backward-not-divided": "step 1 grad 0.weight",
}
# The check that catches each mutant, where it is not the one-step comparison: bugs of the
# trainer are invisible to one optimizer step on a given batch, and an initializer bug to
# every comparison (both twins start from the NumPy weights).
CHECK = {"fit-forward-in-eval-mode": "trainer_lockstep",
         "fit-drops-last-partial-batch": "trainer_lockstep",
         "he-init-fan-out": "init_statistics"}

# Everything a mutant may replace, by identity: functions/methods of these modules and classes.
_WATCHED_MODULES = (layers, losses, optim, sequential, spatial, transfer, training,
                    initializers, train, kind_record)


def _snapshot() -> dict:
    """``(owner, attribute) -> (object id, code checksum)`` for every function and method of
    the watched modules (and ModelSpec), as defined on the owner itself."""
    owners = [ModelSpec]
    for mod in _WATCHED_MODULES:
        owners.append(mod)
        owners += [c for c in vars(mod).values()
                   if inspect.isclass(c) and c.__module__ == mod.__name__]
    out = {}
    for owner in owners:
        for k, v in vars(owner).items():
            if inspect.isfunction(v):
                out[(owner.__qualname__ if inspect.isclass(owner) else owner.__name__, k)] = (
                    id(v), hash(v.__code__.co_code + repr(v.__code__.co_consts).encode()))
    return out


@pytest.fixture(scope="module")
def selftest_run():
    before = _snapshot()
    report = run_selftest()
    return before, report, _snapshot()


def test_the_unmodified_code_passes_the_same_checks(selftest_run):
    _, report, _ = selftest_run
    assert report.clean_runs and report.clean, [c for c in report.clean_runs if not c.passed]
    used = {(m.model, m.setup, m.check) for m in report.mutants}
    assert used == {(c.model, c.setup, c.check) for c in report.clean_runs}


def test_catalogue_covers_the_brief_and_expectations_cover_the_catalogue():
    assert [m.name for m in MUTANTS] == list(EXPECTED)
    assert len({m.name for m in MUTANTS}) == len(MUTANTS) >= 27
    for m in MUTANTS:
        assert m.check.__name__ == CHECK.get(m.name, "one_step"), m.name


@pytest.mark.parametrize("name", list(EXPECTED))
def test_mutant_is_caught(selftest_run, name):
    _, report, _ = selftest_run
    res = next(m for m in report.mutants if m.name == name)
    assert res.error is None, res.error
    assert res.caught, f"{name} survived on {res.model}"
    assert res.check == CHECK.get(name, "one_step"), (name, res.check)
    expected = EXPECTED[name]
    if expected.startswith("exception:"):
        assert res.caught_by.startswith(expected), res.caught_by
    else:
        assert expected in res.failures, res.failures
        assert res.caught_by.startswith(res.failures[0])


def test_kill_rate_is_one_and_report_passes(selftest_run):
    _, report, _ = selftest_run
    assert report.kill_rate == 1.0 and report.passed and report.survivors() == []
    table = report.table()
    n = len(MUTANTS)
    assert f"kill rate {n}/{n} = 100%" in table and "clean run passes" in table
    data = json.loads(json.dumps(report.to_json(), allow_nan=False))  # strict JSON
    assert data["passed"] and len(data["mutants"]) == len(MUTANTS)
    by_name = {m["name"]: m for m in data["mutants"]}
    assert by_name["softmax-no-max-shift"]["first_max_abs"] in ("inf", "nan")
    assert by_name["he-init-fan-out"]["check"] == "init_statistics"


def test_selftest_leaves_every_function_as_it_was(selftest_run):
    before, _, after = selftest_run
    assert before == after
    assert initializers.INITIALIZERS["he"] is initializers.he_normal
    assert train.np_fit is training.fit


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_patches_are_restored_even_if_a_check_raises(mutant):
    patches = mutant.apply()
    owners = [(owner, attr) for owner, attr, _ in patches]
    before = [(attr in vars(owner), vars(owner).get(attr), getattr(owner, attr))
              for owner, attr in owners]
    with pytest.raises(RuntimeError, match="check blew up"), injected(patches):
        for owner, attr, new in patches:
            assert getattr(owner, attr) is new  # the bug is really in place
        raise RuntimeError("check blew up")
    after = [(attr in vars(owner), vars(owner).get(attr), getattr(owner, attr))
             for owner, attr in owners]
    assert all(a[0] == b[0] and a[1] is b[1] and a[2] is b[2] for a, b in zip(before, after))


def test_inherited_method_override_is_deleted_not_frozen():
    """LayerNorm inherits _normalize: restoring must remove the override, not pin a copy."""
    m = selftest.BY_NAME["layernorm-unbiased-var"]
    assert "_normalize" not in vars(layers.LayerNorm)
    with injected(m.apply()):
        assert "_normalize" in vars(layers.LayerNorm)
    assert "_normalize" not in vars(layers.LayerNorm)
    assert layers.LayerNorm._normalize is layers.Normalization._normalize


def test_patching_a_missing_attribute_restores_the_earlier_patches():
    good = (layers.Linear, "backward", lambda self, dout: dout)
    original = vars(layers.Linear)["backward"]
    with (pytest.raises(AttributeError, match="no_such_method"),
          injected([good, (layers.Linear, "no_such_method", None)])):
        pass
    assert vars(layers.Linear)["backward"] is original


@pytest.mark.parametrize("name", ["softmax-no-max-shift", "bce-no-clamp",
                                  "bce-with-logits-log-sigmoid"])
def test_these_bugs_need_their_setup(name):
    """compare's defaults miss them: initial logits are far from overflow and far from
    saturating the sigmoid."""
    m = selftest.BY_NAME[name]
    assert m.setup is not selftest.default_setup
    assert not run_mutant(dataclasses.replace(m, setup=selftest.default_setup)).caught


def _equivalent_mutant() -> Mutant:
    """``np.add.reduce`` is what ``ndarray.sum`` calls: no behaviour change, must survive."""
    return Mutant("equivalent", "sum written as np.add.reduce", "cs231n-2layer",
                  lambda: [selftest._edit(layers.Linear, "backward_params",
                                          [('"bias": dout.sum(axis=0)',
                                            '"bias": np.add.reduce(dout, axis=0)')],
                                          "equivalent")])


def test_a_mutant_that_changes_nothing_survives_and_fails_the_selftest():
    report = run_selftest([_equivalent_mutant(), "linear-weight-grad-sign"])
    assert [m.caught for m in report.mutants] == [False, True]
    assert report.clean and not report.passed and report.kill_rate == 0.5
    assert report.survivors() == ["equivalent"]


def test_an_internal_error_or_a_stale_mutant_is_not_a_catch():
    def broken(self, dout):
        raise KeyError("selftest bug")

    crash = Mutant("crash", "", "xor-relu", lambda: [(layers.ReLU, "backward", broken)])
    stale = Mutant("stale", "", "xor-relu", lambda: [selftest._edit(
        layers.ReLU, "backward", [("text that is not there", "x")], "stale")])
    for m, err in ((crash, "KeyError"), (stale, "LookupError")):
        res = run_mutant(m)
        assert not res.caught and err in res.error and res.caught_by.startswith("selftest error")
    assert vars(layers.ReLU)["backward"] is not broken


def test_unknown_mutant_name_is_a_value_error():
    with pytest.raises(ValueError, match="unknown mutant 'nope'"):
        run_selftest(["nope"])


def _cli():
    parser = argparse.ArgumentParser(prog="nn-parity")
    selftest.register(parser.add_subparsers(dest="command"))
    return parser


def test_cli_help_explains_the_selftest(capsys):
    with pytest.raises(SystemExit) as e:
        _cli().parse_args(["selftest", "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "injected into the NumPy side at run time" in out and "Exit 0 iff" in out


def test_cli_exit_codes_and_output(capsys, monkeypatch):
    monkeypatch.setattr(selftest, "MUTANTS", [selftest.BY_NAME["relu-grad-at-zero"]])
    args = _cli().parse_args(["selftest"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "relu-grad-at-zero" in out and "step 1 grad 0.bias" in out and "100%" in out

    monkeypatch.setattr(selftest, "MUTANTS", [_equivalent_mutant()])
    args = _cli().parse_args(["selftest", "--json"])
    assert args.func(args) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["survivors"] == ["equivalent"] and data["clean"] and not data["passed"]


def test_mutated_copy_runs_against_the_live_module():
    """The source mutation resolves globals in the original module (no copy of its names)."""
    f = selftest.mutate_source(layers.Linear.backward_params,
                               [('"bias": dout.sum(axis=0)', '"bias": dout.mean(axis=0)')], "t")
    assert f.__globals__ is layers.Linear.backward_params.__globals__
    lin = layers.Linear(3, 2)
    lin.forward(np.ones((4, 3)))
    f(lin, np.ones((4, 2)))
    np.testing.assert_array_equal(lin.grads["bias"], np.ones(2))
    assert "f" not in vars(layers) and "backward" not in vars(layers)


def test_weight_decay_on_biases_is_caught_by_compare_defaults():
    """compare takes 2 steps when the optimizer decays weights: zero-initialized biases show
    misplaced decay only in step 2."""
    m = selftest.BY_NAME["weight-decay-on-biases"]
    assert run_mutant(dataclasses.replace(m, setup=selftest.default_setup)).caught


@pytest.mark.parametrize("name", ["fit-forward-in-eval-mode", "fit-drops-last-partial-batch",
                                  "he-init-fan-out"])
def test_the_one_step_comparison_cannot_see_these_bugs(name):
    """Why they need another check: compare never calls the trainer, and it starts both twins
    from the NumPy weights whatever the initializer drew."""
    m = selftest.BY_NAME[name]
    res = run_mutant(dataclasses.replace(m, setup=selftest.default_setup,
                                         check=selftest.one_step))
    assert res.error is None and not res.caught, res.caught_by


def _one_model_per_init() -> list[str]:
    """The first model of each (initializer, input kind): a model of images draws 4-D
    convolution kernels, whose fan-in torch reads from another layout than a Linear's."""
    first: dict = {}
    for name, spec in zoo.CATALOGUE.items():
        first.setdefault((spec.init, spec.image_shape is not None), name)
    return list(first.values())


@pytest.mark.parametrize("name", _one_model_per_init())
def test_init_statistic_passes_every_catalogue_initializer(name):
    """No false alarm: each initializer kind of the catalogue meets torch's own (seeds 0-2)."""
    for seed in range(3):
        assert selftest.init_statistics(zoo.get(name), "float64", seed) == [], (name, seed)


def test_trainer_lockstep_refuses_a_model_it_cannot_judge():
    """Dropout models: each trainer draws its own masks, so the trajectories legitimately
    differ; that is a selftest error, never a catch."""
    with pytest.raises(RuntimeError, match="dropout"):
        selftest.trainer_lockstep(zoo.get("digits-dropout"), "float64", 0, epochs=1)
