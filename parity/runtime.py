"""Thread configuration, recorded with every result.

The catalogue's networks are small: a step costs microseconds of arithmetic and the rest is
dispatch. Extra intra-op threads then only add synchronization, and two processes that each
spin two OpenMP threads on a 2-core machine slow each other down ~6× (measured: xor-relu,
2000 torch steps, 0.78 s with 1 thread vs 5.0 s with 2 threads beside a second job). Thread
count also changes float32 results at rounding level (PARITY_NOTES): it is part of a result.

``NN_PARITY_THREADS`` (read by ``threads_from_env``, used by the test suite) picks another
count; ``kernels_in_force`` reports the kernel choices that ``ATEN_CPU_CAPABILITY``,
``OPENBLAS_CORETYPE`` and ``NPY_DISABLE_CPU_FEATURES`` make at import.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import torch

DEFAULT_THREADS = 1
THREADS_ENV = "NN_PARITY_THREADS"
MAX_THREADS = 1024
MAX_SEED = 2**64 - 1          # torch.manual_seed takes a uint64; SeedSequence any int >= 0
_limits = None


def _int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


def seed_torch(seed: int) -> None:
    """``torch.manual_seed(seed)`` for the generators a run can use. Where no accelerator
    is available it seeds the CPU generator alone: there ``torch.manual_seed`` also queues
    a CUDA seeding for a later initialization with the caller's whole formatted stack
    (``torch.cuda._lazy_call``): about a millisecond a call (docs/check-cost.md)."""
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


def check_seed(seed, what: str = "seed") -> int:
    """A seed both sides accept unchanged: an int in [0, 2**64) (no bool, no float, no
    silent truncation). ``what`` names it in the message (``--seed``)."""
    seed = _int(seed, what)
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{what} must be in [0, 2**64), got {seed}")
    return seed


def check_threads(n, what: str = "threads") -> int:
    """A thread count in [1, MAX_THREADS]."""
    n = _int(n, what)
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"{what} must be >= 1, got {n}" if n < 1 else
                         f"{what} must be <= {MAX_THREADS}, got {n}")
    return n


def threads_from_env(default: int = DEFAULT_THREADS) -> int:
    """The thread count in ``$NN_PARITY_THREADS`` (an integer >= 1), else ``default``."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return default
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"{THREADS_ENV} must be an integer >= 1, got {raw!r}") from None
    return check_threads(n, THREADS_ENV)


def configure_threads(n: int = DEFAULT_THREADS) -> dict:
    """Use ``n`` threads for torch's intra-op pool and NumPy's BLAS; returns what is in force."""
    global _limits
    n = check_threads(n)
    torch.set_num_threads(n)
    try:  # load SciPy's own OpenBLAS (scikit-learn pulls it in later) so the limit covers it
        import scipy.linalg  # noqa: F401
    except ImportError:  # without the 'study'/'datasets' extras: no second OpenBLAS to limit
        pass
    try:
        from threadpoolctl import threadpool_limits
        _limits = threadpool_limits(limits=n)
    except ImportError:  # pragma: no cover - a core dependency (pyproject.toml says why)
        pass
    return threads_in_force()


def threads_in_force() -> dict[str, int | None]:
    info: dict[str, int | None] = {"torch": torch.get_num_threads()}
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = max((p["num_threads"] for p in threadpool_info()
                            if p.get("user_api") == "blas"), default=None)
    except ImportError:  # pragma: no cover
        info["blas"] = None
    return info


def kernels_in_force() -> dict:
    """Kernel choices made at import: torch's ATen CPU capability (``ATEN_CPU_CAPABILITY``),
    each loaded OpenBLAS's core type (``OPENBLAS_CORETYPE``; NumPy and SciPy each carry one)
    and NumPy's dispatched SIMD targets found on this CPU (``NPY_DISABLE_CPU_FEATURES``
    removes some)."""
    info: dict[str, object] = {"aten": torch.backends.cpu.get_cpu_capability(), "openblas": None}
    try:
        from threadpoolctl import threadpool_info
        info["openblas"] = sorted({p.get("architecture") for p in threadpool_info()
                                   if p.get("internal_api") == "openblas"})
    except ImportError:  # pragma: no cover
        pass
    try:  # a private module (numpy.core before NumPy 2)
        from numpy._core import _multiarray_umath as umath  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover
        from numpy.core import _multiarray_umath as umath
    info["numpy"] = [f for f in getattr(umath, "__cpu_dispatch__", [])
                     if umath.__cpu_features__.get(f)]
    return info


def check_device(device: str) -> str:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` for the torch twin; ``ValueError`` naming why a
    device cannot be used here (no CUDA build or no GPU, an index past the last GPU)."""
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda', got "
                        f"{type(device).__name__}")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"device {device!r}: {e}") from None
    if dev.type == "cpu":
        return "cpu"
    if dev.type != "cuda":
        raise ValueError(f"device {device!r}: only 'cpu' and 'cuda[:N]' are supported")
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available here (torch "
                         f"{torch.__version__}, torch.cuda.is_available() is False)")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} "
                         f"CUDA device(s)")
    return str(dev)


@contextlib.contextmanager
def exact_float32_matmul():
    """TF32 off for the duration (CUDA matmuls and cuDNN would otherwise round float32
    inputs to 10 mantissa bits on Ampere and later, which no float32 twin does); the
    previous settings are restored."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])
