"""What a user hands the API — arrays, labels, numbers, models — checked before any work.

A parity check must never judge what it cannot compare: a NaN or Inf (both twins would
carry it, and NaN "equals" NaN only by convention), a complex number (cast to real, its
imaginary part silently lost), an empty batch (no check at all), a label torch would index
out of range. Each is a ``ValueError``/``TypeError`` naming the input, which the CLI prints
as one line with exit 2. Every array returned is a private copy: neither framework ever
sees, or writes into, the caller's memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from parity import kinds

__all__ = ["array", "batch", "finite_state", "first_line", "number", "torch_module"]

# the integer ranges the CLI enforces on its options, for the same fields from user code
STEPS = (1, 10**6)


def array(v, what: str, *, finite: bool = True) -> np.ndarray:
    """A real, numeric copy of ``v`` (a torch tensor is detached and copied); ``TypeError``
    for complex, object or text arrays, ``ValueError`` for NaN/Inf unless ``finite=False``
    (evidence, such as a gradient a user's function returns, which the judge then fails)."""
    if isinstance(v, torch.Tensor):
        if v.is_meta:
            raise ValueError(f"{what}: a tensor on the meta device has no values")
        v = v.detach().cpu().numpy()
    try:
        a = np.array(v, copy=True)
    except Exception as e:  # noqa: BLE001 — anything numpy cannot take is the caller's input
        raise TypeError(f"{what}: expected an array, got {type(v).__name__}") from e
    if a.dtype.kind == "c":
        raise TypeError(f"{what}: complex values ({a.dtype}) are refused: a cast to real "
                        f"would drop the imaginary part")
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{what}: expected real numbers, got an array of {a.dtype}")
    if finite:
        _finite(a, what)
    return a


def _finite(a: np.ndarray, what: str) -> None:
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = ~np.isfinite(a)
        i = tuple(int(j) for j in np.argwhere(bad)[0])
        raise ValueError(f"{what}: {int(bad.sum())} non-finite value(s), the first "
                         f"{a[i]!r} at index {i}; a parity check needs finite numbers")


def batch(X, y, loss: str) -> tuple[np.ndarray, np.ndarray]:
    """Copies of ``X: (N, D)`` or ``(N, d₁, …)`` (an image batch ``(N, C, H, W)``; float)
    and ``y``, N ≥ 1, finite and real, the targets as the loss's record checks them: class
    labels ``(N,)``, integers ≥ 0 (their upper bound is the model's: ``labels_fit``), 0 or 1
    ``(N,)``/``(N, 1)`` for ``bce``/``bce_with_logits``, real ``(N, K)`` for the regression
    losses (``mse``, ``l1`` …). Whether the model takes that shape is its first layer's to
    say."""
    X, y = array(X, "X"), array(y, "y")
    if X.ndim < 2:
        raise ValueError(f"X: expected a batch (N, D) or (N, C, H, W), got shape {X.shape}")
    if X.size == 0:
        raise ValueError(f"X: an empty batch {X.shape} checks nothing")
    n = X.shape[0]
    if X.dtype.kind != "f":
        X = X.astype(np.float64)
    return X, kinds.loss_kind(loss).check_targets(y, n)


def labels_fit(y: np.ndarray, loss: str, out_shape: tuple) -> None:
    """Class labels below the model's number of outputs ``out_shape[1]`` (cross-entropy);
    a binary loss needs one output per sample."""
    kinds.loss_kind(loss).targets_fit(y, out_shape)


def number(v, what: str, lo: float | None = None, hi: float | None = None, *,
           integer: bool = False, open_low: bool = False) -> float | int:
    """``v`` as a finite real number in [lo, hi] (``(lo, hi]`` with ``open_low``); with
    ``integer`` a true int (no bool, float or text). ``TypeError``/``ValueError`` naming
    ``what``."""
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
        kind = "an int" if integer else "a number"
        raise TypeError(f"{what} must be {kind}, got {type(v).__name__} {v!r}")
    if integer and not isinstance(v, int | np.integer):
        raise TypeError(f"{what} must be an int, got {type(v).__name__} {v!r}")
    x = int(v) if integer else float(v)
    if not integer and not math.isfinite(x):
        raise ValueError(f"{what} must be a finite number, got {x!r}")
    if lo is not None and (x < lo or (open_low and x == lo)):
        raise ValueError(f"{what} must be {'>' if open_low else '>='} {lo:g}, got {v!r}")
    if hi is not None and x > hi:
        raise ValueError(f"{what} must be <= {hi:g}, got {v!r}")
    return x


def finite_state(state: Mapping, who: str) -> None:
    """Every float entry of a ``state_dict`` (NumPy arrays or torch tensors) finite and real."""
    for k, v in state.items():
        a = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
        if a.dtype.kind == "c":
            raise TypeError(f"{who} {k}: complex values ({a.dtype}) are refused")
        _finite(a, f"{who} {k}")


def first_line(e: BaseException) -> str:
    """The first line of an exception's message ("" for none): user code's errors are
    reported as one line."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else ""


def torch_module(model: nn.Module, who: str = "torch_model") -> None:
    """A module whose tensors hold values (not on the meta device), with no parameter or
    buffer shared under two names (tied weights: refused, their gradient is the sum of both
    uses and no NumPy twin can hold one array twice)."""
    seen: dict[int, str] = {}
    for k, t in model.state_dict(keep_vars=True).items():
        if t.is_meta:
            raise ValueError(f"{who}: {k} is on the meta device (no values); materialize the "
                             f"model first (to_empty() and an initialization)")
        if id(t) in seen:
            raise ValueError(f"{who}: {seen[id(t)]} and {k} are one tied (shared) tensor; "
                             f"tied parameters are not supported")
        seen[id(t)] = k
