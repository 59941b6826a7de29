"""The public API's reference stays true (issue 24 item 5): every name of ``parity.__all__``
and every method of the ``twins`` fixture has a docstring that states shapes and carries an
example, and each example runs as written (doctest); ``parity.__version__`` is pyproject's;
the ``Literal`` types of parity.types are the vocabularies the runtime checks enforce.
Cost: ~4 s (the examples run small comparisons).
"""

from __future__ import annotations

import doctest
import importlib.metadata
import re
import textwrap
import tomllib
import typing
from pathlib import Path

import pytest

import parity
from parity import pytest_plugin, types

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_METHODS = ("assert_close", "assert_functions_close", "compare")
# a shape as the docstrings write them: (N, D), (in, out), (3, 2), (n,)
SHAPE = re.compile(r"\((?:N|D|n|in|out|C_out|\d+),(?: [A-Za-z_0-9]+)*")


def _public() -> dict[str, object]:
    names = {name: getattr(parity, name) for name in parity.__all__}
    names.update({f"twins.{m}": getattr(pytest_plugin.TwinsChecker, m) for m in FIXTURE_METHODS})
    names["TwinsChecker"] = pytest_plugin.TwinsChecker
    names["twins (fixture)"] = pytest_plugin.twins
    return names


PUBLIC = _public()


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_each_public_name_has_shapes_and_an_example(name):
    doc = PUBLIC[name].__doc__ or ""
    assert doc.strip(), f"{name}: no docstring"
    assert "Example" in doc, f"{name}: no 'Example' section"
    assert ">>>" in doc or "def test_" in doc, f"{name}: the example has no code"
    assert SHAPE.search(doc), f"{name}: no shape such as (N, D) in the docstring"


@pytest.mark.parametrize("name", sorted(n for n in PUBLIC if ">>>" in (PUBLIC[n].__doc__ or "")))
def test_each_example_runs_as_written(name):
    test = doctest.DocTestParser().get_doctest(PUBLIC[name].__doc__, {}, name, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    out: list[str] = []
    runner.run(test, out=out.append)
    assert runner.failures == 0, "".join(out)
    assert runner.tries >= 3, f"{name}: {runner.tries} lines run"


def test_the_fixture_example_passes():
    """The fixture's example is a test file, not a doctest: run its test function with the
    object the fixture hands out (tests/test_plugin.py runs the fixture through pytest)."""
    doc = pytest_plugin.twins.__doc__
    code = textwrap.dedent(doc[doc.index("Example"):].split("::", 1)[1])
    namespace: dict = {}
    exec(compile(code, "twins example", "exec"), namespace)
    namespace["test_my_port"](pytest_plugin.TwinsChecker())


def _pyproject_version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


def test_version_is_pyprojects():
    assert parity.__version__ == _pyproject_version()
    assert "__version__" in dir(parity)


def test_version_from_a_source_tree_never_installed(monkeypatch):
    def absent(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(importlib.metadata, "version", absent)
    assert parity._version() == _pyproject_version()


def test_the_literal_types_are_the_runtime_vocabularies():
    from parity import function_twins, kinds
    from parity.dtypes import DTYPES
    assert set(typing.get_args(types.LossName)) == set(kinds.LOSSES)
    assert set(typing.get_args(types.OptimizerName)) == set(kinds.OPTIMIZERS)
    assert typing.get_args(types.DtypeName) == DTYPES
    for name, literal in (("examples", types.Examples), ("running_var", types.RunningVar)):
        for value in typing.get_args(literal):
            function_twins.Options("mse", **{name: value}).check()
        with pytest.raises(ValueError, match=rf"{name}: one of \('"):
            function_twins.Options("mse", **{name: "other"}).check()


@pytest.mark.parametrize("fn, param, literal", [
    (parity.compare_models, "loss", types.LossName),
    (parity.compare_models, "dtype", types.DtypeName | None),
    (parity.compare_models, "masks", types.Masks),
    (parity.compare_models, "weights", types.Weights | None),
    (parity.compare_models, "reduction", types.Reduction),
    (parity.compare_functions, "loss", types.LossName),
    (parity.compare_functions, "reduction", types.Reduction),
    (parity.compare_functions, "examples", types.Examples),
    (parity.compare_functions, "dtype", types.DtypeName | None),
    (parity.compare_functions, "running_var", types.RunningVar),
    (pytest_plugin.TwinsChecker.assert_close, "loss", types.LossName),
], ids=lambda v: getattr(v, "__name__", None) if callable(v) else None)
def test_the_public_signatures_use_the_literals(fn, param, literal):
    assert typing.get_type_hints(fn)[param] == literal
