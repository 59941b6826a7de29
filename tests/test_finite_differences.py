"""The reference's hand-written backward passes against central finite differences of its own
forward (``parity.finite_diff``): every type of the layer vocabulary ``layerspec.
VOCABULARY`` in training and eval mode and every loss record of ``parity.kinds.LOSSES``, in
float64 and in float32 (the float32 backward against float64 finite differences at the same
point, within ``F32_K·u·κ``), and every catalogue model. The oracle needs neither twin to be
right; thresholds, their derivation and measurements are in its docstring."""

import numpy as np
import pytest
from parity.reference import layers as L
from parity.reference import losses as LS

from parity import finite_diff as fd
from parity import kinds
from parity import layerspec as S
from parity.catalogue import zoo
from parity.catalogue.checks import check_data, check_model, gradient_classes, kink_free_batch
from parity.kinds import numpy_model as build_sequential

MODELS = list(zoo.CATALOGUE)
# fast tier: one model per group of identical initial gradients (same layers, loss, init, data)
CLASSES = gradient_classes(zoo.CATALOGUE)


# One example per layer kind, from its record (parity.kinds): a new kind gets every check
# below; tests/test_kinds.py fails a record without examples.
EXAMPLES = {k.name.lower(): k.examples[0] for k in kinds.KINDS}
DTYPES = ["float64", "float32"]


def make_layer(kind: str, rng: np.random.Generator, dtype: str = "float64") -> L.Layer:
    """``EXAMPLES[kind]`` built by ``parity.kinds.numpy_model`` with random parameters (norm
    affines moved off (1, 0) so that they matter) and random float buffers in [0.5, 2] (so
    an eval-mode BatchNorm is not the identity), all in ``dtype``."""
    layer = build_sequential((EXAMPLES[kind].spec,), init="uniform_torch", rng=rng,
                             dtype=np.dtype(dtype), dropout_rng=rng).layers[0]
    for v in layer.params.values():
        v[...] = rng.standard_normal(v.shape)
    for k, v in layer.buffers.items():
        if v.dtype.kind == "f":
            layer.buffers[k] = rng.uniform(0.5, 2.0, v.shape).astype(dtype)
    return layer


def layer_input(kind: str, rng: np.random.Generator, n: int = 8, dtype: str = "float64",
                scale: float = 2.0) -> np.ndarray:
    """``(n, …)`` as the example takes it; entries within 10·h of a kink resampled."""
    x = (scale * rng.standard_normal((n, *EXAMPLES[kind].input_shape[1:]))).astype(dtype)
    layer = make_layer(kind, np.random.default_rng(0))
    while (dist := fd.hazard(layer, x)) is not None and np.any(small := dist <= 10 * fd.H):
        x[small] = scale * rng.standard_normal(int(small.sum()))
    return x


def test_every_reference_layer_is_built_by_a_kind():
    """Every public Layer class of reference.layers is some record's NumPy class."""
    public = {getattr(L, n) for n in L.__all__} - {L.Layer, L.Normalization}
    assert public <= {k.numpy for k in kinds.KINDS}, "give the new layer a record"


LAYER_CASES = [pytest.param(kind, training, id=f"{kind}-{'train' if training else 'eval'}")
               for kind in EXAMPLES for training in (True, False)]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("kind,training", LAYER_CASES)
def test_layer_backward_matches_finite_differences(kind, training, seed):
    rng = np.random.default_rng(seed)
    layer = make_layer(kind, rng)
    buffers = {k: np.array(v, copy=True) for k, v in layer.buffers.items()}
    errors = fd.check_layer(layer, layer_input(kind, rng), training, rng)
    assert set(errors) == {"dx", *layer.params}
    bad = {k: v for k, v in errors.items() if not v <= fd.FD_RTOL}
    assert not bad, f"{kind} (training={training}): rel_error above {fd.FD_RTOL:g}: {bad}"
    for k, v in buffers.items():   # the finite differences left the running statistics alone
        np.testing.assert_array_equal(layer.buffers[k], v, err_msg=f"buffer {k}")


def assert_float32(checks: dict, label: str) -> None:
    bad = {k: f"rel {c.rel:.2e} > bound {c.bound:.2e} (κ {c.cond:.1f}, ratio {c.ratio:.2f})"
           for k, c in checks.items() if not c.passed}
    assert not bad, f"{label}: float32 backward vs float64 finite differences: {bad}"


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("kind,training", LAYER_CASES)
def test_float32_layer_backward_matches_float64_finite_differences(kind, training, seed):
    """The float32 layer's own backward against central differences of the same function in
    float64 at the same point, within F32_K·u·κ (parity.finite_diff.Float32Check)."""
    rng = np.random.default_rng(seed)
    layer = make_layer(kind, rng, "float32")
    x = layer_input(kind, rng, dtype="float32")
    buffers = {k: np.array(v, copy=True) for k, v in layer.buffers.items()}
    checks = fd.check_layer_float32(layer, x, training, rng)
    assert set(checks) == {"dx", *layer.params}
    assert_float32(checks, f"{kind} (training={training}, seed {seed})")
    for k, v in buffers.items():
        np.testing.assert_array_equal(layer.buffers[k], v, err_msg=f"buffer {k}")


@pytest.mark.parametrize("kind", ["tanh", "sigmoid"])
def test_float32_bound_follows_the_forward_condition_when_saturated(kind):
    """Inputs around 10: float32 rounds tanh to ±1, so ``1 − out²`` loses the true ~1e-8
    (relative error up to 1). The bound widens with κ — measured from the cached output's
    rounding — and still holds; with inputs near 0, κ stays near 1."""
    rng = np.random.default_rng(0)
    x = (10 + 2 * rng.standard_normal((8, 5))).astype(np.float32)
    saturated = fd.check_layer_float32(make_layer(kind, rng, "float32"), x, True, rng)["dx"]
    assert saturated.passed and saturated.cond > 100, saturated
    calm = fd.check_layer_float32(make_layer(kind, rng, "float32"),
                                  layer_input(kind, rng, dtype="float32"), True, rng)["dx"]
    assert calm.passed and calm.cond < 10, calm


def test_dropout_check_uses_one_fixed_mask():
    """Each finite-difference forward must drop the same units as the analytic one: then the
    dropped entries of x have gradient 0 on both sides, exactly."""
    rng = np.random.default_rng(0)
    layer = L.Dropout(0.5)
    errors = fd.check_layer(layer, layer_input("dropout", rng, n=20), True, rng)
    assert errors["dx"] <= fd.FD_RTOL
    assert (~layer.last_mask).sum() > 0 and not layer._queued


def test_relu_input_at_the_kink_is_refused():
    x = np.ones((4, 5))
    x[2, 3] = 0.0
    with pytest.raises(ValueError, match="kink"):
        fd.check_layer(L.ReLU(), x, True, np.random.default_rng(0))


def test_ones_upstream_would_compare_zeros():
    """Why the cotangent is random: with an upstream of ones, BatchNorm's input gradient is
    identically 0 (so is softmax's), and any wrong-but-centred backward would pass."""
    rng = np.random.default_rng(0)
    bn = make_layer("batchnorm1d", rng)
    x = layer_input("batchnorm1d", rng)
    bn.params["weight"][...] = 1.0
    bn.forward(x, True)
    assert np.abs(bn.backward(np.ones_like(x))).max() < 1e-14


@pytest.mark.parametrize("factor", [1.01, 0.99])
def test_a_wrong_backward_is_flagged(factor):
    """The check can fail: a Linear whose weight gradient, and a Tanh whose input gradient, is
    off by 1 %, are flagged with rel_error ≈ 5e-3 (the threshold is 1e-7)."""

    class WrongLinear(L.Linear):
        def backward(self, dout):
            dx = super().backward(dout)
            self.grads["weight"] = factor * self.grads["weight"]
            return dx

    class WrongTanh(L.Tanh):
        def backward(self, dout):
            return factor * super().backward(dout)

    rng = np.random.default_rng(0)
    lin = WrongLinear(5, 4)
    lin.params["weight"][...] = rng.standard_normal((5, 4))
    errors = fd.check_layer(lin, layer_input("linear", rng), True, rng)
    assert errors["weight"] > 1e-3 and errors["dx"] <= fd.FD_RTOL and errors["bias"] <= fd.FD_RTOL
    assert fd.check_layer(WrongTanh(), layer_input("tanh", rng), True, rng)["dx"] > 1e-3


# ---- losses: every loss record (parity.kinds.LOSSES), its own example inputs, both reductions --
REDUCTIONS = ("mean", "sum")


def loss_case(name: str, rng: np.random.Generator, n: int = 8, dtype: str = "float64",
              reduction: str = "mean"):
    """The record's loss (its example options: β, δ, margin off their defaults of 1) and
    example ``(out, y)``, every entry farther than 1e3·h from a kink (L1's 0, SmoothL1/Huber's
    ±β, the hinge's zero margins)."""
    kind = kinds.LOSSES[name]
    scores, y = kind.example(rng, n, margin=1e3 * fd.H)
    return kind.build_numpy(reduction, **kind.example_options), scores.astype(dtype), y


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", list(kinds.LOSSES))
def test_loss_backward_matches_finite_differences(name, seed, reduction):
    loss, scores, y = loss_case(name, np.random.default_rng(seed), reduction=reduction)
    before = scores.copy()
    err = fd.check_loss(loss, scores, y)
    assert err <= fd.FD_RTOL, f"{name} ({reduction}): rel_error {err:.2e}"
    np.testing.assert_array_equal(scores, before)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", list(kinds.LOSSES))
def test_float32_loss_backward_matches_float64_finite_differences(name, seed, reduction):
    rng = np.random.default_rng(seed)
    loss, scores, y = loss_case(name, rng, dtype="float32", reduction=reduction)
    before = scores.copy()
    c = fd.check_loss_float32(loss, scores, y, rng)
    assert_float32({"dscores": c}, f"{name} ({reduction}, seed {seed})")
    np.testing.assert_array_equal(scores, before)


def test_a_loss_kink_is_a_finite_difference_hazard():
    """Why the examples keep away from kinks: L1 near r = 0 (within h) and the hinge at a zero
    margin, straddled by the central difference, measure a mean of two slopes."""
    l1 = LS.L1Loss()
    assert fd.check_loss(l1, np.array([[0.3 * fd.H, 1.0]]), np.array([[0.0, 0.5]])) > 0.1
    hinge = LS.MultiMarginLoss()
    assert fd.check_loss(hinge, np.array([[1.0, 0.0, -3.0]]), np.array([0])) > 0.1


def test_float32_checks_flag_a_wrong_backward():
    """The float32 checks can fail: 1 % off in a layer and in a loss (rel ≈ 5e-3, bounds
    ≈ 1e-6·κ)."""

    class WrongTanh(L.Tanh):
        def backward(self, dout):
            return 1.01 * super().backward(dout)

    class WrongCrossEntropy(LS.CrossEntropyLoss):
        def backward(self):
            return 0.99 * super().backward()

    rng = np.random.default_rng(0)
    c = fd.check_layer_float32(WrongTanh(), layer_input("tanh", rng, dtype="float32"), True,
                               rng)["dx"]
    assert not c.passed and c.rel > 1e-3
    scores, y = kinds.LOSSES["cross_entropy"].example(rng, 8)
    c = fd.check_loss_float32(WrongCrossEntropy(), scores.astype(np.float32), y, rng)
    assert not c.passed and c.rel > 1e-3


# ---- the helpers themselves -----------------------------------------------------------------
def test_rel_error_is_cs231n_normwise():
    assert fd.rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert fd.rel_error([1.0, 1e-9], [1.01, 0.0]) == pytest.approx(0.01 / 2.01)
    assert fd.rel_error([1e-12], [2e-12]) == pytest.approx(1e-12 / 1e-8)   # the 1e-8 floor
    with pytest.raises(ValueError, match="shapes"):
        fd.rel_error(np.zeros(2), np.zeros(3))


def test_numerical_jvp_grad_is_exact_on_a_quadratic_and_restores_x():
    rng = np.random.default_rng(0)
    A, x = rng.standard_normal((3, 4)), rng.standard_normal((2, 3))
    cot = rng.standard_normal((2, 4))
    before = x.copy()
    num = fd.numerical_jvp_grad(lambda v: v @ A + v**2 @ A, x, cot)
    np.testing.assert_array_equal(x, before)
    expect = cot @ A.T + 2 * x * (cot @ A.T)
    np.testing.assert_allclose(num, expect, rtol=0, atol=1e-9)
    with pytest.raises(TypeError, match="float64"):
        fd.numerical_jvp_grad(lambda v: v, x.astype(np.float32), 1.0)


def test_check_twins_drops_a_row_at_a_kink_of_the_loss():
    """An L1 twin whose first row's output lies 0.3·h from its target: the central difference
    would straddle |r|'s kink, so that row is replaced by the next one and the check passes."""
    import torch

    from parity.twins import from_models
    layers = (S.Linear(3, 2),)
    rng = np.random.default_rng(0)
    model = kinds.numpy_model(layers, init="uniform_torch", rng=rng, dtype=np.dtype("float64"))
    twins = from_models(model, kinds.torch_model(layers, torch.float64), "l1")
    X = rng.standard_normal((6, 3))
    y = model.predict(X) + 0.5
    y[0] -= 0.5 - 0.3 * fd.H
    result = fd.check_twins(twins, X, y, n=4)
    assert 0 not in result.rows and len(result.rows) == 4 and result.passed, result.report()


def test_kink_free_batch_drops_the_xor_origin():
    """XOR's (0, 0) row meets every ReLU at exactly 0 (He init, zero bias): it is dropped."""
    rows, X, y, _ = kink_free_batch(zoo.get("xor-relu"), 0, n=8)
    assert rows == [1, 2, 3] and not np.any(np.all(X == 0, axis=1))


def _pool_twins(X):
    """Twins of max pool 2×2 → flatten → Linear(4, 3), softmax cross-entropy, on ``X:
    (N, 1, 4, 4)``: every pixel is an input of the check, so a tie of two pixels in a window
    parts when either is perturbed."""
    import torch

    from parity.twins import from_models
    layers = (S.MaxPool2d(2), S.Flatten(), S.Linear(4, 3))
    model = kinds.numpy_model(layers, init="uniform_torch", rng=np.random.default_rng(0),
                              dtype=np.dtype("float64"))
    return from_models(model, kinds.torch_model(layers, torch.float64), "cross_entropy")


def test_max_pool_kink_distance_leaves_exact_ties_to_the_crossing_count():
    """With ``ties_counted`` a window's exact tie is no near-kink: its tied entries are as far
    from a change of maximum as the largest other value; a lead of 1e-6 is 1e-6 away; four
    equal entries never change hands unless they part, which ``kink_sides`` (the argmax)
    shows. Without (a single layer's check, which counts no crossings) a tie is at 0."""
    layer = build_sequential((S.MaxPool2d(2),), init="he", rng=np.random.default_rng(0),
                             dtype=np.dtype("float64")).layers[0]
    kind = kinds.of_layer(layer)
    x = np.array([[[[1.0, 1.0, 3.0, 3.0 - 1e-6],
                    [0.5, 0.2, 0.0, 0.0],
                    [0.0, 0.0, 2.0, 1.0],
                    [0.0, 0.0, 1.5, 2.0]]]])
    expect = np.array([[0.5, 0.5, 1e-6, 1e-6], [0.5, 0.8, 3.0, 3.0],
                       [np.inf, np.inf, 0.5, 1.0], [np.inf, np.inf, 0.5, 0.5]])
    np.testing.assert_allclose(kind.kink_distance(layer, x, True)[0, 0], expect, rtol=1e-9)
    ties = np.array([[True, False], [True, True]])
    np.testing.assert_array_equal(kind.kink_ties(layer, x)[0, 0], ties)
    expect[[0, 0, 2, 2, 3, 3, 2, 3], [0, 1, 0, 1, 0, 1, 2, 3]] = 0.0   # the tied maxima
    np.testing.assert_allclose(kind.kink_distance(layer, x)[0, 0], expect, rtol=1e-9)
    x2 = x.copy()
    x2[0, 0, 0, 1] += 1e-9          # the tie at (0, 0)/(0, 1) parts upward: argmax moves
    assert (kind.kink_sides(layer, x2) != kind.kink_sides(layer, x)).sum() == 1


def test_a_pooling_tie_that_a_step_parts_is_replaced_or_counted(monkeypatch):
    """Planted: row 0 of an image batch holds an exact tie of two pixels in a window.
    Perturbing either parts it (the central difference averages two slopes): the random
    step of ``_parting_ties`` finds that and replaces the row. With that probe disabled the
    row stays, and the crossing count reports it instead of a pass. A near-tie (lead 0.3·h)
    replaces its row; forced in with a margin below its lead, it is counted too."""
    X = np.random.default_rng(1).standard_normal((6, 1, 4, 4))
    y = np.arange(6) % 3
    X[0, 0, 0, 0] = X[0, 0, 0, 1] = X[0, 0, :2, :2].max() + 1.0
    r = fd.check_twins(_pool_twins(X), X, y, n=4)
    assert 0 not in r.rows and r.kink_crossings == 0 and r.passed, r.report()
    with monkeypatch.context() as m:
        m.setattr(fd, "_parting_ties", lambda *args: set())
        r = fd.check_twins(_pool_twins(X), X, y, n=4)
    assert r.rows == [0, 1, 2, 3] and r.kink_crossings > 0, r.report()
    assert not r.passed and "crossed a kink" in r.failures()[-1]
    assert r.tensors["input"].max_abs > r.atol, r.report()
    X[0, 0, 0, 1] -= 0.3 * fd.H
    r = fd.check_twins(_pool_twins(X), X, y, n=4)
    assert 0 not in r.rows and r.kink_crossings == 0 and r.passed, r.report()
    r = fd.check_twins(_pool_twins(X), X, y, n=4, margin=0.1 * fd.H)
    assert r.rows[0] == 0 and r.kink_crossings > 0 and not r.passed, r.report()


def test_blank_digit_patches_are_kinks_that_the_image_noise_removes(monkeypatch):
    """digits-convnet-bn on the digits as they are: every blank 3×3 patch returns the
    convolution's bias, the blank positions of a pooling window tie exactly, and perturbing
    one blank pixel parts them. ``_parting_ties`` finds such a tie in every row; with it
    disabled the check counts crossings and fails dL/dX alone. With the catalogue's
    ``IMAGE_NOISE`` it passes (test_model_gradients_match_finite_differences); models of
    feature vectors get no noise."""
    spec = zoo.get("digits-convnet-bn")
    with pytest.raises(fd.KinkError, match="digits-convnet-bn"):
        kink_free_batch(spec, 0, noise=0.0)
    with monkeypatch.context() as m:
        m.setattr(fd, "_parting_ties", lambda *args: set())
        r = check_model(spec, 0, max_entries=32, noise=0.0)
    assert r.kink_crossings > 0 and "crossed a kink" in r.failures()[-1], r.report()
    assert {f.split(":")[0] for f in r.failures()[:-1]} == {"input"}, r.report()
    d = zoo.get("spiral003").data(0)
    assert np.array_equal(check_data(zoo.get("spiral003"), 0)[0], d.X_train)
    X, _ = check_data(spec, 0)
    assert 0.09 < float(np.std(X - spec.data(0).X_train)) < 0.11


def test_zero_gradient_keys_are_biases_feeding_batchnorm():
    from parity.twins import zero_gradient_keys
    assert zero_gradient_keys(zoo.get("spiral003").build_numpy(0)) == {"0.bias", "4.bias",
                                                                        "8.bias"}
    assert zero_gradient_keys(zoo.get("spiral003-layernorm").build_numpy(0)) == set()


# ---- every catalogue model ------------------------------------------------------------------
def assert_model_check(spec, seed, max_entries):
    r = check_model(spec, seed, max_entries=max_entries)
    expected = set(spec.build_numpy(seed).parameters()) | {"input"}
    assert set(r.tensors) == expected, f"{spec.name}: checked {sorted(r.tensors)}"
    assert r.kink_crossings == 0, r.report()
    assert r.passed, r.report()
    return r


def test_gradient_classes_cover_the_catalogue_once():
    members = [m for names in CLASSES.values() for m in names]
    assert sorted(members) == sorted(MODELS)
    assert set(CLASSES["spiral004"]) >= {"spiral004-sgd", "spiral004-momentum"}


@pytest.mark.parametrize("name", list(CLASSES), ids=list(CLASSES))
def test_model_gradients_match_finite_differences(name):
    """Fast tier: seed 0, ≤ 32 random entries per tensor, one model per gradient class (the
    models differing only in optimizer or recipe have the same gradient)."""
    assert_model_check(zoo.get(name), 0, max_entries=32)


def test_a_wrong_backward_inside_a_model_is_flagged(monkeypatch):
    """Whole-model sensitivity: BatchNorm's input gradient 1 % too large (spiral003) shows in
    the tensors it feeds back into, while the last BatchNorm's affine parameters and the
    output Linear after it stay clean."""
    original = L.BatchNorm1d.backward

    def wrong(self, dout):
        return 1.01 * original(self, dout)

    monkeypatch.setattr(L.BatchNorm1d, "backward", wrong)
    r = check_model(zoo.get("spiral003"), 0, max_entries=16)
    failed = {f.split(":")[0] for f in r.failures()}
    assert {"0.weight", "input", "1.weight", "4.weight"} <= failed
    assert not failed & {"9.weight", "9.bias", "12.weight", "12.bias"}
    assert r.tensors["0.weight"].rel > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("name", MODELS, ids=MODELS)
def test_model_gradients_match_finite_differences_thoroughly(name, seed):
    """The measurement behind the thresholds: seeds 0–4, ≤ 200 entries per tensor."""
    assert_model_check(zoo.get(name), seed, max_entries=fd.MAX_ENTRIES)
