"""The architecture, enforced: who may import whom.

Below ``parity``'s own modules, three packages that know nothing of them, in the repository's
top-level folders and installed as ``parity.layerspec``, ``parity.reference`` and
``parity.torch_impl`` (one installed root, so a user's ``reference.py`` cannot shadow them):

    layerspec/    the layer vocabulary both builders read: the standard library only (no
                  NumPy, torch, reference, torch_impl or parity), so that reference and
                  torch_impl can both import it without importing each other
    reference/    NumPy only: never torch, never torch_impl or parity's own modules
    torch_impl/   torch only: never reference or parity's own modules

Each may name the package ``parity`` itself (``from parity import layerspec``): its
``__init__`` is the lazy facade and imports nothing.

``parity`` itself is four layers; a module may import its own layer and the layers above it in
this list, never one below:

    1. core          every ``parity`` module not named below (twins, compare, judge, precise,
                     tolerances, distance, transfer, masks, finite_diff, diverge, lockstep,
                     dtypes, fileio, runtime, inputs, convert, localize, api, usercode,
                     pytest_plugin, parity/kinds, ...; a new module is core until placed
                     elsewhere). ``parity/__init__.py``, the lazy public facade, names core
                     modules only, in its imports and in the strings it resolves them from.
    2. catalogue     ``parity/catalogue/``: the models of the source documents as ModelSpecs,
                     their data, the core's checks and training runs on them
    3. applications  ``parity/audit/`` and ``parity/tools/`` (never each other, never the
                     study); ``parity/study/`` (may use the audit and the tools)
    4. CLI           ``parity/cli.py`` and ``parity/__main__.py``, on top of everything

Every ``import`` statement counts, at module level or inside a function (a lazy import is
still a dependency). Imports are read from the source with ``ast``, so the test needs no
imports of its own and a new module is checked the moment it exists.
"""

import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# The layers of ``parity``, bottom first: (name, module prefixes). The core is what is left.
LAYERS = (("core", ()),
          ("catalogue", ("parity.catalogue",)),
          ("applications", ("parity.audit", "parity.tools", "parity.study")),
          ("CLI", ("parity.cli", "parity.__main__")))
# Inside the applications layer: who must not import whom.
PEERS = {"parity.audit": ("parity.tools", "parity.study"),
         "parity.tools": ("parity.audit", "parity.study"),
         "parity.study": ()}


def _hits(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_of(module: str) -> int:
    """Index in ``LAYERS`` of a ``parity`` module (``parity`` itself: the core)."""
    for i, (_, prefixes) in reversed(list(enumerate(LAYERS))):
        if any(_hits(module, p) for p in prefixes):
            return i
    return 0


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


# The three foundation packages: (prefixes outside parity they must not import, the parts of
# parity they may import). Every other parity module is off limits to them.
FOUNDATIONS = {"parity.layerspec": (("numpy", "torch"), ("parity.layerspec",)),
               "parity.reference": (("torch",), ("parity.reference", "parity.layerspec")),
               "parity.torch_impl": ((), ("parity.torch_impl", "parity.layerspec"))}


def is_forbidden(module: str, name: str) -> bool:
    """Whether ``module`` must not import ``name``."""
    if name.split(".")[0] in ("reference", "torch_impl", "layerspec"):
        return True   # installed only under parity: a user's reference.py would shadow these
    for package, (outside, inside) in FOUNDATIONS.items():
        if _hits(module, package):
            if any(_hits(name, p) for p in outside):
                return True
            return (_hits(name, "parity") and name != "parity"
                    and not any(_hits(name, p) for p in inside))
    if any(_hits(module, package) for package in FOUNDATIONS):
        return False
    return any(_hits(name, p) for p in forbidden(module))


def forbidden(module: str) -> tuple[str, ...]:
    """The ``parity`` module prefixes a module of ``parity``'s own layers must not import."""
    mine = layer_of(module)
    above = tuple(p for _, prefixes in LAYERS[mine + 1:] for p in prefixes)
    peers = next((bad for app, bad in PEERS.items() if _hits(module, app)), ())
    return above + peers


def _modules():
    for top in ("layerspec", "reference", "torch_impl", "parity"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield (name if top == "parity" else f"parity.{name}"), path


MODULES = dict(_modules())


def _describe(module: str) -> str:
    if module.split(".")[0] != "parity":
        return module.split(".")[0]
    if (package := next((p for p in FOUNDATIONS if _hits(module, p)), None)):
        return package
    return f"the {LAYERS[layer_of(module)][0]}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_respects_the_layers(module):
    bad = sorted(n for n in imported_modules(MODULES[module]) if is_forbidden(module, n))
    assert not bad, (f"{module} imports {bad}: {_describe(module)} must not depend on "
                     f"{sorted({_describe(n) for n in bad})}")


def test_the_facade_names_only_core_modules():
    """``parity/__init__.py`` resolves its names lazily from strings (``_HOME``): those strings
    and its imports (``TYPE_CHECKING`` ones included) must all be core modules."""
    path = ROOT / "parity" / "__init__.py"
    named = imported_modules(path) | {
        node.value for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and _hits(node.value, "parity")}
    assert {n for n in named if n.startswith("parity.")}, "the facade names no module: moved?"
    outside = sorted(n for n in named if _hits(n, "parity") and layer_of(n) != 0)
    assert not outside, f"parity/__init__.py names {outside}: the facade exposes the core only"


def test_the_rule_sees_a_violation(tmp_path):
    """The checker itself can fail: a lazy ``from parity.study import report`` inside a
    function of a core module, ``import parity.catalogue`` in the core, the catalogue reaching
    into the tools, and a relative import out of parity.tools are all found."""
    (tmp_path / "parity" / "tools").mkdir(parents=True)
    (tmp_path / "parity" / "catalogue").mkdir()
    probes = {"parity.probe": "def f():\n    from parity.study import report\n",
              "parity.probe2": "import parity.catalogue\n",
              "parity.catalogue.probe": "from parity.tools import selftest\n",
              "parity.tools.probe": "from ..audit import claims\n",
              "parity.probe3": "import reference\n"}
    for module, text in probes.items():
        path = tmp_path.joinpath(*module.split(".")).with_suffix(".py")
        path.write_text(text)
        assert any(is_forbidden(module, n) for n in imported_modules(path, tmp_path)), module
    tool = tmp_path / "parity" / "tools" / "probe.py"
    assert "parity.audit.claims" in imported_modules(tool, tmp_path)


def test_the_layers_are_in_order():
    """Each layer may use the ones below it and not the ones above: spot checks of the table."""
    allowed = {("parity.compare", "parity.twins"), ("parity.catalogue.zoo", "parity.twins"),
               ("parity.study.jobs", "parity.catalogue.zoo"), ("parity.study.jobs",
               "parity.audit.claims"), ("parity.cli", "parity.study.report"),
               ("parity.tools.drift", "parity.catalogue.checks"),
               ("parity.reference.layers", "parity.layerspec"), ("parity.twins",
               "parity.reference"), ("parity.torch_impl.training", "parity")}
    refused = {("parity.twins", "parity.catalogue"), ("parity.api", "parity.cli"),
               ("parity.kinds.linear", "parity.catalogue.spec"),
               ("parity.catalogue.zoo", "parity.study"), ("parity.catalogue.spec", "parity.cli"),
               ("parity.audit.claims", "parity.tools.bench"), ("parity.tools.bench",
               "parity.study.plan"), ("parity.study.jobs", "parity.cli"),
               ("parity.reference.layers", "torch"), ("parity.reference.layers",
               "parity.torch_impl"), ("parity.reference.layers", "parity.twins"),
               ("parity.torch_impl.training", "parity.reference"), ("parity.layerspec",
               "numpy"), ("parity.layerspec", "parity.reference")}
    for module, name in allowed:
        assert not is_forbidden(module, name), (module, name)
    for module, name in refused:
        assert is_forbidden(module, name), (module, name)


def test_every_layer_has_modules():
    """A typo in a directory name must not make the layering test vacuous."""
    for prefix in ("parity.reference.", "parity.torch_impl.", "parity.catalogue.", "parity.study.",
                   "parity.audit.", "parity.tools.", "parity.kinds."):
        assert sum(m.startswith(prefix) for m in MODULES) >= 1, prefix
    assert sum(layer_of(m) == 0 and not any(_hits(m, p) for p in FOUNDATIONS)
               for m in MODULES) >= 10, "core"
    assert {"parity.cli", "parity.__main__"} <= set(MODULES), "CLI"


def test_the_vocabulary_needs_only_the_standard_library():
    """Stricter than ``forbidden``: ``layerspec`` imports nothing outside the standard library
    and itself, so any package of the project (and a user without torch or NumPy) can read it."""
    mods = {m: p for m, p in MODULES.items() if _hits(m, "parity.layerspec")}
    assert mods, "layerspec not found: the vocabulary package moved?"
    for module, path in mods.items():
        outside = sorted(n for n in imported_modules(path)
                         if n.split(".")[0] not in sys.stdlib_module_names
                         and not _hits(n, "parity.layerspec"))
        assert not outside, f"{module} imports {outside}: layerspec must stay standard-library only"


def test_the_type_check_stages_the_installed_layout_and_keeps_what_is_not_its_own(tmp_path):
    """``tests/typecheck.py`` links ``parity/`` with the three foundation folders inside it
    (as they install), replaces a staging folder of its own, and refuses any other."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import typecheck
    finally:
        sys.path.remove(str(ROOT / "tests"))
    into = tmp_path / "stage"
    for _ in range(2):      # the second run replaces the first
        typecheck.stage(into)
        for name in ("reference", "torch_impl", "layerspec", "judge.py"):
            assert (into / "parity" / name).resolve().exists(), name
        assert (into / "parity" / "reference").resolve() == ROOT / "reference"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep")
    with pytest.raises(SystemExit, match="was not made by tests/typecheck.py"):
        typecheck.stage(foreign)
    assert (foreign / "mine.txt").read_text() == "keep"
