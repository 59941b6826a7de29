"""Counting rules shared by the records' float32 rounding models (``parity.precise``): an
amplitude is an error bound in units of the unit roundoff ``u``. ``+ − × /`` and the cast of a
constant round once each (a cast by its actual error, ``rep``); a libm/SLEEF call (exp, log,
tanh …, ≤ 1 ulp) counts 2; an argument off by ``ε`` moves ``f`` by ``|f'|·ε``; a sum of ``K``
terms errs by ``√K·Σ|terms|`` (Higham & Mary, as ``precise`` counts reductions)."""

from __future__ import annotations

import math

import numpy as np

U32 = 2.0 ** -24

F32_MAX_EXP_ARG = math.log(float(np.finfo(np.float32).max))   # 88.72: e^{t} overflows above



def rep(v: float) -> float:
    """The relative error of casting ``v`` to float32, in units of u (``0.01`` → 0.375)."""
    return 0.0 if v == 0 else abs(float(np.float32(v)) - v) / (U32 * abs(v))


def sigma(t):
    """The logistic function, overflow-quiet, in float64."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-t))


def row_sum_error(rel, weights):
    """Relative error of a float32 row sum ``S = Σ w_j`` whose terms err by ``rel_j``:
    ``Σ_j (w_j/S)·rel_j + √K`` (``weights`` already normalized by S)."""
    k = weights.shape[1]
    return (weights * rel).sum(axis=1, keepdims=True) + math.sqrt(k)

