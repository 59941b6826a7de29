"""Shared pytest configuration.

Hypothesis profiles:
- ``default`` (``make test``): 25 examples per test, ``derandomize=True`` — the examples are
  a function of the test alone, so every run (and every machine) tests the same ones and a
  red/green verdict never changes by chance; the example database is then off.
- ``thorough`` (``make test-all``): 300 random examples per test, a fresh draw each run, to
  find what the fixed examples miss; a failure it finds becomes a pinned regression test.
Choose one with ``HYPOTHESIS_PROFILE=thorough`` or ``pytest --hypothesis-profile=thorough``.
Both have ``deadline=None`` (one example costs a few ms, the first imports more).

Threads: one thread for torch and BLAS by default; ``NN_PARITY_THREADS=2 pytest ...`` runs
the suite with 2 (float32 results change at rounding level with the count, so verdicts must
not; ``make test-portability`` runs it both ways). The count is re-applied before each test,
since the CLI (``--threads``, default 1), the self-test and the study set their own.
"""

import os

try:
    from hypothesis import settings
except ImportError:  # hypothesis is in the `test` extra; tests that need it import it.
    pass
else:
    settings.register_profile("default", max_examples=25, deadline=None, derandomize=True)
    # "default" above replaced hypothesis's own default profile, so every profile inherits
    # derandomize=True unless it says otherwise: thorough must say it
    settings.register_profile("thorough", max_examples=300, deadline=None, derandomize=False)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


# NN_PARITY_THREADS (default 1) threads for torch and BLAS in every test: these nets are tiny
# (threads only add synchronization) and float32 results depend on the thread count.
import torch  # noqa: E402

from parity.runtime import configure_threads, kernels_in_force, threads_from_env  # noqa: E402

THREADS = threads_from_env()
configure_threads(THREADS)


import pytest  # noqa: E402


def pytest_report_header(config):
    """The kernel and thread choices in force (what the portability variants change)."""
    return [f"nn-parity: threads {THREADS}, kernels {kernels_in_force()}"]


@pytest.fixture(autouse=True)
def _threads():
    """Restore ``THREADS`` when a test ran code that configures its own (CLI, self-test).
    They set torch and BLAS together, so torch's count tells (a check costs ~1 µs, a
    reconfiguration ~4 ms)."""
    if torch.get_num_threads() != THREADS:
        configure_threads(THREADS)


@pytest.fixture
def cli():
    """``parity.cli.main``: call it with an argv list, get the exit code."""
    from parity.cli import main
    return main
