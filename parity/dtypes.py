"""The two dtypes the twins are compared in: float64 (the exact tier) and float32 (the
practical tier). Standard library only, so the CLI can offer them without importing torch."""

from __future__ import annotations

from typing import cast

from parity.types import DtypeName

DTYPES = ("float64", "float32")


def check_dtype(dtype: str) -> DtypeName:
    """``dtype`` itself, when it is one of :data:`DTYPES`; else ``ValueError`` naming it."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return cast(DtypeName, dtype)
