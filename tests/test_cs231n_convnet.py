"""A convolutional network written the way a cs231n student writes assignment 2's
``ThreeLayerConvNet`` — naive loops over output pixels, ``W1: (F, C, HH, WW)``, affine
weights ``(in, out)``, ``0.5·reg·Σ‖W‖²`` in the loss — checked by
``parity.compare_functions`` against a stock torch ``nn.Sequential``: the names and layouts
are found by shape (the 4-D kernel as torch's Conv2d weight, the 2-D weights transposed),
a correct function pair passes, and a planted bug is named at its parameter."""

import numpy as np
import pytest
from torch import nn

import parity

# ---- the student's code (written for this test; naive on purpose) --------------------------


def conv_forward_naive(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out = 1 + (H + 2 * pad - HH) // stride
    W_out = 1 + (W + 2 * pad - WW) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((N, F, H_out, W_out))
    for i in range(H_out):
        for j in range(W_out):
            patch = x_pad[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout, cache, flip_bug=False):
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    _, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad, dw = np.zeros_like(x_pad), np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))
    for i in range(H_out):
        for j in range(W_out):
            rows, cols = slice(i * stride, i * stride + HH), slice(j * stride, j * stride + WW)
            patch = x_pad[:, :, rows, cols]
            if flip_bug:                      # "a convolution flips": not in this one
                patch = patch[:, :, ::-1, ::-1]
            dw += np.tensordot(dout[:, :, i, j], patch, axes=([0], [0]))
            dx_pad[:, :, rows, cols] += np.tensordot(dout[:, :, i, j], w, axes=([1], [0]))
    dx = dx_pad[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]]
    return dx, dw, db


def max_pool_forward_naive(x, pool_param):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    out = np.zeros((N, C, 1 + (H - ph) // s, 1 + (W - pw) // s))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = x[:, :, i * s:i * s + ph, j * s:j * s + pw].max(axis=(2, 3))
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros_like(x)
    N, C = x.shape[:2]
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            window = x[:, :, i * s:i * s + ph, j * s:j * s + pw].reshape(N, C, -1)
            first = window.argmax(axis=2)
            mask = np.zeros_like(window)
            np.put_along_axis(mask, first[..., None], 1.0, axis=2)
            dx[:, :, i * s:i * s + ph, j * s:j * s + pw] += (
                mask * dout[:, :, i, j][..., None]).reshape(N, C, ph, pw)
    return dx


def conv_relu_pool_forward(x, w, b, conv_param, pool_param):
    a, conv_cache = conv_forward_naive(x, w, b, conv_param)
    s = np.maximum(a, 0)
    out, pool_cache = max_pool_forward_naive(s, pool_param)
    return out, (conv_cache, a, pool_cache)


def conv_relu_pool_backward(dout, cache, flip_bug=False):
    conv_cache, a, pool_cache = cache
    ds = max_pool_backward_naive(dout, pool_cache)
    da = ds * (a > 0)
    return conv_backward_naive(da, conv_cache, flip_bug)


def three_layer_convnet_loss(params, X, y, reg=0.0, flip_bug=False):
    """conv - relu - 2x2 max pool - affine - relu - affine - softmax."""
    W1, b1, W2, b2, W3, b3 = (params[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3"))
    conv_param = {"stride": 1, "pad": (W1.shape[2] - 1) // 2}
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    h1, cache1 = conv_relu_pool_forward(X, W1, b1, conv_param, pool_param)
    h1_flat = h1.reshape(X.shape[0], -1)
    a2 = h1_flat @ W2 + b2
    h2 = np.maximum(a2, 0)
    scores = h2 @ W3 + b3
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    N = X.shape[0]
    loss = -log_probs[np.arange(N), y].mean()
    loss += 0.5 * reg * sum(np.sum(W * W) for W in (W1, W2, W3))
    dscores = np.exp(log_probs)
    dscores[np.arange(N), y] -= 1
    dscores /= N
    grads = {"W3": h2.T @ dscores + reg * W3, "b3": dscores.sum(axis=0)}
    da2 = (dscores @ W3.T) * (a2 > 0)
    grads["W2"], grads["b2"] = h1_flat.T @ da2 + reg * W2, da2.sum(axis=0)
    dh1 = (da2 @ W2.T).reshape(h1.shape)
    _, dW1, db1 = conv_relu_pool_backward(dh1, cache1, flip_bug)
    grads["W1"], grads["b1"] = dW1 + reg * W1, db1
    return loss, grads

# ---- the check ---------------------------------------------------------------------------------


def setup(seed=0, N=4, C=2, H=8, F=3, filter_size=3, hidden=7, classes=5):
    rng = np.random.default_rng(seed)
    params = {"W1": 0.3 * rng.standard_normal((F, C, filter_size, filter_size)),
              "b1": 0.1 * rng.standard_normal(F),
              "W2": 0.3 * rng.standard_normal((F * (H // 2) ** 2, hidden)),
              "b2": 0.1 * rng.standard_normal(hidden),
              "W3": 0.3 * rng.standard_normal((hidden, classes)),
              "b3": 0.1 * rng.standard_normal(classes)}
    model = nn.Sequential(nn.Conv2d(C, F, filter_size, padding=(filter_size - 1) // 2),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(F * (H // 2) ** 2, hidden), nn.ReLU(),
                          nn.Linear(hidden, classes)).double()
    X, y = rng.standard_normal((N, C, H, H)), rng.integers(0, classes, N)
    return params, model, X, y


@pytest.mark.parametrize("reg", [0.0, 0.05])
def test_the_students_convnet_matches_torch(reg):
    params, model, X, y = setup()
    report = parity.compare_functions(lambda p, X_, y_: three_layer_convnet_loss(p, X_, y_, reg),
                                      model, X, y, params, reg=reg)
    assert report.passed, report.report()
    text = report.report()
    assert "W1 → 0.weight" in text and "W2 → 4.weight" in text, text
    assert "your W2 (48, 7), W3 (7, 5) are (in, out)" in text, text


def test_a_flipped_kernel_in_the_students_dw_is_named_at_w1():
    """The input patch rotated by 180° in ``dW1`` (the forward is a correlation, nothing is
    flipped): the check fails, and only ``W1``'s gradient, torch's ``0.weight``."""
    params, model, X, y = setup()
    report = parity.compare_functions(
        lambda p, X_, y_: three_layer_convnet_loss(p, X_, y_, flip_bug=True), model, X, y,
        params)
    assert not report.passed
    failed = {c.label for c in report.failures()}
    assert failed == {"step 1 grad 0.weight (your W1)"}, failed
    assert "layer 0" in "\n".join(report.localization.lines())


def test_the_pairing_by_shape_takes_a_4d_kernel_as_torchs_conv_weight():
    params, model, X, y = setup(F=3, C=3, filter_size=3)   # W1 (3, 3, 3, 3): a palindrome
    report = parity.compare_functions(three_layer_convnet_loss, model, X, y, params)
    assert report.passed, report.report()
