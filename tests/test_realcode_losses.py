"""Losses from real outside code (``tests/realcode``, kept as written) against the matching
torch loss through ``parity.compare_functions``: cs231n's softmax and SVM losses, Nielsen's
quadratic cost, the nnfs book's MSE, MAE and categorical cross-entropy. A correct case passes;
a bug planted in its loss fails on a gradient, and the report names the torch loss it was
judged against. Conventions that differ from torch's defaults (cs231n's SVM is K times
torch's hinge, Nielsen's cost is half a sum) fail as written and pass through one stated line
of glue; the book's MAE gradient has the wrong sign as published."""

import numpy as np
import pytest
import torch
from realcode_sources import Lazy
from torch import nn

import parity
from parity import finite_diff as fd
from parity.tools.selftest import mutate_source

C = Lazy("cs231n_layers.py")
NN = Lazy("nielsen_network2.py", prelude={"xrange": range})   # glue: the file is Python 2
B = Lazy("nnfs_ch17.py")


# ---- glue: from each source's interface to loss_and_grads --------------------------------------
def linear_classifier(loss_fn, per_class=1.0):
    """``loss_and_grads(params, X, y)`` of cs231n's linear classifier ``X @ W + b`` under
    ``loss_fn``; ``per_class`` scales loss and gradient (1/K turns cs231n's SVM into torch's)."""
    def loss_and_grads(params, X, y):
        scores, cache = C.affine_forward(X, params["W"], params["b"])
        loss, dscores = loss_fn(scores, y)
        _, dW, db = C.affine_backward(dscores * per_class, cache)
        return loss * per_class, {"W": dW, "b": db}
    return loss_and_grads


def quadratic_sum(sizes, cost=None):
    """``loss_and_grads`` of Nielsen's network ``sizes`` with ``cost`` (his QuadraticCost by
    default), summed over the batch as his ``update_mini_batch`` sums ``backprop``; params
    ``w0, b0, w1, b1 …`` as torch's ``(out, in)`` weights and ``(out,)`` biases. His
    ``½‖a − y‖²`` is half of torch's ``MSELoss(reduction='sum')``: loss and gradients × 2."""
    cost = NN.QuadraticCost if cost is None else cost

    def loss_and_grads(params, X, Y):
        net = NN.Network.__new__(NN.Network)
        net.num_layers, net.cost = len(sizes), cost
        net.weights = [params[f"w{i}"] for i in range(len(sizes) - 1)]
        net.biases = [params[f"b{i}"].reshape(-1, 1) for i in range(len(sizes) - 1)]
        grads = {k: np.zeros_like(v) for k, v in params.items()}
        loss = 0.0
        for x, y in zip(X, Y):
            nabla_b, nabla_w = net.backprop(x.reshape(-1, 1), y.reshape(-1, 1))
            loss += cost.fn(net.feedforward(x.reshape(-1, 1)), y.reshape(-1, 1))
            for i, (nb, nw) in enumerate(zip(nabla_b, nabla_w)):
                grads[f"w{i}"] += 2 * nw
                grads[f"b{i}"] += 2 * nb.ravel()
        return 2 * loss, grads
    return loss_and_grads


def dense(W, b):
    """The book's Layer_Dense holding ``W: (in, out)`` and ``b: (out,)``, without its random
    init."""
    layer = B.Layer_Dense.__new__(B.Layer_Dense)
    layer.weights, layer.biases = W, b.reshape(1, -1)
    layer.weight_regularizer_l1 = layer.weight_regularizer_l2 = 0
    layer.bias_regularizer_l1 = layer.bias_regularizer_l2 = 0
    return layer


def two_layer(loss, head):
    """``loss_and_grads`` of the book's Dense → ReLU → Dense → ``head`` under ``loss``, run
    the way its training loop runs it (``calculate``, then backward from the loss down)."""
    def loss_and_grads(params, X, y):
        dense1, relu = dense(params["W1"], params["b1"]), B.Activation_ReLU()
        dense2, last = dense(params["W2"], params["b2"]), head()
        dense1.forward(X)
        relu.forward(dense1.output)
        dense2.forward(relu.output)
        last.forward(dense2.output)
        value = loss.calculate(last.output, y)
        loss.backward(last.output, y)
        last.backward(loss.dinputs)
        dense2.backward(last.dinputs)
        relu.backward(dense2.dinputs)
        dense1.backward(relu.dinputs)
        return value, {"W1": dense1.dweights, "b1": dense1.dbiases.ravel(),
                       "W2": dense2.dweights, "b2": dense2.dbiases.ravel()}
    return loss_and_grads


def linear_case(rng):
    """cs231n's linear classifier ``X @ W + b``: 8 samples, 5 features, 4 classes."""
    params = {"W": 0.5 * rng.standard_normal((5, 4)), "b": 0.1 * rng.standard_normal(4)}
    return nn.Linear(5, 4).double(), rng.standard_normal((8, 5)), rng.integers(0, 4, 8), params


def nielsen_case(rng):
    """Nielsen's [4, 5, 3] sigmoid network, one-hot targets as his ``vectorized_result``."""
    model = nn.Sequential(nn.Linear(4, 5), nn.Sigmoid(), nn.Linear(5, 3), nn.Sigmoid()).double()
    params = {"w0": 0.5 * rng.standard_normal((5, 4)), "b0": rng.standard_normal(5),
              "w1": 0.5 * rng.standard_normal((3, 5)), "b1": rng.standard_normal(3)}
    return model, rng.standard_normal((6, 4)), np.eye(3)[rng.integers(0, 3, 6)], params


def nnfs_case(rng, k, head=(), targets="real"):
    """The book's Dense(3, 6) → ReLU → Dense(6, k) → ``head``; real targets ``(8, k)`` or
    class labels."""
    model = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, k), *head).double()
    params = {"W1": 0.5 * rng.standard_normal((3, 6)), "b1": 0.1 * rng.standard_normal(6),
              "W2": 0.5 * rng.standard_normal((6, k)), "b2": 0.1 * rng.standard_normal(k)}
    y = rng.standard_normal((8, k)) if targets == "real" else rng.integers(0, k, 8)
    return model, rng.standard_normal((8, 3)), y, params


# case → (its loss_and_grads, the data, compare_functions' loss and reduction, torch's class)
CASES = {
    "cs231n softmax_loss": (lambda: linear_classifier(C.softmax_loss), linear_case,
                            "cross_entropy", "mean", "CrossEntropyLoss"),
    "cs231n svm_loss / K": (lambda: linear_classifier(C.svm_loss, 1 / 4), linear_case,
                            "multi_margin", "mean", "MultiMarginLoss"),
    "Nielsen QuadraticCost × 2": (lambda: quadratic_sum([4, 5, 3]), nielsen_case, "mse",
                                  "sum", "MSELoss"),
    "nnfs Loss_MeanSquaredError": (
        lambda: two_layer(B.Loss_MeanSquaredError(), B.Activation_Linear),
        lambda rng: nnfs_case(rng, 2), "mse", "mean", "MSELoss"),
    "nnfs Softmax + Loss_CategoricalCrossentropy": (
        lambda: two_layer(B.Loss_CategoricalCrossentropy(), B.Activation_Softmax),
        lambda rng: nnfs_case(rng, 3, (nn.Softmax(dim=1),), "labels"), "cross_entropy_probs",
        "mean", "NLLOfLog"),
}


def run(case: str, fn=None, seed: int = 0, **override):
    make, data, loss, reduction, _ = CASES[case]
    torch.manual_seed(seed)
    model, X, y, params = data(np.random.default_rng(seed))
    kw = {"loss": loss, "reduction": reduction, **override}
    return parity.compare_functions(fn or make(), model, X, y, params, name=case, **kw)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", list(CASES))
def test_the_real_loss_passes_against_its_torch_loss(case, seed):
    report = run(case, seed=seed)
    assert report.passed, report.report()
    assert f"torch's loss: {CASES[case][4]}(reduction='{CASES[case][3]}')" in report.report()


def _planted(case: str):
    """One bug per case, as people write them, planted in the real code's loss."""
    if case.startswith("cs231n svm"):
        bad = mutate_source(C.svm_loss, [("dx[margins > 0] = 1", "dx[margins >= 0] = 1")],
                            "svm-counts-zero-margins")
        return linear_classifier(bad, 1 / 4)
    if case.startswith("cs231n softmax"):
        bad = mutate_source(C.softmax_loss, [("  dx /= N\n", "")], "softmax-grad-not-averaged")
        return linear_classifier(bad)
    if case.startswith("Nielsen"):
        class ForgotSigmoidPrime(NN.QuadraticCost):
            delta = NN.CrossEntropyCost.delta        # (a − y): the cross-entropy's delta
        return quadratic_sum([4, 5, 3], ForgotSigmoidPrime)
    if "MeanSquared" in case:
        class ForgotTheTwo(B.Loss_MeanSquaredError):
            backward = mutate_source(B.Loss_MeanSquaredError.backward,
                                     [("-2 * (y_true - dvalues)", "-(y_true - dvalues)")],
                                     "mse-forgot-2")
        return two_layer(ForgotTheTwo(), B.Activation_Linear)

    class NotNormalized(B.Loss_CategoricalCrossentropy):
        backward = mutate_source(B.Loss_CategoricalCrossentropy.backward,
                                 [("self.dinputs = self.dinputs / samples", "pass")],
                                 "cce-not-normalized")
    return two_layer(NotNormalized(), B.Activation_Softmax)


@pytest.mark.parametrize("case", list(CASES))
def test_a_bug_planted_in_the_real_loss_fails_naming_the_loss(case):
    report = run(case, _planted(case))
    text = report.report()
    assert not report.passed, f"{case}: the planted bug passed"
    assert any(c.quantity == "grad" and not c.passed for c in report.checks), text
    assert f"torch's loss: {CASES[case][4]}" in text


def test_cs231n_svm_as_written_is_k_times_torchs_multiclass_hinge():
    """torch's MultiMarginLoss divides by the number of classes, cs231n's svm_loss does not:
    as written it fails, loss and every gradient exactly K = 4 times torch's."""
    report = run("cs231n svm_loss / K", linear_classifier(C.svm_loss))
    assert not report.passed
    loss = next(c for c in report.checks if c.quantity == "loss")
    assert loss.max_rel == pytest.approx(3 / 4, rel=1e-12)     # |4t − t| / |4t|


def test_nielsens_cost_fails_against_torchs_default_mean():
    """Nielsen sums his cost over the batch; against torch's default reduction='mean' the
    same code fails — the summed-vs-mean trap of the issue."""
    assert not run("Nielsen QuadraticCost × 2", reduction="mean").passed


def test_the_nnfs_mae_gradient_has_the_wrong_sign_as_published():
    """Loss_MeanAbsoluteError.backward returns ``sign(y_true − dvalues)``: the gradient of
    ``|y − ŷ|`` in ŷ is ``−sign(y − ŷ)``. The loss agrees with torch's L1Loss, every gradient
    is exactly minus torch's, and finite differences of the book's own forward side with
    torch."""
    fn = two_layer(B.Loss_MeanAbsoluteError(), B.Activation_Linear)
    report = run("nnfs Loss_MeanSquaredError", fn, loss="l1")
    assert not report.passed
    assert next(c for c in report.checks if c.quantity == "loss").passed
    rng = np.random.default_rng(0)
    pred, y = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
    mae = B.Loss_MeanAbsoluteError()
    mae.backward(pred, y)
    numeric = fd.numerical_jvp_grad(lambda p: mae.calculate(p, y), pred.copy(), 1.0)
    np.testing.assert_allclose(mae.dinputs, -numeric, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(-mae.dinputs, np.sign(pred - y) / pred.size, rtol=1e-15)
