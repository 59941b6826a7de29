"""``parity.compare_optimizers``: a hand-written update rule against torch.optim.

The reference rules pass for every configuration test_optim holds; rules written the way
students write them (cs231n's ``update(w, dw, config)``, the book's layer-updating objects)
fail at the step where they first differ, and a rule that follows a known convention is
named by it (``parity.optim_conventions``), one convention per case and no other.
"""

import numpy as np
import pytest
from test_optim import CONFIGS, IDS

from parity import optim_conventions as conventions
from parity.kinds import OPTIMIZERS
from parity.optimizer_check import compare_optimizers
from parity.update_rules import cs231n_rule, layer_rule, plain_rule

STEPS = 8


def params(seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    return {"0.weight": rng.standard_normal((5, 4)).astype(dtype),
            "0.bias": rng.standard_normal(4).astype(dtype)}


def reference_rule(kind, opts):
    """``reference.optim``'s ``kind`` in the plain form, its state in torch's names."""
    box = {}

    def step(p, g):
        if "opt" not in box:
            box["opt"] = OPTIMIZERS[kind].build_numpy([{"params": p}], **opts)
        box["opt"].step(g)
    return plain_rule(step, lambda: box["opt"].state)


def replay(trajectory):
    """A plain rule that returns precomputed parameters, one dict per step."""
    it = iter(trajectory)
    return plain_rule(lambda p, g: next(it))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind,opts", CONFIGS, ids=IDS)
def test_the_reference_rules_pass_with_all_of_torchs_state_compared(kind, opts, dtype):
    r = compare_optimizers(reference_rule(kind, opts), kind, params(dtype=dtype), steps=STEPS,
                           options=opts)
    assert r.passed, r.report()
    assert r.dtype == dtype
    assert not r.unmatched, r.report()


@pytest.mark.parametrize("kind,opts", CONFIGS, ids=IDS)
def test_the_convention_rules_without_a_convention_are_torchs(kind, opts):
    """The hints' rules are torch's rule plus one change: with none, they are torch's."""
    grads = [{k: g * 10.0 ** -i for k, g in params(i + 1).items()} for i in range(STEPS)]
    full = {**OPTIMIZERS[kind].defaults, **opts}
    ref = conventions.run(kind, None, params(), grads, full)
    r = compare_optimizers(replay(ref), kind, params(), grads, steps=STEPS, options=opts)
    assert r.passed, r.report()


# each convention with options under which it shows
SHOWN = [
    ("sgd", dict(lr=0.1, momentum=0.9, weight_decay=0.1), "decay after momentum"),
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.3), "dampened first step"),
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.3), "dampening swapped"),
    ("adam", dict(lr=1e-2), "step counter one ahead"),
    ("adam", dict(lr=1e-2, eps=1e-6), "eps inside the square root"),
    ("adam", dict(lr=1e-2, eps=1e-6), "eps before bias correction"),
    ("adam", dict(lr=1e-2), "no bias correction"),
    ("adam", dict(lr=1e-2, weight_decay=0.1), "decay decoupled/L2 swapped"),
    ("adamw", dict(lr=1e-2, weight_decay=0.1), "decay decoupled/L2 swapped"),
    ("adamw", dict(lr=1e-2, weight_decay=0.1), "decay after the step"),
    ("adamw", dict(lr=1e-2, amsgrad=True), "step counter one ahead"),
    ("adamw", dict(lr=1e-2, eps=1e-6), "eps inside the square root"),
    ("adamw", dict(lr=1e-2, eps=1e-6, amsgrad=True), "eps before bias correction"),
    ("adamw", dict(lr=1e-2), "no bias correction"),
    ("rmsprop", dict(lr=1e-2, eps=1e-6), "eps inside the square root"),
    ("rmsprop", dict(lr=1e-2), "alpha swapped"),
    ("rmsprop", dict(lr=1e-2, momentum=0.5), "centered toggled"),
    ("adagrad", dict(lr=0.1, lr_decay=0.3), "step counter one ahead"),
    ("adagrad", dict(lr=0.1, eps=1e-6), "eps inside the square root"),
    ("adagrad", dict(lr=0.1, initial_accumulator_value=0.5), "initial accumulator ignored"),
]


def test_every_convention_has_a_case():
    have = {(k, c) for k, _, c in SHOWN}
    want = {(k, c) for k in OPTIMIZERS for c in conventions.CONVENTIONS[k]}
    assert want <= have, f"conventions without a case: {sorted(want - have)}"


@pytest.mark.parametrize("kind,opts,convention", SHOWN,
                         ids=[f"{k}-{c.replace(' ', '-')}" for k, _, c in SHOWN])
def test_a_rule_that_follows_a_convention_fails_and_the_hint_names_it_alone(kind, opts,
                                                                             convention):
    full = {**OPTIMIZERS[kind].defaults, **opts}
    rng = np.random.default_rng(3)
    grads = [{k: rng.standard_normal(v.shape) * 10.0 ** rng.uniform(-3, 0, v.shape)
              for k, v in params().items()} for _ in range(STEPS)]
    mine = conventions.run(kind, convention, params(), grads, full)
    r = compare_optimizers(replay(mine), kind, params(), grads, steps=STEPS, options=opts)
    assert not r.passed, f"{kind} {convention}: indistinguishable from torch here"
    assert len(r.hints) == 1 and f"with the {convention}:" in r.hints[0], r.report()


# ---- rules written the way student code writes them --------------------------------------

def adam_t_from_one(w, dw, config=None):
    """cs231n-form Adam whose counter starts at 1 and is incremented before use."""
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("m", np.zeros_like(w))
    config.setdefault("v", np.zeros_like(w))
    config.setdefault("t", 1)
    config["t"] += 1
    config["m"] = config["beta1"] * config["m"] + (1 - config["beta1"]) * dw
    config["v"] = config["beta2"] * config["v"] + (1 - config["beta2"]) * dw**2
    m_hat = config["m"] / (1 - config["beta1"] ** config["t"])
    v_hat = config["v"] / (1 - config["beta2"] ** config["t"])
    return w - config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["epsilon"]), config


def adam_t_from_zero(w, dw, config=None):
    """The same, counter from 0: torch's Adam."""
    config = {"t": 0, **(config or {})}
    return adam_t_from_one(w, dw, config)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_an_adam_step_counter_off_by_one_is_caught_at_step_1_and_hinted(dtype):
    r = compare_optimizers(cs231n_rule(adam_t_from_one, {"learning_rate": 1e-2}), "adam",
                           params(dtype=dtype), options=dict(lr=1e-2))
    assert not r.passed
    assert r.first.label == "step 1 param 0.weight", r.report()
    assert r.first.max_abs > 1e-3           # lr 1e-2: step 1 moves 0.744·lr, not lr
    assert any("step counter one ahead" in h for h in r.hints), r.report()
    assert "t (torch step)" in " ".join(c.label for c in r.checks if not c.passed)
    ok = compare_optimizers(cs231n_rule(adam_t_from_zero, {"learning_rate": 1e-2}), "adam",
                            params(dtype=dtype), options=dict(lr=1e-2))
    assert ok.passed, ok.report()


def rmsprop_eps_in_sqrt(x, dx, config=None):
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("cache", np.zeros_like(x))
    config["cache"] = config["decay_rate"] * config["cache"] + (1 - config["decay_rate"]) * dx**2
    return x - config["learning_rate"] * dx / np.sqrt(config["cache"] + config["epsilon"]), config


def test_rmsprop_with_eps_inside_the_square_root_is_hinted():
    r = compare_optimizers(cs231n_rule(rmsprop_eps_in_sqrt), "rmsprop", params())
    assert not r.passed and r.first.label == "step 1 param 0.weight", r.report()
    assert r.hints == [h for h in r.hints if "eps inside the square root" in h] and r.hints


def sgd_momentum_decay_after(w, dw, config=None):
    """cs231n-form SGD momentum (torch's buffer form) with L2 added after the momentum."""
    config = config if config is not None else {}
    b = config.get("momentum_buffer")
    b = dw.copy() if b is None else config["momentum"] * b + dw
    config["momentum_buffer"] = b
    return w - config["learning_rate"] * (b + config["reg"] * w), config


def test_weight_decay_after_momentum_is_caught_at_step_2_and_hinted():
    """Step 1 agrees (b = g either way); from step 2 the decayed weights enter the buffer
    on torch's side only."""
    cfg = {"learning_rate": 0.1, "momentum": 0.9, "reg": 0.1}
    r = compare_optimizers(cs231n_rule(sgd_momentum_decay_after, cfg), "sgd", params(),
                           options=dict(lr=0.1, momentum=0.9, weight_decay=0.1))
    assert not r.passed
    assert r.first.label.startswith("step 1 state"), r.report()   # b holds g + wd·θ in torch
    assert any("decay after momentum" in h for h in r.hints), r.report()


class BookStyleMomentum:
    """An optimizer object in the NNFS book's form: pre/update/post, layer attributes."""

    def __init__(self, learning_rate=0.1, momentum=0.9):
        self.learning_rate, self.momentum, self.iterations = learning_rate, momentum, 0

    def pre_update_params(self):
        pass

    def update_params(self, layer):
        if not hasattr(layer, "weight_momentums"):
            layer.weight_momentums = np.zeros_like(layer.weights)
            layer.bias_momentums = np.zeros_like(layer.biases)
        layer.weight_momentums = (self.momentum * layer.weight_momentums
                                  - self.learning_rate * layer.dweights)
        layer.bias_momentums = (self.momentum * layer.bias_momentums
                                - self.learning_rate * layer.dbiases)
        layer.weights += layer.weight_momentums
        layer.biases += layer.bias_momentums

    def post_update_params(self):
        self.iterations += 1


def test_a_layer_updating_optimizer_is_driven_and_its_velocity_matched():
    r = compare_optimizers(layer_rule(BookStyleMomentum()), "sgd", params(),
                           options=dict(lr=0.1, momentum=0.9))
    assert r.passed, r.report()
    assert any("momentums (torch momentum_buffer)" in c.label for c in r.checks)
    assert r.form == "layer"


def test_a_velocity_with_the_wrong_sign_fails_in_state_at_step_1():
    class Flipped(BookStyleMomentum):
        def update_params(self, layer):
            super().update_params(layer)
            layer.weight_momentums = -layer.weight_momentums   # a planted slip in the state
    r = compare_optimizers(layer_rule(Flipped()), "sgd", params(),
                           options=dict(lr=0.1, momentum=0.9))
    assert r.first.label == "step 1 state 0.weight.momentums (torch momentum_buffer)", (
        r.report())


# ---- what the caller hands in -----------------------------------------------------------

def _one_line(excinfo, *fragments):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for f in fragments:
        assert f in msg, msg


def test_gradients_shaped_unlike_the_parameters_are_refused():
    grads = [{k: np.ones(v.shape) for k, v in params().items()} for _ in range(2)]
    grads[1]["0.bias"] = np.ones(5)
    with pytest.raises(ValueError) as e:
        compare_optimizers(reference_rule("sgd", {}), "sgd", params(), grads, steps=2)
    _one_line(e, "grads step 2 0.bias", "shape (5,)")


def test_nan_gradients_are_refused():
    grads = [{k: np.ones(v.shape) for k, v in params().items()}]
    grads[0]["0.weight"][1, 2] = np.nan
    with pytest.raises(ValueError) as e:
        compare_optimizers(reference_rule("sgd", {}), "sgd", params(), grads, steps=1)
    _one_line(e, "grads step 1 0.weight", "non-finite")


def test_an_unknown_state_name_is_refused_with_how_to_map_it():
    def rule(p, g):
        for k in p:
            p[k] -= 0.1 * g[k]
    with pytest.raises(ValueError) as e:
        compare_optimizers(plain_rule(rule, lambda: {"0.weight": {"mystery": np.zeros(1)}}),
                           "sgd", params(), options=dict(lr=0.1))
    _one_line(e, "0.weight.mystery", "unknown state name", "state_names=")
    r = compare_optimizers(plain_rule(rule, lambda: {"0.weight": {"mystery": np.zeros(1)}}),
                           "sgd", params(), options=dict(lr=0.1), state_names={"mystery": None})
    assert r.passed, r.report()


@pytest.mark.parametrize("call, error, fragment", [
    (dict(torch_optimizer="lamb"), ValueError, "unknown kind 'lamb'"),
    (dict(options=dict(maximize=True)), TypeError, "['maximize'] not options of sgd"),
    (dict(options=dict(lr=float("nan"))), ValueError, "options lr"),
    (dict(params={"w": np.ones(3, dtype=np.float16)}), ValueError, "all float64 or all float32"),
    (dict(params={"w": np.ones(3), "b": np.ones(2, dtype=np.float32)}), ValueError,
     "['float32', 'float64']"),
    (dict(params={}), TypeError, "non-empty dict"),
    (dict(steps=0), ValueError, "steps"),
    (dict(rule=42), TypeError, "rule: expected"),
    (dict(grads={"0.weight": np.ones((5, 4)), "0.bias": np.ones(4)}), TypeError,
     "grads: expected a list of dicts"),
    (dict(grads=[], steps=2), ValueError, "0 steps of gradients for steps=2"),
], ids=["optimizer", "option", "nan-option", "float16", "mixed", "no-params", "steps", "rule",
        "one-dict", "grads-steps"])
def test_bad_arguments_are_one_line_errors(call, error, fragment):
    args = dict(rule=reference_rule("sgd", {}), torch_optimizer="sgd", params=params())
    args.update(call)
    with pytest.raises(error) as e:
        compare_optimizers(args.pop("rule"), args.pop("torch_optimizer"), args.pop("params"),
                           **args)
    _one_line(e, fragment)


def test_a_rule_that_raises_is_named_with_its_step():
    calls = []

    def rule(p, g):
        calls.append(1)
        if len(calls) == 3:
            raise ZeroDivisionError("boom\nsecond line")
    with pytest.raises(ValueError) as e:
        compare_optimizers(rule, "sgd", params())
    _one_line(e, "the rule raised at step 3: ZeroDivisionError: boom")


def test_a_rule_that_produces_nan_fails_its_check_it_is_not_refused():
    def rule(p, g):
        return {k: v * np.nan for k, v in p.items()}
    r = compare_optimizers(rule, "sgd", params())
    assert not r.passed and r.first.rule == "finite", r.report()


def test_state_kept_in_other_units_fails_and_the_hint_says_only_state_differs():
    """torch's momentum buffer reported under cs231n's name ``velocity`` (which means
    −lr times it): every parameter agrees, every velocity check fails."""
    rule = reference_rule("sgd", dict(lr=0.1, momentum=0.9))
    renamed = plain_rule(rule.step, lambda: {k: {"velocity": st["momentum_buffer"]}
                                             for k, st in rule.state().items()})
    r = compare_optimizers(renamed, "sgd", params(), options=dict(lr=0.1, momentum=0.9))
    assert all(c.passed for c in r.checks if c.quantity == "param")
    assert r.first.label == "step 1 state 0.weight.velocity (torch momentum_buffer)"
    assert r.hints and "only state differs" in r.hints[0], r.report()


def test_an_integer_hyperparameter_in_a_cs231n_config_is_not_state():
    def sgd(w, dw, config=None):
        return w - config["learning_rate"] * dw, config
    r = compare_optimizers(cs231n_rule(sgd, {"learning_rate": 1}), "sgd", params(),
                           options=dict(lr=1.0))
    assert r.passed, r.report()
    assert "the rule " in compare_optimizers(cs231n_rule(sgd, {"learning_rate": 2}), "sgd",
                                             params(), options=dict(lr=1.0)).report()


def test_float32_beyond_the_table_is_judged_against_the_float64_evaluation():
    """A float32 rule that rounds its parameters through float16 every step: beyond the
    table, and the precision rule finds it farther from the float64 evaluation of the same
    steps than torch is (an evaluation that is no evaluation — zeros — puts both at one
    distance and passes it)."""
    inner = reference_rule("adam", dict(lr=1e-2))

    def step(p, g):
        inner.step(p, g)
        return {k: v.astype(np.float16).astype(np.float32) for k, v in p.items()}
    r = compare_optimizers(plain_rule(step, inner.state), "adam", params(dtype="float32"),
                           options=dict(lr=1e-2))
    assert not r.passed and r.first.rule == "precision", r.report()
    assert r.first.err_numpy > 10 * r.first.err_torch, r.report()


def test_steps_default_to_the_number_of_gradients_given():
    grads = [{k: np.ones(v.shape) for k, v in params().items()} for _ in range(3)]
    r = compare_optimizers(reference_rule("adam", {}), "adam", params(), grads)
    assert r.steps == 3 and r.passed, r.report()
