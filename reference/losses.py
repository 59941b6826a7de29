"""Losses of the NumPy reference: ``forward(out, y) -> float`` keeps what ``backward() ->
dout`` needs in ``saved`` (declared per class: checkers read it), as the layers do.

All reduce with the mean over the batch, like torch's default ``reduction='mean'``.
"""

from __future__ import annotations

import numpy as np

from reference.layers import sigmoid


def _check_scores(name: str, scores: np.ndarray) -> None:
    if not isinstance(scores, np.ndarray) or scores.ndim != 2:
        shape = getattr(scores, "shape", type(scores).__name__)
        raise ValueError(f"{name}: expected scores of shape (N, K), got {shape}")
    if scores.shape[0] == 0:
        raise ValueError(f"{name}: empty batch")


class Loss:
    """Base: ``saved`` holds what the last ``forward`` kept for ``backward``."""

    def __init__(self) -> None:
        self.saved: dict = {}

    def forward(self, out: np.ndarray, y: np.ndarray) -> float:  # pragma: no cover
        raise NotImplementedError

    def backward(self) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy, ``L = −(1/N) Σ_n log softmax(s_n)[y_n]``; saves ``log_p``
    (``(N, K)`` log-probabilities) and ``y``.

    ``scores: (N, K)`` float, ``y: (N,)`` int in ``[0, K)``. Evaluated by log-sum-exp,
    ``log softmax(s) = (s − max s) − log Σ exp(s − max s)``, which never overflows (softmax →
    log drifts by ~1e-4 at logit scale 50). Backward: ``dscores = (softmax(s) − onehot(y)) / N``.
    """

    def forward(self, scores: np.ndarray, y: np.ndarray) -> float:
        _check_scores("CrossEntropyLoss", scores)
        n, k = scores.shape
        y = np.asarray(y)
        if y.shape != (n,) or y.dtype.kind not in "iu":
            raise ValueError(
                f"CrossEntropyLoss: expected integer labels of shape ({n},), "
                f"got {y.dtype} {y.shape}"
            )
        if n and (y.min() < 0 or y.max() >= k):
            bad = int(np.flatnonzero((y < 0) | (y >= k))[0])
            raise ValueError(
                f"CrossEntropyLoss: label {int(y[bad])} at index {bad} out of range [0, {k})"
            )
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        log_p = shifted - log_z
        self.saved = {"log_p": log_p, "y": y}
        return float(-log_p[np.arange(n), y].mean())

    def backward(self) -> np.ndarray:
        log_p, y = self.saved["log_p"], self.saved["y"]
        n = log_p.shape[0]
        d = np.exp(log_p)
        d[np.arange(n), y] -= 1
        return d / log_p.dtype.type(n)


def _binary_targets(name: str, out: np.ndarray, y: np.ndarray) -> np.ndarray:
    _check_scores(name, out)
    if out.shape[1] != 1:
        raise ValueError(f"{name}: expected output of shape (N, 1), got {out.shape}")
    y = np.asarray(y)
    if y.shape not in ((out.shape[0],), out.shape):
        raise ValueError(f"{name}: targets shape {y.shape} does not match output {out.shape}")
    y = y.reshape(out.shape).astype(out.dtype)
    if not np.all((y == 0) | (y == 1)):
        raise ValueError(f"{name}: targets must be 0 or 1")
    return y


class BCELoss(Loss):
    """Binary cross-entropy on probabilities ``p: (N, 1)`` in [0, 1], targets ``y`` in {0, 1};
    saves ``p`` and ``y`` (``(N, 1)``, p's dtype).

    As torch: each log is clamped at −100, so p = 0 or 1 gives a finite loss of 100:
    ``L = −mean(y·max(log p, −100) + (1 − y)·max(log(1 − p), −100))``;
    ``dp = (p − y) / max(p(1 − p), ε) / N`` with ε = float32(1e-12), as in torch.
    BCE(sigmoid(a)) and BCEWithLogits(a) legitimately differ for saturated a.
    """

    EPS = float(np.float32(1e-12))  # torch's EPSILON is a C float: 9.99999996e-13

    def forward(self, p: np.ndarray, y: np.ndarray) -> float:
        y = _binary_targets("BCELoss", p, y)
        if np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
            raise ValueError("BCELoss: inputs must be probabilities in [0, 1]")
        with np.errstate(divide="ignore"):  # log 0 = −inf is clamped to −100 on purpose
            log_p = np.maximum(np.log(p), -100)
            log_1mp = np.maximum(np.log1p(-p), -100)
        self.saved = {"p": p, "y": y}
        return float(-(y * log_p + (1 - y) * log_1mp).mean())

    def backward(self) -> np.ndarray:
        p, y = self.saved["p"], self.saved["y"]
        return (p - y) / np.maximum(p * (1 - p), p.dtype.type(self.EPS)) / p.dtype.type(len(p))


class BCEWithLogitsLoss(Loss):
    """Sigmoid + binary cross-entropy on logits ``a: (N, 1)``, in the stable form
    ``L = mean(max(a, 0) − a·y + log(1 + e^{−|a|}))``; ``da = (σ(a) − y) / N``; saves ``a``
    and ``y``."""

    def forward(self, a: np.ndarray, y: np.ndarray) -> float:
        y = _binary_targets("BCEWithLogitsLoss", a, y)
        self.saved = {"a": a, "y": y}
        return float((np.maximum(a, 0) - a * y + np.log1p(np.exp(-np.abs(a)))).mean())

    def backward(self) -> np.ndarray:
        a, y = self.saved["a"], self.saved["y"]
        return (sigmoid(a) - y) / a.dtype.type(len(a))


def l2_penalty(weights, reg: float) -> float:
    """cs231n's regularization in the loss: ``0.5 · reg · Σ_W ΣW²`` over weight matrices only.

    Its gradient ``reg · W`` is what torch's SGD ``weight_decay=reg`` adds to the gradient of
    the weights (same update, but torch does not report the penalty in the loss).
    """
    return float(0.5 * reg * sum(float(np.sum(w * w)) for w in weights))
