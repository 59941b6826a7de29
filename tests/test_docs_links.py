"""Every ``docs/<page>.md#<anchor>`` named in the code or the README points at a page that
exists and a heading on it, so moving or renaming a section cannot leave a constant's
explanation dangling. Anchors follow GitHub's rule: lowercase, punctuation other than ``-``
and ``_`` dropped, spaces to ``-``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [*sorted((ROOT / "parity").rglob("*.py")), *sorted((ROOT / "reference").rglob("*.py")),
           ROOT / "README.md"]
LINK = re.compile(r"docs/([\w-]+\.md)(?:#([\w-]+))?")


def anchor(heading: str) -> str:
    """GitHub's slug of a markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {anchor(line.lstrip("#")) for line in page.read_text().splitlines()
            if line.startswith("#")}


def links() -> list[tuple[str, str, str | None]]:
    found = []
    for path in SOURCES:
        for match in LINK.finditer(path.read_text()):
            found.append((str(path.relative_to(ROOT)), match.group(1), match.group(2)))
    return found


CONSTANTS = {"parity/tolerances.py": ("TOLERANCES", "FACTOR", "FLOOR", "SAMPLES", "TRAJECTORY"),
             "parity/finite_diff.py": ("FD_RTOL", "FD_ATOL", "FD_LAMBDA", "KINK_MARGIN", "F32_K")}


@pytest.mark.parametrize("source,constant",
                         [(s, c) for s, names in CONSTANTS.items() for c in names])
def test_each_verdict_constant_links_its_measurement(source, constant):
    """The definition line or the 3 comment lines above it name docs/verdicts.md."""
    lines = (ROOT / source).read_text().splitlines()
    at = next(i for i, ln in enumerate(lines) if re.match(rf"{constant}\b.*=", ln))
    assert any("docs/verdicts.md" in ln for ln in lines[max(0, at - 3):at + 1]), (
        f"{source}: {constant} does not link docs/verdicts.md where it is defined")


@pytest.mark.parametrize("source,page,target", links(),
                         ids=lambda v: str(v))
def test_link_resolves(source, page, target):
    path = ROOT / "docs" / page
    assert path.is_file(), f"{source} links docs/{page}, which does not exist"
    if target is not None:
        assert target in anchors(path), (
            f"{source} links docs/{page}#{target}, which is not a heading there "
            f"(headings: {sorted(anchors(path))})")
