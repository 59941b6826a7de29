"""The architecture, enforced: who may import whom.

    layerspec/    the layer vocabulary both builders read: the standard library only (no
                  NumPy, torch, reference, torch_impl or parity), so that reference and
                  torch_impl can both import it without importing each other
    reference/    NumPy only: never torch, never torch_impl or parity
    torch_impl/   torch only: never reference or parity
    parity/*.py   the twins core, the catalogue and the CLI: never parity.study/audit/tools
                  (only ``parity/cli.py``, which registers every subcommand, sees them all)
    parity/audit, parity/tools   applications of the core: never parity.study, nor each other
    parity/study  the report: may use the core, the audit and the tools

Every ``import`` statement counts, at module level or inside a function (a lazy import is
still a dependency). Imports are read from the source with ``ast``, so the test needs no
imports of its own and a new module is checked the moment it exists.
"""

import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
APPS = ("parity.study", "parity.audit", "parity.tools")


def imported_modules(path: pathlib.Path, root: pathlib.Path = ROOT) -> set[str]:
    """Every module named by an ``import`` or ``from … import`` in ``path`` (relative imports
    resolved against the file's package under ``root``)."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)   # `from parity import study`
    return names


def forbidden(module: str) -> tuple[str, ...]:
    """The module prefixes ``module`` must not import."""
    if module.startswith("layerspec"):
        return ("numpy", "torch", "torch_impl", "reference", "parity")
    if module.startswith("reference"):
        return ("torch", "torch_impl", "parity")
    if module.startswith("torch_impl"):
        return ("reference", "parity")
    if module.startswith("parity.audit"):
        return ("parity.study", "parity.tools")
    if module.startswith("parity.tools"):
        return ("parity.study", "parity.audit")
    if module.startswith("parity.study") or module == "parity.cli":
        return ()
    return APPS                                          # the core


def _modules():
    for top in ("layerspec", "reference", "torch_impl", "parity"):
        for path in sorted((ROOT / top).rglob("*.py")):
            yield ".".join(path.relative_to(ROOT).with_suffix("").parts), path


MODULES = dict(_modules())


def _hits(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_respects_the_layers(module):
    bad = sorted(n for n in imported_modules(MODULES[module])
                 for p in forbidden(module) if _hits(n, p))
    assert not bad, f"{module} imports {bad}: {module.split('.')[0]} must not depend on them"


def test_the_rule_sees_a_violation(tmp_path):
    """The checker itself can fail: a lazy ``from parity.study import report`` inside a
    function of a core module, and a relative import out of parity.tools, are both found."""
    (tmp_path / "parity" / "tools").mkdir(parents=True)
    core = tmp_path / "parity" / "probe.py"
    tool = tmp_path / "parity" / "tools" / "probe.py"
    core.write_text("def f():\n    from parity.study import report\n")
    tool.write_text("from ..audit import claims\n")
    assert any(_hits(n, p) for n in imported_modules(core, tmp_path)
               for p in forbidden("parity.probe"))
    assert "parity.audit.claims" in imported_modules(tool, tmp_path)
    assert any(_hits(n, p) for n in imported_modules(tool, tmp_path)
               for p in forbidden("parity.tools.probe"))


def test_every_layer_has_modules():
    """A typo in a directory name must not make the layering test vacuous."""
    for prefix in ("reference.", "torch_impl.", "parity.study.", "parity.audit.", "parity.tools."):
        assert sum(m.startswith(prefix) for m in MODULES) >= 2, prefix


def test_the_vocabulary_needs_only_the_standard_library():
    """Stricter than ``forbidden``: ``layerspec`` imports nothing outside the standard library
    and itself, so any package of the project (and a user without torch or NumPy) can read it."""
    mods = {m: p for m, p in MODULES.items() if m == "layerspec" or m.startswith("layerspec.")}
    assert mods, "layerspec not found: the vocabulary package moved?"
    for module, path in mods.items():
        outside = sorted(n for n in imported_modules(path)
                         if n.split(".")[0] not in sys.stdlib_module_names | {"layerspec"})
        assert not outside, f"{module} imports {outside}: layerspec must stay standard-library only"
