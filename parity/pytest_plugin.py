"""pytest plugin (entry point ``pytest11``: ``nn_parity``), active wherever nn-parity is
installed: the ``twins`` fixture checks a user's own pair inside their test suite::

    def test_port(twins):
        twins.assert_close(my_numpy_net, my_torch_net, X, y, loss="cross_entropy")

A failure is an ``AssertionError`` whose message is the mine-vs-torch report, with the first
disagreeing layer. parity is imported only when the fixture is used, so the plugin costs a
test session that never asks for it nothing.
"""

from __future__ import annotations

import pytest


class TwinsChecker:
    """What the ``twins`` fixture hands a test: ``assert_close`` (``parity.assert_twins_close``),
    ``assert_functions_close`` (``parity.compare_functions``, raising on failure) and
    ``compare`` (``parity.compare_models``, returning the report without raising)."""

    def assert_close(self, numpy_model, torch_model, X, y, *, loss: str, **options):
        """Raise ``AssertionError`` with the report unless every check passes."""
        __tracebackhide__ = True
        from parity.api import assert_twins_close
        return assert_twins_close(numpy_model, torch_model, X, y, loss=loss, **options)

    def assert_functions_close(self, loss_and_grads, torch_model, X, y, params, **options):
        """``compare_functions(...)``; ``AssertionError`` with the report when it fails."""
        __tracebackhide__ = True
        from parity.api import compare_functions
        result = compare_functions(loss_and_grads, torch_model, X, y, params, **options)
        if not result.passed:
            raise AssertionError("the functions disagree with torch:\n" + result.report())
        return result

    def compare(self, numpy_model, torch_model, X, y, *, loss: str, **options):
        from parity.api import compare_models
        return compare_models(numpy_model, torch_model, X, y, loss=loss, **options)


@pytest.fixture
def twins() -> TwinsChecker:
    """Check a NumPy model against its torch twin: ``twins.assert_close(np_net, torch_net,
    X, y, loss="cross_entropy")`` (see ``parity.compare_models`` for the options)."""
    return TwinsChecker()
