"""Property-based parity: hypothesis draws random MLP specs (widths 1–32, 1–3 hidden layers,
ReLU/Sigmoid/Tanh, optional BatchNorm/LayerNorm/Dropout, every loss, SGD with or without
momentum/dampening/Nesterov/weight decay, Adam and AdamW with or without AMSGrad), batch sizes
1–16, seeds, both dtypes and, for the logit losses, saturated logits (the output layer scaled
so that the first forward's largest |logit| is 40 or 100), and ``parity.compare`` must pass on
each — plus the finite-difference oracle on the NumPy side (float64).
``test_strategy_reaches`` proves each of those regions is drawn (``REGIONS``).

Examples per test come from the profiles in ``tests/conftest.py`` (``default``: 25, the same
ones every run; ``thorough``: 300 random ones). Every input is a pure function of the drawn
values (the batch is generated from the drawn seed with a numpy Generator), so a failure
shrinks to a minimal, reproducible spec.
"""

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, assume, find, given, settings
from hypothesis import strategies as st
from parity.reference.init import INITIALIZERS
from parity.reference.layers import BatchNorm1d, LayerNorm

from parity import finite_diff as fd
from parity import layerspec as S
from parity.catalogue.checks import check_model, compare
from parity.catalogue.spec import ModelSpec
from parity.dtypes import DTYPES
from parity.kinds import OPTIMIZERS
from parity.masks import DropoutMaskRecorder
from parity.twins import OptimSpec

# first entries are the simplest: hypothesis shrinks towards them
ACTIVATIONS = ("relu", "tanh", "sigmoid")
NORMS = (None, "batchnorm", "layernorm")
DROPOUT = (None, 0.5, 0.2)
# the drawn names above → layerspec types (names keep hypothesis's output readable)
SPEC_OF = {"relu": S.ReLU, "tanh": S.Tanh, "sigmoid": S.Sigmoid, "batchnorm": S.BatchNorm1d,
           "layernorm": S.LayerNorm}
LOSSES = ("cross_entropy", "bce_with_logits", "bce")
BN_REFUSAL = "Expected more than 1 value per channel when training"
NORM_EPS = 1e-5   # BatchNorm1d / LayerNorm default eps
# SGD dampening τ: 0.1 and 0.3 tell τ from 1 − τ apart (0.5 would not)
DAMPENING = (0.0, 0.1, 0.3)
# largest |logit| of the first forward, set by scaling the output Linear (None: as drawn);
# ≥ 30 saturates: softmax / sigmoid within e^-30 ≈ 1e-13 of 0 or 1
SATURATE = (None, 40.0, 100.0)
LOGIT_LOSSES = ("cross_entropy", "bce_with_logits")

# deadline=None in both profiles; one example costs a few ms, the first one imports more
SETTINGS = settings(suppress_health_check=[HealthCheck.too_slow])


@st.composite
def optimizers(draw) -> OptimSpec:
    kind = draw(st.sampled_from(tuple(OPTIMIZERS)))
    wd = draw(st.sampled_from((0.0, 1e-3, 0.1)))
    decay = draw(st.sampled_from(("all", "weights")))
    if kind == "sgd":
        lr = draw(st.sampled_from((0.1, 0.01, 1.0)))
        options = {}
        momentum = draw(st.sampled_from((0.0, 0.9, 0.5)))
        if momentum:
            options["momentum"] = momentum
            if draw(st.booleans()):   # torch: nesterov needs momentum > 0, dampening 0
                options["nesterov"] = True
            else:
                options["dampening"] = draw(st.sampled_from(DAMPENING))
        return OptimSpec("sgd", lr, options, weight_decay=wd, decay=decay)
    lr = draw(st.sampled_from((1e-3, 1e-2, 0.1)))
    if kind == "rmsprop":
        options = {"alpha": draw(st.sampled_from((0.99, 0.9))), "centered": draw(st.booleans()),
                   "momentum": draw(st.sampled_from((0.0, 0.9)))}
    elif kind == "adagrad":
        options = {"lr_decay": draw(st.sampled_from((0.0, 0.1))),
                   "initial_accumulator_value": draw(st.sampled_from((0.0, 0.1)))}
    else:
        options = {"amsgrad": draw(st.booleans())}
    return OptimSpec(kind, lr, options, weight_decay=wd, decay=decay)


@st.composite
def mlp_specs(draw) -> ModelSpec:
    """``Linear → [norm] → activation → [dropout]`` per hidden layer, then the output Linear
    (K = 2–5 classes for cross-entropy, 1 unit for the binary losses; BCE on probabilities
    gets a final Sigmoid). Hidden widths 1–32, LayerNorm(1) included (its output is its bias
    alone and its weight gradient 0: ``test_layernorm_over_one_feature``)."""
    d_in = draw(st.integers(1, 8))
    act, norm, p = (draw(st.sampled_from(v)) for v in (ACTIVATIONS, NORMS, DROPOUT))
    widths = draw(st.lists(st.integers(1, 32), min_size=1, max_size=3))
    loss = draw(st.sampled_from(LOSSES))
    k = draw(st.integers(2, 5)) if loss == "cross_entropy" else 1
    dims = (d_in, *widths)
    layers: list[S.LayerSpec] = []
    for i, o in zip(dims, dims[1:]):
        layers.append(S.Linear(i, o))
        if norm:
            layers.append(SPEC_OF[norm](o))
        layers.append(SPEC_OF[act]())
        if p is not None:
            layers.append(S.Dropout(p))
    layers.append(S.Linear(dims[-1], k))
    if loss == "bce":
        layers.append(S.Sigmoid())
    return ModelSpec(name="hypothesis-mlp", source="tests/test_properties.py",
                     summary="random MLP drawn by hypothesis", layers=tuple(layers), loss=loss,
                     optimizer=draw(optimizers()), dataset="xor",
                     init=draw(st.sampled_from(sorted(INITIALIZERS))), epochs=1)


@dataclass(frozen=True)
class Inputs:
    """How a batch's ``X`` is drawn: ``scale·(Z + shift)`` with ``Z`` standard normal or,
    ``tails="t2"``, Student's t with 2 degrees of freedom (infinite variance: a few entries
    tens of scales out), and the ``constant`` columns (indices mod the input width) set to
    one value, ``scale·(shift + 1)``. ``Inputs()`` is ``N(0, 1)``, the batches of every
    example pinned below."""

    scale: float = 1.0
    shift: float = 0.0
    tails: str = "normal"
    constant: tuple[int, ...] = ()


NORMAL = Inputs()


@st.composite
def inputs(draw) -> Inputs:
    """Scales 1e-3…1e3, means shifted by 3 or −10 scales (a norm layer then sees inputs
    that nearly cancel against their mean), heavy tails, up to 2 constant columns (one input
    wide: every row the same). Simplest first: ``N(0, 1)``."""
    return Inputs(10.0 ** draw(st.sampled_from((0, -3, 3, -1, 1, -2, 2))),
                  draw(st.sampled_from((0.0, 3.0, -10.0))),
                  draw(st.sampled_from(("normal", "t2"))),
                  tuple(draw(st.lists(st.integers(0, 7), max_size=2, unique=True))))


def make_batch(spec: ModelSpec, n: int, seed: int, inputs: Inputs = NORMAL):
    """``X`` of shape ``(n, in)`` drawn as ``inputs`` says (default ``N(0, 1)``) and valid
    labels for the spec's loss, from ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    shape = (n, spec.layers[0].in_features)
    X = rng.standard_t(2, shape) if inputs.tails == "t2" else rng.standard_normal(shape)
    if inputs != NORMAL:
        X = inputs.scale * (X + inputs.shift)
        for j in inputs.constant:
            X[:, j % shape[1]] = inputs.scale * (inputs.shift + 1.0)
    k = spec.layers[-1].out_features if spec.loss == "cross_entropy" else 2
    return X, rng.integers(0, k, n)


def has_batchnorm(spec: ModelSpec) -> bool:
    return spec.has(S.BatchNorm1d)


def dropout_masks(spec: ModelSpec, seed: int, X: np.ndarray, dtype: str = "float64") -> dict:
    """The dropout keep-masks torch draws in compare's first training forward
    (``manual_seed(seed)``, recorded by the same hook), by layer index."""
    t_model = spec.build_torch(dtype)
    recorder = DropoutMaskRecorder(t_model)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            t_model.train()(torch.from_numpy(X.astype(dtype)))
        return recorder.take()
    finally:
        recorder.remove()


def first_forward(np_model, masks: dict, X: np.ndarray) -> list[np.ndarray]:
    """Inputs of every layer and the output, ``[x_0 = X, …, x_L]``, of a training forward of
    ``np_model`` (which it changes: BatchNorm buffers, cached inputs) with ``masks``."""
    xs = [X.astype(np_model.layers[0].params["weight"].dtype)]
    for i, layer in enumerate(np_model.layers):
        layer.queue_masks(masks[i]) if i in masks else None
        xs.append(layer.forward(xs[-1], True))
    return xs


def norm_condition(spec: ModelSpec, seed: int, X: np.ndarray) -> float:
    """``κ = max |x| / sqrt(var + eps)`` over the inputs ``x`` of every norm layer (variance
    along the normalized axis), in compare's first training step: float64 NumPy forward with
    the dropout masks torch draws there.

    Rounding ``x − mean`` costs ``ε·|x|`` absolute, so x̂ and every gradient through the layer
    carry a relative error of ~``ε·κ``: κ ≈ 140 gave 4e-6 between the float32 twins (each
    1e-5 from float64) — beyond the float32 table, which was measured on the catalogue."""
    np_model = spec.build_numpy(seed, "float64")
    xs = first_forward(np_model, dropout_masks(spec, seed, X), X)
    return max((float((np.abs(x) / np.sqrt(x.var(axis=layer.axis, keepdims=True) + layer.eps)
                       ).max()) for layer, x in zip(np_model.layers, xs)
                if isinstance(layer, BatchNorm1d | LayerNorm)), default=0.0)


@dataclass(frozen=True)
class Case:
    """One drawn example: ``spec``, batch size ``n``, ``seed``, ``dtype``, ``saturate``:
    None, or the largest |logit| of compare's first forward, reached by scaling the output
    Linear (W and b) by ``c = saturate / max|z|`` — the logits ``z = h·W + b`` are linear in
    (W, b) and ``h`` does not depend on them, so they become ``c·z`` exactly (up to rounding)
    — and how the batch's inputs are drawn (``Inputs``)."""

    spec: ModelSpec
    n: int
    seed: int
    dtype: str
    saturate: float | None
    inputs: Inputs = NORMAL

    def batch(self):
        return make_batch(self.spec, self.n, self.seed, self.inputs)

    def logit_scale(self) -> float:
        """``c`` from a float64 forward (1 when not saturating, or when ``z ≡ 0``: every
        unit dead or dropped with zero biases — no weight scale saturates that)."""
        if self.saturate is None:
            return 1.0
        X = self.batch()[0]
        z = first_forward(self.spec.build_numpy(self.seed, "float64"),
                          dropout_masks(self.spec, self.seed, X, self.dtype), X)[-1]
        top = float(np.abs(z).max())
        return self.saturate / top if top > 0 else 1.0

    def np_model(self):
        """``spec.build_numpy(seed, dtype)``, its output Linear scaled by ``logit_scale``."""
        model = self.spec.build_numpy(self.seed, self.dtype)
        c = self.logit_scale()
        for v in model.layers[-1].params.values():
            v *= v.dtype.type(c)
        return model

    def first_logits(self) -> np.ndarray:
        """The logits compare's first training forward produces, in ``dtype``."""
        X = self.batch()[0]
        return first_forward(self.np_model(), dropout_masks(self.spec, self.seed, X, self.dtype),
                             X)[-1]


@st.composite
def cases(draw) -> Case:
    spec = draw(mlp_specs())
    n, seed = draw(st.integers(1, 16)), draw(st.integers(0, 2**32 - 1))
    dtype = draw(st.sampled_from(DTYPES))
    saturate = draw(st.sampled_from(SATURATE)) if spec.loss in LOGIT_LOSSES else None
    return Case(spec, n, seed, dtype, saturate, draw(inputs()))


@SETTINGS
@given(case=cases())
def test_random_mlp_parity(case):
    spec, n, seed, dtype = case.spec, case.n, case.seed, case.dtype
    X, y = case.batch()
    if n == 1 and has_batchnorm(spec):
        # both sides refuse a training batch of 1 (torch raises first inside compare)
        with pytest.raises(ValueError, match=BN_REFUSAL):
            compare(spec, dtype, seed, batch=(X, y))
        with pytest.raises(ValueError, match="(?i)" + BN_REFUSAL):
            spec.build_numpy(seed, dtype).forward(X.astype(dtype), training=True)
        return
    result = compare(spec, dtype, seed, batch=(X, y), np_model=case.np_model())
    assert result.passed, (f"{spec.layers} {spec.loss} {spec.optimizer} "
                           f"saturate={case.saturate}\n{result.report()}")


def _option(case: Case, key: str, default=0):
    return case.spec.optimizer.options.get(key, default)


def _saturated(case: Case, loss: str) -> bool:
    return case.spec.loss == loss and float(np.abs(case.first_logits()).max()) >= 30


# regions of the optimizer and loss rules a strategy must reach to test them at all
REGIONS = {
    # dampening with τ ≠ 1 − τ: swapping τ and 1 − τ is visible
    "sgd-dampening": lambda c: c.spec.optimizer.kind == "sgd"
    and _option(c, "dampening") not in (0, 0.5),
    "sgd-nesterov": lambda c: bool(_option(c, "nesterov", False)),
    "sgd-momentum-weight-decay": lambda c: c.spec.optimizer.kind == "sgd"
    and _option(c, "momentum") > 0 and c.spec.optimizer.weight_decay > 0,
    "amsgrad": lambda c: bool(_option(c, "amsgrad", False)),
    "adamw-weight-decay": lambda c: c.spec.optimizer.kind == "adamw"
    and c.spec.optimizer.weight_decay > 0,
    "saturated-bce-with-logits": lambda c: _saturated(c, "bce_with_logits"),
    "saturated-cross-entropy": lambda c: _saturated(c, "cross_entropy"),
    # x̂ ≡ 0: the weight gradient is 0 in exact arithmetic, torch's rounding noise
    "layernorm-one-feature": lambda c: S.LayerNorm(1) in c.spec.layers,
    "float32-norm-layer": lambda c: c.dtype == "float32"
    and (c.spec.has(S.LayerNorm) or c.spec.has(S.BatchNorm1d)),
    # inputs off N(0, 1)
    "inputs-scale-1e-3": lambda c: c.inputs.scale == 1e-3,
    "inputs-scale-1e3": lambda c: c.inputs.scale == 1e3,
    "inputs-shifted-mean-norm-layer": lambda c: c.inputs.shift != 0
    and (c.spec.has(S.LayerNorm) or c.spec.has(S.BatchNorm1d)),
    "inputs-heavy-tails": lambda c: c.inputs.tails == "t2",
    "inputs-constant-column": lambda c: bool(c.inputs.constant),
    "inputs-all-constant-float32-batchnorm": lambda c: c.dtype == "float32"
    and c.spec.has(S.BatchNorm1d) and c.spec.layers[0].in_features == 1
    and bool(c.inputs.constant) and c.n > 1,
}


@pytest.mark.parametrize("region", REGIONS)
def test_strategy_reaches(region):
    """``cases()`` draws an example in ``region`` (derandomized: the same search every run,
    whatever the profile; the first example found, unshrunk); the logit regions measure the
    first forward's logits."""
    example = find(cases(), REGIONS[region],
                   settings=settings(derandomize=True, database=None, max_examples=500,
                                     phases=[Phase.generate],
                                     suppress_health_check=list(HealthCheck)))
    assert REGIONS[region](example)


@SETTINGS
@given(optim=optimizers())
def test_drawn_optimizers_are_ones_torch_accepts(optim):
    """Every drawn optimizer is one torch builds (torch refuses nesterov without momentum or
    with dampening, see below), and so does the reference."""
    w = torch.nn.Parameter(torch.zeros(2))
    record = OPTIMIZERS[optim.kind]
    record.build_torch([{"params": [w], "weight_decay": optim.weight_decay}],
                       lr=optim.lr, **optim.options)
    record.build_numpy({"w": np.zeros(2)}, lr=optim.lr, weight_decay=optim.weight_decay,
                       **optim.options)


@pytest.mark.parametrize("options", [dict(momentum=0.9, dampening=0.1),
                                     dict(momentum=0.0)], ids=["dampening", "no-momentum"])
def test_torch_and_reference_refuse_nesterov_outside_its_rule(options):
    w = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero "
                                         "dampening"):
        torch.optim.SGD([w], lr=0.1, nesterov=True, **options)
    with pytest.raises(ValueError, match="nesterov momentum requires a momentum and zero "
                                         "dampening"):
        OPTIMIZERS["sgd"].build_numpy({"w": np.zeros(2)}, lr=0.1, nesterov=True, **options)


def test_batch_of_one_with_batchnorm_is_refused_by_both_sides():
    spec = ModelSpec(name="bn-1", source="tests/test_properties.py", summary="",
                     layers=(S.Linear(2, 3), S.BatchNorm1d(3), S.ReLU(), S.Linear(3, 2)),
                     loss="cross_entropy", optimizer=OptimSpec("sgd", 0.1), dataset="xor",
                     init="he", epochs=1)
    X, y = make_batch(spec, 1, 0)
    with pytest.raises(ValueError, match=BN_REFUSAL):
        compare(spec, "float64", 0, batch=(X, y))
    with pytest.raises(ValueError, match="BatchNorm1d.*more than 1 value per channel"):
        spec.build_numpy(0).forward(X, training=True)
    assert compare(spec, "float64", 0, batch=make_batch(spec, 2, 0)).passed


# ---- what hypothesis found: minimal examples, verbatim ----------------------------------------
def found_spec(layers, init="he") -> ModelSpec:
    return ModelSpec(name="hypothesis-mlp", source="tests/test_properties.py",
                     summary="random MLP drawn by hypothesis", layers=layers,
                     loss="bce_with_logits", optimizer=OptimSpec("sgd", 0.1), dataset="xor",
                     init=init, epochs=1)


# thorough profile, test_random_mlp_parity: n=1, seed=0, dtype="float64"
LAYERNORM_1 = found_spec((S.Linear(1, 1), S.LayerNorm(1), S.Tanh(), S.Linear(1, 4),
                          S.LayerNorm(4), S.Tanh(), S.Linear(4, 1)))


def test_layernorm_over_one_feature():
    """LayerNorm(1)'s weight gradient is 0 by construction (x̂ ≡ 0 over one feature): NumPy
    gets exactly 0, torch rounding noise (x·rstd − mean·rstd with rstd = 1/sqrt(eps)). The
    float64 table judges it against the step's gradient scale, where noise belongs."""
    result = compare(LAYERNORM_1, "float64", 0, batch=make_batch(LAYERNORM_1, 1, 0))
    assert result.passed, result.report()
    assert not result.arrays["grads_numpy"]["1.weight"].any()
    (check,) = [c for c in result.checks if c.label == "step 1 grad 1.weight"]
    assert check.rule == "table" and check.max_abs <= check.atol * check.scale


# float32 with BatchNorm/LayerNorm: found by hypothesis when float32 was judged by a fixed
# table measured on the catalogue. float64 parity and the finite differences pass on both, and
# the float32 rule (parity.judge: table on the tensor's scale, then the float64 evaluation)
# passes them.
FLOAT32_FOUND = [
    pytest.param(  # n=5, seed=1: LayerNorm input row (0.5369, 0.5413), κ ≈ 140; both float32
        # twins ~1e-5 from float64 in grad 0.weight / 0.bias (|g| ≈ 10)
        found_spec((S.Linear(2, 2), S.LayerNorm(2), S.ReLU(), S.Linear(2, 1))), 5, 1,
        (100, 200), id="layernorm-kappa-140"),
    pytest.param(  # n=1, seed=4294967295, κ = 2.9: grad 0.bias (|g| = 5.1e-3) is a small
        # difference of LayerNorm-backward terms ~75× larger
        found_spec((S.Linear(1, 5), S.LayerNorm(5), S.Tanh(), S.Dropout(0.5),
                    S.Linear(5, 4), S.LayerNorm(4), S.Tanh(), S.Dropout(0.5),
                    S.Linear(4, 1)), init="normal0.5"), 1, 2**32 - 1,
        (2, 4), id="layernorm-cancellation"),
]


@pytest.mark.parametrize("spec,n,seed,kappa", FLOAT32_FOUND)
def test_float32_norm_layer_found_by_hypothesis(spec, n, seed, kappa):
    batch = make_batch(spec, n, seed)
    assert kappa[0] < norm_condition(spec, seed, batch[0]) < kappa[1]
    result = compare(spec, "float32", seed, batch=batch)
    assert result.passed, result.report()
    assert compare(spec, "float64", seed, batch=batch).passed
    r = check_model(spec, seed, n=n, data=batch, richardson=True)
    assert r.passed, r.report()


TUPLE_OF = {"linear": S.Linear, "dropout": S.Dropout, **SPEC_OF}


def found_case(layers, loss, optimizer, init, n, seed, saturate=None,
               dtype="float32") -> Case:
    """A case hypothesis found, its layers written as ``(name, *args)`` the way the
    falsifying example prints them (``("linear", 6, 2)`` is ``S.Linear(6, 2)``)."""
    layers = tuple(TUPLE_OF[name](*args) for name, *args in layers)
    spec = ModelSpec(name="hypothesis-mlp", source="tests/test_properties.py",
                     summary="random MLP drawn by hypothesis", layers=layers, loss=loss,
                     optimizer=optimizer, dataset="xor", init=init, epochs=1)
    return Case(spec, n, seed, dtype, saturate)


# thorough profile, test_random_mlp_parity once float32 norm nets were no longer assumed away;
# each failed the precision rule because σ (parity.precise) left out an error source of a
# float32 kernel, named in the id; "before" gives the failing check's distances then.
FLOAT32_KERNEL_FOUND = [
    pytest.param(  # κ ≈ 14; torch's LayerNorm backward sums g·x over raw x: step 1 grad
        # 0.weight torch 1.6e-8, NumPy 1.4e-9, σ 4.7e-9
        found_case((("linear", 6, 2), ("layernorm", 2), ("sigmoid",), ("linear", 2, 6),
                    ("layernorm", 6), ("sigmoid",), ("linear", 6, 1), ("sigmoid",)), "bce",
                   OptimSpec("adam", 1e-3, {"amsgrad": False}), "he", 6, 6),
        (10, 20), None, id="layernorm-raw-x"),
    pytest.param(  # batch of 2: the float32 batch mean's error moves both x̂: step 3 grad
        # 0.bias (exact 0) torch 1.5e-3, NumPy 3.6e-6, σ 1.9e-5
        found_case((("linear", 2, 13), ("batchnorm", 13), ("sigmoid",), ("dropout", 0.5),
                    ("linear", 13, 1)), "bce_with_logits",
                   OptimSpec("adam", 0.1, {"amsgrad": True}, weight_decay=1e-3,
                             decay="weights"), "normal0.5", 2, 17384, 40.0),
        (10, 20), 30, id="batchnorm-mean-of-2"),
    pytest.param(  # |logit| 100, after two steps at lr 1 |a| ≈ 16: σ(a) − 1 keeps only σ(a)'s
        # rounding: step 3 grad 1.bias NumPy 6.0e-7, torch 8.2e-8, σ 1.3e-13
        found_case((("linear", 7, 4), ("layernorm", 4), ("tanh",), ("dropout", 0.5),
                    ("linear", 4, 1)), "bce_with_logits",
                   OptimSpec("sgd", 1.0, {"momentum": 0.5, "nesterov": True},
                             weight_decay=1e-3, decay="weights"), "he", 4, 29258, 100.0),
        (3, 4), 30, id="sigmoid-minus-target"),
    pytest.param(  # |logit| 40: torch's loss (1 − y)·a − log σ(a) is −40 − (−40 − 4e-18) = 0
        # for a = −40, y = 0: step 1 loss torch 2.2e-18, NumPy 1.2e-23, σ 8.0e-23
        found_case((("linear", 1, 30), ("layernorm", 30), ("tanh",), ("linear", 30, 21),
                    ("layernorm", 21), ("tanh",), ("linear", 21, 32), ("layernorm", 32),
                    ("tanh",), ("linear", 32, 1)), "bce_with_logits",
                   OptimSpec("adamw", 0.01, {"amsgrad": True}, weight_decay=0.1), "he", 2,
                   2**32 - 1, 40.0),
        (2, 3), 30, id="bce-with-logits-loss-cancels"),
    pytest.param(  # |logit| 100, n = 1: σ(−100) = 3.7e-44 is a float32 subnormal and torch
        # returns 0; the loss and every gradient lie below float32's smallest normal: step 1
        # grad 0.bias torch 1.05e-41, NumPy 1.8e-43, σ 2.5e-46
        found_case((("linear", 2, 1), ("relu",), ("linear", 1, 1)), "bce_with_logits",
                   OptimSpec("sgd", 0.1), "he", 1, 0, 100.0),
        None, 30, id="below-float32-normal"),
    # found once LayerNorm(1) was drawn and the profile drew afresh (2026-11-25); each failed
    # because σ's ±1 signs cancelled, a kernel's error was left out, or the twins did not
    # start a step from one state
    pytest.param(  # p − lr·g returns to 0: the ±1 perturbations of p and lr·g, equal in size,
        # cancelled in both samples: step 3 param 9.bias torch 7.5e-11, NumPy 1.9e-11, σ 2.4e-19
        found_case((("linear", 2, 2), ("batchnorm", 2), ("relu",), ("linear", 2, 2),
                    ("batchnorm", 2), ("relu",), ("linear", 2, 27), ("batchnorm", 27),
                    ("relu",), ("linear", 27, 1)), "bce_with_logits", OptimSpec("sgd", 0.01),
                   "he", 3, 2943948, 100.0),
        None, 30, id="update-cancels-to-zero"),
    pytest.param(  # Adam's m + (1 − β₁)(g − m) = 6e-7 from terms of 2e-3: step 2 state
        # 9.bias.exp_avg NumPy 4.7e-11, torch 1.5e-11, σ 7.2e-14 (passed by FACTOR alone)
        found_case((("linear", 5, 6), ("batchnorm", 6), ("tanh",), ("linear", 6, 27),
                    ("batchnorm", 27), ("tanh",), ("linear", 27, 19), ("batchnorm", 19),
                    ("tanh",), ("linear", 19, 1), ("sigmoid",)), "bce",
                   OptimSpec("adamw", 0.1, {"amsgrad": True}), "he", 12, 17039),
        None, None, id="adam-moment-cancels"),
    pytest.param(  # LayerNorm(1): x̂ ≡ 0, torch's a·g + b·x + c errs by u·a|g| alike in every
        # row: step 3 grad 0.bias torch 2.3e-5 (NumPy and float64: 0), σ 1.6e-5
        found_case((("linear", 1, 1), ("layernorm", 1), ("tanh",), ("linear", 1, 1),
                    ("sigmoid",)), "bce", OptimSpec("adam", 1e-3, {"amsgrad": False}), "he",
                   10, 2813),
        None, None, id="layernorm-one-feature"),
    pytest.param(  # an Adam moment that cancelled to 4e-5 at step 2 differed by 6e-10 between
        # the twins; step 3 (g = 0) kept it: state 6.bias.exp_avg torch 6.3e-10, σ 4.3e-12
        found_case((("linear", 7, 24), ("relu",), ("linear", 24, 12), ("relu",),
                    ("linear", 12, 24), ("relu",), ("linear", 24, 2)), "cross_entropy",
                   OptimSpec("adam", 0.1, {"amsgrad": False}), "normal0.01", 12, 188007, 40.0),
        None, 30, id="optimizer-state-carried-over"),
    pytest.param(  # σ(a) rounds to 1: a perturbed p = 1 + u is no value a twin computes, and
        # the float64 evaluation's BCE refused it (ValueError)
        found_case((("linear", 1, 18), ("relu",), ("linear", 18, 1), ("sigmoid",)), "bce",
                   OptimSpec("sgd", 1.0, {"momentum": 0.9, "dampening": 0.0}), "he", 1, 22),
        None, None, id="sigmoid-output-rounds-to-one"),
]


# thorough profile, test_random_mlp_parity, float64: each value below is formed from much larger
# parts that cancel, so its rounding noise is relative to the parts, not to the step's group
# scale; the table failed them (rtol 1e-10, atol 1e-12 of the group) until the float64 rounding
# rule (parity.judge, ``rounding``: |a − b| ≤ 2σ, σ of the step under float64 rounding). The
# comments give the failing check then and σ now (2026-11-25, torch 2.13.0 CPU, numpy 2.4.6).
FLOAT64_FOUND = [
    pytest.param(  # after two steps |logit| ≈ 13, the step-3 loss 1.46e-6 is a difference of
        # terms of 13 in torch's (1 − y)·a − log σ(a): |diff| 2.4e-16 (1.6e-10 of it), σ 1.3e-12
        found_case((("linear", 1, 4), ("batchnorm", 4), ("relu",), ("linear", 4, 1)),
                   "bce_with_logits", OptimSpec("sgd", 0.1), "he", 2, 0, 100.0, "float64"),
        id="bce-with-logits-loss-cancels"),
    pytest.param(  # |logit| 40: every gradient of the step is ≤ 1.8e-17; grad 12.bias, a mean
        # of σ(a) − y, is NumPy −1.4e-17, torch 0 (σ(40) rounds to 1 in float64); σ 4.0e-16
        found_case((("linear", 8, 27), ("batchnorm", 27), ("relu",), ("dropout", 0.5),
                    ("linear", 27, 27), ("batchnorm", 27), ("relu",), ("dropout", 0.5),
                    ("linear", 27, 1), ("batchnorm", 1), ("relu",), ("dropout", 0.5),
                    ("linear", 1, 1)), "bce_with_logits", OptimSpec("sgd", 0.1), "he", 15,
                   697, 40.0, "float64"),
        id="batchnorm-one-feature-bias"),
    pytest.param(  # n = 1: every gradient ≤ 1.3e-6 comes from p − 1 at p ≈ 1 − 1.3e-6, which
        # keeps p's rounding (1e-16 of 1): |diff| up to 1.5e-15 = 0.41 σ in every gradient
        found_case((("linear", 1, 15), ("layernorm", 15), ("sigmoid",), ("dropout", 0.2),
                    ("linear", 15, 23), ("layernorm", 23), ("sigmoid",), ("dropout", 0.2),
                    ("linear", 23, 15), ("layernorm", 15), ("sigmoid",), ("dropout", 0.2),
                    ("linear", 15, 2)), "cross_entropy", OptimSpec("sgd", 0.1), "he", 1, 23,
                   100.0, "float64"),
        id="saturated-cross-entropy-layernorm"),
    pytest.param(  # BCE at p ≈ 0.5 through units of N(0, 0.01) weights: grad 6.bias −2.8e-10
        # is (p − y)/(p(1 − p)) summed over a batch of 2 that cancels: |diff| 2.8e-17, σ 1.7e-16
        found_case((("linear", 1, 7), ("relu",), ("linear", 7, 1), ("relu",), ("linear", 1, 1),
                    ("relu",), ("linear", 1, 1), ("sigmoid",)), "bce", OptimSpec("sgd", 0.1),
                   "normal0.01", 2, 27, None, "float64"),
        id="bce-half-cancelling-batch"),
    pytest.param(  # |logit| 40, n = 1, AdamW at lr 0.1: step 3's gradients ~1e-7 are
        # softmax − onehot of a saturated softmax: |diff| 3.5e-16 in grad 0.weight, σ 1.1e-15
        found_case((("linear", 8, 13), ("tanh",), ("dropout", 0.2), ("linear", 13, 4),
                    ("tanh",), ("dropout", 0.2), ("linear", 4, 3), ("tanh",), ("dropout", 0.2),
                    ("linear", 3, 4)), "cross_entropy",
                   OptimSpec("adamw", 0.1, {"amsgrad": False}, weight_decay=1e-3), "normal0.5",
                   1, 20422, 40.0, "float64"),
        id="saturated-cross-entropy-adamw"),
]


@pytest.mark.parametrize("case", FLOAT64_FOUND)
def test_float64_value_formed_from_cancelling_parts(case):
    """Saturation still holds where drawn, and the float64 comparison passes; a check the
    table fails (which depends on the machine's rounding) is decided by the rounding rule."""
    if case.saturate:
        assert float(np.abs(case.first_logits()).max()) >= 30
    result = compare(case.spec, "float64", case.seed, batch=case.batch(),
                     np_model=case.np_model())
    assert result.passed, result.report()


@pytest.mark.parametrize("case,kappa,saturated", FLOAT32_KERNEL_FOUND)
def test_float32_kernel_error_found_by_hypothesis(case, kappa, saturated):
    """The condition that made each case hard still holds (κ of the norm layers' inputs, the
    first logits' saturation), and the float32 comparison passes."""
    X, y = case.batch()
    if kappa:
        assert kappa[0] < norm_condition(case.spec, case.seed, X) < kappa[1]
    if saturated:
        assert float(np.abs(case.first_logits()).max()) >= saturated
    result = compare(case.spec, "float32", case.seed, batch=(X, y), np_model=case.np_model())
    assert result.passed, result.report()


# Richardson steps, largest first: its (h/ℓ)⁴ truncation falls 256× from one to the next while
# the rounding floor (parity.finite_diff, "Error level") grows 4×
FD_STEPS = (1e-5, 2.5e-6)


def fd_at(spec, seed, n, X, y, h) -> fd.ModelCheck:
    """The oracle's ``check_model``: Richardson differences at step ``h``, n kink-free rows of
    ``X``, at most 16 entries per tensor."""
    return check_model(spec, seed, n=n, data=(X, y), h=h, max_entries=16, richardson=True)


def fd_oracle(spec, seed, n, X, y) -> fd.ModelCheck:
    """``check_model`` with Richardson differences at the largest step of ``FD_STEPS`` that
    passes (the last one's result when none does). Stacked norm layers shrink the length
    scale ℓ (``FD_TRUNCATED``); a wrong backward is off by the same amount at every step, so
    it fails at each of them."""
    for h in FD_STEPS:
        r = fd_at(spec, seed, n, X, y, h)
        if r.passed:
            break
    return r


@SETTINGS
@given(spec=mlp_specs(), n=st.integers(2, 16), seed=st.integers(0, 2**32 - 1), x=inputs())
def test_random_mlp_backward_matches_finite_differences(spec, n, seed, x):
    """The NumPy backward of the same random specs against central differences of its
    forward (training mode, fixed dropout masks); rows come from a pool of n + 8 so that any
    near a ReLU kink can be replaced. Found by this test, explained in parity.finite_diff
    ("Error level", "Truncation", "Kinks", "BCE's cap"):
    - norm layers put the function's length scale near sqrt(eps) ≈ 3e-3, where plain
      h = 1e-6 differences carry ~1e-7 of h² truncation: Richardson at h = 1e-5 instead,
      and 2.5e-6 where three stacked LayerNorms shrink it further (``fd_oracle``);
    - the loss's rounding noise sets the atol where BCE's p nears 1 (``FD_FOUND``);
    - rejected: specs without a kink-free batch (a dead ReLU unit feeding a zero-bias unit
      puts the next ReLU exactly on its kink for every row) or where a step crossed a kink
      anyway (stacked LayerNorms on 0.01·randn weights amplify h ~100× per layer, beyond the
      100·h margin); batches on which a norm layer divides by a variance below eps (all its
      inputs dropped: it sees a constant) — length scale ~1e-5, beyond any usable h; and
      batches where BCE's backward caps p(1 − p) at 1e-12, torch's convention rather than a
      derivative (test_random_mlp_parity compares the twins there). All are rare (≲ 7 % of
      draws)."""
    X, y = make_batch(spec, n + 8, seed, x)
    try:
        r = fd_oracle(spec, seed, n, X, y)
    except fd.KinkError:
        assume(False)
    assume(r.min_norm_variance >= NORM_EPS)
    assume(r.kink_crossings == 0)   # a step crossed a kink after all: no verdict possible
    assume(r.capped == 0)   # BCE's backward caps p(1 − p) at 1e-12: a convention, no derivative
    assert r.passed, f"{spec.layers} {spec.loss}\n{r.report()}"


# thorough profile, test_random_mlp_backward_matches_finite_differences: BCE on a Sigmoid output
# p near 1 for y = 0, where ∂L/∂p·p = p/(N(1 − p)) is ~1e3 while every parameter gradient is
# ≤ 1: the loss's rounding noise, ε·Q/h (parity.finite_diff, "Error level"), is 20–50× the
# atol the parameter gradients alone gave (6.8e-8 and 2.0e-7 of noise against 3.2e-9).
FD_FOUND = [
    pytest.param(found_case((("linear", 1, 30), ("relu",), ("linear", 30, 1), ("sigmoid",)),
                            "bce", OptimSpec("sgd", 0.1), "he", 9, 13660), id="bce-p-near-1"),
    pytest.param(found_case((("linear", 2, 32), ("relu",), ("dropout", 0.5), ("linear", 32, 29),
                             ("relu",), ("dropout", 0.5), ("linear", 29, 1), ("sigmoid",)),
                            "bce", OptimSpec("sgd", 0.1), "normal0.5", 3, 1067),
                 id="bce-p-near-1-dropout"),
]


@pytest.mark.parametrize("case", FD_FOUND)
def test_finite_differences_carry_the_loss_rounding_noise(case):
    """The loss's rounding sensitivity Q sets the atol (it exceeds the gradients' floor), and
    the NumPy backward matches the finite differences within it."""
    X, y = make_batch(case.spec, case.n + 8, case.seed)
    r = fd_at(case.spec, case.seed, case.n, X, y, FD_STEPS[0])
    assert r.sensitivity > 1e3
    assert r.atol == pytest.approx(fd.FD_LAMBDA * fd.EPS * r.sensitivity / 1e-5 * 3)
    assert r.kink_crossings == 0 and r.passed, r.report()


# thorough profile, test_random_mlp_backward_matches_finite_differences: a training-mode p of
# 2.4e-15 for y = 1 put the backward on BCE's cap (p(1 − p) < 1e-12), 424× from the derivative
BCE_CAPPED = found_case((("linear", 3, 15), ("relu",), ("dropout", 0.5), ("linear", 15, 17),
                         ("relu",), ("dropout", 0.5), ("linear", 17, 32), ("relu",),
                         ("dropout", 0.5), ("linear", 32, 1), ("sigmoid",)), "bce",
                        OptimSpec("sgd", 0.1), "normal0.5", 6, 16466)


def test_bce_cap_is_flagged_for_finite_differences():
    """``capped`` names the rows where the backward is torch's convention (which the twins
    share: tests/test_components.py compares the capped region with torch's BCELoss)."""
    case = BCE_CAPPED
    X, y = make_batch(case.spec, case.n + 8, case.seed)
    r = fd_at(case.spec, case.seed, case.n, X, y, FD_STEPS[0])
    assert r.capped == 1 and r.kink_crossings == 0


# thorough profile: three stacked LayerNorms after a Linear(1, 26) (smallest variance 4.7e-5)
# shrink the length scale to ~3e-4; Richardson at h = 1e-5 was off by 5.0e-6 in grad 0.bias
# (values 7.8), and by 2.0e-8 at 2.5e-6 — ∝ h⁴, truncation, not the backward
FD_TRUNCATED = found_case((("linear", 1, 26), ("layernorm", 26), ("relu",), ("dropout", 0.5),
                           ("linear", 26, 7), ("layernorm", 7), ("relu",), ("dropout", 0.5),
                           ("linear", 7, 6), ("layernorm", 6), ("relu",), ("dropout", 0.5),
                           ("linear", 6, 1)), "bce_with_logits", OptimSpec("sgd", 0.1), "he",
                          14, 49058)


def test_finite_differences_take_the_step_whose_truncation_is_below_tolerance():
    case = FD_TRUNCATED
    X, y = make_batch(case.spec, case.n + 8, case.seed)
    coarse, fine = (fd_at(case.spec, case.seed, case.n, X, y, h) for h in FD_STEPS)
    err = [r.tensors["0.bias"].max_abs for r in (coarse, fine)]
    assert err[0] > 10 * err[1], err          # ∝ h⁴: 256× in theory
    r = fd_oracle(case.spec, case.seed, case.n, X, y)
    assert r.h == FD_STEPS[1] and r.passed, r.report()
