"""Thread configuration, recorded with every result.

The catalogue's networks are small: a step costs microseconds of arithmetic and the rest is
dispatch. Extra intra-op threads then only add synchronization, and two processes that each
spin two OpenMP threads on a 2-core machine slow each other down ~6× (measured: xor-relu,
2000 torch steps, 0.78 s with 1 thread vs 5.0 s with 2 threads beside a second job). Thread
count also changes float32 results at rounding level (PARITY_NOTES): it is part of a result.
"""

from __future__ import annotations

import torch

DEFAULT_THREADS = 1
_limits = None


def configure_threads(n: int = DEFAULT_THREADS) -> dict:
    """Use ``n`` threads for torch's intra-op pool and NumPy's BLAS; returns what is in force."""
    global _limits
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    torch.set_num_threads(n)
    try:  # load SciPy's own OpenBLAS (scikit-learn pulls it in later) so the limit covers it
        import scipy.linalg  # noqa: F401
    except ImportError:  # pragma: no cover
        pass
    try:
        from threadpoolctl import threadpool_limits
        _limits = threadpool_limits(limits=n)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    return threads_in_force()


def threads_in_force() -> dict:
    info = {"torch": torch.get_num_threads()}
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = max((p["num_threads"] for p in threadpool_info()
                            if p.get("user_api") == "blas"), default=None)
    except ImportError:  # pragma: no cover
        info["blas"] = None
    return info
