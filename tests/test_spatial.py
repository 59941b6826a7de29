"""The image layers (``reference.spatial``, records in ``parity.kinds.spatial``) beyond the
generic checks of ``tests/test_kinds.py``: torch's tie rule for max pooling, BatchNorm2d's
running statistics over several steps, Dropout2d's whole-channel masks shared with torch,
finite differences of every example in float32, and what ``from_torch`` and the descriptions
refuse."""

import copy

import numpy as np
import pytest
import torch
from parity.reference import spatial as P
from torch import nn
from twin_asserts import assert_same

import parity
from parity import finite_diff as fd
from parity import kinds
from parity import layerspec as S
from parity.masks import DropoutMaskRecorder
from parity.runtime import seed_torch

SPATIAL = [k for k in kinds.KINDS if k.numpy.__module__ == "parity.reference.spatial"]
assert SPATIAL, "no kind of parity.reference.spatial found: the module moved?"
EXAMPLES = [pytest.param(k, ex, id=f"{k.name}-{i}") for k in SPATIAL
            for i, ex in enumerate(k.examples)]


def test_the_examples_cover_stride_padding_dilation_and_overlapping_windows():
    convs = [ex.spec for ex in kinds.of_spec(S.Conv2d(1, 1, 1)).examples]
    assert any(c.stride == (2, 2) and c.padding == (1, 1) for c in convs)
    assert any(c.dilation == (2, 2) for c in convs) and any(not c.bias for c in convs)
    for pool in (S.MaxPool2d, S.AvgPool2d):
        specs = [ex.spec for ex in kinds.of_spec(pool(1)).examples]
        assert any(s.stride[0] < s.kernel_size[0] for s in specs), f"{pool.__name__} overlap"
        assert any(s.padding != (0, 0) for s in specs), f"{pool.__name__} padding"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_max_pool_gives_a_tie_to_its_first_maximum_as_torch(dtype):
    """Windows full of equal values (and overlapping windows sharing a maximum): the gradient
    goes to the first maximum in row-major order, once per window, as torch's kernel."""
    x = np.zeros((2, 2, 5, 5), dtype)
    x[:, :, 1:4, 1:4] = 1.0
    x[1, 1] = np.arange(25).reshape(5, 5) % 3      # ties at several positions
    for spec in (S.MaxPool2d(2), S.MaxPool2d(3, stride=1, padding=1), S.MaxPool2d(3, 2, 1)):
        layer, module = P.MaxPool2d(**vars(spec)), nn.MaxPool2d(**vars(spec))
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        out_t = module(xt)
        cot = np.random.default_rng(0).standard_normal(tuple(out_t.shape)).astype(dtype)
        out_t.backward(torch.from_numpy(cot))
        out = layer.forward(x.copy())
        assert_same(f"{spec}: output", out, out_t, dtype, "output")
        dx = layer.backward(cot)
        assert np.array_equal(dx != 0, xt.grad.numpy() != 0), f"{spec}: which entries get it"
        assert_same(f"{spec}: input gradient", dx, xt.grad, dtype, "grad")


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm2d_running_statistics_follow_torch_over_steps(momentum):
    rng = np.random.default_rng(0)
    layer, module = P.BatchNorm2d(3, momentum=momentum), nn.BatchNorm2d(3, momentum=momentum)
    module.double()
    for step in range(3):
        x = rng.standard_normal((2, 3, 4, 5)) * (step + 1) + step
        layer.forward(x, True)
        module(torch.from_numpy(x.copy()))
        for k, b in module.named_buffers():
            assert_same(f"step {step}: {k}", np.asarray(layer.buffers[k]), b, "float64", "buffer")
    x = rng.standard_normal((2, 3, 4, 5))
    module.eval()
    assert_same("eval output", layer.forward(x, False), module(torch.from_numpy(x.copy())),
                "float64", "output")


def test_dropout2d_masks_whole_channels_and_both_twins_share_them():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Dropout2d(0.5)).double()
    x = np.random.default_rng(0).standard_normal((4, 6, 3, 3)) + 3.0
    recorder = DropoutMaskRecorder(model)
    out_t = model(torch.from_numpy(x.copy()))
    (keep,) = recorder.take()[0]
    assert keep.shape == (4, 6, 1, 1) and 0 < keep.sum() < keep.size
    layer = P.Dropout2d(0.5)
    layer.queue_masks([keep])
    out = layer.forward(x, True)
    assert_same("Dropout2d output", out, out_t, "float64", "output")
    zeroed = (out == 0).all(axis=(2, 3))
    assert np.array_equal(zeroed, ~keep[:, :, 0, 0]), "whole channels, as the mask says"


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("kind, ex", EXAMPLES)
def test_float32_backward_matches_float64_finite_differences(kind, ex, training):
    """Every example (stride 2, padding 1, dilation 2, overlapping windows) in float32:
    within ``F32_K·u·κ`` of float64 central differences at the same point."""
    rng = np.random.default_rng(5)
    model = kinds.numpy_model((ex.spec,), init="uniform_torch", rng=rng, dtype=np.float32,
                              dropout_rng=rng)
    layer = model.layers[0]
    for v in layer.params.values():
        v[...] = rng.standard_normal(v.shape)
    x = (2 * rng.standard_normal(ex.input_shape)).astype(np.float32)
    checks = fd.check_layer_float32(layer, x, training, rng)
    bad = {k: f"rel {c.rel:.2e} > {c.bound:.2e} (κ {c.cond:.1f})" for k, c in checks.items()
           if not c.passed}
    assert not bad, f"{kind.name} {ex.spec}: {bad}"


@pytest.mark.parametrize("kind, ex", EXAMPLES)
def test_torch_twin_backward_matches_finite_differences(kind, ex):
    """The other twin against the same oracle: ``torch.autograd.gradcheck`` of each example's
    torch module in training mode (Dropout2d's draw fixed per call, BatchNorm2d's buffers
    fresh per call) w.r.t. its input and every parameter, at the NumPy side's kink-free
    input (no ReLU at 0, no tied window maximum)."""
    from test_kinds import build_pair, layer_input
    from torch.func import functional_call
    rng = np.random.default_rng(7)
    np_model, t_model = build_pair(ex, "float64", rng)
    x = layer_input(np_model.layers[0], ex.input_shape, rng)
    module = t_model[0].train()
    names = [k for k, _ in module.named_parameters()]
    buffers = {k: b.clone() for k, b in module.named_buffers()}

    def f(xt, *params):
        with torch.random.fork_rng(devices=[]):
            seed_torch(0)      # without torch.cuda's queued stack trace: f runs per probe
            state = {**dict(zip(names, params)), **{k: b.clone() for k, b in buffers.items()}}
            return functional_call(module, state, (xt,))

    inputs = (torch.from_numpy(x).requires_grad_(True),
              *(p.detach().clone().requires_grad_(True) for p in module.parameters()))
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-3), kind.name


def test_image_layers_refuse_a_batch_that_is_not_nchw():
    conv = P.Conv2d(3, 2, 3)
    with pytest.raises(ValueError, match=r"Conv2d: expected input of shape \(N, C, H, W\)"):
        conv.forward(np.zeros((2, 27)))
    with pytest.raises(ValueError, match="Conv2d: expected 3 channels"):
        conv.forward(np.zeros((2, 4, 5, 5)))
    with pytest.raises(ValueError, match="Conv2d: input .* too small"):
        conv.forward(np.zeros((2, 3, 2, 5)))
    with pytest.raises(ValueError, match="MaxPool2d: expected input of shape"):
        P.MaxPool2d(2).forward(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="BatchNorm2d: expected 3 channels"):
        P.BatchNorm2d(3).forward(np.zeros((2, 2, 3, 3)))
    with pytest.raises(ValueError, match="Dropout2d: expected input of shape"):
        P.Dropout2d(0.5, rng=np.random.default_rng(0)).forward(np.zeros((2, 4)))


def test_descriptions_validate_and_summarize():
    assert S.Conv2d(1, 8, 3, padding=1).kernel_size == (3, 3)
    assert S.Conv2d(1, 8, 3) == S.Conv2d(1, 8, (3, 3))
    assert S.Conv2d(1, 8, 3, stride=2, padding=1).summary == "Conv(1→8,3,s2,p1)"
    assert S.MaxPool2d(2).stride == (2, 2) and S.MaxPool2d(2).summary == "MaxPool(2)"
    assert S.Conv2d(3, 4, (3, 2), bias=False).num_parameters() == 4 * 3 * 3 * 2
    with pytest.raises(ValueError, match="MaxPool2d: padding must be at most half"):
        S.MaxPool2d(2, padding=2)
    with pytest.raises(TypeError, match="Conv2d: kernel_size must be an int"):
        S.Conv2d(1, 8, 2.5)
    with pytest.raises(ValueError, match="Conv2d: stride must be >= 1"):
        S.Conv2d(1, 8, 3, stride=0)
    with pytest.raises(ValueError, match="Dropout2d: p must be in"):
        S.Dropout2d(1.0)


@pytest.mark.parametrize("module, what", [
    (nn.Conv2d(4, 4, 3, groups=2), "groups=2"),
    (nn.Conv2d(1, 2, 3, padding="same"), "padding='same'"),
    (nn.Conv2d(1, 2, 3, padding_mode="reflect"), "padding_mode='reflect'"),
    (nn.MaxPool2d(2, ceil_mode=True), "ceil_mode=True"),
    (nn.MaxPool2d(3, dilation=2), "dilation=2"),
    (nn.AvgPool2d(2, count_include_pad=False), "count_include_pad=False"),
    (nn.AvgPool2d(2, divisor_override=3), "divisor_override=3"),
    (nn.BatchNorm2d(3, track_running_stats=False), "track_running_stats=False"),
], ids=lambda v: v if isinstance(v, str) else type(v).__name__)
def test_from_torch_refuses_options_without_twin(module, what):
    with pytest.raises(ValueError, match=f"layer 0: .*{what}.* is not supported"):
        parity.from_torch(nn.Sequential(module))


# ---- a convolutional net through compare_models ----------------------------------------------

CONV_NET = (S.Conv2d(1, 4, 3, padding=1), S.BatchNorm2d(4), S.ReLU(), S.MaxPool2d(2),
            S.Dropout2d(0.25), S.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2),
            S.AvgPool2d(3, stride=1, padding=1), S.Flatten(), S.Linear(6 * 2 * 2, 3))
TDT = {"float64": torch.float64, "float32": torch.float32}


def conv_twins(dtype: str, seed: int = 0):
    """``CONV_NET``'s twins from the same NumPy weights, 6 images 1×8×8 and 3 classes."""
    rng = np.random.default_rng(seed)
    np_model = kinds.numpy_model(CONV_NET, init="uniform_torch", rng=rng, dtype=np.dtype(dtype),
                                 dropout_rng=rng)
    X = rng.standard_normal((6, 1, 8, 8)).astype(dtype)
    return np_model, kinds.torch_model(CONV_NET, TDT[dtype]), X, rng.integers(0, 3, 6)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_conv_bn_relu_pool_net_passes_three_adam_steps(dtype):
    n, t, X, y = conv_twins(dtype)
    report = parity.compare_models(n, t, X, y, loss="cross_entropy", optimizer="adam", steps=3)
    assert report.passed, report.report()


def _planted(layer):
    """``layer`` with its input gradient off by 1 %."""
    base = type(layer)

    def backward(self, dout):
        return base.backward(self, dout) * dout.dtype.type(1.01)

    buggy = copy.copy(layer)
    buggy.__class__ = type(f"Buggy{base.__name__}", (base,), {"backward": backward})
    return buggy


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("index", [i for i, item in enumerate(CONV_NET)
                                   if type(item).__name__.endswith("2d")][1:],
                         ids=lambda i: f"{i}-{type(CONV_NET[i]).__name__}")
def test_a_backward_bug_in_each_image_layer_is_named_at_its_layer(index, dtype):
    """A 1 % error in one image layer's input gradient (the first layer's input gradient
    feeds nothing, so its bug could not show): the check fails and localization names that
    layer first in backward order."""
    n, t, X, y = conv_twins(dtype)
    n.layers[index] = _planted(n.layers[index])
    report = parity.compare_models(n, t, X, y, loss="cross_entropy", optimizer="adam", steps=3)
    assert not report.passed, f"layer {index}: a 1 % backward error passed"
    loc = report.localization
    assert loc.backward is not None and loc.backward.index == index, loc.lines()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("index", [i for i, item in enumerate(CONV_NET)
                                   if type(item).__name__ == "Conv2d"])
def test_a_weight_gradient_bug_in_a_convolution_is_named_at_its_layer(index, dtype):
    """``dW`` off by 1 % (also in the first layer, whose input gradient nobody reads)."""
    n, t, X, y = conv_twins(dtype)
    base = type(n.layers[index])

    def backward_params(self, dout):
        base.backward_params(self, dout)
        self.grads["weight"] = self.grads["weight"] * dout.dtype.type(1.01)

    def backward(self, dout):
        self.backward_params(dout)
        return P.conv2d_input_grad(dout, self.params["weight"], self.saved["x"].shape[2:],
                                   *self.geometry())

    buggy = copy.copy(n.layers[index])
    buggy.__class__ = type("BuggyConv2d", (base,), {"backward_params": backward_params,
                                                    "backward": backward})
    n.layers[index] = buggy
    report = parity.compare_models(n, t, X, y, loss="cross_entropy", optimizer="adam", steps=3)
    assert not report.passed, f"layer {index}: a 1 % dW error passed"
    loc = report.localization
    assert loc.backward is not None and loc.backward.index == index, loc.lines()
    assert f"{index}.weight" in "\n".join(loc.lines())


# ---- checkpoints of a convolutional model ----------------------------------------------------

def _conv_spec():
    """``CONV_NET`` as a model description (not in the catalogue: the checkpoint tool takes a
    ``ModelSpec`` as well as a catalogue name)."""
    from parity.catalogue.spec import ModelSpec
    from parity.twins import OptimSpec
    return ModelSpec(name="test-convnet", source="tests/test_spatial.py", summary="conv net",
                     layers=CONV_NET, loss="cross_entropy", optimizer=OptimSpec("adam", lr=1e-3),
                     dataset="digits", init="he", epochs=1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("fmt", ["npz", "pt", "safetensors"])
def test_a_conv_model_checkpoint_round_trips_bit_exact_into_either_twin(fmt, dtype, tmp_path):
    """Saved from the side that writes ``fmt`` (NumPy: npz, safetensors; torch: pt), read
    into both twins: every array (kernels, BatchNorm2d running statistics and its batch
    counter) bit for bit, and the two loaded twins predict the same numbers."""
    from parity import transfer
    from parity.tools import checkpoint as C
    spec = _conv_spec()
    n, t, X, _ = conv_twins(dtype, seed=1)
    n.forward(X, training=True)                 # running statistics off their defaults
    transfer.numpy_to_torch(n, t)
    path = tmp_path / f"conv.{fmt}"
    C.save(path, t if fmt == "pt" else n, spec, fmt)
    back = C.load_numpy(path, spec)
    for k, v in n.state_dict().items():
        assert back.state_dict()[k].tobytes() == v.tobytes(), f"{fmt} {dtype}: NumPy {k}"
    t_back = C.load_torch(path, spec)
    for k, v in t.state_dict().items():
        assert torch.equal(t_back.state_dict()[k], v), f"{fmt} {dtype}: torch {k}"
    assert_same(f"{fmt} {dtype}: predictions", C.predictions(back, X),
                torch.from_numpy(C.predictions(t_back, X)), dtype, "output")


# ---- max pooling's ties as finite-difference hazards ------------------------------------------

def test_finite_differences_refuse_a_tie_in_a_max_pooling_window():
    """A central difference across a tie measures the mean of two slopes (|w|/2), not the
    gradient torch and the reference give (all to the first maximum): refused, as a ReLU
    input at 0 is."""
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4))
    x[1, 0, 2, 3] = x[1, 0, 3, 2] = 5.0      # two maxima of one window
    with pytest.raises(ValueError, match="kink"):
        fd.check_layer(P.MaxPool2d(2), x, True, np.random.default_rng(0))
    x[1, 0, 2, 3] += 0.5
    assert fd.hazard(P.MaxPool2d(2), x).min() > 10 * fd.H
    assert fd.check_layer(P.MaxPool2d(2), x, True, np.random.default_rng(0))["dx"] < fd.FD_RTOL


def test_kink_free_rows_replace_an_image_whose_pooling_windows_tie():
    """Images with a constant patch (sklearn's digits have many 0 pixels) tie inside every
    pooling window there: such rows are replaced, tie-free rows kept."""
    rng = np.random.default_rng(0)
    model = kinds.numpy_model((S.MaxPool2d(2), S.Flatten(), S.Linear(4, 3)),
                              init="uniform_torch", rng=rng)
    X = rng.standard_normal((6, 1, 4, 4))
    X[1, 0, :2, :2] = 0.0
    rows, *_ = fd.kink_free_rows(model, X, np.zeros(6, int), n=3)
    assert rows == [0, 3, 2]


# ---- the 1e-4 injection test on the conv net ---------------------------------------------------

def _conv_compare(dtype: str, inject=None, *args):
    from parity import twins as twins_mod
    from parity.compare import compare_twins
    n, t, X, y = conv_twins(dtype)
    twins = twins_mod.from_models(n, t, "cross_entropy", optimizer="adam", lr=1e-3)
    if inject is not None:
        inject(twins, *args)
    return twins, compare_twins(twins, X, y, steps=2)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_injected_error_in_any_gradient_update_or_adam_state_of_the_conv_net_fails(dtype):
    """``tests/test_verdicts.py``'s injections (1e-4 relative in float32, 1e-8 in float64)
    into every parameter of ``CONV_NET``: its gradient (where float32 resolves 1e-4: not the
    bias feeding BatchNorm2d, whose exact gradient is 0), its update and both Adam moments.
    In float64 that bias is left out altogether: its gradient, and so its Adam step and
    moments, are rounding noise that 1e-8 of itself does not change."""
    from test_verdicts import REL, inject_grad, inject_state, inject_update

    from parity.twins import zero_gradient_keys
    twins, clean = _conv_compare(dtype)
    assert clean.passed, clean.report()
    noisy = {c.label.rsplit(" ", 1)[-1] for c in clean.checks if c.quantity == "grad" and (
        c.rule == "precision" or (c.noise or 0) > REL["float32"] / 10 * max(c.scale, 1e-300))}
    assert noisy <= {"0.bias"}, noisy
    missed = []
    zero = zero_gradient_keys(twins.numpy_model) if dtype == "float64" else set()
    assert zero <= {"0.bias"}, zero
    for key in (k for k in twins.numpy_model.parameters() if k not in zero):
        runs = [("grad", inject_grad, (key,))] if key not in noisy else []
        runs += [("update", inject_update, (key,))]
        runs += [(f"state {e}", inject_state, (key, e)) for e in ("exp_avg", "exp_avg_sq")]
        missed += [f"{what} {key}" for what, inject, args in runs
                   if _conv_compare(dtype, inject, *args)[1].passed]
    assert not missed, f"{dtype}: injected errors that passed: {missed}"


def test_a_running_mean_over_many_pixels_is_judged_against_the_batch_means_error():
    """float32, BatchNorm2d over 512 centred 8×8 images (m = 32 768 entries per channel):
    the running mean is 0.1·μ with μ small, and the twins' means differ by what a sum of m
    entries errs by. σ of one rounding of the buffer failed it (4.7 σ, a correct model);
    the record's ``buffer_amplitudes`` adds the batch mean's error."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
                           nn.ReLU(), nn.Flatten(), nn.Linear(256, 10))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((512, 1, 8, 8)).astype(np.float32)
    X -= X.mean()
    report = parity.compare_models(parity.from_torch(module), module, X,
                                   rng.integers(0, 10, 512), loss="cross_entropy",
                                   optimizer="adam", steps=2)
    assert report.passed, report.report()
    assert any(c.label == "step 1 buffer 1.running_mean" and c.rule == "precision"
               for c in report.checks), "the case no longer reaches the precision rule"
