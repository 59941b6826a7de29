"""Loss kinds: one record per loss, as for layers. A record names the NumPy loss and its torch
twin (built with the same ``reduction``, ``"mean"`` or ``"sum"``), checks and converts the
targets (class labels, 0/1, or real targets shaped like the output), and gives the float32
rounding model of the loss and its gradient (``parity.precise``) and its finite-difference
hazards (BCE's cap; the kinks of L1, SmoothL1/Huber and the hinge). ``LOSSES`` maps the names
users pass (``loss="mse"``) to records. Conventions between codebases (sum or mean, Huber vs
SmoothL1, cs231n's hinge) and measurements: docs/losses.md."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from parity import layerspec as S
from parity.reference import losses as R
from parity.reference.layers import sigmoid
from parity.torch_impl.losses import NLLOfLog


class LossKind:
    """The record of one loss; subclasses set ``name``, ``numpy``, ``torch``."""

    name: ClassVar[str]
    numpy: ClassVar[type]
    torch: ClassVar[type]
    head: ClassVar[tuple] = ()     # layers a net puts before it (a LogSoftmax for NLL)
    outputs: ClassVar[int | None] = None   # outputs per sample it takes (None: any K ≥ 2)

    example_options: ClassVar[dict] = {}   # options the tests use (off the defaults)

    def build_numpy(self, reduction: str = "mean", **options) -> R.Loss:
        """The NumPy loss reducing by ``reduction`` (``"mean"`` | ``"sum"``); ``options`` as
        torch names them (``beta``, ``delta``, ``margin``)."""
        return self.numpy(reduction=reduction, **options)

    def build_torch(self, reduction: str = "mean", **options) -> nn.Module:
        """The torch loss reducing by ``reduction``, with ``options``."""
        return self.torch(reduction=reduction, **options)

    def count(self, loss) -> int:
        """What the mean divides by, read from ``loss.saved``: the batch size N (the class
        and binary losses); the elementwise losses override it with N·K."""
        return len(loss.saved["y"])

    def per(self, loss) -> float:
        """The reduction's factor on a per-element gradient: ``1/count`` or 1 for the sum."""
        return 1 / self.count(loss) if loss.reduction == "mean" else 1.0

    def check_targets(self, y: np.ndarray, n: int) -> np.ndarray:  # pragma: no cover
        """``y`` for a batch of ``n``, validated (``ValueError`` naming ``y``)."""
        raise NotImplementedError

    def targets_fit(self, y: np.ndarray, out_shape: tuple) -> None:  # pragma: no cover
        """``ValueError`` when the targets cannot meet a model output of ``out_shape``."""
        raise NotImplementedError

    def torch_targets(self, y, dtype) -> Tensor:  # pragma: no cover
        """The targets as the torch loss takes them."""
        raise NotImplementedError

    # ---- float32 rounding model: error bounds in units of the roundoff
    def terms(self, loss) -> np.ndarray:  # pragma: no cover
        """``t_i`` (``(N,)``): the size of the parts each sample's loss is formed from, read
        from ``loss.saved`` after ``forward``; the mean loss errs by about ``√N·mean(t)``."""
        raise NotImplementedError

    def amplitude(self, loss) -> float:
        """The error bound of the reported loss: ``√N·mean(t)`` for the mean (a sum of
        ``count`` terms errs by ``√count·u·Σ|terms|``, Higham & Mary 2019, then divided by
        ``count``), ``count`` times that for the sum."""
        t = self.terms(loss)
        a = float(np.sqrt(t.size) * t.mean())
        return a * self.count(loss) if loss.reduction == "sum" else a

    def gradient_amplitude(self, loss, d: np.ndarray) -> np.ndarray:  # pragma: no cover
        """The error bound of ``d = ∂L/∂out`` (``(N, K)``)."""
        raise NotImplementedError

    # ---- examples the generic tests draw
    def scores(self, rng: np.random.Generator, n: int, k: int) -> np.ndarray:
        """A batch of what the loss takes, ``(n, k)`` (default: logits ``3·N(0, 1)``)."""
        return 3 * rng.standard_normal((n, k))

    def targets(self, rng: np.random.Generator, n: int, k: int) -> np.ndarray:  # pragma: no cover
        """Targets for ``n`` outputs of width ``k``."""
        raise NotImplementedError

    def example(self, rng: np.random.Generator, n: int = 8, k: int = 4,
                margin: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
        """``(out, y)``: ``k`` outputs (``outputs`` if fixed) for ``n`` samples, every entry
        of ``out`` farther than ``margin`` from a kink (redrawn until it is)."""
        k = self.outputs or k
        out, y = self.scores(rng, n, k), self.targets(rng, n, k)
        loss = self.build_numpy(**self.example_options)
        while np.any(near := self.kink_distance(loss, out, y) <= margin):
            out[near] = self.scores(rng, n, k)[near]
        return out, y

    # ---- finite-difference hazards
    def capped(self, loss, out: np.ndarray) -> int:
        """Rows where the backward is a convention, not the derivative (0 for most)."""
        return 0

    def kink_distance(self, loss, out: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``(N, K)``: how far each entry of ``out`` is (moving it alone) from an input where a
        derivative of the loss jumps — a central difference straddling it measures a mean of
        two slopes; ``inf`` where the loss is smooth (the default)."""
        return np.full(np.shape(out), np.inf)


class _ClassLabels(LossKind):
    """Targets are class indices ``y: (N,)`` in ``[0, K)``, int64 for torch."""

    def check_targets(self, y, n):
        if y.shape != (n,):
            raise ValueError(f"y: expected {n} class labels (shape ({n},)), got shape {y.shape}")
        if y.dtype.kind == "b" or (y.dtype.kind == "f" and not (y == np.round(y)).all()):
            raise ValueError(f"y: class labels must be integers, got {y.dtype} values such as "
                             f"{y.ravel()[0]!r}")
        if (y < 0).any():
            raise ValueError(f"y: class labels must be >= 0, got {y.min()!r}")
        return y.astype(np.int64)

    def targets_fit(self, y, out_shape):
        k = out_shape[1] if len(out_shape) == 2 else None
        if k is None or (y >= k).any():
            raise ValueError(f"y: class labels must be < {k}, the model's number of outputs "
                             f"(output shape {out_shape}), got {y.max()!r}")

    def torch_targets(self, y, dtype):
        return torch.as_tensor(y).to(torch.int64)

    def targets(self, rng, n, k):
        return rng.integers(0, k, n)


class _Binary(LossKind):
    """Targets are 0 or 1, ``y: (N,)`` or ``(N, 1)``, float ``(N, 1)`` for torch."""

    outputs = 1

    def check_targets(self, y, n):
        if y.shape not in ((n,), (n, 1)):
            raise ValueError(f"y: expected {n} targets (shape ({n},) or ({n}, 1)) for "
                             f"{self.name}, got shape {y.shape}")
        if not ((y == 0) | (y == 1)).all():
            bad = y.ravel()[~((y.ravel() == 0) | (y.ravel() == 1))][0]
            raise ValueError(f"y: {self.name} targets must be 0 or 1, got {bad!r}")
        return y

    def targets_fit(self, y, out_shape):
        if len(out_shape) != 2 or out_shape[1] != 1:
            raise ValueError(f"{self.name} needs one output per sample, the model gives shape "
                             f"{out_shape}")

    def torch_targets(self, y, dtype):
        return torch.as_tensor(y).to(dtype).reshape(-1, 1)

    def targets(self, rng, n, k):
        return rng.integers(0, 2, n)


class CrossEntropyKind(_ClassLabels):
    name, numpy, torch = "cross_entropy", R.CrossEntropyLoss, nn.CrossEntropyLoss

    def terms(self, loss):
        """``log p_y = (z_y − max z) − log Σ exp(z − max z)``: the parts' sizes add up to
        ``|log p_y|``, and the log of a sum of ``K`` positive terms errs by ``√K·u``."""
        log_p, y = loss.saved["log_p"], loss.saved["y"]
        return np.abs(log_p[np.arange(len(y)), y]) + np.sqrt(log_p.shape[1])

    def gradient_amplitude(self, loss, d):
        """``(p − onehot)/N`` with ``p = exp(log p)``: ``p`` errs relatively by ``log p``'s
        error (+1 for exp), and the onehot cancels none of it: ``p·(|log p| + √K + 1)/N``,
        plus ``2|d|`` for the subtraction and the division."""
        log_p = loss.saved["log_p"]
        return (np.exp(log_p) * (np.abs(log_p) + np.sqrt(log_p.shape[1]) + 1) * self.per(loss)
                + 2 * np.abs(d))


class BCEWithLogitsKind(_Binary):
    name, numpy, torch = "bce_with_logits", R.BCEWithLogitsLoss, nn.BCEWithLogitsLoss

    def terms(self, loss):
        """torch forms ``(1 − y)·a − log σ(a)``: two terms of size ``|a|`` however small ``ℓ``
        is (a = −40, y = 0: ``−40 − (−40 − 4e-18)`` is 0 in float32): ``|a| + 2ℓ``."""
        a, y = loss.saved["a"], loss.saved["y"]
        return np.abs(a) + 2 * (np.maximum(a, 0) - a * y + np.log1p(np.exp(-np.abs(a))))

    def gradient_amplitude(self, loss, d):
        """``(σ(a) − y)/N``: ``σ(a)`` rounded three times (exp, 1 + e, division) before ``y``
        is subtracted, ``3σ(a)/N`` — at ``a = 16, y = 1`` that is all of ``d`` — plus
        ``2|d|``."""
        return 3 * sigmoid(loss.saved["a"]) * self.per(loss) + 2 * np.abs(d)


class BCEKind(_Binary):
    name, numpy, torch = "bce", R.BCELoss, nn.BCELoss
    head = (S.Sigmoid(),)

    def scores(self, rng, n, k):
        """Probabilities away from 0 and 1 (the logs are clamped there)."""
        return rng.uniform(0.05, 0.95, (n, k))

    def terms(self, loss):
        """The log of an argument rounded near 1 errs by ``u``: ``ℓ + 1``."""
        p, y = loss.saved["p"], loss.saved["y"]
        with np.errstate(divide="ignore"):
            ell = -(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log1p(-p), -100))
        return ell + 1

    def gradient_amplitude(self, loss, d):
        """``(p − y)/max(p(1 − p), ε)/N``: four relative roundings, ``4|d|``."""
        return 4 * np.abs(d)

    def capped(self, loss, out):
        """Rows where ``p(1 − p) < ε``: the backward divides by ε, torch's convention that
        keeps the gradient finite, not the derivative."""
        return int(np.sum(out * (1 - out) < loss.EPS))


class _Regression(LossKind):
    """Real targets shaped like the output ``(N, K)`` (``(N,)`` too when K = 1), in the
    twins' float dtype for torch; the residual ``r = out − y`` is saved."""

    def check_targets(self, y, n):
        if y.ndim not in (1, 2) or y.shape[0] != n:
            raise ValueError(f"y: expected {n} targets (shape ({n},) or ({n}, K)) for "
                             f"{self.name}, got shape {y.shape}")
        if y.dtype.kind not in "fiu":
            raise ValueError(f"y: {self.name} targets must be real numbers, got {y.dtype}")
        return y.astype(np.float64)

    def targets_fit(self, y, out_shape):
        if tuple(out_shape) != y.shape and not (y.ndim == 1 and out_shape == (len(y), 1)):
            raise ValueError(f"y: {self.name} targets of shape {y.shape} do not match the "
                             f"model's output shape {out_shape}")

    def torch_targets(self, y, dtype):
        t = torch.as_tensor(y).to(dtype)
        return t.reshape(-1, 1) if t.ndim == 1 else t

    def targets(self, rng, n, k):
        return rng.standard_normal((n, k))

    def scores(self, rng, n, k):
        return 2 * rng.standard_normal((n, k))

    def count(self, loss):
        return loss.saved["r"].size

    def elements(self, loss) -> np.ndarray:
        """``ℓ(r)`` per element ``(N, K)``."""
        return loss.elementwise(loss.saved["r"])

    def terms(self, loss):
        """``ℓ = f(r)``: ``r`` one rounding, ``f`` at most three more, each relative to ``ℓ``
        (the linear branches' ``|r| − β/2`` keeps ``ℓ ≥ |r|/2``), and the N·K-term sum:
        ``(√K + 4)·mean_k ℓ`` per sample (``√N·mean(t) ≥ √(NK)·mean(ℓ)``)."""
        ell = self.elements(loss)
        return (np.sqrt(ell.shape[1]) + 4) * ell.mean(axis=1)

    def gradient_amplitude(self, loss, d):
        """``f'(r)·(1/count)``: ``r`` (one rounding), ``f'`` (at most one more), and the
        reduction's factor: ``3|d|``."""
        return 3 * np.abs(d)


class MSEKind(_Regression):
    name, numpy, torch = "mse", R.MSELoss, nn.MSELoss


class L1Kind(_Regression):
    name, numpy, torch = "l1", R.L1Loss, nn.L1Loss

    def kink_distance(self, loss, out, y):
        """``|r|`` jumps in slope at ``r = 0``."""
        return np.abs(out - np.reshape(y, np.shape(out)))


class SmoothL1Kind(_Regression):
    """Default ``beta = 1``."""
    name, numpy, torch = "smooth_l1", R.SmoothL1Loss, nn.SmoothL1Loss
    example_options = {"beta": 0.5}

    def kink_distance(self, loss, out, y):
        """The second derivative jumps at ``|r| = β`` (the central difference's error there
        is O(h), not O(h²)); L1's kink at 0 when β = 0."""
        a = np.abs(out - np.reshape(y, np.shape(out)))
        return np.abs(a - loss.beta) if loss.beta > 0 else a


class HuberKind(_Regression):
    """Default ``delta = 1``."""
    name, numpy, torch = "huber", R.HuberLoss, nn.HuberLoss
    example_options = {"delta": 1.5}

    def kink_distance(self, loss, out, y):
        """The second derivative jumps at ``|r| = δ``."""
        return np.abs(np.abs(out - np.reshape(y, np.shape(out))) - loss.delta)


class NLLKind(_ClassLabels):
    """On log-probabilities: a model ending in ``LogSoftmax``."""
    name, numpy, torch = "nll", R.NLLLoss, nn.NLLLoss
    head = (S.LogSoftmax(1),)

    def scores(self, rng, n, k):
        """Log-probabilities: the log-softmax of logits ``3·N(0, 1)``."""
        z = 3 * rng.standard_normal((n, k))
        z -= z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def terms(self, loss):
        """``ℓ_n = −log_p[n, y]`` is read, not computed: only the N-term sum errs, ``|ℓ|``."""
        log_p, y = loss.saved["log_p"], loss.saved["y"]
        return np.abs(log_p[np.arange(len(y)), y])

    def gradient_amplitude(self, loss, d):
        """``−onehot/N``: the one rounding of ``1/N``."""
        return np.abs(d)


class ProbsCrossEntropyKind(_ClassLabels):
    """On probabilities: a model ending in ``Softmax``, torch's loss ``NLLLoss`` of
    ``torch.log(p)`` (the log is part of the loss: torch has no Log module)."""
    name, numpy, torch = "cross_entropy_probs", R.ProbsCrossEntropyLoss, NLLOfLog
    head = (S.Softmax(1),)

    def scores(self, rng, n, k):
        """Probabilities ``≥ 0.1/k``: ``0.9·softmax(2·N(0, 1)) + 0.1/k``. Near ``p = 0`` the
        central difference of ``−log p`` errs by ``h²/(3p³)`` (and ``p − h`` leaves [0, 1])."""
        e = np.exp(2 * rng.standard_normal((n, k)))
        return 0.9 * e / e.sum(axis=1, keepdims=True) + 0.1 / k

    def terms(self, loss):
        """``−log p_y`` of an exact input: the log rounds relative to ``|ℓ|``, plus ``u``."""
        p, y = loss.saved["p"], loss.saved["y"]
        with np.errstate(divide="ignore"):
            return np.abs(np.log(p[np.arange(len(y)), y])) + 1

    def gradient_amplitude(self, loss, d):
        """``−1/p · 1/N``: the division and the rounded ``1/N``, ``2|d|``."""
        return 2 * np.abs(d)

    def capped(self, loss, out):
        """Rows whose label has ``p = 0``: an infinite loss, no derivative."""
        y = loss.saved["y"]
        return int(np.sum(out[np.arange(len(y)), y] == 0))


class MultiMarginKind(_ClassLabels):
    """torch's multiclass hinge, p = 1, default ``margin = 1`` (cs231n's SVM is K times it)."""
    name, numpy, torch = "multi_margin", R.MultiMarginLoss, nn.MultiMarginLoss
    example_options = {"margin": 0.7}

    def scores(self, rng, n, k):
        """Scores ``N(0, 1)``: margins of 1 leave some classes active, some not."""
        return rng.standard_normal((n, k))

    def terms(self, loss):
        """Each active margin ``m_j = (margin − s_y) + s_j`` is two roundings of parts of size
        ``margin + |s_y| + |s_j|``; their sum over ``K − 1`` classes errs by ``√K·Σ m``; all
        divided by K."""
        s, m, y = loss.saved["s"], loss.saved["margins"], loss.saved["y"]
        act = m > 0
        s_y = np.abs(s[np.arange(len(y)), y])[:, None]
        parts = 2 * (loss.margin + s_y + np.abs(s)) + np.sqrt(s.shape[1]) * m
        return np.where(act, parts, 0).sum(axis=1) / s.shape[1]

    def gradient_amplitude(self, loss, d):
        """``count/K · 1/N``: integers times two rounded reciprocals, ``2|d|``."""
        return 2 * np.abs(d)

    def kink_distance(self, loss, out, y):
        """The hinge's slope jumps where a margin ``margin − s_y + s_j`` (j ≠ y) is 0: moving
        ``s_j`` alone reaches it at ``|m_j|``, moving ``s_y`` at ``min_j |m_j|``."""
        rows, y = np.arange(len(y)), np.asarray(y, dtype=np.int64)
        m = np.abs(loss.margin - out[rows, y][:, None] + out)
        m[rows, y] = np.inf
        m[rows, y] = m.min(axis=1)
        return m


LOSSES: dict[str, LossKind] = {k.name: k for k in (
    CrossEntropyKind(), BCEKind(), BCEWithLogitsKind(), MSEKind(), L1Kind(), SmoothL1Kind(),
    HuberKind(), NLLKind(), ProbsCrossEntropyKind(), MultiMarginKind())}
_BY_NUMPY = {k.numpy: k for k in LOSSES.values()}


def loss_kind(name: str) -> LossKind:
    """The record of the loss called ``name``; ``ValueError`` listing the known names."""
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"loss: unknown {name!r}; known: {sorted(LOSSES)}")
    return LOSSES[name]


def of_loss(loss) -> LossKind | None:
    """The record of a NumPy loss object (by its class or nearest base with one)."""
    return next((_BY_NUMPY[c] for c in type(loss).__mro__ if c in _BY_NUMPY), None)
