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

from parity.types import LossName


class TwinsChecker:
    """What the ``twins`` fixture hands a test: ``assert_close`` (``parity.assert_twins_close``),
    ``assert_functions_close`` (``parity.compare_functions``, raising on failure) and
    ``compare`` (``parity.compare_models``, returning the report without raising).

    Shapes and options as ``parity.compare_models``: ``X`` ``(N, D)`` or ``(N, C, H, W)``,
    ``y`` ``(N,)``.

    Example (what a test does with the fixture; here the fixture's object made by hand)::

        >>> import numpy as np
        >>> from parity import reference as R, to_torch
        >>> from parity.pytest_plugin import TwinsChecker
        >>> numpy_net = R.Sequential(R.Linear(4, 8), R.ReLU(), R.Linear(8, 3))  # W: (in, out)
        >>> torch_net = to_torch(numpy_net)                                  # W: (out, in)
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)      # (N, D), (N,)
        >>> twins = TwinsChecker()
        >>> twins.compare(numpy_net, torch_net, X, y, loss="cross_entropy").passed
        True
    """

    def assert_close(self, numpy_model, torch_model, X, y, *, loss: LossName, **options):
        """Raise ``AssertionError`` with the report unless every check passes; return the
        ``TwinsReport`` otherwise. ``X`` ``(N, D)`` or ``(N, C, H, W)``, ``y`` ``(N,)``;
        ``options`` as ``parity.compare_models`` (``optimizer``, ``steps``, ``dtype``, ...).

        Example (in your test file, ``def test_port(twins): twins.assert_close(...)``)::

            >>> import numpy as np
            >>> from parity import reference as R, to_torch
            >>> from parity.pytest_plugin import TwinsChecker
            >>> numpy_net = R.Sequential(R.Linear(4, 8), R.ReLU(), R.Linear(8, 3))
            >>> torch_net = to_torch(numpy_net)           # Linear weights (out, in) here
            >>> rng = np.random.default_rng(0)
            >>> X, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)  # (N, D), (N,)
            >>> report = TwinsChecker().assert_close(numpy_net, torch_net, X, y,
            ...                                      loss="cross_entropy", optimizer="adam",
            ...                                      steps=2)
            >>> report.passed
            True
        """
        __tracebackhide__ = True
        from parity.api import assert_twins_close
        return assert_twins_close(numpy_model, torch_model, X, y, loss=loss, **options)

    def assert_functions_close(self, loss_and_grads, torch_model, X, y, params, **options):
        """``parity.compare_functions(...)``; ``AssertionError`` with the report when it
        fails, the ``TwinsReport`` otherwise. ``params``: your names → arrays (weights
        ``(in, out)`` or ``(out, in)``, biases ``(n,)``); ``X`` ``(N, D)``, ``y`` ``(N,)``.

        Example (a softmax classifier ``X @ W + b`` written by hand)::

            >>> import numpy as np
            >>> from torch import nn
            >>> from parity.pytest_plugin import TwinsChecker
            >>> def loss_and_grads(p, X, y):
            ...     s = X @ p["W"] + p["b"]                                  # (N, C)
            ...     e = np.exp(s - s.max(axis=1, keepdims=True))
            ...     prob, n = e / e.sum(axis=1, keepdims=True), len(y)
            ...     ds = prob.copy()
            ...     ds[np.arange(n), y] -= 1
            ...     ds /= n
            ...     loss = -np.log(prob[np.arange(n), y]).mean()
            ...     return loss, {"W": X.T @ ds, "b": ds.sum(0)}
            >>> rng = np.random.default_rng(0)
            >>> params = {"W": rng.standard_normal((4, 3)), "b": np.zeros(3)}
            >>> X, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)
            >>> TwinsChecker().assert_functions_close(loss_and_grads, nn.Linear(4, 3), X, y,
            ...                                       params).passed
            True
        """
        __tracebackhide__ = True
        from parity.api import compare_functions
        result = compare_functions(loss_and_grads, torch_model, X, y, params, **options)
        if not result.passed:
            raise AssertionError("the functions disagree with torch:\n" + result.report())
        return result

    def compare(self, numpy_model, torch_model, X, y, *, loss: LossName, **options):
        """``parity.compare_models(...)``: the ``TwinsReport``, passed or not (no raise), for
        a test that inspects it. Shapes and options as ``assert_close``.

        Example (the report's first line names the verdict)::

            >>> import numpy as np
            >>> from parity import reference as R, to_torch
            >>> from parity.pytest_plugin import TwinsChecker
            >>> numpy_net = R.Sequential(R.Linear(4, 8), R.ReLU(), R.Linear(8, 3))
            >>> torch_net = to_torch(numpy_net)           # Linear weights (out, in) here
            >>> rng = np.random.default_rng(0)
            >>> X, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)  # (N, D), (N,)
            >>> report = TwinsChecker().compare(numpy_net, torch_net, X, y,
            ...                                 loss="cross_entropy")
            >>> print(report.report().splitlines()[0])
            your model [float64, seed 0, 1 step(s)]: passed
        """
        from parity.api import compare_models
        return compare_models(numpy_model, torch_model, X, y, loss=loss, **options)


@pytest.fixture
def twins() -> TwinsChecker:
    """Check a NumPy model against its torch twin: ``twins.assert_close(np_net, torch_net,
    X, y, loss="cross_entropy")`` (see ``parity.compare_models`` for the options and
    shapes: ``X`` ``(N, D)`` or ``(N, C, H, W)``, ``y`` ``(N,)``).

    Example (a test file of yours; the fixture comes with ``pip install nn-parity``)::

        import numpy as np
        from parity import reference as R, to_torch

        def test_my_port(twins):
            numpy_net = R.Sequential(R.Linear(4, 8), R.ReLU(), R.Linear(8, 3))
            rng = np.random.default_rng(0)
            X, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)
            twins.assert_close(numpy_net, to_torch(numpy_net), X, y, loss="cross_entropy")
    """
    return TwinsChecker()
