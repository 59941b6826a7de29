"""One normwise relative difference of two whole tensors, used wherever the project reports
how far two tensors are apart as one number (trajectory divergence, the trainer lockstep of
the selftest, the tests)."""

from __future__ import annotations

import numpy as np


def normwise_rel(a, b) -> float:
    """``‖a − b‖∞ / max(‖a‖∞, ‖b‖∞)`` over all entries (one scale per tensor, not per entry).

    Symmetric: the twins are compared with neither taken as the truth (``‖a − b‖/‖b‖`` would
    make torch the reference; the two agree to first order, the ratio of the two is
    ``max(‖a‖, ‖b‖)/‖b‖ ≤ 1 + result``). Computed in float64 on copies.

    Zero rule: identical tensors (bit for bit, NaNs in the same places, both all-zero
    included) are 0.0 apart. Otherwise a non-finite entry on either side gives ``inf`` (a
    NaN must never read as "close": ``nan > threshold`` is False). Different shapes are a
    ``ValueError``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"normwise_rel: shapes differ, {a.shape} vs {b.shape}")
    if np.array_equal(a, b, equal_nan=True):
        return 0.0
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("inf")
    scale = max(float(np.abs(a).max()), float(np.abs(b).max()))   # > 0: a != b
    return float(np.abs(a - b).max()) / scale
