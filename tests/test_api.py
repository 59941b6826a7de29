"""The public API on models that are not the catalogue's: ``compare_models`` /
``assert_twins_close`` (with the first disagreeing layer), ``compare_functions`` on a
cs231n-style function pair written here, and ``nn-parity check path/file.py:function``."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import parity
from parity import reference as R
from parity import usercode
from parity.catalogue import zoo
from parity.catalogue.checks import compare, default_steps, first_batch

MODELS = list(zoo.CATALOGUE)


# ---- compare_models on every catalogue model: the same verdicts as the catalogue's check ----

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", MODELS)
def test_compare_models_agrees_with_the_catalogue_check(name, dtype):
    """The recipe's twins handed in as a user would: the same checks, the same verdicts, and
    layer by layer every intermediate agrees. (The cs231n recipes also check the penalty
    they report in the loss, a catalogue-only option.)"""
    spec = zoo.get(name)
    X, y = first_batch(spec, 0)
    steps = default_steps(spec)
    mine = parity.compare_models(spec.build_numpy(0, dtype), spec.build_torch(dtype), X, y,
                                 loss=spec.loss, optimizer=spec.optimizer, steps=steps)
    ref = compare(spec, dtype, 0, steps=steps)
    expected = [(c.label, c.passed) for c in ref.checks if c.quantity != "penalty"]
    assert [(c.label, c.passed) for c in mine.checks] == expected
    assert mine.passed, f"{name} [{dtype}]:\n{mine.report()}"
    assert mine.localization.agrees, f"{name} [{dtype}]:\n{mine.report()}"


# ---- planted bugs: the first disagreeing layer ------------------------------------------------
# Their names start with "_": tests/test_finite_differences.py collects the public subclasses
# of reference.layers.Layer (``__subclasses__``, which sees every class in the process) and
# asks each to be built by a layer kind.

class _MasklessReLU(R.ReLU):
    """Backward forgets the mask: ``dx = dout``."""

    def backward(self, dout):
        return dout.copy()


class _LoudTanh(R.Tanh):
    """Forward off by 1 %; backward consistent with its own (wrong) output."""

    def forward(self, x, training=True):
        self.saved = {"out": np.tanh(x) * x.dtype.type(1.01)}
        return self.saved["out"]


class _HeavyLinear(R.Linear):
    """``dW`` 1 % too large; ``db`` and ``dx`` right."""

    def backward_params(self, dout):
        super().backward_params(dout)
        self.grads["weight"] = self.grads["weight"] * dout.dtype.type(1.01)


def _pair(dtype, layer1=R.Tanh, layer2=R.ReLU, last=R.Linear):
    """``Linear(5, 12) → Tanh → ReLU → Linear(12, 3)`` in both frameworks (NumPy's layers
    replaceable by planted bugs; its Linear weights start at zero) and a batch of 10."""
    torch.manual_seed(3)
    tdt = {"float64": torch.float64, "float32": torch.float32}[dtype]
    t = nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.ReLU(), nn.Linear(12, 3)).to(tdt)
    n = R.Sequential(R.Linear(5, 12, dtype=dtype), layer1(), layer2(), last(12, 3, dtype=dtype))
    rng = np.random.default_rng(4)
    X = rng.standard_normal((10, 5)).astype(dtype) + 0.3
    return n, t, X, rng.integers(0, 3, 10)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_relu_without_its_mask_is_found_at_its_layer_in_backward_order(dtype):
    n, t, X, y = _pair(dtype, layer2=_MasklessReLU)
    r = parity.compare_models(n, t, X, y, loss="cross_entropy", weights="torch")
    loc = r.localization
    assert not r.passed and loc.forward is None, r.report()
    assert (loc.backward.index, loc.backward.kind, loc.backward.what) == \
        (2, "_MasklessReLU", "input gradient"), r.report()
    assert loc.backward.shape_numpy == loc.backward.shape_torch == (10, 12)
    assert loc.affected == ["0.weight", "0.bias"], r.report()
    assert "first disagreeing layer, backward order: layer 2 (_MasklessReLU)" in r.report()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_forward_bug_is_found_at_its_layer_in_forward_order(dtype):
    n, t, X, y = _pair(dtype, layer1=_LoudTanh)
    loc = parity.compare_models(n, t, X, y, loss="cross_entropy", weights="torch").localization
    assert (loc.forward.index, loc.forward.kind, loc.forward.what) == (1, "_LoudTanh", "output")
    assert loc.forward.max_rel > 1e-3


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_weight_gradient_bug_names_that_gradient_only(dtype):
    n, t, X, y = _pair(dtype, last=_HeavyLinear)
    loc = parity.compare_models(n, t, X, y, loss="cross_entropy", weights="torch").localization
    assert (loc.backward.index, loc.backward.what) == (3, "grad 3.weight")
    assert loc.affected == ["3.weight"] and loc.forward is None


def test_assert_twins_close_raises_with_the_table_and_plain_numbers():
    n, t, X, y = _pair("float64", layer2=_MasklessReLU)
    with pytest.raises(AssertionError) as e:
        parity.assert_twins_close(n, t, X, y, loss="cross_entropy", weights="torch")
    text = str(e.value)
    assert "quantity" in text and "grad" in text and "FAIL step 1 grad 0.weight" in text
    assert "np.float64(" not in text
    ok_n, ok_t, X, y = _pair("float64")
    assert parity.assert_twins_close(ok_n, ok_t, X, y, loss="cross_entropy",
                                     weights="torch").passed


# ---- what compare_models does with its inputs --------------------------------------------------

def test_the_given_models_and_batch_are_not_touched():
    n, t, X, y = _pair("float64")
    n.load_state_dict({k: v + 0.5 for k, v in n.state_dict().items()})
    before_n, before_t = n.state_dict(), {k: v.clone() for k, v in t.state_dict().items()}
    X0 = X.copy()
    parity.compare_models(n, t, X, y, loss="cross_entropy", optimizer="adam", steps=2)
    assert all(np.array_equal(v, before_n[k]) for k, v in n.state_dict().items())
    assert all(torch.equal(v, before_t[k]) for k, v in t.state_dict().items())
    assert np.array_equal(X, X0)


class _InPlaceLinear(R.Linear):
    """A user's Linear that writes each new gradient into the arrays of the last one."""

    def backward_params(self, dout):
        old = getattr(self, "grads", None) or {}
        super().backward_params(dout)
        for k, v in old.items():
            v[...] = self.grads[k]
            self.grads[k] = v


@pytest.mark.parametrize("last", [R.Linear, _InPlaceLinear], ids=["linear", "in-place"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_step_ones_gradient_evidence_stays_step_ones_after_later_steps(optimizer, last):
    """The gradients a check keeps as evidence (``arrays["grads_torch"]``, views of torch's
    ``.grad``; ``arrays["grads_numpy"]``) after 3 steps are step 1's bits: what a 1-step
    check keeps. A later step's ``zero_grad`` and backward, an optimizer step, and a NumPy
    layer that writes its next gradient in place leave them as they were."""
    n, t, X, y = _pair("float64", last=last)
    one, three = (parity.compare_models(n, t, X, y, loss="cross_entropy", optimizer=optimizer,
                                        steps=k, weights="torch") for k in (1, 3))
    for side in ("grads_torch", "grads_numpy"):
        a, b = one.comparison.arrays[side], three.comparison.arrays[side]
        assert a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a), side


def test_different_starting_weights_are_said_and_synchronized():
    n, t, X, y = _pair("float64")            # NumPy's Linear weights are zeros
    r = parity.compare_models(n, t, X, y, loss="cross_entropy")
    assert r.passed and "weights differed before the comparison" in " ".join(r.notes)
    assert "started from the NumPy model's weights" in " ".join(r.notes)
    chosen = parity.compare_models(n, t, X, y, loss="cross_entropy", weights="numpy")
    assert "weights differed" not in chosen.report(), "weights= chosen: the note is noise"


def test_dtype_none_needs_agreeing_models_and_dtype_casts_copies():
    n, t, X, y = _pair("float32")
    with pytest.raises(TypeError, match="NumPy model is float32, the torch model float64"):
        parity.compare_models(n, t.double(), X, y, loss="cross_entropy")
    r = parity.compare_models(n, t.double(), X, y, loss="cross_entropy", dtype="float64",
                              weights="torch")
    assert r.passed and r.comparison.dtype == "float64"


@pytest.mark.parametrize("change, error, message", [
    (lambda n, t: (n, t[0]), TypeError, "torch_model: expected an nn.Sequential"),
    (lambda n, t: (n, t[:3]), ValueError, "NumPy model has 4 layers, the torch model 3"),
    (lambda n, t: (n, nn.Sequential(t[0], nn.Sigmoid(), t[2], t[3])), ValueError,
     r"layer 1: NumPy Tanh vs torch Sigmoid"),
    (lambda n, t: (R.Sequential(R.Linear(12, 5), *n.layers[1:]), t), ValueError,
     r"0.weight: NumPy shape \(12, 5\), expected \(5, 12\) for torch's \(12, 5\) "
     r"\(NumPy Linear weights are \(in, out\)"),
], ids=["not-sequential", "layer-count", "layer-kind", "layout"])
def test_mismatched_pairs_are_named(change, error, message):
    n, t, X, y = _pair("float64")
    n, t = change(n, t)
    with pytest.raises(error, match=message):
        parity.compare_models(n, t, X, y, loss="cross_entropy")


@pytest.mark.parametrize("option, message", [
    ({"loss": "hinge"}, "loss: unknown 'hinge'"),
    ({"reduction": "none"}, "reduction: 'mean' or 'sum', got 'none'"),
    ({"masks": "numpy"}, "masks: only 'shared'"),
    ({"weights": "mine"}, "weights: 'numpy' or 'torch'"),
    ({"optimizer": "lamb"}, "optimizer: unknown kind 'lamb'"),
    ({"optimizer": {"lr": 0.1}}, "optimizer: a dict needs 'kind'"),
    ({"steps": 0}, "steps must be >= 1"),
])
def test_bad_options_are_value_errors_naming_the_option(option, message):
    n, t, X, y = _pair("float64")
    kwargs = {"loss": "cross_entropy", **option}
    with pytest.raises(ValueError, match=message):
        parity.compare_models(n, t, X, y, **kwargs)


def test_optimizer_forms_and_weight_decay_on_weights_only():
    n, t, X, y = _pair("float64")
    for opt in ("sgd", "adamw", {"kind": "sgd", "lr": 0.5, "momentum": 0.9,
                                 "weight_decay": 1e-2, "decay": "weights"}):
        r = parity.compare_models(n, t, X, y, loss="cross_entropy", optimizer=opt, steps=2,
                                  weights="torch")
        assert r.passed, f"{opt}:\n{r.report()}"
        assert any(c.quantity == "state" for c in r.checks) == (opt != "sgd")


def test_dropout_masks_are_shared_and_json_carries_the_localization():
    torch.manual_seed(0)
    t = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.4), nn.Linear(16, 2)).double()
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((9, 4)), rng.integers(0, 2, 9)
    r = parity.compare_models(parity.from_torch(t), t, X, y, loss="cross_entropy", seed=5)
    assert r.passed, r.report()
    payload = json.loads(json.dumps(r.to_json()))
    assert payload["localization"] == {"forward": None, "backward": None, "affected": [],
                                       "cause": None, "consistent_with": []}


# ---- compare_functions: a cs231n-style two-layer net written here ------------------------------

def two_layer_net(params, X, y, reg=1e-3, with_reg_grad=True):
    """cs231n's assignment-1 two-layer net: affine → ReLU → affine → softmax, loss with
    0.5·reg·(‖W1‖² + ‖W2‖²), W as (in, out)."""
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    h = np.maximum(0, X @ W1 + b1)
    scores = h @ W2 + b2
    shifted = scores - scores.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    n = X.shape[0]
    loss = -np.log(probs[np.arange(n), y]).mean() + 0.5 * reg * (np.sum(W1**2) + np.sum(W2**2))
    dscores = probs.copy()
    dscores[np.arange(n), y] -= 1
    dscores /= n
    dh = dscores @ W2.T
    dh[h <= 0] = 0
    grads = {"W1": X.T @ dh, "b1": dh.sum(axis=0), "W2": h.T @ dscores, "b2": dscores.sum(axis=0)}
    if with_reg_grad:
        grads["W1"] += reg * W1
        grads["W2"] += reg * W2
    return loss, grads


def _cs231n(D=6, H=10, C=4, N=12, seed=0):
    rng = np.random.default_rng(seed)
    params = {"W1": 0.5 * rng.standard_normal((D, H)), "b1": 0.1 * rng.standard_normal(H),
              "W2": 0.5 * rng.standard_normal((H, C)), "b2": 0.1 * rng.standard_normal(C)}
    X, y = rng.standard_normal((N, D)), rng.integers(0, C, N)
    return params, nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.Linear(H, C)), X, y


def test_compare_functions_passes_a_correct_two_layer_net_and_says_the_layout():
    params, t, X, y = _cs231n()
    r = parity.compare_functions(two_layer_net, t, X, y, params, reg=1e-3)
    assert r.passed, r.report()
    assert r.names == {"0.weight": "W1", "0.bias": "b1", "2.weight": "W2", "2.bias": "b2"}
    assert "transposed layout detected: your W1 (6, 10), W2 (10, 4) are (in, out)" in r.report()


def test_compare_functions_fails_naming_the_weights_when_the_reg_gradient_is_omitted():
    params, t, X, y = _cs231n()
    r = parity.compare_functions(lambda p, X, y: two_layer_net(p, X, y, with_reg_grad=False),
                                 t, X, y, params, reg=1e-3)
    assert not r.passed
    assert sorted(c.label for c in r.failures()) == [
        "step 1 grad 0.weight (your W1)", "step 1 grad 2.weight (your W2)"]
    assert r.localization.affected == ["2.weight (your W2)", "0.weight (your W1)"]
    assert "layer 2 (Linear) grad 2.weight (your W2)" in r.report()


def test_compare_functions_takes_the_losss_reduction():
    """A loss summed over the batch (N times the mean, gradients too) passes against torch's
    reduction='sum' and fails against its default mean; the note names torch's loss."""
    params, t, X, y = _cs231n()

    def summed(p, X, y):
        loss, grads = two_layer_net(p, X, y, reg=0.0)
        return len(X) * loss, {k: len(X) * g for k, g in grads.items()}
    r = parity.compare_functions(summed, t, X, y, params, reduction="sum")
    assert r.passed, r.report()
    assert "torch's loss: CrossEntropyLoss(reduction='sum')" in r.report()
    assert not parity.compare_functions(summed, t, X, y, params).passed
    with pytest.raises(ValueError, match="reduction: 'mean' or 'sum', got 'batchmean'"):
        parity.compare_functions(summed, t, X, y, params, reduction="batchmean")


def test_compare_functions_with_torch_layout_explicit_mapping_and_float32_params():
    params, t, X, y = _cs231n()

    def torch_layout(p, X, y):               # weights stored (out, in): x @ W.T
        loss, g = two_layer_net({**p, "W1": p["A"].T, "W2": p["B"].T}, X, y)
        return loss, {"A": g["W1"].T, "B": g["W2"].T, "b1": g["b1"], "b2": g["b2"]}

    mine = {"A": params["W1"].T.astype(np.float32), "b1": params["b1"],
            "B": params["W2"].T, "b2": params["b2"]}
    r = parity.compare_functions(torch_layout, t, X, y, mine, reg=1e-3,
                                 mapping={"A": "0.weight", "b1": "0.bias", "B": "2.weight",
                                          "b2": "2.bias"})
    assert r.passed, r.report()
    assert "transposed" not in " ".join(r.notes)


def test_a_square_weight_needs_its_layout_only_when_no_other_weight_tells():
    params, t, X, y = _cs231n(D=10, H=10, C=10)
    with pytest.raises(ValueError, match=r"params\['W1'\] \(10, 10\) is square.*transposed="):
        parity.compare_functions(two_layer_net, t, X, y, params)
    assert parity.compare_functions(two_layer_net, t, X, y, params, reg=1e-3,
                                    transposed=True).passed
    # W1 (6, 10) is not square and tells the layout, (in, out): the square W2 (10, 10) is
    # taken transposed too, without being told
    params, t, X, y = _cs231n(D=6, H=10, C=10)
    r = parity.compare_functions(two_layer_net, t, X, y, params, reg=1e-3)
    assert r.passed, r.report()
    assert "your W1 (6, 10), W2 (10, 10) are (in, out)" in r.report()

    def w2_in_torch_layout(p, X, y):         # W2's gradient handed back (out, in)
        loss, g = two_layer_net(p, X, y)
        return loss, {**g, "W2": g["W2"].T}
    r = parity.compare_functions(w2_in_torch_layout, t, X, y, params, reg=1e-3)
    assert [c.label for c in r.failures()] == ["step 1 grad 2.weight (your W2)"], r.report()


@pytest.mark.parametrize("fn, message", [
    (lambda p, X, y: 1.0, TypeError),
    (lambda p, X, y: ("x", {}), TypeError),
    (lambda p, X, y: (1.0, {"W1": p["W1"]}), ValueError),
    (lambda p, X, y: (1.0, {**{k: v for k, v in p.items()}, "W1": p["W1"].T}), ValueError),
], ids=["not-a-pair", "loss-not-a-number", "missing-grads", "grad-shape"])
def test_a_wrong_return_value_is_named(fn, message):
    params, t, X, y = _cs231n()
    with pytest.raises(message, match="loss_and_grads"):
        parity.compare_functions(fn, t, X, y, params)


def test_dropout_and_unmatched_parameters_are_refused():
    params, t, X, y = _cs231n()
    with pytest.raises(ValueError, match="Dropout"):
        parity.compare_functions(two_layer_net, nn.Sequential(t[0], t[1], nn.Dropout(0.5), t[2]),
                                 X, y, params)
    with pytest.raises(ValueError, match=r"torch's without one \['2.bias'\]"):
        parity.compare_functions(two_layer_net, t, X, y,
                                 {k: v for k, v in params.items() if k != "b2"})


# ---- the package surface -----------------------------------------------------------------------

def test_public_names_are_documented_and_import_parity_does_not_import_torch():
    for name in parity.__all__:
        assert getattr(parity, name).__doc__, name
    code = "import sys, parity; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ---- nn-parity check path/to/file.py:function -------------------------------------------------

USER_FILE = '''
import numpy as np
import torch
from torch import nn

import parity
from parity import reference as R


def batch():
    rng = np.random.default_rng(0)
    return rng.standard_normal((8, 3)), rng.integers(0, 2, 8)


def good():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 2))
    X, y = batch()
    return {"numpy_model": parity.from_torch(net), "torch_model": net, "X": X, "y": y,
            "loss": "cross_entropy", "optimizer": "adam", "steps": 2}


class _Maskless(R.ReLU):
    def backward(self, dout):
        return dout.copy()


def broken():
    pair = good()
    pair["numpy_model"].layers[1] = _Maskless()
    return pair


def functions():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 2))
    X, y = batch()
    W, b = net[0].weight.detach().numpy().T.astype(float), np.zeros(2)

    def loss_and_grads(p, X, y):
        s = X @ p["W"] + p["b"]
        e = np.exp(s - s.max(1, keepdims=True))
        pr = e / e.sum(1, keepdims=True)
        d = pr.copy()
        d[np.arange(len(y)), y] -= 1
        d /= len(y)
        return -np.log(pr[np.arange(len(y)), y]).mean(), {"W": X.T @ d, "b": d.sum(0)}

    return {"loss_and_grads": loss_and_grads, "torch_model": net, "X": X, "y": y,
            "params": {"W": W, "b": b}}


def raises():
    raise RuntimeError("no data here")


def a_list():
    return [1, 2]


def missing_loss():
    pair = good()
    del pair["loss"]
    return pair


not_a_function = 3
'''


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "my_models.py"
    path.write_text(USER_FILE)
    return str(path)


@pytest.mark.parametrize("function, code", [("good", 0), ("broken", 1), ("functions", 0)])
def test_check_runs_a_users_function(cli, capsys, user_file, function, code):
    assert cli(["check", f"{user_file}:{function}"]) == code
    out = capsys.readouterr().out
    assert out.startswith(f"{user_file}:{function} [float64, seed 0,")
    assert ("layer 1 (_Maskless) input gradient" in out) == (function == "broken"), out


def test_check_json_of_a_users_function(cli, capsys, user_file):
    assert cli(["check", f"{user_file}:good", "--json", "--dtype", "float32"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["passed"] and payload["dtype"] == "float32" and payload["steps"] == 2
    assert set(payload) >= {"quantities", "judged_by", "failures", "localization", "notes"}


@pytest.mark.parametrize("target, message", [
    ("{dir}/nothing.py:good", "nothing.py: no such file"),
    ("{file}", "expected path/to/file.py:function"),
    ("{file}:nope", "no function 'nope'; functions defined there: a_list, batch, broken"),
    ("{file}:not_a_function", "my_models.py:not_a_function is a int, not a function"),
    ("{file}:raises", "my_models.py:raises raised RuntimeError: no data here"),
    ("{file}:a_list", "my_models.py:a_list returned list; expected a dict"),
    ("{file}:missing_loss", "returned a dict missing ['loss']"),
    ("{dir}/syntax.py:f", "syntax.py: not valid Python (line 1)"),
    ("{dir}/boom.py:f", "boom.py: importing it raised ZeroDivisionError"),
], ids=["no-file", "no-function-part", "no-function", "not-callable", "raises", "not-a-dict",
        "missing-key", "syntax", "import-raises"])
def test_check_refuses_a_wrong_target_in_one_line(cli, capsys, tmp_path, user_file, target,
                                                   message):
    (tmp_path / "syntax.py").write_text("def f(:\n")
    (tmp_path / "boom.py").write_text("x = 1 / 0\n")
    arg = target.format(dir=tmp_path, file=user_file)
    assert cli(["check", arg]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_functions_run_in_float32_from_the_cli_on_the_cpu_only(cli, capsys, user_file):
    assert cli(["check", f"{user_file}:functions", "--dtype", "float32"]) == 0
    assert "[float32, seed 0, 1 step(s)]: passed" in capsys.readouterr().out
    with pytest.raises(ValueError, match="functions are compared on the CPU only"):
        usercode.check(f"{user_file}:functions", device="cuda")


def test_check_saves_the_evidence_of_a_users_function(cli, capsys, tmp_path, user_file):
    out = tmp_path / "evidence"
    assert cli(["check", f"{user_file}:functions", "--save", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["names"] == {"0.weight": "W", "0.bias": "b"} and summary["passed"]
    with np.load(out / "grads_numpy.npz", allow_pickle=False) as grads:
        assert sorted(grads.files) == ["0.bias", "0.weight"]


# ---- issue 23: gaps closed ----------------------------------------------------------------------

@pytest.mark.parametrize("weights", ["torch", "numpy"])
def test_weights_option_decides_which_models_weights_both_copies_start_from(weights):
    """Distinct nonzero weights on both sides: the compared step starts from torch's
    (``weights="torch"``) or NumPy's (``"numpy"``, in torch layout), bit for bit, and the
    report says the models differed and whose weights were used."""
    n, t, X, y = _pair("float64")
    rng = np.random.default_rng(23)
    n.load_state_dict({k: rng.standard_normal(v.shape) for k, v in n.state_dict().items()})
    numpy_start = {k: np.ascontiguousarray(v.T) if k in ("0.weight", "3.weight") else v
                   for k, v in n.state_dict().items()}
    torch_start = {k: v.detach().numpy().copy() for k, v in t.state_dict().items()}
    assert all(v.all() and not np.array_equal(v, numpy_start[k])
               for k, v in torch_start.items())
    r = parity.compare_models(n, t, X, y, loss="cross_entropy", optimizer="adam", steps=2,
                              weights=weights)
    assert r.passed, r.report()
    expected = torch_start if weights == "torch" else numpy_start
    got = r.comparison.arrays["weights"]
    assert sorted(got) == sorted(expected)
    for k, v in expected.items():
        assert got[k].dtype == v.dtype and np.array_equal(got[k], v), k
    assert "weights differed" not in " ".join(r.notes), "you chose: no note (issue 20)"
