"""The one tolerance table: (rtol, atol) per dtype and quantity, for torch.testing.assert_close.

Measured values are filled in below (see TABLE_NOTES)."""

from __future__ import annotations

QUANTITIES = ("loss", "penalty", "grad", "param", "buffer", "state", "output")

TOLERANCES: dict[str, dict[str, tuple[float, float]]] = {
    "float64": {q: (1e-10, 1e-12) for q in QUANTITIES},
    "float32": {q: (1e-4, 1e-5) for q in QUANTITIES},
}


def tolerance(dtype: str, quantity: str) -> tuple[float, float]:
    return TOLERANCES[dtype][quantity]
