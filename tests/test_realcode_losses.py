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
from realcode import cs231n_layers as C
from realcode import nielsen_network2 as NN
from realcode import nnfs_ch17 as B
from torch import nn

import parity
from parity import finite_diff as fd
from parity.tools.selftest import mutate_source


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
    "cs231n softmax_loss": (lambda: C.linear_classifier(C.softmax_loss), linear_case,
                            "cross_entropy", "mean", "CrossEntropyLoss"),
    "cs231n svm_loss / K": (lambda: C.linear_classifier(C.svm_loss, 1 / 4), linear_case,
                            "multi_margin", "mean", "MultiMarginLoss"),
    "Nielsen QuadraticCost × 2": (lambda: NN.quadratic_sum([4, 5, 3]), nielsen_case, "mse",
                                  "sum", "MSELoss"),
    "nnfs Loss_MeanSquaredError": (
        lambda: B.two_layer(B.Loss_MeanSquaredError(), B.Activation_Linear),
        lambda rng: nnfs_case(rng, 2), "mse", "mean", "MSELoss"),
    "nnfs Softmax + Loss_CategoricalCrossentropy": (
        lambda: B.two_layer(B.Loss_CategoricalCrossentropy(), B.Activation_Softmax),
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
        return C.linear_classifier(bad, 1 / 4)
    if case.startswith("cs231n softmax"):
        bad = mutate_source(C.softmax_loss, [("  dx /= N\n", "")], "softmax-grad-not-averaged")
        return C.linear_classifier(bad)
    if case.startswith("Nielsen"):
        class ForgotSigmoidPrime(NN.QuadraticCost):
            delta = NN.CrossEntropyCost.delta        # (a − y): the cross-entropy's delta
        return NN.quadratic_sum([4, 5, 3], ForgotSigmoidPrime)
    if "MeanSquared" in case:
        class ForgotTheTwo(B.Loss_MeanSquaredError):
            backward = mutate_source(B.Loss_MeanSquaredError.backward,
                                     [("-2 * (y_true - dvalues)", "-(y_true - dvalues)")],
                                     "mse-forgot-2")
        return B.two_layer(ForgotTheTwo(), B.Activation_Linear)

    class NotNormalized(B.Loss_CategoricalCrossentropy):
        backward = mutate_source(B.Loss_CategoricalCrossentropy.backward,
                                 [("self.dinputs = self.dinputs / samples", "pass")],
                                 "cce-not-normalized")
    return B.two_layer(NotNormalized(), B.Activation_Softmax)


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
    report = run("cs231n svm_loss / K", C.linear_classifier(C.svm_loss))
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
    fn = B.two_layer(B.Loss_MeanAbsoluteError(), B.Activation_Linear)
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
