"""Each reference layer and loss against its stock torch twin: same parameters, same seeded
input, a *random* cotangent pushed through backward (an upstream of ones would make the
BatchNorm/softmax input gradients identically zero). Shape, then dtype, then values."""

import numpy as np
import pytest
import torch
from parity.reference import losses as L
from twin_asserts import assert_same

from parity import kinds
from parity import layerspec as S
from parity.kinds import numpy_model as build_sequential
from parity.kinds import torch_model

DTYPES = ("float64", "float32")
TDT = {"float64": torch.float64, "float32": torch.float32}

LAYERS = [
    pytest.param(S.Linear(5, 4), id="linear"),
    pytest.param(S.ReLU(), id="relu"),
    pytest.param(S.Sigmoid(), id="sigmoid"),
    pytest.param(S.Tanh(), id="tanh"),
    pytest.param(S.BatchNorm1d(5), id="batchnorm"),
    pytest.param(S.LayerNorm(5), id="layernorm"),
]


def _is_linear_weight(desc: S.LayerSpec, key: str) -> bool:
    """NumPy keeps ``W: (in, out)``, torch ``(out, in)``: only this array is transposed."""
    return isinstance(desc, S.Linear) and key == "weight"


def layer_pair(desc, dtype, rng):
    """NumPy layer and torch module with identical (random, non-trivial) parameters."""
    np_layer = build_sequential((desc,), init="uniform_torch", rng=rng,
                                dtype=np.dtype(dtype)).layers[0]
    for v in np_layer.params.values():   # move norm affines off (1, 0) so they matter
        v[...] = rng.standard_normal(v.shape).astype(dtype)
    t_layer = torch_model((desc,), TDT[dtype])[0]
    with torch.no_grad():
        for k, p in t_layer.named_parameters():
            v = np_layer.params[k]
            p.copy_(torch.from_numpy(v.T.copy() if _is_linear_weight(desc, k) else v))
    return np_layer, t_layer


def helper_test_layer(desc, dtype, training=True, scale=1.0, n=8):
    rng = np.random.default_rng(0)
    np_layer, t_layer = layer_pair(desc, dtype, rng)
    x = (scale * rng.standard_normal((n, 5))).astype(dtype)
    width = desc.out_features if isinstance(desc, S.Linear) else 5
    cot = rng.standard_normal((n, width)).astype(dtype)
    t_layer.train(training)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    out_t = t_layer(xt)
    out_t.backward(torch.from_numpy(cot))
    out = np_layer.forward(x, training)
    dx = np_layer.backward(cot.copy())
    assert_same("primal", out, out_t, dtype, "output")
    assert_same("cotangent dx", dx, xt.grad, dtype, "grad")
    for k, p in t_layer.named_parameters():
        g = np_layer.grads[k]
        assert_same(f"grad {k}", g.T if _is_linear_weight(desc, k) else g, p.grad, dtype, "grad")
    for k, b in t_layer.named_buffers():
        assert_same(f"buffer {k}", np.asarray(np_layer.buffers[k]), b, dtype, "buffer")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("desc", LAYERS)
def test_layer_train(desc, dtype): helper_test_layer(desc, dtype, training=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("desc", LAYERS)
def test_layer_eval(desc, dtype): helper_test_layer(desc, dtype, training=False)


@pytest.mark.parametrize("desc", [S.Sigmoid(), S.Tanh()], ids=["sigmoid", "tanh"])
def test_saturated_activations(desc): helper_test_layer(desc, "float64", scale=60.0)


def test_sigmoid_does_not_overflow():
    from parity.reference.layers import sigmoid
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow is benign
        s = sigmoid(x)
    np.testing.assert_allclose(s, torch.sigmoid(torch.from_numpy(x)).numpy(), rtol=1e-15, atol=0)


# ---- BatchNorm1d: shared/PARITY_NOTES.md -------------------------------------------------
def test_batchnorm_running_var_is_unbiased_with_momentum_on_the_new_value():
    rng = np.random.default_rng(1)
    np_bn, t_bn = layer_pair(S.BatchNorm1d(5), "float64", rng)
    x = rng.standard_normal((6, 5)) * 3 + 2
    np_bn.forward(x, True)
    t_bn.train()(torch.from_numpy(x))
    expect_var = 0.9 * 1.0 + 0.1 * x.var(axis=0, ddof=1)
    expect_mean = 0.9 * 0.0 + 0.1 * x.mean(axis=0)
    np.testing.assert_allclose(np_bn.buffers["running_var"], expect_var, rtol=1e-14)
    np.testing.assert_allclose(np_bn.buffers["running_mean"], expect_mean, rtol=1e-14)
    np.testing.assert_allclose(t_bn.running_var.numpy(), expect_var, rtol=1e-14)
    assert int(np_bn.buffers["num_batches_tracked"]) == int(t_bn.num_batches_tracked) == 1
    biased = 0.9 + 0.1 * x.var(axis=0)          # the seed-003 bug: biased running variance
    assert np.abs(np_bn.buffers["running_var"] - biased).max() > 1e-3


def test_batchnorm_cumulative_average_when_momentum_none():
    from parity.reference.layers import BatchNorm1d
    rng = np.random.default_rng(2)
    np_bn, t_bn = BatchNorm1d(3, momentum=None), torch.nn.BatchNorm1d(3, momentum=None,
                                                                      dtype=torch.float64)
    xs = [rng.standard_normal((4, 3)) for _ in range(3)]
    for x in xs:
        np_bn.forward(x, True)
        t_bn(torch.from_numpy(x))
    np.testing.assert_allclose(np_bn.buffers["running_mean"],
                               np.mean([x.mean(0) for x in xs], axis=0), rtol=1e-13)
    np.testing.assert_allclose(np_bn.buffers["running_var"], t_bn.running_var.numpy(),
                               rtol=1e-13)


def test_batchnorm_refuses_batch_of_one_in_training_on_both_sides():
    np_bn, t_bn = layer_pair(S.BatchNorm1d(5), "float64", np.random.default_rng(0))
    x = np.ones((1, 5))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        t_bn.train()(torch.from_numpy(x))
    with pytest.raises(ValueError, match="expected more than 1 value per channel when training"):
        np_bn.forward(x, True)
    np_bn.forward(x, False)                                   # eval mode is fine


# ---- Dropout -------------------------------------------------------------------------------
def test_dropout_scales_kept_units_and_is_identity_in_eval():
    from parity.reference.layers import Dropout
    d = Dropout(0.25, rng=np.random.default_rng(0))
    x = np.ones((2000, 10))
    out = d.forward(x, True)
    assert set(np.unique(out)) == {0.0, 1 / 0.75}
    assert abs((out == 0).mean() - 0.25) < 0.01
    cot = np.random.default_rng(1).standard_normal(x.shape)
    np.testing.assert_array_equal(d.backward(cot), cot * ((out != 0) * (1 / 0.75)))
    assert d.forward(x, False) is x


def test_dropout_mask_recorder_reproduces_torch_masks_exactly():
    from parity.reference.layers import Dropout

    from parity.masks import DropoutMaskRecorder
    model = torch.nn.Sequential(torch.nn.Dropout(0.3), torch.nn.Dropout(0.5))
    rec = DropoutMaskRecorder(model)
    x = torch.rand(50, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(9)) + 0.5
    torch.manual_seed(0)
    out = model(x)
    state_after = torch.get_rng_state()
    masks = rec.take()
    d0, d1 = Dropout(0.3), Dropout(0.5)
    d0.queue_masks(masks[0])
    d1.queue_masks(masks[1])
    mine = d1.forward(d0.forward(x.numpy(), True), True)
    np.testing.assert_array_equal(mine, out.numpy())
    torch.manual_seed(0)
    model(x)
    assert torch.equal(torch.get_rng_state(), state_after)   # the recorder left the RNG alone


# ---- losses --------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(kinds.LOSSES))
def test_every_loss_record_matches_its_torch_loss(name, dtype, reduction):
    """Each record's NumPy loss against its torch loss (example options, example inputs away
    from kinks): the loss, then the gradient of the output, in both reductions."""
    kind = kinds.LOSSES[name]
    out, y = kind.example(np.random.default_rng(5), n=12, k=5)
    out = out.astype(dtype)
    mine = kind.build_numpy(reduction, **kind.example_options)
    ot = torch.from_numpy(out.copy()).requires_grad_(True)
    lt = kind.build_torch(reduction, **kind.example_options)(ot, kind.torch_targets(y, TDT[dtype]))
    lt.backward()
    where = f"{name} ({reduction}, {dtype})"
    assert_same(f"{where}: loss", np.asarray(mine.forward(out, y), dtype=dtype), lt, dtype, "loss")
    assert_same(f"{where}: d out", mine.backward(), ot.grad, dtype, "grad")


@pytest.mark.parametrize("dtype", DTYPES)
def test_l1_and_hinge_subgradients_at_their_kinks_are_torchs(dtype):
    """At the kinks torch picks a side: sign(0) = 0 for L1, a margin of exactly 0 inactive for
    the hinge; so do we (cs231n's ``margins > 0`` too)."""
    for kind, out, y in ((kinds.LOSSES["l1"], [[0.0, 1.0, -2.0]], [[0.0, 0.0, 0.0]]),
                         (kinds.LOSSES["multi_margin"], [[1.0, 0.0, 2.0]], [0])):
        o = np.array(out, dtype=dtype)
        ot = torch.from_numpy(o.copy()).requires_grad_(True)
        kind.build_torch()(ot, kind.torch_targets(np.array(y), TDT[dtype])).backward()
        mine = kind.build_numpy()
        mine.forward(o, np.array(y))
        assert_same(f"{kind.name} at its kink: d out", mine.backward(), ot.grad, dtype, "grad")


def test_huber_is_delta_times_smooth_l1_and_hinge_is_cs231n_over_k():
    """The conventions the docstrings state: Huber(δ) = δ·SmoothL1(β = δ); torch's multiclass
    hinge is cs231n's SVM loss divided by K."""
    rng = np.random.default_rng(6)
    out, y = rng.standard_normal((7, 3)), rng.standard_normal((7, 3))
    assert L.HuberLoss(delta=2.0).forward(out, y) == pytest.approx(
        2.0 * L.SmoothL1Loss(beta=2.0).forward(out, y), rel=1e-14)
    s, labels = rng.standard_normal((7, 4)), rng.integers(0, 4, 7)
    margins = np.maximum(0, s - s[np.arange(7), labels][:, None] + 1.0)
    margins[np.arange(7), labels] = 0
    assert L.MultiMarginLoss().forward(s, labels) == pytest.approx(margins.sum() / 7 / 4,
                                                                  rel=1e-14)


@pytest.mark.parametrize("scale", [1.0, 50.0, 1000.0])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_matches_log_softmax_nll(scale, dtype):
    rng = np.random.default_rng(3)
    s = (scale * rng.standard_normal((16, 5))).astype(dtype)
    y = rng.integers(0, 5, 16)
    st = torch.from_numpy(s.copy()).requires_grad_(True)
    lt = torch.nn.CrossEntropyLoss()(st, torch.from_numpy(y))
    lt.backward()
    f = L.CrossEntropyLoss()
    assert_same("loss", np.asarray(f.forward(s, y), dtype=dtype), lt, dtype, "loss")
    assert_same("dscores", f.backward(), st.grad, dtype, "grad")


def test_naive_softmax_then_log_drifts_at_logit_scale_50():
    """Why log-sum-exp: softmax → log loses ~1e-4 where log-softmax stays at rounding level."""
    rng = np.random.default_rng(4)
    s = (50 * rng.standard_normal((64, 10))).astype(np.float32)
    y = rng.integers(0, 10, 64)
    ref = torch.nn.CrossEntropyLoss()(torch.from_numpy(s).double(), torch.from_numpy(y)).item()
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    naive = float(-np.log(p[np.arange(64), y] + 1e-15).mean())
    ours = L.CrossEntropyLoss().forward(s.astype(np.float64), y)
    assert abs(ours - ref) < 1e-12
    assert abs(naive - ref) > 1e-6


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_with_logits_stable_form(dtype):
    a = np.array([[-800.0], [-30.0], [-1.0], [0.0], [2.0], [40.0], [900.0]], dtype=dtype)
    y = np.array([1, 0, 1, 1, 0, 1, 0])
    at = torch.from_numpy(a.copy()).requires_grad_(True)
    lt = torch.nn.BCEWithLogitsLoss()(at, torch.from_numpy(y.reshape(-1, 1)).to(at.dtype))
    lt.backward()
    f = L.BCEWithLogitsLoss()
    assert_same("loss", np.asarray(f.forward(a, y), dtype=dtype), lt, dtype, "loss")
    assert_same("da", f.backward(), at.grad, dtype, "grad")


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_clamps_log_at_minus_100_like_torch(dtype):
    p = np.array([[0.0], [1.0], [0.3], [1e-30], [0.999]], dtype=dtype)
    y = np.array([1, 0, 1, 0, 1])
    pt = torch.from_numpy(p.copy()).requires_grad_(True)
    lt = torch.nn.BCELoss()(pt, torch.from_numpy(y.reshape(-1, 1)).to(pt.dtype))
    lt.backward()
    f = L.BCELoss()
    loss = f.forward(p, y)
    assert_same("loss", np.asarray(loss, dtype=dtype), lt, dtype, "loss")
    assert_same("dp", f.backward(), pt.grad, dtype, "grad")
    assert np.isfinite(loss) and loss >= 2 * 100 / 5


def test_bce_of_sigmoid_and_bce_with_logits_legitimately_differ_when_saturated():
    a = np.array([[40.0]])
    y = np.array([0])
    from parity.reference.layers import sigmoid
    assert L.BCELoss().forward(sigmoid(a), y) == pytest.approx(100.0)     # clamped log
    assert L.BCEWithLogitsLoss().forward(a, y) == pytest.approx(40.0)      # exact


def test_torch_default_linear_init_bound_matches_numpy_initializer():
    from parity.reference.init import torch_default
    torch.manual_seed(0)
    lin = torch.nn.Linear(400, 300)
    bound = 1 / np.sqrt(400)
    w, b = torch_default(np.random.default_rng(0), 400, 300)
    for arr in (lin.weight.detach().numpy(), lin.bias.detach().numpy(), w, b):
        assert np.abs(arr).max() <= bound
        assert np.abs(arr).max() > 0.99 * bound                    # uses the whole range
    assert abs(w.std() - lin.weight.detach().numpy().std()) < 0.02 * bound
