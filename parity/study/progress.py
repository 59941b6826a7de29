"""Per-process progress bars (tqdm on stderr), one line per worker; workers die with their
parent."""

from __future__ import annotations

import os
import signal
import sys

# ---- per-process progress bars (tqdm on stderr) -------------------------------------------------
_BARS = {"enabled": False, "position": 1}


def _die_with_parent(parent: int) -> None:
    """Linux: SIGTERM this worker when its parent dies, even by SIGKILL (PR_SET_PDEATHSIG;
    strictly: when the parent's thread that spawned it ends — the main thread, at submit),
    so that no worker trains on, orphaned, after the run is gone."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)          # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - no libc prctl
        return
    if os.getppid() != parent:                           # it died before prctl
        os._exit(1)


def _init_worker(progress: bool, lock, slots, parent: int) -> None:
    """Worker start: SIGINT ignored (the parent decides), dies with the parent; a tqdm line
    of its own for its runs. Its threads are set by ``executors.run_job``, as in every
    executor's workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    _BARS["enabled"] = progress
    if lock is not None:
        from tqdm import tqdm
        tqdm.set_lock(lock)
    with slots.get_lock():
        slots.value += 1
        _BARS["position"] = slots.value


def _run_bar(total: int, desc: str):
    """``(on_epoch, close)`` drawing a per-run bar, or no-ops when bars are off."""
    if not _BARS["enabled"]:
        return None, lambda: None
    from tqdm import tqdm
    bar = tqdm(total=total, desc=desc, unit="epoch", file=sys.stderr, leave=False,
               mininterval=0.5, position=_BARS["position"], dynamic_ncols=True)

    def on_epoch(epoch, loss):
        bar.update(1)
        if epoch % 50 == 0:
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    return on_epoch, bar.close


# ---- measurements shared by the jobs -------------------------------------------------------------
