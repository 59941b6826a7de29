"""Run mypy on the package as it installs: ``parity`` with ``reference/``, ``torch_impl/`` and
``layerspec/`` inside it as ``parity.reference``, ``parity.torch_impl``, ``parity.layerspec``.

The repository keeps those three as top-level folders, and pyproject's
``[tool.setuptools.package-dir]`` maps them under ``parity`` when installing. mypy reads files,
not installers' mappings, so run in place it would find no ``parity.reference`` and (with
``ignore_missing_imports``) type everything crossing into it as ``Any``. This script builds the
installed layout as links in ``build/typecheck/`` and runs ``mypy -p parity`` there with
pyproject's ``[tool.mypy]`` options; its messages name the linked paths. Exit status: mypy's.
Stdlib only (``make lint``, ``tox -e type``, CI's type job).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
MAPPED = ("reference", "torch_impl", "layerspec")   # pyproject [tool.setuptools.package-dir]


MARK = ".nn-parity-typecheck"    # in a staging folder this script made: it may replace it


def stage(into: pathlib.Path) -> pathlib.Path:
    """``into/parity``: a link for each entry of ``parity/`` and for each mapped folder.
    ``into`` is replaced only if this script made it (its ``MARK`` file); SystemExit naming
    it otherwise."""
    if into.is_symlink() or (into.exists() and not (into / MARK).is_file()):
        raise SystemExit(f"typecheck: {into} exists and was not made by tests/typecheck.py; "
                         f"move it away")
    shutil.rmtree(into, ignore_errors=True)
    package = into / "parity"
    package.mkdir(parents=True)
    (into / MARK).write_text("made by tests/typecheck.py: replaced on each run\n")
    for entry in sorted((ROOT / "parity").iterdir()):
        if entry.name != "__pycache__":
            os.symlink(entry, package / entry.name)
    for name in MAPPED:
        os.symlink(ROOT / name, package / name)
    return into


def main() -> int:
    where = stage(ROOT / "build" / "typecheck")
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
               "-p", "parity", *sys.argv[1:]]
    print(" ".join(command[1:]), f"(in {where.relative_to(ROOT)})", flush=True)
    return subprocess.call(command, cwd=where)


if __name__ == "__main__":
    sys.exit(main())
