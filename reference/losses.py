"""Losses of the NumPy reference: ``forward(out, y) -> float`` keeps what ``backward() ->
dout`` needs in ``saved`` (declared per class: checkers read it), as the layers do.

Each reduces as torch's ``reduction``: ``"mean"`` (the default) divides the sum of the
per-element losses by their count — the batch size N for the class losses, N·K for the
elementwise ones (MSE, L1, SmoothL1, Huber: torch averages over every element) — and
``"sum"`` does not divide.
"""

from __future__ import annotations

import numpy as np
from parity.reference.layers import sigmoid


def _check_scores(name: str, scores: np.ndarray) -> None:
    if not isinstance(scores, np.ndarray) or scores.ndim != 2:
        shape = getattr(scores, "shape", type(scores).__name__)
        raise ValueError(f"{name}: expected scores of shape (N, K), got {shape}")
    if scores.shape[0] == 0:
        raise ValueError(f"{name}: empty batch")


REDUCTIONS = ("mean", "sum")


def _class_labels(name: str, scores: np.ndarray, y) -> np.ndarray:
    """``y: (N,)`` integer labels in ``[0, K)`` for ``scores: (N, K)``."""
    _check_scores(name, scores)
    n, k = scores.shape
    y = np.asarray(y)
    if y.shape != (n,) or y.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integer labels of shape ({n},), got {y.dtype} "
                         f"{y.shape}")
    if y.min() < 0 or y.max() >= k:
        bad = int(np.flatnonzero((y < 0) | (y >= k))[0])
        raise ValueError(f"{name}: label {int(y[bad])} at index {bad} out of range [0, {k})")
    return y


class Loss:
    """Base: ``saved`` holds what the last ``forward`` kept for ``backward``; ``reduction``
    is ``"mean"`` or ``"sum"`` over the per-element losses, as torch's."""

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {REDUCTIONS}, "
                             f"got {reduction!r}")
        self.reduction = reduction
        self.saved: dict = {}

    def reduce(self, per: np.ndarray) -> float:
        """The reported loss: ``mean(per)`` or ``sum(per)``."""
        return float(per.mean() if self.reduction == "mean" else per.sum())

    def scaled(self, d: np.ndarray, count: int) -> np.ndarray:
        """The gradient of the reduction: ``d / count`` for the mean, ``d`` for the sum."""
        return d / d.dtype.type(count) if self.reduction == "mean" else d

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
        y = _class_labels("CrossEntropyLoss", scores, y)
        n = len(y)
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        log_p = shifted - log_z
        self.saved = {"log_p": log_p, "y": y}
        return self.reduce(-log_p[np.arange(n), y])

    def backward(self) -> np.ndarray:
        log_p, y = self.saved["log_p"], self.saved["y"]
        n = log_p.shape[0]
        d = np.exp(log_p)
        d[np.arange(n), y] -= 1
        return self.scaled(d, n)


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
        return self.reduce(-(y * log_p + (1 - y) * log_1mp))

    def backward(self) -> np.ndarray:
        p, y = self.saved["p"], self.saved["y"]
        return self.scaled((p - y) / np.maximum(p * (1 - p), p.dtype.type(self.EPS)), len(p))


class BCEWithLogitsLoss(Loss):
    """Sigmoid + binary cross-entropy on logits ``a: (N, 1)``, in the stable form
    ``L = mean(max(a, 0) − a·y + log(1 + e^{−|a|}))``; ``da = (σ(a) − y) / N``; saves ``a``
    and ``y``."""

    def forward(self, a: np.ndarray, y: np.ndarray) -> float:
        y = _binary_targets("BCEWithLogitsLoss", a, y)
        self.saved = {"a": a, "y": y}
        return self.reduce(np.maximum(a, 0) - a * y + np.log1p(np.exp(-np.abs(a))))

    def backward(self) -> np.ndarray:
        a, y = self.saved["a"], self.saved["y"]
        return self.scaled(sigmoid(a) - y, len(a))


# ---- regression: elementwise losses of the residual r = out − y --------------------------------

def _regression_targets(name: str, out: np.ndarray, y) -> np.ndarray:
    """Float targets shaped like ``out: (N, K)`` (``(N,)`` too when K = 1), in out's dtype."""
    _check_scores(name, out)
    y = np.asarray(y)
    if y.shape != out.shape and not (out.shape[1] == 1 and y.shape == (out.shape[0],)):
        raise ValueError(f"{name}: targets shape {y.shape} does not match output {out.shape}")
    if y.dtype.kind not in "fiu" or not np.all(np.isfinite(y)):
        raise ValueError(f"{name}: targets must be finite real numbers, got {y.dtype}")
    return y.reshape(out.shape).astype(out.dtype)


class _Elementwise(Loss):
    """A loss ``ℓ(r)`` per element of the residual ``r = out − y`` (``out, y: (N, K)``), reduced
    over all N·K elements (torch's mean divides by N·K, not N); saves ``r``."""

    def forward(self, out: np.ndarray, y) -> float:
        r = out - _regression_targets(type(self).__name__, out, y)
        self.saved = {"r": r}
        return self.reduce(self.elementwise(r))

    def backward(self) -> np.ndarray:
        r = self.saved["r"]
        return self.scaled(self.derivative(r), r.size)

    def elementwise(self, r: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def derivative(self, r: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class MSELoss(_Elementwise):
    """Squared error ``ℓ = r²``; ``dℓ/dout = 2r``. ``L = Σ r² / (N·K)`` for the mean.
    (Nielsen's QuadraticCost ``½‖a − y‖²`` is half of the sum.)"""

    def elementwise(self, r):
        return r * r

    def derivative(self, r):
        return 2 * r


class L1Loss(_Elementwise):
    """Absolute error ``ℓ = |r|``; ``dℓ/dout = sign(r)``, 0 at r = 0 (torch's subgradient)."""

    def elementwise(self, r):
        return np.abs(r)

    def derivative(self, r):
        return np.sign(r)


def _positive(owner: str, name: str, v, allow_zero: bool) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) \
            or not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{owner}: {name} must be a finite number "
                         f"{'>= 0' if allow_zero else '> 0'}, got {v!r}")
    return float(v)


class SmoothL1Loss(_Elementwise):
    """torch's SmoothL1: ``ℓ = r²/(2β)`` for ``|r| < β``, else ``|r| − β/2``;
    ``dℓ/dout = r/β`` inside, ``sign(r)`` outside (continuous at ``|r| = β``, where the second
    derivative jumps). ``β = 0`` is L1, as in torch. SmoothL1(β) = Huber(δ = β) / β."""

    def __init__(self, beta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.beta = _positive("SmoothL1Loss", "beta", beta, allow_zero=True)

    def elementwise(self, r):
        a, b = np.abs(r), r.dtype.type(self.beta)
        if self.beta == 0:
            return a
        return np.where(a < b, 0.5 * r * r / b, a - 0.5 * b)

    def derivative(self, r):
        if self.beta == 0:
            return np.sign(r)
        return np.where(np.abs(r) < self.beta, r / r.dtype.type(self.beta), np.sign(r))


class HuberLoss(_Elementwise):
    """torch's Huber: ``ℓ = r²/2`` for ``|r| < δ``, else ``δ(|r| − δ/2)``;
    ``dℓ/dout = r`` inside, ``δ·sign(r)`` outside. Huber(δ) = δ·SmoothL1(β = δ): the two agree
    only at δ = 1."""

    def __init__(self, delta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.delta = _positive("HuberLoss", "delta", delta, allow_zero=False)

    def elementwise(self, r):
        a, d = np.abs(r), r.dtype.type(self.delta)
        return np.where(a < d, 0.5 * r * r, d * (a - 0.5 * d))

    def derivative(self, r):
        d = r.dtype.type(self.delta)
        return np.where(np.abs(r) < d, r, d * np.sign(r))


# ---- class losses on scores, log-probabilities or probabilities --------------------------------

class NLLLoss(Loss):
    """Negative log-likelihood of log-probabilities ``log_p: (N, K)`` (e.g. LogSoftmax's
    output) at labels ``y: (N,)``: ``ℓ_n = −log_p[n, y_n]``; ``d log_p = −onehot(y)`` (/N for
    the mean). Saves ``log_p`` and ``y``. Like torch, it does not check that rows are
    log-probabilities."""

    def forward(self, log_p: np.ndarray, y) -> float:
        y = _class_labels("NLLLoss", log_p, y)
        self.saved = {"log_p": log_p, "y": y}
        return self.reduce(-log_p[np.arange(len(y)), y])

    def backward(self) -> np.ndarray:
        log_p, y = self.saved["log_p"], self.saved["y"]
        d = np.zeros_like(log_p)
        d[np.arange(len(y)), y] = -1
        return self.scaled(d, len(y))


class ProbsCrossEntropyLoss(Loss):
    """Cross-entropy of probabilities ``p: (N, K)`` (a Softmax layer's output): ``ℓ_n =
    −log p[n, y_n]``, what torch users write as ``NLLLoss()(torch.log(p), y)``; ``dp =
    −onehot(y)/p`` (/N for the mean). Saves ``p`` and ``y``. No clipping: ``p = 0`` at a label
    is an infinite loss on both sides (nnfs clips at 1e-7; cs231n does not)."""

    def forward(self, p: np.ndarray, y) -> float:
        y = _class_labels("ProbsCrossEntropyLoss", p, y)
        if np.any((p < 0) | (p > 1)):
            raise ValueError("ProbsCrossEntropyLoss: inputs must be probabilities in [0, 1]")
        self.saved = {"p": p, "y": y}
        with np.errstate(divide="ignore"):
            return self.reduce(-np.log(p[np.arange(len(y)), y]))

    def backward(self) -> np.ndarray:
        p, y = self.saved["p"], self.saved["y"]
        rows = np.arange(len(y))
        d = np.zeros_like(p)
        with np.errstate(divide="ignore"):
            d[rows, y] = -1 / p[rows, y]
        return self.scaled(d, len(y))


class MultiMarginLoss(Loss):
    """torch's multiclass hinge (p = 1) on scores ``s: (N, K)``, labels ``y: (N,)``:
    ``ℓ_n = Σ_{j≠y} max(0, m_nj) / K`` with margins ``m_nj = margin − s_{n,y} + s_nj``;
    ``ds_nj = [m_nj > 0]/K`` for j ≠ y, ``ds_{n,y} = −Σ_{j≠y} [m_nj > 0]/K`` (/N for the mean).
    Saves ``s``, ``margins`` (``(N, K)``, 0 at the label) and ``y``.

    torch divides by the number of classes K; cs231n's ``svm_loss`` (the multiclass SVM, Δ = 1)
    does not: its loss and gradient are K times torch's. A margin exactly 0 counts as inactive
    on both."""

    def __init__(self, margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.margin = _positive("MultiMarginLoss", "margin", margin, allow_zero=True)

    def forward(self, s: np.ndarray, y) -> float:
        y = _class_labels("MultiMarginLoss", s, y)
        rows = np.arange(len(y))
        m = s.dtype.type(self.margin) - s[rows, y][:, None] + s
        m[rows, y] = 0
        self.saved = {"s": s, "margins": m, "y": y}
        return self.reduce(np.maximum(m, 0).sum(axis=1) / s.dtype.type(s.shape[1]))

    def backward(self) -> np.ndarray:
        m, y = self.saved["margins"], self.saved["y"]
        rows = np.arange(len(y))
        d = (m > 0).astype(m.dtype)
        d[rows, y] = -d.sum(axis=1)
        return self.scaled(d / m.dtype.type(m.shape[1]), len(y))


def l2_penalty(weights, reg: float) -> float:
    """cs231n's regularization in the loss: ``0.5 · reg · Σ_W ΣW²`` over weight matrices only.

    Its gradient ``reg · W`` is what torch's SGD ``weight_decay=reg`` adds to the gradient of
    the weights (same update, but torch does not report the penalty in the loss).
    """
    return float(0.5 * reg * sum(float(np.sum(w * w)) for w in weights))
