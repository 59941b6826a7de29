"""Loss kinds: one record per loss, as for layers. A record names the NumPy loss and its torch
twin, checks and converts the targets (class labels or 0/1), and gives the float32 rounding
model of the loss and its gradient (``parity.precise``) and its finite-difference hazard
(BCE's cap). ``LOSSES`` maps the names users pass (``loss="cross_entropy"``) to records."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from reference import losses as R
from reference.layers import sigmoid


class LossKind:
    """The record of one loss; subclasses set ``name``, ``numpy``, ``torch``."""

    name: ClassVar[str]
    numpy: ClassVar[type]
    torch: ClassVar[type]

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

    def gradient_amplitude(self, loss, d: np.ndarray) -> np.ndarray:  # pragma: no cover
        """The error bound of ``d = ∂L/∂out`` (``(N, K)``)."""
        raise NotImplementedError

    # ---- finite-difference hazard
    def capped(self, loss, out: np.ndarray) -> int:
        """Rows where the backward is a convention, not the derivative (0 for most)."""
        return 0


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


class _Binary(LossKind):
    """Targets are 0 or 1, ``y: (N,)`` or ``(N, 1)``, float ``(N, 1)`` for torch."""

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
        log_p, n = loss.saved["log_p"], d.shape[0]
        return np.exp(log_p) * (np.abs(log_p) + np.sqrt(log_p.shape[1]) + 1) / n + 2 * np.abs(d)


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
        return 3 * sigmoid(loss.saved["a"]) / d.shape[0] + 2 * np.abs(d)


class BCEKind(_Binary):
    name, numpy, torch = "bce", R.BCELoss, nn.BCELoss

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


LOSSES: dict[str, LossKind] = {k.name: k for k in (CrossEntropyKind(), BCEKind(),
                                                    BCEWithLogitsKind())}
_BY_NUMPY = {k.numpy: k for k in LOSSES.values()}


def loss_kind(name: str) -> LossKind:
    """The record of the loss called ``name``; ``ValueError`` listing the known names."""
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"loss: unknown {name!r}; known: {sorted(LOSSES)}")
    return LOSSES[name]


def of_loss(loss) -> LossKind | None:
    """The record of a NumPy loss object (by its class or nearest base with one)."""
    return next((_BY_NUMPY[c] for c in type(loss).__mro__ if c in _BY_NUMPY), None)
