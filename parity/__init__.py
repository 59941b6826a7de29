"""nn-parity: check a hand-written NumPy network against its PyTorch twin — losses, every
gradient, the optimizer update and state, and the first layer that disagrees.

The public API (everything else is private):

``compare_models(numpy_model, torch_model, X, y, *, loss, optimizer=None, steps=1,
dtype=None, masks="shared", weights="numpy", seed=0, name="your model") -> TwinsReport``
    any ``reference.Sequential`` against any ``nn.Sequential``, or any ``nn.Module`` whose
    forward is a chain of layers (``parity.chain``: ``fc1``, ``F.relu``, ``fc2``).
``assert_twins_close(numpy_model, torch_model, X, y, **options) -> TwinsReport``
    the same; ``AssertionError`` with the mine-vs-torch report when a check fails.
``compare_functions(loss_and_grads, torch_model, X, y, params, *, loss="cross_entropy",
reg=0.0, mapping=None, transposed=None, name="your functions") -> TwinsReport``
    a plain-NumPy ``loss_and_grads(params, X, y) -> (loss, grads)`` (cs231n style).
``from_torch(module, *, rng=None) -> reference.Sequential`` and
``to_torch(numpy_model) -> nn.Sequential``
    the same model in the other framework, weights bit for bit.
``TwinsReport``
    ``.passed``, ``.report()``, ``.to_json()``, ``.localization``, ``.checks``.
``compare_optimizers(rule, torch_optimizer, params, grads=None, *, steps=None, options=None,
state_names=None, seed=0) -> OptimizerComparison``
    a hand-written update rule against ``torch.optim``, K steps, parameters and state;
    ``cs231n_rule``, ``layer_rule``, ``plain_rule`` wrap the three forms rules come in.

``__version__``
    the installed distribution's version (``importlib.metadata``; pyproject.toml's when run
    from a source tree that was never installed).

Each name's docstring gives its shapes and an example (``make docs`` renders them to
build/docs). Names resolve on first use (PEP 562), so ``import parity`` — and
``nn-parity --help`` — does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["TwinsReport", "assert_twins_close", "compare_functions", "compare_models",
           "from_torch", "to_torch", "compare_optimizers", "cs231n_rule", "layer_rule",
           "plain_rule"]

_HOME = {"TwinsReport": "parity.api", "assert_twins_close": "parity.api",
         "compare_functions": "parity.api", "compare_models": "parity.api",
         "from_torch": "parity.convert", "to_torch": "parity.convert",
         "compare_optimizers": "parity.optimizer_check",
         **dict.fromkeys(("cs231n_rule", "layer_rule", "plain_rule"), "parity.update_rules")}

if TYPE_CHECKING:  # pragma: no cover — for type checkers and IDEs
    __version__: str
    from parity.api import TwinsReport, assert_twins_close, compare_functions, compare_models
    from parity.convert import from_torch, to_torch
    from parity.optimizer_check import compare_optimizers
    from parity.update_rules import cs231n_rule, layer_rule, plain_rule


def _version() -> str:
    """The version of the installed distribution ``nn-parity`` (its metadata, written from
    pyproject.toml when it was built or installed); from a source tree never installed,
    pyproject.toml's own, read beside the package; ``"0+unknown"`` when neither exists."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("nn-parity")
    except PackageNotFoundError:
        pass
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        import tomllib
        with open(os.path.join(root, "pyproject.toml"), "rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (ImportError, OSError, KeyError, ValueError):   # no tomllib before Python 3.11
        return "0+unknown"


def __getattr__(name: str):
    if name == "__version__":
        globals()[name] = _version()
        return globals()[name]
    if name in _HOME:
        import importlib
        value = getattr(importlib.import_module(_HOME[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'parity' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | {"__version__"})
