"""The README's "Check your own model" examples run, so they cannot rot: each ```python block
of that section is executed as written in a fresh namespace; a block defining ``test_*``
functions then has each called with what the ``twins`` fixture provides (the fixture's
registration through the ``pytest11`` entry point is tests/test_plugin.py's subject; a second
pytest subprocess here would cost ~4 s of CPU for nothing more)."""

import pathlib
import re

import pytest

from parity.pytest_plugin import TwinsChecker

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Check your own model"


def examples() -> list[str]:
    """The ```python blocks between the section heading and the next ``## `` heading."""
    text = README.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return re.findall(r"```python\n(.*?)```", text[start:end if end != -1 else None], re.S)


def test_the_section_has_four_examples_one_of_them_a_pytest_test():
    blocks = examples()
    assert len(blocks) == 4, f"README '{SECTION}': {len(blocks)} python examples, expected 4"
    assert sum("def test_" in b for b in blocks) == 1


SCRIPTS = [b for b in examples() if "def test_" not in b]


@pytest.mark.parametrize("code", SCRIPTS, ids=[f"script{i}" for i in range(len(SCRIPTS))])
def test_script_example_runs(code, capsys):
    exec(compile(code, f"README.md ({SECTION})", "exec"), {"__name__": "__readme__"})
    assert ": passed" in capsys.readouterr().out


@pytest.mark.parametrize("code", [b for b in examples() if "def test_" in b], ids=["pytest"])
def test_pytest_example_passes(code):
    ns = {"__name__": "__readme__"}
    exec(compile(code, f"README.md ({SECTION})", "exec"), ns)
    tests = [f for name, f in ns.items() if name.startswith("test_") and callable(f)]
    assert tests, "the pytest example defines no test"
    for test in tests:
        test(TwinsChecker())


OPTIMIZER_SECTION = "## Check your own optimizer"


def test_the_optimizer_example_runs_and_its_report_is_the_one_described(capsys):
    text = README.read_text()
    start = text.index(OPTIMIZER_SECTION)
    end = text.find("\n## ", start + len(OPTIMIZER_SECTION))
    blocks = re.findall(r"```python\n(.*?)```", text[start:end], re.S)
    assert len(blocks) == 1, f"README '{OPTIMIZER_SECTION}': {len(blocks)} python examples"
    exec(compile(blocks[0], f"README.md ({OPTIMIZER_SECTION})", "exec"),
         {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "FAILED" in out and "first difference: step 1 param W1" in out, out
    assert "hint: the rule matches torch's adam with the step counter one ahead" in out, out
