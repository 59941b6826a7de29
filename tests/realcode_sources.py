"""Real outside code as test cases, kept out of this repository's commits.

Each source is one file under ``tests/realcode/`` (ignored by git): a header naming its
repository, path, commit and licence, then the code as written, in sections that each open
with a ``# ---- …`` line. The code is third-party and is not redistributed here;
``tests/realcode/README.md`` says where each file's lines come from. ``code``, ``text`` and
``load`` check the code against the sha256 recorded below (so an edited copy cannot pass for
the original) and skip the test, naming the file and its origin, when the file is absent. A
source that a package index also ships file for file (``Source.installed``) is read from the
installed distribution instead (numpy-ml's optimizers, installed by ``make`` without its
dependencies: its package ``__init__`` no longer imports on Python ≥ 3.10, so the one file is
read, never imported as a package).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent / "realcode"


@dataclass(frozen=True)
class Source:
    repository: str
    paths: str          # path(s) and lines kept
    commit: str
    licence: str
    sha256: str         # of the code as written: the text after the first ``# ----`` line
    installed: tuple[str, str] | None = None   # (distribution, file) shipping the same code


SOURCES = {
    "nets_cs231n_kantarcise.py": Source(
        "kantarcise/cs231n", "src/assignment2/cs231n/layers.py 1-631, layer_utils.py 5-28 and "
        "31-110, classifiers/fc_net.py 1-3 and 8-251", "d48f0baa8e92e01e41e52fadac03fdae00751c0d",
        "MIT", "e6711e67c2a5b8ef5a6f2b416ed0384cb986ef0c0c56d2c37a79bf958a825001"),
    "nets_nnfs_book.py": Source(
        "Sentdex/nnfs_book", "Chapter_15/Ch15_Final.py 1, 8-144 and 373-511",
        "9cf2fc482985d5bc68c736a49aa0624b6ab13fb1", "MIT",
        "7b1245ae79726d1fbef79b1ed5351f00e2de79ac9067a110b60a2c8865d0d4d1"),
    "nets_nielsen_network2.py": Source(
        "mnielsen/neural-networks-and-deep-learning", "src/network2.py 1-128 and 190-335",
        "72db53d750f571bef8804de4a52224e44dcab3a1", "MIT",
        "a7581090cbdebbf5478b7476ff7855124333e9ef08b5c1ba867351a52498ee7d"),
    "cs231n_layers.py": Source(
        "kaiweihuang/CS231n", "assignment2/cs231n/layers.py 1-66 and 665-end",
        "f5088b9ccaaac83e2c05efb3b00c8453b9e33270", "MIT",
        "43f9f9df7c9aa14685e3f6ab032852eb5983cad3215ca4bdf47afef53ef2ff0d"),
    "nielsen_network2.py": Source(
        "mnielsen/neural-networks-and-deep-learning",
        "src/network2.py: QuadraticCost, CrossEntropyCost, Network.feedforward/backprop, "
        "sigmoid, sigmoid_prime", "72db53d750f571bef8804de4a52224e44dcab3a1", "MIT",
        "6c26282c95cebc9c6e91e8ac226419c6832b996978939d0412ae3c4a1a0dbfad"),
    "nnfs_ch17.py": Source(
        "Sentdex/nnfs_book", "Chapter_17/Ch17_Final.py: Layer_Dense, Activation_ReLU, "
        "Activation_Softmax, Activation_Linear, Loss and its three subclasses",
        "9cf2fc482985d5bc68c736a49aa0624b6ab13fb1", "MIT",
        "2e878ae07b676e09624a294baedea627e86602ed9a85ebfdabd8570ff9103667"),
    "cs231n_fortileizhang_optim.py": Source(
        "FortiLeiZhang/cs231n", "code/cs231n/assignment2/cs231n/optim.py",
        "a27508b03c490b95fa2506117b762ddd2f035a23", "none stated (all rights reserved)",
        "6e7ce178b6e95f748225b3741ba8e7f297d2e2f853a196089aa10a3ea768031e"),
    "nnfs_book_ch10.py": Source(
        "Sentdex/nnfs_book", "Chapter_10/Ch10_Final.py",
        "9cf2fc482985d5bc68c736a49aa0624b6ab13fb1", "MIT",
        "dfbc73d8f8fec17f9a95d0e0011ad6774984b134c63ac51942f7bf1dc72fb80b"),
    "numpy_ml_optimizers.py": Source(
        "ddbourgin/numpy-ml", "numpy_ml/neural_nets/optimizers/optimizers.py",
        "b0359af5285fbf9699d64fd5ec059493228af03e", "GPL-3.0",
        "f6b667f9351916e0e8e41b7aaebca733e650327ed37b211b785d42103f6e8049",
        installed=("numpy-ml", "numpy_ml/neural_nets/optimizers/optimizers.py")),
}


def _installed(src: Source) -> Path | None:
    if src.installed is None:
        return None
    dist, file = src.installed
    try:
        path = Path(str(importlib.metadata.distribution(dist).locate_file(file)))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def text(name: str) -> str:
    """The file's whole text (header and code; the installed file is code only), its code
    checked as written; skips the test when the file is absent."""
    src = SOURCES[name]
    path = HERE / name
    if not path.is_file():
        path = _installed(src)
    if path is None:
        also = (f"; or pip install --no-deps {src.installed[0]} (constraints.txt)"
                if src.installed else "")
        pytest.skip(f"tests/realcode/{name} absent (third-party code is not committed): "
                    f"{src.repository} {src.paths} at {src.commit} ({src.licence}); "
                    f"see tests/realcode/README.md{also}")
    whole = path.read_text()
    assert hashlib.sha256(_code(whole).encode()).hexdigest() == src.sha256, (
        f"{path}: not the code as written (sha256 differs)")
    return whole


def _code(whole: str) -> str:
    marker = re.search(r"^# ----.*\n", whole, re.M)
    return whole[marker.end():] if marker else whole


def code(name: str) -> str:
    """The code as written alone (``text`` without the header)."""
    return _code(text(name))


def load(name: str, edit: tuple[str, str] | None = None,
         prelude: dict | None = None) -> types.ModuleType:
    """``tests/realcode/{name}`` as a fresh module; ``edit`` ``(old, new)`` changes the one
    place that holds ``old`` (a planted bug); ``prelude`` names the module sees first (e.g.
    ``xrange`` for Python 2 code)."""
    code = text(name)
    if edit is not None:
        assert code.count(edit[0]) == 1, f"{name}: {edit[0]!r} is not one place"
        code = code.replace(*edit)
    module = types.ModuleType(f"realcode_{name[:-3]}")
    module.__dict__.update(prelude or {})
    exec(compile(code, str(HERE / name), "exec"), module.__dict__)
    return module


class Lazy:
    """A source module loaded on first use, so a test that needs an absent file skips while
    the rest of its test file runs."""

    def __init__(self, name: str, prelude: dict | None = None) -> None:
        self._name, self._prelude, self._module = name, prelude, None

    def __getattr__(self, attr: str):
        if attr.startswith("__"):      # pytest's collection asks (``__test__``): not a use
            raise AttributeError(attr)
        if self._module is None:
            self._module = load(self._name, prelude=self._prelude)
        return getattr(self._module, attr)
