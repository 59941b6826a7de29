"""Property-based parity: hypothesis draws random MLP specs (widths 1–32, 1–3 hidden layers,
ReLU/Sigmoid/Tanh, optional BatchNorm/LayerNorm/Dropout, every loss, SGD with or without
momentum/dampening/Nesterov/weight decay, Adam and AdamW with or without AMSGrad), batch sizes
1–16, seeds and both dtypes, and ``parity.compare`` must pass on each — plus the finite-
difference oracle on the NumPy side (float64).

Examples per test come from the profiles in ``tests/conftest.py`` (``default``: 25,
``pytest --hypothesis-profile=thorough``: 300). Every input is a pure function of the drawn
values (the batch is generated from the drawn seed with a numpy Generator), so a failure
shrinks to a minimal, reproducible spec.
"""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from parity import finite_diff as fd
from parity import transfer
from parity.compare import compare
from parity.masks import DropoutMaskRecorder
from parity.spec import DTYPES, ModelSpec, OptimSpec
from reference.init import INITIALIZERS
from reference.layers import BatchNorm1d, LayerNorm

# first entries are the simplest: hypothesis shrinks towards them
ACTIVATIONS = ("relu", "tanh", "sigmoid")
NORMS = (None, "batchnorm", "layernorm")
DROPOUT = (None, 0.5, 0.2)
LOSSES = ("cross_entropy", "bce_with_logits", "bce")
BN_REFUSAL = "Expected more than 1 value per channel when training"
NORM_EPS = 1e-5   # BatchNorm1d / LayerNorm default eps

# deadline=None in both profiles; one example costs a few ms, the first one imports more
SETTINGS = settings(suppress_health_check=[HealthCheck.too_slow])


@st.composite
def optimizers(draw) -> OptimSpec:
    kind = draw(st.sampled_from(("sgd", "adam", "adamw")))
    wd = draw(st.sampled_from((0.0, 1e-3, 0.1)))
    decay = draw(st.sampled_from(("all", "weights")))
    if kind == "sgd":
        lr = draw(st.sampled_from((0.1, 0.01, 1.0)))
        options = {}
        momentum = draw(st.sampled_from((0.0, 0.9, 0.5)))
        if momentum:
            options["momentum"] = momentum
            if draw(st.booleans()):
                options["nesterov"] = True
            else:
                options["dampening"] = draw(st.sampled_from((0.0, 0.1)))
        return OptimSpec("sgd", lr, options, weight_decay=wd, decay=decay)
    lr = draw(st.sampled_from((1e-3, 1e-2, 0.1)))
    return OptimSpec(kind, lr, {"amsgrad": draw(st.booleans())}, weight_decay=wd, decay=decay)


@st.composite
def mlp_specs(draw) -> ModelSpec:
    """``Linear → [norm] → activation → [dropout]`` per hidden layer, then the output Linear
    (K = 2–5 classes for cross-entropy, 1 unit for the binary losses; BCE on probabilities
    gets a final Sigmoid). Hidden widths 1–32, except 2–32 with LayerNorm."""
    d_in = draw(st.integers(1, 8))
    act, norm, p = (draw(st.sampled_from(v)) for v in (ACTIVATIONS, NORMS, DROPOUT))
    # LayerNorm over a single feature is excluded: see test_layernorm_over_one_feature
    narrowest = 2 if norm == "layernorm" else 1
    widths = draw(st.lists(st.integers(narrowest, 32), min_size=1, max_size=3))
    loss = draw(st.sampled_from(LOSSES))
    k = draw(st.integers(2, 5)) if loss == "cross_entropy" else 1
    dims = (d_in, *widths)
    layers = []
    for i, o in zip(dims, dims[1:]):
        layers.append(("linear", i, o))
        if norm:
            layers.append((norm, o))
        layers.append((act,))
        if p is not None:
            layers.append(("dropout", p))
    layers.append(("linear", dims[-1], k))
    if loss == "bce":
        layers.append(("sigmoid",))
    return ModelSpec(name="hypothesis-mlp", source="tests/test_properties.py",
                     summary="random MLP drawn by hypothesis", layers=tuple(layers), loss=loss,
                     optimizer=draw(optimizers()), dataset="xor",
                     init=draw(st.sampled_from(sorted(INITIALIZERS))), epochs=1)


def make_batch(spec: ModelSpec, n: int, seed: int):
    """``X ~ N(0, 1)`` of shape ``(n, in)`` and valid labels for the spec's loss, from
    ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, spec.layers[0][1]))
    k = spec.layers[-1][2] if spec.loss == "cross_entropy" else 2
    return X, rng.integers(0, k, n)


def has_batchnorm(spec: ModelSpec) -> bool:
    return any(item[0] == "batchnorm" for item in spec.layers)


def has_norm(spec: ModelSpec) -> bool:
    return any(item[0] in ("batchnorm", "layernorm") for item in spec.layers)


def norm_condition(spec: ModelSpec, seed: int, X: np.ndarray) -> float:
    """``κ = max |x| / sqrt(var + eps)`` over the inputs ``x`` of every norm layer (variance
    along the normalized axis), in compare's first training step: float64 NumPy forward with
    the dropout masks torch draws there (``manual_seed(seed)``, recorded by the same hook).

    Rounding ``x − mean`` costs ``ε·|x|`` absolute, so x̂ and every gradient through the layer
    carry a relative error of ~``ε·κ``: κ ≈ 140 gave 4e-6 between the float32 twins (each
    1e-5 from float64) — beyond the float32 table, which was measured on the catalogue."""
    t_model = spec.build_torch("float64")
    np_model = spec.build_numpy(seed, "float64")
    transfer.numpy_to_torch(np_model, t_model)
    recorder = DropoutMaskRecorder(t_model)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            t_model.train()(torch.from_numpy(X))
        masks = recorder.take()
    finally:
        recorder.remove()
    kappa, x = 0.0, X
    for i, layer in enumerate(np_model.layers):
        if isinstance(layer, BatchNorm1d | LayerNorm):
            spread = np.sqrt(x.var(axis=layer.axis, keepdims=True) + layer.eps)
            kappa = max(kappa, float((np.abs(x) / spread).max()))
        layer.queue_masks(masks[i]) if i in masks else None
        x = layer.forward(x, True)
    return kappa


@SETTINGS
@given(spec=mlp_specs(), n=st.integers(1, 16), seed=st.integers(0, 2**32 - 1),
       dtype=st.sampled_from(DTYPES))
def test_random_mlp_parity(spec, n, seed, dtype):
    X, y = make_batch(spec, n, seed)
    if n == 1 and has_batchnorm(spec):
        # both sides refuse a training batch of 1 (torch raises first inside compare)
        with pytest.raises(ValueError, match=BN_REFUSAL):
            compare(spec, dtype, seed, batch=(X, y))
        with pytest.raises(ValueError, match="(?i)" + BN_REFUSAL):
            spec.build_numpy(seed, dtype).forward(X.astype(dtype), training=True)
        return
    # float32 with norm layers is out of the table's reach for random nets (FLOAT32_FOUND)
    assume(dtype == "float64" or not has_norm(spec))
    result = compare(spec, dtype, seed, batch=(X, y))
    assert result.passed, f"{spec.layers} {spec.loss} {spec.optimizer}\n{result.report()}"


def test_batch_of_one_with_batchnorm_is_refused_by_both_sides():
    spec = ModelSpec(name="bn-1", source="tests/test_properties.py", summary="",
                     layers=(("linear", 2, 3), ("batchnorm", 3), ("relu",), ("linear", 3, 2)),
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
LAYERNORM_1 = found_spec((("linear", 1, 1), ("layernorm", 1), ("tanh",), ("linear", 1, 4),
                          ("layernorm", 4), ("tanh",), ("linear", 4, 1)))
@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "compare judges a gradient that is 0 by construction by atol alone (float64: 1e-12); "
    "torch's LayerNorm(1) weight gradient is rounding noise, -1.12e-12 (x·rstd − mean·rstd with "
    "rstd = 1/sqrt(eps) = 316, times an upstream gradient of ~500), NumPy's exactly 0"))
def test_layernorm_over_one_feature():
    result = compare(LAYERNORM_1, "float64", 0, batch=make_batch(LAYERNORM_1, 1, 0))
    assert result.passed, result.report()


def test_layernorm_over_one_feature_diagnosis():
    """Why the case above fails: only the LayerNorm(1) weight gradient, whose true value is 0
    (x̂ ≡ 0 over one feature), and only by rounding noise ≪ the model's gradient scale."""
    result = compare(LAYERNORM_1, "float64", 0, batch=make_batch(LAYERNORM_1, 1, 0))
    assert [c.label for c in result.failures()] == ["step 1 grad 1.weight"]
    assert not result.arrays["grads_numpy"]["1.weight"].any()
    noise = np.abs(result.arrays["grads_torch"]["1.weight"]).max()
    scale = max(np.abs(g).max() for g in result.arrays["grads_torch"].values())
    assert 1e-12 < noise < 1e-14 * scale


# float32 with BatchNorm/LayerNorm: the float32 table (rtol 1.3e-6, atol 1e-5) was measured on
# the catalogue; random nets find norm layers where float32 itself is the limit. In both cases
# float64 parity and the finite differences pass: no gradient is wrong. After the first,
# test_random_mlp_parity excluded κ > 10 (norm_condition) in float32; hypothesis then found
# the second at κ = 2.9, so float32 random specs are drawn without norm layers.
FLOAT32_FOUND = [
    pytest.param(  # n=5, seed=1: LayerNorm input row (0.5369, 0.5413), κ ≈ 140; both float32
        # twins ~1e-5 from float64 in grad 0.weight / 0.bias (|g| ≈ 10), 4e-5 apart
        found_spec((("linear", 2, 2), ("layernorm", 2), ("relu",), ("linear", 2, 1))), 5, 1,
        (100, 200), id="layernorm-kappa-140"),
    pytest.param(  # n=1, seed=4294967295, κ = 2.9: grad 0.bias (|g| = 5.1e-3) is a small
        # difference of LayerNorm-backward terms ~75× larger; NumPy float32 is 8.5e-6 from
        # float64, torch 1.9e-6; 1.04e-5 apart (atol 1e-5)
        found_spec((("linear", 1, 5), ("layernorm", 5), ("tanh",), ("dropout", 0.5),
                    ("linear", 5, 4), ("layernorm", 4), ("tanh",), ("dropout", 0.5),
                    ("linear", 4, 1)), init="normal0.5"), 1, 2**32 - 1,
        (2, 4), id="layernorm-cancellation"),
]


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "float32 conditioning of LayerNorm beyond the catalogue-measured float32 table, not a "
    "wrong gradient (see FLOAT32_FOUND)"))
@pytest.mark.parametrize("spec,n,seed,kappa", FLOAT32_FOUND)
def test_float32_norm_layer_found_by_hypothesis(spec, n, seed, kappa):
    result = compare(spec, "float32", seed, batch=make_batch(spec, n, seed))
    assert result.passed, result.report()


@pytest.mark.parametrize("spec,n,seed,kappa", FLOAT32_FOUND)
def test_float32_norm_layer_found_by_hypothesis_diagnosis(spec, n, seed, kappa):
    """Why those fail: float64 parity holds, the NumPy gradients match finite differences,
    and float32 differs in gradients only (forward, loss and update agree); κ as stated."""
    batch = make_batch(spec, n, seed)
    assert kappa[0] < norm_condition(spec, seed, batch[0]) < kappa[1]
    assert compare(spec, "float64", seed, batch=batch).passed
    r = fd.check_model(spec, seed, n=n, data=batch, richardson=True)
    assert r.passed, r.report()
    failing = {c.quantity for c in compare(spec, "float32", seed, batch=batch).failures()}
    assert failing == {"grad"}


@SETTINGS
@given(spec=mlp_specs(), n=st.integers(2, 16), seed=st.integers(0, 2**32 - 1))
def test_random_mlp_backward_matches_finite_differences(spec, n, seed):
    """The NumPy backward of the same random specs against central differences of its
    forward (training mode, fixed dropout masks); rows come from a pool of n + 8 so that any
    near a ReLU kink can be replaced. Found by this test, explained in parity.finite_diff
    ("Truncation", "Kinks"):
    - norm layers put the function's length scale near sqrt(eps) ≈ 3e-3, where plain
      h = 1e-6 differences carry ~1e-7 of h² truncation: Richardson at h = 1e-5 instead;
    - rejected: specs without a kink-free batch (a dead ReLU unit feeding a zero-bias unit
      puts the next ReLU exactly on its kink for every row) or where a step crossed a kink
      anyway (stacked LayerNorms on 0.01·randn weights amplify h ~100× per layer, beyond the
      100·h margin), and batches on which a norm
      layer divides by a variance below eps (all its inputs dropped: it sees a constant) —
      length scale ~1e-5, beyond any usable h. Both are rare (≲ 7 % of draws)."""
    X, y = make_batch(spec, n + 8, seed)
    try:
        r = fd.check_model(spec, seed, n=n, data=(X, y), h=1e-5, max_entries=16,
                           richardson=True)
    except fd.KinkError:
        assume(False)
    assume(r.min_norm_variance >= NORM_EPS)
    assume(r.kink_crossings == 0)   # a step crossed a kink after all: no verdict possible
    assert r.passed, f"{spec.layers} {spec.loss}\n{r.report()}"
