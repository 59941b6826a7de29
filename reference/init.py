"""Weight initializers named as in the source documents; each draws from an explicit Generator.

Every initializer is ``fn(rng, fan_in, fan_out, dtype) -> (W (fan_in, fan_out), b (fan_out,))``.
"""

from __future__ import annotations

import numpy as np


def _check_rng(rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"initializer needs a numpy.random.Generator, got {type(rng).__name__}")


def scaled_normal(scale: float):
    """``W = scale · N(0, 1)``, ``b = 0`` (cs231n and seed 001: scale 0.01; seed 004: 0.5)."""

    def init(rng, fan_in, fan_out, dtype=np.float64):
        _check_rng(rng)
        w = scale * rng.standard_normal((fan_in, fan_out))
        return w.astype(dtype), np.zeros(fan_out, dtype)

    init.__name__ = f"normal*{scale:g}"
    return init


def he_normal(rng, fan_in, fan_out, dtype=np.float64):
    """He/Kaiming normal, ``W = N(0, 1) · sqrt(2 / fan_in)``, ``b = 0``.

    Seed 002 labels this "Xavier"; Xavier/Glorot would be ``sqrt(2 / (fan_in + fan_out))``
    (or ``sqrt(1 / fan_in)``). ``sqrt(2 / fan_in)`` is He et al. 2015, made for ReLU.
    """
    _check_rng(rng)
    w = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
    return w.astype(dtype), np.zeros(fan_out, dtype)


def torch_default(rng, fan_in, fan_out, dtype=np.float64):
    """torch.nn.Linear's default, drawn in NumPy: ``kaiming_uniform_(a=√5)`` is
    ``U(−1/√fan_in, 1/√fan_in)`` for W, and the bias has the same bound."""
    _check_rng(rng)
    bound = 1.0 / np.sqrt(fan_in)
    w = rng.uniform(-bound, bound, (fan_in, fan_out))
    b = rng.uniform(-bound, bound, fan_out)
    return w.astype(dtype), b.astype(dtype)


INITIALIZERS = {
    "normal0.01": scaled_normal(0.01),
    "normal0.5": scaled_normal(0.5),
    "he": he_normal,
    "uniform_torch": torch_default,
}
