"""``compare_functions`` beyond float64 plain nets (issue 20): float32 by the models' rule,
dropout masks handed to the function, running statistics and layer outputs compared (a
forward bug named at its layer), the conventions a learner's code may follow (penalty forms,
sum vs mean, bias rows and columns, one example per column) and the one-line hints when a
failure matches one; the report's forward cause, gradient-only findings and legend."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import parity
from parity import reference as R

EPS, MOMENTUM, DROP = 1e-5, 0.1, 0.3


def bn_dropout_net(params, X, y, masks, ddof=0, running="unbiased"):
    """Linear → BatchNorm1d → ReLU → Dropout → Linear → softmax cross-entropy (mean), W as
    (in, out), written out by hand; returns every layer output and the running statistics
    (from torch's defaults: mean 0, var 1). ``ddof=1`` plants the unbiased-variance bug."""
    W1, b1, g1, be1, W2, b2 = (params[k] for k in ("W1", "b1", "g1", "be1", "W2", "b2"))
    dt = X.dtype.type
    n = X.shape[0]
    a = X @ W1 + b1
    mu, var = a.mean(axis=0), a.var(axis=0, ddof=ddof)
    istd = 1 / np.sqrt(var + dt(EPS))
    xhat = (a - mu) * istd
    bn = g1 * xhat + be1
    h = np.maximum(bn, 0)
    keep = masks[0].astype(X.dtype) / dt(1 - DROP)
    d = h * keep
    s = d @ W2 + b2
    z = s - s.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    loss = -np.log(probs[np.arange(n), y]).mean()
    ds = probs.copy()
    ds[np.arange(n), y] -= 1
    ds /= n
    dd = ds @ W2.T
    dbn = dd * keep * (bn > 0)
    g = dbn * g1
    da = istd / n * (n * g - g.sum(axis=0) - xhat * (g * xhat).sum(axis=0))
    grads = {"W1": X.T @ da, "b1": da.sum(axis=0), "g1": (dbn * xhat).sum(axis=0),
             "be1": dbn.sum(axis=0), "W2": d.T @ ds, "b2": ds.sum(axis=0)}
    batch_var = a.var(axis=0) * (n / (n - 1) if running == "unbiased" else 1)
    buffers = {"rm": MOMENTUM * mu, "rv": (1 - MOMENTUM) + MOMENTUM * batch_var}
    return loss, grads, {"outputs": {0: a, 1: bn, 2: h, 3: d, 4: s}, "buffers": buffers}


def bn_case(dtype="float32", D=5, H=8, C=3, N=16, seed=0):
    rng = np.random.default_rng(seed)
    params = {"W1": rng.standard_normal((D, H)) / np.sqrt(D), "b1": 0.1 * rng.standard_normal(H),
              "g1": 1 + 0.1 * rng.standard_normal(H), "be1": 0.1 * rng.standard_normal(H),
              "W2": rng.standard_normal((H, C)) / np.sqrt(H), "b2": 0.1 * rng.standard_normal(C)}
    params = {k: v.astype(dtype) for k, v in params.items()}
    X, y = rng.standard_normal((N, D)).astype(dtype), rng.integers(0, C, N)
    t = nn.Sequential(nn.Linear(D, H), nn.BatchNorm1d(H), nn.ReLU(), nn.Dropout(DROP),
                      nn.Linear(H, C))
    mapping = {"W1": "0.weight", "b1": "0.bias", "g1": "1.weight", "be1": "1.bias",
               "W2": "4.weight", "b2": "4.bias", "rm": "1.running_mean", "rv": "1.running_var"}
    return params, t, X, y, mapping


# ---- float32, dropout, running statistics, layer outputs ---------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_correct_batchnorm_dropout_net_passes_with_masks_outputs_and_running_stats(dtype):
    params, t, X, y, mapping = bn_case(dtype)
    r = parity.compare_functions(bn_dropout_net, t, X, y, params, mapping=mapping, dtype=dtype)
    assert r.passed, r.report()
    labels = [c.label for c in r.checks]
    assert "step 1 buffer 1.running_var (your rv)" in labels
    assert "step 1 layer 3 (Dropout) output (your outputs[3])" in labels
    if dtype == "float32":
        assert r.comparison.dtype == "float32"
        assert all(c.rtol == 1.3e-6 for c in r.checks), "judged by the float32 table"
    assert "dropout keep-masks handed to your function" in " ".join(r.notes)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_unbiased_variance_batchnorm_is_named_at_its_layer_in_the_forward_pass(dtype):
    params, t, X, y, mapping = bn_case(dtype)
    r = parity.compare_functions(lambda *a, masks: bn_dropout_net(*a, masks, ddof=1), t, X, y,
                                 params, mapping=mapping, dtype=dtype)
    loc = r.localization
    assert not r.passed and loc.cause == "forward", r.report()
    assert (loc.forward.index, loc.forward.kind) == (1, "BatchNorm1d"), r.report()
    assert "likely cause: the forward pass of layer 1 (BatchNorm1d)" in r.report()
    assert "consistent with" not in r.report(), "the forward finding is the explanation"


def test_a_wrong_mask_scale_is_named_at_the_dropout_layer():
    params, t, X, y, mapping = bn_case("float32")

    def unscaled(p, X, y, masks):         # forgets the 1/(1-p) of inverted dropout
        return bn_dropout_net(p, X, y, [m * np.float32(1 - DROP) for m in masks])
    r = parity.compare_functions(unscaled, t, X, y, params, mapping=mapping, dtype="float32")
    assert (r.localization.forward.index, r.localization.forward.kind) == (3, "Dropout")


def test_running_var_from_the_biased_variance_is_a_hint_or_an_accepted_convention():
    params, t, X, y, mapping = bn_case("float64")

    def cs231n_running(p, X, y, masks):
        return bn_dropout_net(p, X, y, masks, running="biased")
    r = parity.compare_functions(cs231n_running, t, X, y, params, mapping=mapping)
    assert [c.label for c in r.failures()] == ["step 1 buffer 1.running_var (your rv)"]
    assert any("pass running_var='biased'" in h for h in r.hints), r.report()
    ok = parity.compare_functions(cs231n_running, t, X, y, params, mapping=mapping,
                                  running_var="biased")
    assert ok.passed, ok.report()


def test_a_model_with_dropout_needs_a_function_that_takes_masks():
    params, t, X, y, mapping = bn_case("float64")
    with pytest.raises(ValueError, match="must accept masks="):
        parity.compare_functions(lambda p, X, y: bn_dropout_net(p, X, y, None), t, X, y,
                                 params, mapping=mapping)


# ---- conventions and their hints ---------------------------------------------------------------

def mlp(params, X, y, reg=0.0, form="half", reduction="mean", l1=0.0, biases=False,
        relu_mask=True):
    """affine → ReLU → affine → softmax; weights (in, out), biases (1, n) rows, the penalty
    in either form, on weights (and biases), the loss summed or averaged."""
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    n = X.shape[0]
    h = np.maximum(0, X @ W1 + b1)
    s = h @ W2 + b2
    z = s - s.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    div = n if reduction == "mean" else 1
    loss = -np.log(probs[np.arange(n), y]).sum() / div
    ds = probs.copy()
    ds[np.arange(n), y] -= 1
    ds /= div
    dh = ds @ W2.T
    if relu_mask:
        dh = dh * (h > 0)
    grads = {"W1": X.T @ dh, "b1": dh.sum(axis=0, keepdims=True), "W2": h.T @ ds,
             "b2": ds.sum(axis=0, keepdims=True)}
    c = 0.5 if form == "half" else 1.0
    for k in ("W1", "W2", "b1", "b2") if biases else ("W1", "W2"):
        loss += c * reg * np.sum(params[k] ** 2) + l1 * np.sum(np.abs(params[k]))
        grads[k] = grads[k] + 2 * c * reg * params[k] + l1 * np.sign(params[k])
    return loss, grads


def mlp_case(N=12, D=6, H=10, C=4, seed=1):
    rng = np.random.default_rng(seed)
    params = {"W1": 0.5 * rng.standard_normal((D, H)), "b1": 0.1 * rng.standard_normal((1, H)),
              "W2": 0.5 * rng.standard_normal((H, C)), "b2": 0.1 * rng.standard_normal((1, C))}
    return params, nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.Linear(H, C)), \
        rng.standard_normal((N, D)), rng.integers(0, C, N)


@pytest.mark.parametrize("shape", ["row", "column"])
def test_biases_as_rows_or_columns_are_accepted_with_or_without_a_mapping(shape):
    params, t, X, y = mlp_case()

    def fn(p, X, y):
        loss, g = mlp({k: v.reshape(1, -1) if k[0] == "b" else v for k, v in p.items()}, X, y)
        return loss, {k: v.reshape(p[k].shape) for k, v in g.items()}
    if shape == "column":
        params = {k: v.reshape(-1, 1) if k[0] == "b" else v for k, v in params.items()}
    for mapping in (None, {"W1": "0.weight", "b1": "0.bias", "W2": "2.weight", "b2": "2.bias"}):
        r = parity.compare_functions(fn, t, X, y, params, mapping=mapping)
        assert r.passed, r.report()
        assert "biases as rows/columns: your b1" in " ".join(r.notes)


@pytest.mark.parametrize("penalty, options", [
    ({"l2": 0.1}, {"reg": 0.1}),
    ({"l2": 0.1, "form": "full"}, {"reg": 0.1, "form": "full"}),
    ({"l2": 0.05, "form": "full", "l1": 0.02, "biases": True},
     {"reg": 0.05, "form": "full", "l1": 0.02, "biases": True}),
    ({"l1": 0.03}, {"l1": 0.03}),
], ids=["half", "full", "full-l1-biases", "l1"])
def test_each_penalty_form_passes_when_stated(penalty, options):
    params, t, X, y = mlp_case()
    r = parity.compare_functions(lambda p, X, y: mlp(p, X, y, **options), t, X, y, params,
                                 penalty=penalty)
    assert r.passed, r.report()
    wrong = parity.compare_functions(lambda p, X, y: mlp(p, X, y, **options), t, X, y, params)
    assert not wrong.passed, "a penalty left unstated must fail"


def _hints(fn, **options):
    params, t, X, y = mlp_case()
    r = parity.compare_functions(fn, t, X, y, params, **options)
    assert not r.passed
    return r.hints, r.report()


def test_a_summed_loss_is_diagnosed_and_reduction_sum_accepts_it():
    hints, text = _hints(lambda p, X, y: mlp(p, X, y, reduction="sum"))
    assert hints == ["your loss is exactly 12 × torch's (the batch size): you sum over the "
                     "batch where torch takes the mean; pass reduction='sum'"]
    assert "  hint: your loss is exactly 12 × torch's" in text
    params, t, X, y = mlp_case()
    assert parity.compare_functions(lambda p, X, y: mlp(p, X, y, reduction="sum"), t, X, y,
                                    params, reduction="sum").passed


def test_the_l2_conventions_are_diagnosed_in_one_line():
    hints, _ = _hints(lambda p, X, y: mlp(p, X, y, reg=0.1, form="full"), reg=0.1)
    assert any("exceed torch's by exactly 0.1·W = λ·W: your L2 is λ·ΣW²" in h
               and "'form': 'full'" in h for h in hints), hints
    hints, _ = _hints(lambda p, X, y: mlp(p, X, y, reg=0.1))
    assert any("exceed torch's by exactly 0.1·W: an L2 penalty torch was not told of; "
               "pass penalty={'l2': 0.1}" in h for h in hints), hints


def test_an_unstated_penalty_on_weights_and_biases_is_diagnosed():
    hints, _ = _hints(lambda p, X, y: mlp(p, X, y, reg=0.1, biases=True))
    assert any("exceed torch's by exactly 0.1·θ on the weights and biases: an L2 penalty "
               "torch was not told of; pass penalty={'l2': 0.1, 'biases': True}" in h
               for h in hints), hints
    hints, _ = _hints(lambda p, X, y: mlp(p, X, y, reg=0.1, l1=0.02))
    assert any("0.1·θ + 0.02·sign(θ) on the weights: an L2 and L1 penalty" in h
               for h in hints), hints


def test_gradients_off_by_a_factor_2_are_diagnosed():
    def doubled(p, X, y):
        loss, g = mlp(p, X, y)
        return 2 * loss, {k: 2 * v for k, v in g.items()}
    hints, _ = _hints(doubled)
    assert any(h.startswith("every gradient of yours is 2 × torch's: a factor 2") for h in hints)


def test_one_example_per_column_is_accepted():
    params, t, X, y = mlp_case()

    def columns(p, Xc, y):        # Xc: (D, N); weights (out, in), biases (n, 1): Nielsen's
        loss, g = mlp({"W1": p["W1"].T, "b1": p["b1"].T, "W2": p["W2"].T, "b2": p["b2"].T},
                      Xc.T, y)
        return loss, {k: v.T for k, v in g.items()}
    mine = {k: v.T.copy() for k, v in params.items()}
    r = parity.compare_functions(columns, t, X.T, y, mine, examples="columns")
    assert r.passed, r.report()
    assert "one example per column" in " ".join(r.notes)


# ---- localization without outputs, and the report --------------------------------------------

def test_a_relu_backward_bug_is_reported_as_consistent_with_the_layers_it_could_be():
    hints, text = _hints(lambda p, X, y: mlp(p, X, y, relu_mask=False))
    assert ("consistent with: layer 0 (Linear) parameter gradients; or layer 1 (ReLU) "
            "backward; or layer 2 (Linear) input gradient") in text, text
    assert "likely cause" not in text


def test_a_weight_gradient_bug_alone_is_named_alone():
    def heavy(p, X, y):
        loss, g = mlp(p, X, y)
        return loss, {**g, "W1": 1.01 * g["W1"]}
    _, text = _hints(heavy)
    assert "consistent with: layer 0 (Linear) parameter gradient 0.weight alone" in text, text


def test_the_report_has_a_legend_naming_the_rules_it_shows():
    _, text = _hints(lambda p, X, y: mlp(p, X, y, relu_mask=False))
    legend = next(line for line in text.splitlines() if line.startswith("  legend:"))
    assert "table = |a−b| ≤ rtol·|torch| + atol·S" in legend
    assert "precision" not in legend, "only the rules the table shows"


class _UnbiasedBatchNorm(R.BatchNorm1d):
    """Normalizes with the unbiased batch variance (torch's running-variance rule, misused)."""

    def _normalize(self, x):
        mu = x.mean(axis=0, keepdims=True)
        var = x.var(axis=0, ddof=1, keepdims=True)
        istd = 1 / np.sqrt(var + self.eps)
        xhat = (x - mu) * istd
        self.saved = {"mode": "batch", "xhat": xhat, "istd": istd}
        return xhat, mu, var


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compare_models_names_a_batchnorm_forward_bug_at_its_layer_and_says_forward(dtype):
    torch.manual_seed(0)
    t = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    t = t.to(getattr(torch, dtype))
    n = R.Sequential(R.Linear(5, 8, dtype=dtype), _UnbiasedBatchNorm(8, dtype=dtype), R.ReLU(),
                     R.Linear(8, 3, dtype=dtype))
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((10, 5)).astype(dtype), rng.integers(0, 3, 10)
    r = parity.compare_models(n, t, X, y, loss="cross_entropy", weights="torch")
    loc = r.localization
    assert loc.cause == "forward" and (loc.forward.index, loc.forward.what) == (1, "output")
    text = r.report()
    assert "likely cause: the forward pass of layer 1 (_UnbiasedBatchNorm)" in text
    assert "(follows from the forward difference)" in text
    assert r.to_json()["localization"]["cause"] == "forward"
    assert "weights differed" not in text, "weights='torch' was chosen"


# ---- bad input: one line naming it --------------------------------------------------------------

@pytest.mark.parametrize("options, error, message", [
    ({"penalty": {"l2": 0.1, "lambda": 1}}, ValueError, r"penalty: unknown keys \['lambda'\]"),
    ({"penalty": {"l2": 0.1}, "reg": 0.1}, ValueError, "either reg= .* or penalty=, not both"),
    ({"penalty": {"l2": -1}}, ValueError, "penalty l2: expected a finite number >= 0"),
    ({"penalty": {"l2": 0.1, "form": "double"}}, ValueError, "penalty form: 'half'"),
    ({"penalty": 0.1}, TypeError, "penalty: expected a dict"),
    ({"reduction": "none"}, ValueError, r"reduction: 'mean' or 'sum', got 'none'"),
    ({"examples": "cols"}, ValueError, r"examples: one of \('rows', 'columns'\)"),
    ({"running_var": "population"}, ValueError, "running_var: one of"),
    ({"dtype": "float16"}, ValueError, "float16"),
], ids=["penalty-key", "reg-and-penalty", "negative-l2", "form", "penalty-number",
        "reduction", "examples", "running-var", "dtype"])
def test_bad_options_are_named_in_one_line(options, error, message):
    params, t, X, y = mlp_case()
    with pytest.raises(error, match=message):
        parity.compare_functions(mlp, t, X, y, params, **options)


def test_float32_needs_a_sequential_of_known_kinds_and_buffers_need_a_partner():
    """Below float64 the float64 evaluation is needed only for a check the table cannot
    decide: a correct function beside a wrapped model passes; a wrong one is refused with
    what the rule needs."""
    params, t, X, y = mlp_case()

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = t

        def forward(self, x):
            return self.net(x)
    mine = {k: v.astype(np.float32) for k, v in params.items()}
    names = {"W1": "net.0.weight", "b1": "net.0.bias", "W2": "net.2.weight", "b2": "net.2.bias"}
    assert parity.compare_functions(mlp, Wrapped(), X, y, mine, dtype="float32",
                                    mapping=names).passed

    def off(p, X, y):      # dW1 off by 1e-3: beyond the table, the rule needs the evaluation
        L, g = mlp(p, X, y)
        return L, {**g, "W1": g["W1"] * np.float32(1.001)}
    with pytest.raises(ValueError, match="the float32 rule needs the float64 evaluation"):
        parity.compare_functions(off, Wrapped(), X, y, mine, dtype="float32", mapping=names)
    params, t, X, y, mapping = bn_case("float64")
    wrapped = Wrapped()
    wrapped.net = t
    with pytest.raises(ValueError, match="has Dropout but is not an nn.Sequential"):
        parity.compare_functions(bn_dropout_net, wrapped, X, y, params,
                                 mapping={k: f"net.{v}" for k, v in mapping.items()})
    with pytest.raises(ValueError, match=r"mapping: \['rm', 'rv'\] are neither your params nor"):
        parity.compare_functions(lambda p, X, y, masks: bn_dropout_net(p, X, y, masks)[:2], t,
                                 X, y, params, mapping=mapping)


def test_the_check_command_passes_options_and_masks_to_functions(tmp_path):
    from parity import usercode
    (tmp_path / "user.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_function_conventions import bn_case, bn_dropout_net\n"
        "def functions():\n"
        "    params, t, X, y, mapping = bn_case('float32')\n"
        "    return {'loss_and_grads': bn_dropout_net, 'torch_model': t, 'X': X, 'y': y,\n"
        "            'params': params, 'mapping': mapping}\n")
    r = usercode.check(f"{tmp_path / 'user.py'}:functions", dtype="float32")
    assert r.passed and r.comparison.dtype == "float32", r.report()
    assert "dropout keep-masks handed to your function" in " ".join(r.notes)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("error", [0.0, 1e-7, 1e-5, 1e-4, 3e-4, 1e-3])
def test_lazy_evidence_gives_the_verdicts_of_full_evidence(monkeypatch, dtype, error):
    """compare_functions computes the float64 evaluation and σ only for the checks that need
    them; with every pair's evidence attached first, every verdict, rule and message is the
    same (a relative error planted in dW1, from none to far beyond the rules)."""
    from parity import function_twins
    from parity.judge import judge
    params, t, X, y = mlp_case()
    mine = {k: v.astype(dtype) for k, v in params.items()}

    def planted(p, X, y):
        L, g = mlp(p, X, y)
        return L, {**g, "W1": g["W1"] * (1 + error)}

    def full(pairs, d, evidence):
        evidence(pairs, True)
        return judge(pairs, d)
    lazy = parity.compare_functions(planted, t, X, y, mine, dtype=dtype)
    monkeypatch.setattr(function_twins, "judge_lazily", full)
    eager = parity.compare_functions(planted, t, X, y, mine, dtype=dtype)
    got = [(c.label, c.passed, c.rule, c.detail) for c in lazy.checks]
    assert got == [(c.label, c.passed, c.rule, c.detail) for c in eager.checks]
    # the evidence itself arrived: a planted error beyond the table is decided by the rule
    # that reads it (float64: σ of the rounding; float32: the float64 evaluation)
    beyond = {"float64": 1e-7, "float32": 1e-4}[dtype]
    rules = {c.rule for c in lazy.checks if not c.passed}
    assert rules == ({"rounding" if dtype == "float64" else "precision"} if error >= beyond
                     else set()), (dtype, error, rules)
