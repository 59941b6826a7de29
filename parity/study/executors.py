"""Where the study's jobs run: ``--executor local`` (the spawned process pool, default),
``dask`` (a local Dask cluster: ``--jobs`` worker processes, one thread each) or
``dask://HOST:PORT`` (the workers of a running Dask scheduler).

Any ``concurrent.futures.Executor`` will do (``executor.execute``); Dask's is
``distributed.Client(...).get_executor()``. Every job runs through ``run_job``, which puts
the worker process on ``WORKER_THREADS`` threads (``parity.runtime.configure_threads``)
before it starts, so a job's numbers are the same bit for bit wherever it runs. Dask is the
optional extra ``nn-parity[dask]``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from dataclasses import dataclass

from parity.extras import MissingExtra

WORKER_THREADS = 1            # torch and BLAS threads of every worker (the pool's too)
CONNECT_SECONDS = 30          # dask://: how long to wait for the scheduler and one worker
_ADDRESS = re.compile(r"dask://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]):([0-9]{1,5})")
_configured: list[int] = []   # this process's thread count, once run_job has set it


@dataclass(frozen=True)
class ExecutorChoice:
    """What ``--executor`` names: ``kind`` "local", "dask" (a local cluster) or
    "dask-remote" with the scheduler's ``address`` (``tcp://HOST:PORT``)."""

    kind: str
    address: str | None = None


def parse_executor(value: str | None) -> ExecutorChoice:
    """``None``/``"local"``, ``"dask"`` or ``"dask://HOST:PORT"``; ValueError otherwise."""
    if value is None or value == "local":
        return ExecutorChoice("local")
    if value == "dask":
        return ExecutorChoice("dask")
    m = _ADDRESS.fullmatch(value) if isinstance(value, str) else None
    if m is None or not 0 < int(m.group(2)) < 65536:
        raise ValueError(f"--executor: expected local, dask or dask://HOST:PORT (a Dask "
                         f"scheduler's address, port 1-65535), got {value!r}")
    return ExecutorChoice("dask-remote", f"tcp://{m.group(1)}:{m.group(2)}")


def require_dask():
    """``distributed`` (Dask's scheduler client), or ValueError naming the extra."""
    try:
        import distributed
    except ImportError:
        raise ValueError(f"--executor dask: {MissingExtra('dask', 'distributed')}") from None
    return distributed


def run_job(func, kwargs: dict, reported: bool, threads: int = WORKER_THREADS):
    """In a worker: ``executor._timed(func, kwargs, reported)`` on ``threads`` threads (set
    once per process, as the pool's initializer does)."""
    if _configured != [threads]:
        from parity.runtime import configure_threads
        configure_threads(threads)
        _configured[:] = [threads]
    from parity.study.executor import _timed
    return _timed(func, kwargs, reported)


def worker_environment() -> dict:
    """A worker's versions and kernels (``parity.runtime.kernels_in_force``): results.json
    records them, since they decide the numbers."""
    import platform

    import numpy as np
    import torch

    from parity.runtime import kernels_in_force
    return {"python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "aten": kernels_in_force()["aten"]}


@dataclass
class Opened:
    """An open executor: ``executor`` None means the local process pool; ``workers``: how
    many jobs run at once; ``meta``: what results.json records about it."""

    executor: object | None
    workers: int
    meta: dict


@contextlib.contextmanager
def opened(choice: ExecutorChoice, workers: int):
    """The executor ``choice`` names, with ``workers`` workers for the local kinds; a Dask
    cluster started here is closed on the way out (its worker processes end with it)."""
    if choice.kind == "local":
        yield Opened(None, workers, {"kind": "local", "workers": workers})
        return
    distributed = require_dask()
    with contextlib.ExitStack() as stack:
        if choice.kind == "dask":
            client = stack.enter_context(_local_cluster(distributed, workers))
        else:
            client = stack.enter_context(_remote(distributed, str(choice.address)))
        nthreads = client.nthreads()
        threaded = {w: n for w, n in nthreads.items() if n != WORKER_THREADS}
        if threaded:
            worker, n = sorted(threaded.items())[0]
            raise ValueError(f"--executor: Dask worker {worker} runs {n} threads; the study's "
                             f"jobs set process-wide state and need one thread per worker "
                             f"process (start workers with --nthreads 1)")
        slots = sum(nthreads.values())
        envs = client.run(worker_environment)
        distinct = [dict(e) for e in {tuple(sorted(e.items())) for e in envs.values()}]
        yield Opened(client.get_executor(pure=False), slots,
                     {"kind": choice.kind, "address": choice.address, "workers": slots,
                      "worker_environments": sorted(distinct, key=str)})


@contextlib.contextmanager
def _local_cluster(distributed, workers: int):
    """A ``LocalCluster`` of ``workers`` processes with one thread each, no dashboard; its
    processes start with SIGINT blocked (``executor._sigint_blocked``): an interrupt
    reaches this process, which closes the cluster."""
    import dask

    from parity.study.executor import _sigint_blocked
    # Dask's nannies set MALLOC_TRIM_THRESHOLD_ in each worker, which turns off glibc's
    # adaptive mmap threshold: every array above 128 KiB is then an mmap/munmap and its
    # page faults (measured: 58 s of system CPU in a quick --seeds 0-3 study, jobs 1.6x
    # slower than in the pool). The jobs allocate and free such arrays every step.
    with _sigint_blocked(), dask.config.set(
            {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True,
            dashboard_address=None, silence_logs=logging.ERROR)
    try:
        with distributed.Client(cluster) as client:
            yield client
    finally:
        cluster.close()


@contextlib.contextmanager
def _remote(distributed, address: str):
    """A client of the scheduler at ``address`` with at least one worker; ValueError naming
    the address when it cannot be reached in ``CONNECT_SECONDS``."""
    t0 = time.monotonic()
    try:
        client = distributed.Client(address, timeout=CONNECT_SECONDS)
    except (OSError, TimeoutError) as e:
        raise ValueError(f"--executor dask://: cannot reach the Dask scheduler at {address} "
                         f"({type(e).__name__}: {e})") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=max(1.0, CONNECT_SECONDS - (time.monotonic() - t0)))
        except (OSError, TimeoutError):
            raise ValueError(f"--executor dask://: the Dask scheduler at {address} has no "
                             f"worker after {CONNECT_SECONDS} s") from None
        yield client
