"""The two dtypes the twins are compared in: float64 (the exact tier) and float32 (the
practical tier). Standard library only, so the CLI can offer them without importing torch."""

from __future__ import annotations

DTYPES = ("float64", "float32")


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return dtype
