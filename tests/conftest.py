"""Shared pytest configuration.

Hypothesis profiles: ``default`` (quick, used by ``make test``) and ``thorough``.
Choose one with ``HYPOTHESIS_PROFILE=thorough`` or ``pytest --hypothesis-profile=thorough``.
"""

import os

try:
    from hypothesis import settings
except ImportError:  # hypothesis is in the `test` extra; tests that need it import it.
    pass
else:
    settings.register_profile("default", max_examples=25, deadline=None)
    settings.register_profile("thorough", max_examples=300, deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


# One thread for torch and BLAS in every test: these nets are tiny (threads only add
# synchronization) and float32 results depend on the thread count.
from parity.runtime import configure_threads  # noqa: E402

configure_threads(1)


import pytest  # noqa: E402


@pytest.fixture
def cli():
    """``parity.cli.main``: call it with an argv list, get the exit code."""
    from parity.cli import main
    return main
