"""Real networks from public repositories, kept as written (``tests/realcode/nets_*.py``, not
committed: ``realcode_sources`` names each one's repository, path, commit and licence),
judged against torch by ``compare_functions``: a cs231n assignment-2 solution
(affine/BatchNorm/ReLU/dropout layers, ``FullyConnectedNet``, biased running variance,
``0.5·reg·ΣW²``), the nnfs book (``Layer_Dense`` with ``(1, n)`` biases, ``Layer_Dropout``,
L1 and L2 as ``λ·ΣW²`` on weights and biases) and Nielsen's ``network2.py`` (one example per
column, ``(n, 1)`` biases, ``λ/(2n)·ΣW²``).

Each correct case passes. Each planted bug — one line of the source changed (``BUGS``) —
fails with its layer named: forward bugs at their layer (the glue returns the layer outputs
the source computes), backward bugs as a gradient-only finding whose candidates include the
layer. The glue — the adapters from each source's interface to ``loss_and_grads`` — is the
functions marked ``# glue`` below; ``test_the_glue_is_small`` counts its lines.
"""

import ast
import types
from pathlib import Path

import numpy as np
import pytest
import realcode_sources
from torch import nn

import parity

D, C, N = 5, 3, 16


def load(name: str, bug: tuple[str, str] | None = None) -> types.ModuleType:
    """``tests/realcode/{name}.py`` (``realcode_sources``) as a fresh module; ``bug``
    ``(old, new)`` changes the one line of its source that holds ``old``."""
    return realcode_sources.load(f"{name}.py", bug)


class _Replay:  # glue
    """numpy as a source module sees it, with its random draws replaying torch's keep-masks:
    ``rand`` gives 0 where torch kept a unit (cs231n keeps ``rand < p``) and 1 where it
    dropped one; ``binomial(1, q, size)`` gives the mask itself (nnfs)."""

    def __init__(self, masks):
        self.masks = list(masks)
        self.random = types.SimpleNamespace(rand=self.rand, binomial=self.binomial)

    def rand(self, *shape):
        return np.where(self.masks.pop(0), 0.0, 1.0)

    def binomial(self, n, q, size):
        return self.masks.pop(0).astype(np.int64)

    def __getattr__(self, name):
        return getattr(np, name)


# ---- cs231n (kantarcise/cs231n) ----------------------------------------------------------------

HIDDEN, KEEP, REG = (7, 6), 0.7, 0.1


def cs231n_functions(mod, dtype):  # glue
    """``FullyConnectedNet.loss`` as ``loss_and_grads``: torch's masks replayed, running
    statistics from torch's start (mean 0, var 1), each layer function's output recorded."""
    net = mod.FullyConnectedNet(list(HIDDEN), input_dim=D, num_classes=C,
                                dropout_keep_ratio=KEEP, normalization="batchnorm", reg=REG,
                                dtype=dtype)
    outputs = []
    for name in ("affine_forward", "batchnorm_forward", "relu_forward", "dropout_forward"):
        f = mod.__dict__[name]
        mod.__dict__[name] = lambda *a, _f=f: outputs.append(_f(*a)) or outputs[-1]

    def loss_and_grads(params, X, y, masks):
        net.params = dict(params)
        for bn, h in zip(net.bn_params, HIDDEN):
            bn["running_mean"], bn["running_var"] = np.zeros(h, dtype), np.ones(h, dtype)
        outputs.clear()
        mod.np = _Replay(masks)
        try:
            loss, grads = net.loss(X, y)
        finally:
            mod.np = np
        buffers = {f"{s}{i}": bn[f"running_{s}"] for i, bn in enumerate(net.bn_params)
                   for s in ("mean", "var")}
        return loss, grads, {"outputs": {i: o[0] for i, o in enumerate(outputs)},
                             "buffers": buffers}
    return loss_and_grads


def cs231n_case(dtype="float64"):
    rng = np.random.default_rng(0)
    dims = (D, *HIDDEN, C)
    params = {}
    for i, (a, b) in enumerate(zip(dims, dims[1:]), start=1):
        params[f"W{i}"] = rng.standard_normal((a, b)) / np.sqrt(a)
        params[f"b{i}"] = 0.1 * rng.standard_normal(b)
        if i < len(dims) - 1:
            params[f"gamma{i}"] = 1 + 0.1 * rng.standard_normal(b)
            params[f"beta{i}"] = 0.1 * rng.standard_normal(b)
    params = {k: v.astype(dtype) for k, v in params.items()}
    t = nn.Sequential(nn.Linear(D, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Dropout(1 - KEEP),
                      nn.Linear(7, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(1 - KEEP),
                      nn.Linear(6, C))
    X, y = rng.standard_normal((N, D)).astype(dtype), rng.integers(0, C, N)
    return params, t, X, y


def run_cs231n(bug=None, dtype="float64"):
    params, t, X, y = cs231n_case(dtype)
    fn = cs231n_functions(load("nets_cs231n_kantarcise", bug), getattr(np, dtype))
    return parity.compare_functions(fn, t, X, y, params, penalty={"l2": REG},
                                    running_var="biased", dtype=dtype)


# ---- the nnfs book (Sentdex/nnfs_book) ---------------------------------------------------------

H, DROP, L2, L1 = 8, 0.1, 0.01, 0.005


def nnfs_functions(mod):  # glue
    """The book's chapter-15 training step (forward, loss with regularization, backward) as
    ``loss_and_grads``, its dropout drawing torch's masks."""
    reg = dict(weight_regularizer_l1=L1, weight_regularizer_l2=L2, bias_regularizer_l1=L1,
               bias_regularizer_l2=L2)
    dense1, dense2 = mod.Layer_Dense(D, H, **reg), mod.Layer_Dense(H, C, **reg)
    activation1, dropout1 = mod.Activation_ReLU(), mod.Layer_Dropout(DROP)
    loss_activation = mod.Activation_Softmax_Loss_CategoricalCrossentropy()

    def loss_and_grads(params, X, y, masks):
        dense1.weights, dense1.biases, dense2.weights, dense2.biases = (
            params[k] for k in ("W1", "b1", "W2", "b2"))
        dense1.forward(X)
        activation1.forward(dense1.output)
        mod.np = _Replay(masks)
        try:
            dropout1.forward(activation1.output)
        finally:
            mod.np = np
        dense2.forward(dropout1.output)
        data_loss = loss_activation.forward(dense2.output, y)
        regularization_loss = loss_activation.loss.regularization_loss(dense1) + \
            loss_activation.loss.regularization_loss(dense2)
        loss_activation.backward(loss_activation.output, y)
        dense2.backward(loss_activation.dinputs)
        dropout1.backward(dense2.dinputs)
        activation1.backward(dropout1.dinputs)
        dense1.backward(activation1.dinputs)
        grads = {"W1": dense1.dweights, "b1": dense1.dbiases, "W2": dense2.dweights,
                 "b2": dense2.dbiases}
        outputs = {0: dense1.output, 1: activation1.output, 2: dropout1.output,
                   3: dense2.output}
        return data_loss + regularization_loss, grads, {"outputs": outputs}
    return loss_and_grads


def run_nnfs(bug=None, penalty="stated"):
    rng = np.random.default_rng(1)
    params = {"W1": rng.standard_normal((D, H)) / np.sqrt(D),
              "b1": 0.1 * rng.standard_normal((1, H)),
              "W2": rng.standard_normal((H, C)) / np.sqrt(H),
              "b2": 0.1 * rng.standard_normal((1, C))}
    t = nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.Dropout(DROP), nn.Linear(H, C))
    X, y = rng.standard_normal((N, D)), rng.integers(0, C, N)
    stated = {"l2": L2, "form": "full", "l1": L1, "biases": True}
    return parity.compare_functions(nnfs_functions(load("nets_nnfs_book", bug)), t, X, y,
                                    params, penalty=stated if penalty == "stated" else None)


# ---- Nielsen's network2.py (mnielsen/neural-networks-and-deep-learning) ------------------------

SIZES, LMBDA = (4, 6, 1), 0.3


def nielsen_functions(mod):  # glue
    """``Network.total_cost`` and one ``update_mini_batch`` with ``eta = 1`` (the step is then
    the gradient, L2 term included) on the batch as Nielsen's list of column vectors."""
    mod.xrange = range
    net = mod.Network(list(SIZES), cost=mod.CrossEntropyCost)

    def loss_and_grads(params, X, y):          # X: (D, N), one example per column
        net.weights, net.biases = [params["w0"], params["w1"]], [params["b0"], params["b1"]]
        batch = [(X[:, [i]], np.array([[float(y[i])]])) for i in range(X.shape[1])]
        loss = net.total_cost(batch, LMBDA)
        net.update_mini_batch(batch, 1.0, LMBDA, len(batch))
        after = {"w0": net.weights[0], "w1": net.weights[1], "b0": net.biases[0],
                 "b1": net.biases[1]}
        return loss, {k: params[k] - after[k] for k in params}
    return loss_and_grads


def run_nielsen(bug=None, penalty="stated"):
    rng = np.random.default_rng(2)
    (d, h, k), n = SIZES, 12
    params = {"w0": rng.standard_normal((h, d)) / np.sqrt(d), "b0": rng.standard_normal((h, 1)),
              "w1": rng.standard_normal((k, h)) / np.sqrt(h), "b1": rng.standard_normal((k, 1))}
    t = nn.Sequential(nn.Linear(d, h), nn.Sigmoid(), nn.Linear(h, k), nn.Sigmoid())
    X, y = rng.standard_normal((d, n)), rng.integers(0, 2, n)
    return parity.compare_functions(nielsen_functions(load("nets_nielsen_network2", bug)), t,
                                    X, y, params, loss="bce", examples="columns",
                                    penalty={"l2": LMBDA / n} if penalty == "stated" else None)


# ---- the cases ---------------------------------------------------------------------------------

BUGS = {
    "cs231n batchnorm unbiased variance (forward)":
        ("var = x.var(axis=0)", "var = x.var(axis=0, ddof=1)"),
    "cs231n batchnorm_backward_alt without - S(dx) (backward)":
        ("dx = len(dout)*dx  - S(dx*standart_x)*standart_x - S(dx)",
         "dx = len(dout)*dx  - S(dx*standart_x)*standart_x"),
    "nnfs leaky ReLU forward (forward)":
        ("self.output = np.maximum(0, inputs)", "self.output = np.maximum(0.01 * inputs, inputs)"),
    "nnfs dropout backward without its mask (backward)":
        ("self.dinputs = dvalues * self.binary_mask", "self.dinputs = dvalues"),
    "nielsen sigmoid_prime with 1 + sigmoid (backward)":
        ("return sigmoid(z)*(1-sigmoid(z))", "return sigmoid(z)*(1+sigmoid(z))"),
}


@pytest.mark.parametrize("run, dtype", [(run_cs231n, "float64"), (run_cs231n, "float32"),
                                        (run_nnfs, None), (run_nielsen, None)],
                         ids=["cs231n-float64", "cs231n-float32", "nnfs", "nielsen"])
def test_each_real_net_passes_as_written(run, dtype):
    r = run(dtype=dtype) if dtype else run()
    assert r.passed, r.report()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cs231n_batchnorm_forward_bug_is_named_at_its_layer(dtype):
    r = run_cs231n(BUGS["cs231n batchnorm unbiased variance (forward)"], dtype)
    loc = r.localization
    assert not r.passed and loc.cause == "forward", r.report()
    assert (loc.forward.index, loc.forward.kind) == (1, "BatchNorm1d"), r.report()
    assert not r.hints, "the forward finding explains the running_var too: no hint"


def test_cs231n_batchnorm_backward_bug_is_consistent_with_that_batchnorm():
    r = run_cs231n(BUGS["cs231n batchnorm_backward_alt without - S(dx) (backward)"])
    loc = r.localization
    assert not r.passed and loc.cause == "backward", r.report()
    assert loc.backward.index == 4 and loc.consistent == [
        "layer 4 (Linear) parameter gradients", "layer 5 (BatchNorm1d) input gradient"], \
        r.report()


def test_nnfs_relu_forward_bug_is_named_at_its_layer():
    r = run_nnfs(BUGS["nnfs leaky ReLU forward (forward)"])
    assert (r.localization.forward.index, r.localization.forward.kind) == (1, "ReLU"), \
        r.report()


def test_nnfs_dropout_backward_bug_is_consistent_with_the_dropout_layer():
    r = run_nnfs(BUGS["nnfs dropout backward without its mask (backward)"])
    loc = r.localization
    assert loc.forward is None and loc.backward.index == 0, r.report()
    assert "layer 2 (Dropout) backward" in loc.consistent, r.report()


def test_nielsen_sigmoid_backward_bug_is_consistent_with_the_sigmoid_layer():
    r = run_nielsen(BUGS["nielsen sigmoid_prime with 1 + sigmoid (backward)"])
    loc = r.localization
    assert not r.passed and loc.backward.index == 0, r.report()
    assert loc.consistent == ["layer 0 (Linear) parameter gradients",
                              "layer 1 (Sigmoid) backward", "layer 2 (Linear) input gradient"], \
        r.report()


@pytest.mark.parametrize("run, expected", [
    (run_nielsen, "exceed torch's by exactly 0.025·W: an L2 penalty torch was not told of; "
                  "pass penalty={'l2': 0.025}"),
    (run_nnfs, "exceed torch's by exactly 0.02·θ + 0.005·sign(θ) on the weights and biases: "
               "an L2 and L1 penalty torch was not told of; pass penalty={'l2': 0.02, "
               "'l1': 0.005, 'biases': True}"),
], ids=["nielsen", "nnfs"])
def test_an_unstated_penalty_fails_with_a_hint(run, expected):
    r = run(penalty="unstated")
    assert not r.passed and any(expected in h for h in r.hints), r.report()


def glue_lines() -> dict[str, int]:
    """Code lines (no blank, comment or docstring line) of each ``# glue`` function or class."""
    source = Path(__file__).read_text()
    lines = source.splitlines()
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and \
                lines[node.lineno - 1].rstrip().endswith("# glue"):
            doc = set()
            for sub in ast.walk(node):
                body = getattr(sub, "body", None)
                if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                        isinstance(body[0].value, ast.Constant):
                    doc |= set(range(body[0].lineno, body[0].end_lineno + 1))
            out[node.name] = sum(1 for i in range(node.lineno, node.end_lineno + 1)
                                 if i not in doc and lines[i - 1].strip()
                                 and not lines[i - 1].strip().startswith("#"))
    return out


def test_the_glue_is_small():
    """The adapters stay a small fraction of the code they adapt (docs/realcode-nets.md
    lists the counts)."""
    counts = glue_lines()
    assert set(counts) == {"_Replay", "cs231n_functions", "nnfs_functions", "nielsen_functions"}
    assert all(n <= 35 for n in counts.values()), counts
