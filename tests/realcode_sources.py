"""Real outside code as test cases, kept out of this repository's commits.

Each source is one file under ``tests/realcode/`` (ignored by git): a header naming its
repository, path, commit and licence, then the code as written, in sections that each open
with a ``# ---- …`` line. The code is third-party and is not redistributed here;
``tests/realcode/README.md`` says where each file's lines come from. ``load`` checks the code
against the sha256 recorded below (so an edited copy cannot pass for the original) and skips
the test, naming the file and its origin, when the file is absent.
"""

from __future__ import annotations

import hashlib
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
    sha256: str         # of the text from the first ``# ----`` line to the end


SOURCES = {
    "nets_cs231n_kantarcise.py": Source(
        "kantarcise/cs231n", "src/assignment2/cs231n/layers.py 1-631, layer_utils.py 5-28 and "
        "31-110, classifiers/fc_net.py 1-3 and 8-251", "d48f0baa8e92e01e41e52fadac03fdae00751c0d",
        "MIT", "76dfc07ac66ead919a5537deebbdeecc66cf43767ceb1da468b0f997bab0e552"),
    "nets_nnfs_book.py": Source(
        "Sentdex/nnfs_book", "Chapter_15/Ch15_Final.py 1, 8-144 and 373-511",
        "9cf2fc482985d5bc68c736a49aa0624b6ab13fb1", "MIT",
        "37d480923a9ed86521d782fd3c4c813fdd264844da618ab3e6c7d04b9b09ce4e"),
    "nets_nielsen_network2.py": Source(
        "mnielsen/neural-networks-and-deep-learning", "src/network2.py 1-128 and 190-335",
        "72db53d750f571bef8804de4a52224e44dcab3a1", "MIT",
        "7618fce7ede9f94e7bbb9cee4cd7825d64b02f59607f1167082803abbde720d3"),
    "cs231n_layers.py": Source(
        "kaiweihuang/CS231n", "assignment2/cs231n/layers.py 1-66 and 665-end",
        "f5088b9ccaaac83e2c05efb3b00c8453b9e33270", "MIT",
        "db7788761309b64103bba1ad296992ea4856314c86930fc95654b08542bcb69c"),
    "nielsen_network2.py": Source(
        "mnielsen/neural-networks-and-deep-learning",
        "src/network2.py: QuadraticCost, CrossEntropyCost, Network.feedforward/backprop, "
        "sigmoid, sigmoid_prime", "72db53d750f571bef8804de4a52224e44dcab3a1", "MIT",
        "a68bc3a64ca8b4be48a6c14d4074178a137d1acd050987028c213c6674140025"),
    "nnfs_ch17.py": Source(
        "Sentdex/nnfs_book", "Chapter_17/Ch17_Final.py: Layer_Dense, Activation_ReLU, "
        "Activation_Softmax, Activation_Linear, Loss and its three subclasses",
        "9cf2fc482985d5bc68c736a49aa0624b6ab13fb1", "MIT",
        "676a493b163875669418f1bc7a25abf8a0685cfd9096e48b3230782b6d971aae"),
}


def text(name: str) -> str:
    """The file's whole text, its code checked as written; skips the test when absent."""
    src = SOURCES[name]
    path = HERE / name
    if not path.is_file():
        pytest.skip(f"tests/realcode/{name} absent (third-party code is not committed): "
                    f"{src.repository} {src.paths} at {src.commit} ({src.licence}); "
                    f"see tests/realcode/README.md")
    whole = path.read_text()
    start = re.search(r"^# ----", whole, re.M)
    code = whole[start.start():] if start else whole
    assert hashlib.sha256(code.encode()).hexdigest() == src.sha256, (
        f"tests/realcode/{name}: not the code as written (sha256 differs)")
    return whole


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
