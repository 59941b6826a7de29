"""The report's document: one list of blocks rendered to Markdown and HTML, one function per
section.

Pictures are PNG files under ``img/`` beside ``index.html`` and ``index.md``; both pages
reference them by relative path (one copy of each picture). The HTML page opens with a
headline, the contents and a short "How to read this", then teaches before it certifies:
one section per source document (titled by the document), each model open with its pictures
and a sentence on why its twins differ where they do, the per-layer agreement, a worked
failure (a planted bug and what parity says), and only then the verdict tables. The rules'
arithmetic (tolerances, σ, the rounding and precision rules) and the time spent are
appendices. Per-model sections are ``<details open>``: the reader can fold them.
"""

from __future__ import annotations

import html
import os
import re
from contextlib import contextmanager

import numpy as np

from parity import tolerances
from parity.catalogue import zoo
from parity.study import layer_agreement
from parity.study.executor import Study
from parity.study.plan import N_TILES
from parity.twins import IMPLS

NOT_MEASURED = "not measured (quick run)"     # the "met" cell of a capped run
CLAIM_VERDICTS = ("reproduced", "refuted", "unreachable as written", NOT_MEASURED)

# colour class of each verdict word in HTML tables (the legend shows them)
VERDICT_CLASS = {"pass": "good", "met": "good", "reproduced": "good", "FAIL": "bad",
                 "NOT met": "bad", "refuted": "bad", "unreachable as written": "warn",
                 NOT_MEASURED: "muted"}


# ---- the document: one list of blocks → Markdown and HTML ---------------------------------------
class Doc:
    """Headings, paragraphs, tables, pictures and collapsible sections, rendered to Markdown
    and HTML. Pictures are written once, as ``img_dir/<name>.png``; both renderings point to
    ``img/<name>.png``."""

    def __init__(self, img_dir: str) -> None:
        self.blocks: list = []
        self.img_dir = img_dir
        self.images: list[str] = []
        self._anchors: set[str] = set()

    def anchor(self, text: str) -> str:
        """A unique HTML id for ``text``: lower-case words joined by ``-`` (``-2``… on reuse)."""
        base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
        a, k = base, 1
        while a in self._anchors:
            k += 1
            a = f"{base}-{k}"
        self._anchors.add(a)
        return a

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text, self.anchor(text)))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def why(self, text: str) -> None:
        """A sentence beside a figure saying why the twins differ there."""
        self.blocks.append(("why", text))

    def headline(self, text: str) -> None:
        self.blocks.append(("headline", text))

    def toc(self) -> None:
        """The contents, listing every level-2 heading and level-3 section, rendered here."""
        self.blocks.append(("toc",))

    def table(self, header: list, rows: list, highlight: tuple = ()) -> None:
        """``highlight``: indices of rows to mark (HTML class ``first``; Markdown bold)."""
        self.blocks.append(("table", header, rows, tuple(highlight)))

    def pre(self, text: str) -> None:
        """Preformatted text, as a terminal shows it."""
        self.blocks.append(("pre", text))

    def img(self, name: str, fig, caption: str) -> None:
        """Write ``fig`` to ``img_dir/<name>.png`` (``plots.save_png``) and place it here."""
        from parity.study.plots import save_png
        fname = f"{name}.png"
        png = save_png(fig, os.path.join(self.img_dir, fname))
        self.images.append(fname)
        self.blocks.append(("img", fname, _png_size(png), caption))

    @contextmanager
    def collapsible(self, level: int, title: str, summary: str = "", folded: bool = True):
        """A level-``level`` section under its title (HTML ``<details>``): ``folded``, closed
        until the reader opens it or follows a contents link to it; else open (its pictures
        show without a click) and foldable."""
        self.blocks.append(("open", level, title, self.anchor(title), summary, folded))
        yield
        self.blocks.append(("close",))

    def sections(self) -> list[tuple[int, str, str]]:
        """``(level, title, anchor)`` of every level-2 and level-3 heading, in order."""
        return [(b[1], b[2], b[3]) for b in self.blocks
                if b[0] in ("h", "open") and b[1] in (2, 3)]

    def markdown(self) -> str:
        return _markdown(self)

    def html(self, title: str) -> str:
        return _html(self, title)


def _png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk (bytes 16–24, big-endian)."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


# ---- Markdown ----------------------------------------------------------------------------------
def _markdown(doc: Doc) -> str:
    out: list[str] = []
    for b in doc.blocks:
        kind = b[0]
        if kind == "h":
            out += [f'<a id="{b[3]}"></a>', "", "#" * b[1] + " " + b[2], ""]
        elif kind in ("p", "headline"):
            out += [b[1] if kind == "p" else f"**{b[1]}**", ""]
        elif kind == "why":
            out += [f"> **Why they differ:** {b[1]}", ""]
        elif kind == "toc":
            out += _markdown_toc(doc)
        elif kind == "table":
            out += _markdown_table(b[1], b[2], b[3])
        elif kind == "pre":
            out += ["```", b[1], "```", ""]
        elif kind == "img":
            out += [f"![{b[3]}](img/{b[1]})", "", f"*{b[3]}*", ""]
        elif kind == "open":
            out += [f'<a id="{b[3]}"></a>', "", "#" * b[1] + " " + b[2], ""]
            out += [f"*{b[4]}*", ""] if b[4] else []
    return "\n".join(out)


def _markdown_toc(doc: Doc) -> list[str]:
    out = ["**Contents**", ""]
    for level, title, anchor in doc.sections():
        out.append("  " * (level - 2) + f"- [{title}](#{anchor})")
    return out + [""]


def _markdown_table(header: list, rows: list, highlight: tuple = ()) -> list[str]:
    out = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    for i, r in enumerate(rows):
        cells = [str(c).replace("|", "\\|") for c in r]
        if i in highlight:
            cells = [f"**{c}**" if c else c for c in cells]
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]


# ---- HTML --------------------------------------------------------------------------------------
def _inline(text) -> str:
    """Escape ``text``; `code`, **bold** and *italic* become <code>, <b> and <i>."""
    t = html.escape(str(text))
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)
    return re.sub(r"\*([^*\s][^*]*)\*", r"<i>\1</i>", t)


def _html(doc: Doc, title: str) -> str:
    body = []
    for b in doc.blocks:
        kind = b[0]
        if kind == "h":
            body.append(f'<h{b[1]} id="{b[3]}">{_inline(b[2])}</h{b[1]}>')
        elif kind == "p":
            body.append(f"<p>{_inline(b[1])}</p>")
        elif kind == "headline":
            body.append(f'<p class="headline">{_inline(b[1])}</p>')
        elif kind == "why":
            body.append(f'<p class="why"><b>Why they differ:</b> {_inline(b[1])}</p>')
        elif kind == "toc":
            body.append(_html_toc(doc))
        elif kind == "table":
            body.append(_html_table(b[1], b[2], b[3]))
        elif kind == "pre":
            body.append(f"<pre>{html.escape(b[1])}</pre>")
        elif kind == "img":
            body.append(_html_img(*b[1:]))
        elif kind == "open":
            summary = f' <span class="gist">{_inline(b[4])}</span>' if b[4] else ""
            body.append(f'<details id="{b[3]}"{"" if b[5] else " open"}><summary>'
                        f"<h{b[1]}>{_inline(b[2])}</h{b[1]}>{summary}</summary>")
        elif kind == "close":
            body.append("</details>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + f"\n<script>{_OPEN_TARGET_JS}</script>\n</body></html>\n")


def _html_toc(doc: Doc) -> str:
    """Contents: each level-2 section on its own line, its level-3 sections inline after it."""
    items: list[list[str]] = []
    for level, title, anchor in doc.sections():
        link = f'<a href="#{anchor}">{html.escape(title)}</a>'
        if level == 2 or not items:
            items.append([link])
        else:
            items[-1].append(link)
    lis = "".join(f"<li>{it[0]}" + (f'<span class="sub">{" · ".join(it[1:])}</span>'
                                    if len(it) > 1 else "") + "</li>" for it in items)
    return f'<nav id="contents"><b>Contents</b><ol>{lis}</ol></nav>'


class Perf(str):
    """A table cell about speed against a performance goal ("target ≤ 1.1×, measured
    1.134×"): styled ``perf`` (neutral), never as a verdict, whatever words it holds."""


def cell_class(cell: str) -> str | None:
    """The colour class of a table cell made of verdict words (``met / NOT met`` is bad:
    one twin missed), ``perf`` for a ``Perf`` cell, or None for any other cell."""
    if isinstance(cell, Perf):
        return "perf"
    kinds = [VERDICT_CLASS.get(part) for part in str(cell).split(" / ")]
    if None in kinds:
        return None
    for k in ("bad", "warn", "muted"):
        if k in kinds:
            return k
    return "good"


_NUMERIC = re.compile(r"^[-+−]?(\d|\.\d)")


def _is_numeric(cell: str) -> bool:
    """A short cell that starts with a number (``0.5367 / 0.5367``, ``1.2e-16 (grad)``):
    right-aligned, never wrapped. A list (``0.9241, 0.07586``) may wrap."""
    return bool(_NUMERIC.match(cell)) and len(cell) <= 24 and ", " not in cell


def _html_table(header: list, rows: list, highlight: tuple = ()) -> str:
    head = "".join(f"<th>{_inline(c)}</th>" for c in header)
    out = []
    for i, r in enumerate(rows):
        cells = []
        for j, c in enumerate(r):
            k = " ".join(x for x in (cell_class(c), "n" if j > 0 and _is_numeric(str(c))
                                     else None) if x)
            cells.append((f'<td class="{k}">' if k else "<td>") + _inline(c) + "</td>")
        out.append(('<tr class="first">' if i in highlight else "<tr>") + "".join(cells)
                   + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(out)}</tbody></table>"


def _html_img(fname: str, size: tuple[int, int], caption: str) -> str:
    w, h = size
    return (f'<figure><img src="img/{html.escape(fname)}" width="{w}" height="{h}" '
            f'loading="lazy" alt="{html.escape(caption)}"><figcaption>{_inline(caption)}'
            "</figcaption></figure>")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1300px;
margin:1.5em auto;padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444;margin-bottom:.3em}h2{border-bottom:1px solid #aaa;margin-top:1.8em}
.headline{font-size:1.25em;font-weight:600;margin:.4em 0 .6em}
nav{background:#f6f6f6;border:1px solid #ddd;padding:.4em 1em;font-size:.95em}
nav ol{margin:.3em 0;padding-left:1.4em}nav .sub{display:block;font-size:.9em;color:#555}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fafafa}
td.good{color:#176b1f}td.bad{color:#b00020;font-weight:bold}td.warn{color:#a15c00;font-weight:bold}
td.muted{color:#777;font-style:italic}td.perf{color:#35506b;font-style:italic}
tr.first td{background:#ffe3e3;font-weight:bold}
tr.first td:first-child{border-left:4px solid #b00020}
pre{background:#f6f6f6;border:1px solid #ddd;padding:.5em;font-size:.8em;overflow-x:auto}
.why{border-left:3px solid #4a7ab5;padding-left:.6em;color:#333}
details{border:1px solid #ddd;border-radius:4px;margin:.5em 0;padding:0 .8em}
details[open]{padding-bottom:.6em}
summary{cursor:pointer;padding:.35em 0}
summary h3,summary h2{display:inline;font-size:1.05em;margin:0}
summary .gist{color:#555;font-size:.9em;margin-left:.6em}
figure{margin:.8em 0}figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.9em;color:#555;max-width:1100px}
code{background:#f3f3f3;padding:0 3px}
"""

# a contents link to a closed <details> opens it
_OPEN_TARGET_JS = ("function openTarget(){var e=location.hash&&document.getElementById("
                   "decodeURIComponent(location.hash.slice(1)));if(e&&e.tagName==='DETAILS')"
                   "e.open=true;}addEventListener('hashchange',openTarget);openTarget();")


# ---- numbers for people -------------------------------------------------------------------------
def fmt_num(x, digits: int = 4) -> str:
    """A measured value: ``-`` for None, ``0`` for ±0, ``digits`` significant digits; a vector
    as comma-separated values (``0.9241, 0.07586``), like the claims state them."""
    if x is None:
        return "-"
    if isinstance(x, (list, tuple, np.ndarray)):
        return ", ".join(fmt_num(v, digits) for v in x)
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        return "0" if x == 0 else format(float(x), f".{digits}g")
    return str(x)


def fmt_sci(x) -> str:
    """A difference or a ratio to tolerance: ``0`` when exactly 0, else ``1.2e-16``."""
    return "-" if x is None else "0" if x == 0 else f"{x:.1e}"


def fmt_pm(mean: float, stderr: float, decimals: int = 4) -> str:
    """``mean ± stderr`` to ``decimals`` places; a standard error that rounds to 0 there is
    written as a bound (``0.9933 ± <5e-5``), never as ``± 0.0000``."""
    if stderr < 0.5 * 10.0**-decimals:
        return f"{mean:.{decimals}f} ± <5e-{decimals + 1}"
    return f"{mean:.{decimals}f} ± {stderr:.{decimals}f}"


def fmt_threads(threads: dict | None) -> str:
    """``{'torch': 1, 'blas': 1}`` → ``torch 1, BLAS 1``."""
    if not threads:
        return "unknown"
    return ", ".join(f"{'BLAS' if k == 'blas' else k} {v}" for k, v in threads.items())


def _met(r: dict, capped: bool = False) -> str:
    """The target cell of run ``r``: met / NOT met, ``-`` without a target, and no verdict
    (``NOT_MEASURED``) for a run capped below its recipe's epochs."""
    if capped and r.get("target") is not None:
        return NOT_MEASURED
    return "-" if r.get("target_met") is None else ("met" if r["target_met"] else "NOT met")


def _verdict(p: dict) -> str:
    return "pass" if p["passed"] else "FAIL"


def _met_pair(m: dict) -> str:
    """The target cell of a model: one verdict when both twins have it, else ``np / torch``."""
    n, t = (_met(m["runs"][i], m["capped"]) for i in IMPLS)
    return n if n == t else f"{n} / {t}"


def _both(m: dict) -> str:
    """The target verdict of a model over both twins: met, NOT met, split, not measured."""
    n, t = (_met(m["runs"][i], m["capped"]) for i in IMPLS)
    return n if n == t else "split"


# ---- the report: one function per section ----------------------------------------------------
def build_document(study: Study, img_dir: str) -> Doc:
    """Every section of the report, in order, from ``study`` (measured values only)."""
    from parity.study import plots
    R, A = study.results, study.arrays
    doc = Doc(img_dir)
    _title_section(doc, R)
    doc.toc()
    _how_to_read_section(doc, R)
    for source in zoo.SOURCES.values():
        _source_section(doc, R, A, source, plots)
    _worked_failure_section(doc, R, plots)
    _legend_section(doc)
    _training_section(doc, R)
    _parity_section(doc, R)
    _xor_section(doc, R)
    _claims_section(doc, R)
    _bench_section(doc, R, plots)
    _rules_section(doc, R)
    _time_section(doc, R)
    return doc


def headline(R: dict) -> str:
    """One line: models agreeing per dtype, targets met by both twins, claims per verdict
    (e.g. ``23/23 models agree in float64, 23/23 in float32; targets: 14/15 met, 1 missed;
    claims: 14 reproduced, 4 refuted``)."""
    ms = R["models"]
    agree = ", ".join(f"{sum(m['parity'][dt]['passed'] for m in ms)}/{len(ms)}"
                      + (" models agree" if dt == "float64" else "") + f" in {dt}"
                      for dt in ("float64", "float32"))
    both = [_both(m) for m in ms if m.get("target")]
    parts = [f"{both.count('met')}/{len(both)} met by both twins"] + [
        f"{both.count(k)} {w}" for k, w in (("NOT met", "missed"), ("split", "split"),
                                            (NOT_MEASURED, NOT_MEASURED)) if both.count(k)]
    return f"{agree}; targets: {', '.join(parts)}; {_claims_count(R['claims'])}"


def _claims_count(c: dict) -> str:
    if not c.get("available"):
        return "claims audit not run"
    verdicts = [r.get("verdict") for r in c["rows"]]
    parts = [f"{verdicts.count(v)} {v}" for v in CLAIM_VERDICTS if verdicts.count(v)]
    return "claims: " + ", ".join(parts)


def _title_section(doc: Doc, R: dict) -> None:
    meta = R["meta"]
    doc.h(1, "nn-parity study" + (" (quick run)" if R["quick"] else ""))
    doc.headline(headline(R))
    workers = meta.get("threads_workers")
    threads = f"threads: {fmt_threads(meta['threads_main'])}" + (
        f" (workers: {fmt_threads(workers)})" if workers and workers != meta["threads_main"]
        else "")
    doc.p(f"{meta['date_utc']} UTC · python {meta['python']}, numpy {meta['numpy']}, "
          f"torch {meta['torch']}, matplotlib {meta['matplotlib']} · {meta['jobs']} worker "
          f"process(es), {threads}"
          + (f" · `{meta['command']}`" if meta.get("command") else ""))
    if R["quick"]:
        doc.p("**Quick run**: epochs capped (full-batch 300, full-batch on >1000 rows 100, "
              "minibatch 30), fewer seeds and sizes. Its numbers are not the recipes' results, "
              "and a capped run gets no target or claim verdict.")


def _how_to_read_section(doc: Doc, R: dict) -> None:
    """Up front, in plain words: what the twins are, what "agree" means, how the pictures
    are drawn; the arithmetic is in the appendix (``_rules_section``)."""
    r64, _ = tolerances.tolerance("float64", "param")
    doc.h(2, "How to read this")
    doc.p("**Twins.** Every model exists twice: a hand-written NumPy network (`reference/`) "
          "and a stock PyTorch `nn.Sequential` (`torch_impl/`). Both start from the same "
          "NumPy-initialized weights and see the same data in the same batch order, in "
          "float64. Each model's section shows both trained twins side by side, the "
          "difference between them, and how many digits they agree to, layer by layer.")
    doc.p("**Agreeing.** Computers round every operation, and NumPy and torch round in "
          "different places, so the twins are not expected to be bit-identical: a check "
          "passes when they differ by no more than rounding can explain — in float64 about "
          f"{-np.log10(r64):.0f} of the 16 digits or better, and in float32 neither twin "
          "further from the exact answer than the other by more than rounding noise. "
          "*Appendix: the rules* gives the arithmetic.")
    doc.p("**Where they differ, and why.** Agreement is checked at one step, from identical "
          "weights and with the same dropout masks on both sides. A full training run is "
          "different: each twin draws its own dropout masks, and rounding differences of one "
          "step grow over thousands, so final accuracies may differ; the sentence beside each "
          "figure says which applies to that model. *A worked failure* shows what a real "
          "bug looks like.")
    doc.p("**Pictures.** NumPy solid, torch dashed in the same colour (where they agree the "
          "dashes lie on the line); float64 blue, float32 orange. A log axis cannot show 0: "
          "exact agreement is a tick in an \"= 0\" strip or a star.")


def _rules_section(doc: Doc, R: dict) -> None:
    """Appendix: the tolerance, rounding and precision rules, divergence, verdicts, Bayes."""
    r64, a64 = tolerances.tolerance("float64", "param")
    r32, a32 = tolerances.tolerance("float32", "param")
    k100, b100 = tolerances.TRAJECTORY["float64"]
    F, K = tolerances.FACTOR, tolerances.FLOOR
    doc.h(2, "Appendix: the rules")
    doc.p("**Twins.** Every model exists twice: a hand-written NumPy network (`reference/`) "
          "and a stock PyTorch `nn.Sequential` (`torch_impl/`). Both start from the same "
          "NumPy-initialized weights and see the same data in the same batch order, in "
          "float64. In training runs each side draws its own dropout masks, so dropout "
          "models agree in distribution, not in digits; the parity checks share the masks.")
    doc.p("**One-step parity** (`parity.compare`). Identical weights and one batch go into "
          "both twins for 1 training step (2 with weight decay, 3 with optimizer state or "
          "BatchNorm). Each compared tensor is one check: the loss, every gradient, the "
          "update, the parameters after it, buffers, optimizer state, eval outputs. A model "
          "passes when every check passes; the table shows the largest absolute difference "
          "and the largest normwise relative difference max|a−b| / max(|a|, |b|) over all "
          "checks (0 for a tensor that is only rounding noise in its group), with the kind "
          "of tensor that set it.")
    doc.p(f"**The tolerance rule** (`parity/tolerances.py`, applied by `parity/judge.py`). "
          f"Elementwise |a − b| ≤ rtol·|b| + atol·S, a = NumPy, b = torch. In float64, rtol "
          f"{r64:g}, atol {a64:g} and S is the largest magnitude among that step's tensors "
          "of the same kind (all gradients, all parameters, one kind of optimizer state), so "
          "a tensor that is 0 in exact arithmetic is measured against its group's rounding "
          f"noise. In float32, rtol {r32:g}, atol {a32:g} and S is the tensor's own scale "
          "max(|a|, |b|). When a float64 check fails that table, the rounding rule decides: "
          "a value formed from much larger parts that cancel (a loss of 1e-6 made of logits "
          "of 13) carries their noise, so the twins may differ by twice σ, the spread of the "
          "step under float64-sized rounding perturbations. "
          "When a float32 check fails the table, the precision rule decides: "
          "the same step is evaluated in float64 from the identical float32 state, σ is how "
          "far float32-sized rounding moves that evaluation, and with d_a, d_b each twin's "
          f"largest distance to it the check passes when d_a ≤ {F:g}·d_b + {K:g}·σ and "
          f"d_b ≤ {F:g}·d_a + {K:g}·σ — neither twin is more than {F:g}× less accurate than "
          "the other beyond the noise. Integer tensors (step counters) must be equal.")
    doc.p("**Divergence** (`parity.diverge`). Both twins train in lockstep from identical "
          "weights, each on its own gradients, with shared batches and dropout masks; after "
          "every step the largest normwise relative parameter difference is recorded (a "
          "bias feeding BatchNorm, whose true gradient is 0, is left out). Rounding "
          "differences enter every step and the dynamics amplify them, so this grows with "
          f"the steps: the test suite holds float64 to {b100:g} over the first {k100} steps; "
          "float32 trajectories are expected to drift apart and no bound is asserted on "
          f"them. This run used {R['meta']['diverge_steps']} steps.")
    doc.p("**Verdicts.** A recipe's *target* (e.g. held-out accuracy ≥ 0.95) is judged on "
          "each twin's training run: met or NOT met; a run that quick mode capped below the "
          "recipe's epochs gets no verdict. The *claims audit* measures every numeric claim "
          "of the five source documents on both twins and compares it with a check fixed "
          "before measuring: reproduced, refuted or unreachable as written.")
    doc.p("**Bayes ceiling** (`parity.audit.bayes`). The expected accuracy of the best "
          "possible classifier — one that knows the data-generating distribution — on fresh "
          "points from the generator, estimated by Monte Carlo and shown as mean ± standard "
          "error. A claim about held-out accuracy that lies above the upper end of its 95 % "
          "interval is unreachable by any model; on training accuracy the ceiling is context "
          "only, since a model can fit the noise of its own sample.")




def _legend_section(doc: Doc) -> None:
    doc.h(2, "Verdict legend")
    doc.table(["word", "where", "meaning"], [
        ["pass", "one-step parity", "every check of that dtype within the rule above"],
        ["FAIL", "one-step parity", "at least one check outside it (named in results.json)"],
        ["met", "targets", "the twin's run reached the recipe's target"],
        ["NOT met", "targets", "the twin's run ran the recipe's epochs and missed the target"],
        [NOT_MEASURED, "targets, claims", "quick mode capped what it needs: no verdict"],
        ["reproduced", "claims", "both twins meet the claim's check"],
        ["refuted", "claims", "the claimed setting runs as written and misses (on either twin)"],
        ["unreachable as written", "claims",
         "the Bayes ceiling's 95 % upper bound cannot meet the check: no model could"],
        ["-", "anywhere", "no target, or nothing measured"],
    ])


def _training_section(doc: Doc, R: dict) -> None:
    doc.h(2, "Training side by side")
    rows = []
    for m in R["models"]:
        n, t = m["runs"]["numpy"], m["runs"]["torch"]
        ep = str(m["epochs"]) + ("" if m["epochs"] == m["recipe_epochs"]
                                 else f" (of {m['recipe_epochs']})")
        if n.get("stopped_epoch") is not None:
            ep += f", stopped {n['stopped_epoch'] + 1}/{t['stopped_epoch'] + 1}"
        rows.append([m["model"], m["parameters"], ep,
                     f"{n['train_accuracy']:.4f} / {t['train_accuracy']:.4f}",
                     f"{n['test_accuracy']:.4f} / {t['test_accuracy']:.4f}",
                     f"{fmt_num(n['final_loss'])} / {fmt_num(t['final_loss'])}",
                     f"{fmt_num(n['test_loss'])} / {fmt_num(t['test_loss'])}",
                     f"{n['seconds']:.2f} / {t['seconds']:.2f}",
                     m["target"] or "-", _met_pair(m)])
    doc.table(["model", "params", "epochs", "train acc np / torch", "held-out acc np / torch",
               "final loss np / torch", "held-out loss np / torch", "seconds np / torch",
               "target", "met (np / torch if they differ)"], rows)
    doc.p("Final loss: the last epoch's mean training loss (cs231n models include "
          "0.5·reg·ΣW²); held-out loss: the data loss on the held-out part in eval mode. "
          "Seconds: each run's training loop"
          + (" inside a worker sharing the machine with the other workers." if
             R["meta"]["jobs"] > 1 else "."))


def _parity_section(doc: Doc, R: dict) -> None:
    doc.h(2, "One-step parity")
    rows = []
    for m in R["models"]:
        p64, p32 = m["parity"]["float64"], m["parity"]["float32"]
        d64, d32 = m["divergence"]["float64"], m["divergence"]["float32"]
        rows.append([m["model"], _verdict(p64), _worst(p64, "abs"), _worst(p64, "rel"),
                     _verdict(p32), _worst(p32, "abs"), _worst(p32, "rel"),
                     f"{fmt_sci(d64['final_param_rel'])} / {fmt_sci(d32['final_param_rel'])}"])
    doc.table(["model", "float64", "max abs (quantity)", "max rel (quantity)", "float32",
               "max abs (quantity)", "max rel (quantity)",
               f"divergence after {R['meta']['diverge_steps']} steps f64 / f32"], rows)
    doc.p("The worst difference over every check of the step(s), and the kind of tensor "
          "that set it; the rule is in *Appendix: the rules*. Divergence: the normwise relative "
          "parameter difference after the lockstep run.")


def _worst(p: dict, kind: str) -> str:
    v = p[f"max_{kind}"]
    return fmt_sci(v) + ("" if v == 0 else f" ({p[f'max_{kind}_quantity']})")


def _source_section(doc: Doc, R: dict, A: dict, source, plots) -> None:
    """One source document (a ``zoo.SOURCES`` record), titled by the document: a section
    per model, open, then the document's extras."""
    by_name = {m["model"]: m for m in R["models"]}
    names = [m["model"] for m in R["models"] if m["source"] == source.key]
    if not names:
        return
    doc.h(2, source.title)
    doc.p(f"From *{source.title}*" + (f" (seed document `{source.file}`)" if source.file
                                      else "") + f": {source.about}.")
    for name in names:
        _model_section(doc, by_name[name], A[name], plots)
    for extra in _EXTRAS.get(source.key, ()):
        extra(doc, R, A, by_name, plots)


def _model_section(doc: Doc, m: dict, arr: dict, plots) -> None:
    """A model, open: its numbers in a line, its main picture (decision regions for 2-D
    inputs, else the curves) with why the twins differ, then the curves and the per-layer
    agreement."""
    name = m["model"]
    n, t = m["runs"]["numpy"], m["runs"]["torch"]
    p64, p32 = m["parity"]["float64"], m["parity"]["float32"]
    gist = (f"parity float64 {_verdict(p64)}, float32 {_verdict(p32)} · held-out accuracy "
            f"numpy {n['test_accuracy']:.4f}, torch {t['test_accuracy']:.4f}"
            + (f" · target: {_both(m)}" if m.get("target") else ""))
    with doc.collapsible(3, name, gist, folded=False):
        doc.p(f"{m['summary']}. `{m['layers']}`, {m['parameters']} parameters, seed "
              f"{m['seed']}, {m['epochs']} epochs. Target: {m['target'] or 'none'} — numpy "
              f"{_met(n, m['capped'])}, torch {_met(t, m['capped'])}. Held-out accuracy "
              f"numpy {n['test_accuracy']:.4f}, torch {t['test_accuracy']:.4f}. One-step "
              f"parity float64 {_verdict(p64)} (max abs {fmt_sci(p64['max_abs'])}), float32 "
              f"{_verdict(p32)} (max abs {fmt_sci(p32['max_abs'])})."
              + (f" Note: {m['notes']}." if m["notes"] else ""))
        if "boundary" in m:
            _boundary_picture(doc, m, arr, plots)
        _curves_picture(doc, m, plots)
        reason = why_they_differ(m)
        if reason:
            doc.why(reason)
        _layers_picture(doc, m, plots)


def why_they_differ(m: dict) -> str | None:
    """One sentence on why the trained twins differ, from what the model has: Dropout in
    its spec (each twin's training run draws its own masks), else a loss curve or a
    prediction that parts from the other's (rounding differences that training amplifies,
    with the lockstep step where float64 first exceeds 1e-6); None when the two runs agree
    exactly (same losses, same accuracies, same decision regions)."""
    from parity import kinds
    n, t = m["runs"]["numpy"], m["runs"]["torch"]
    loss_gap = max((abs(a - b) for a, b in zip(n["loss"], t["loss"])), default=0.0)
    acc_gap = abs(n["test_accuracy"] - t["test_accuracy"])
    cells = m.get("boundary", {}).get("disagree_cells", 0)
    random = [x for x in zoo.get(m["model"]).layers if kinds.drops_units(x)]
    if random:
        names = " and ".join(sorted({type(x).__name__ for x in random}))
        drop = [x.p for x in random]     # type: ignore[attr-defined]  # a dropping kind's p
        return (f"it has {names} (p = {', '.join(f'{p:g}' for p in drop)}): in training each "
                "twin draws its own dropout masks, so the runs see different sub-networks "
                f"and part from the first epoch (held-out accuracy differs by {acc_gap:.4f}); "
                "the one-step checks hand torch's masks to NumPy and agree.")
    if loss_gap == 0 and acc_gap == 0 and cells == 0:
        return None
    d64 = m["divergence"]["float64"]
    first = d64["first_step_above_1e-6"]
    if acc_gap == 0 and cells == 0:
        return (f"only in the last digits (largest loss difference {loss_gap:.1e}): NumPy "
                "and torch round in different places, and training carries each step's "
                "rounding into the next, but no prediction changes here.")
    return ("no randomness separates them: the last-digit rounding differences of each step "
            f"(largest loss difference {loss_gap:.1e}) are carried and amplified by training"
            + (f"; in lockstep float64 the parameters first differ by more than 1e-6 at step "
               f"{first}" if first else f"; in lockstep float64 they stay within 1e-6 over "
               f"{d64['steps']} steps")
            + (f", and the decision regions differ on {cells} grid cells" if cells else "")
            + ".")


def _layers_picture(doc: Doc, m: dict, plots) -> None:
    """Digits of agreement per layer at step 1, float64 and float32 (``layer_agreement``)."""
    name = m["model"]
    panels = {dt: layer_agreement.by_layer(m["parity"][dt]["layers"], dt)
              for dt in ("float64", "float32")}
    doc.img(f"{name}-layers", plots.layer_digits(
        panels, f"{name}: digits of agreement per layer, step 1", full=layer_agreement.FULL_DIGITS),
        f"{name}, step 1 from identical weights, batch and dropout masks, each layer judged "
        "by `parity.localize` (the checks that name the first disagreeing layer on a "
        "failure): digits = −log10 of the normwise relative difference between the twins, "
        "for the layer's output (forward) and the worst of its input and parameter "
        "gradients (backward), capped at the dtype's precision; a star: identical bits.")


def _boundary_picture(doc: Doc, m: dict, arr: dict, plots) -> None:
    name = m["model"]
    X, y = _points(name, m["seed"])
    doc.img(f"{name}-boundary", plots.decision_boundaries(
        name, tuple(m["boundary"]["extent"]), arr["numpy"]["grid"], arr["torch"]["grid"],
        X, y, {impl: (m["runs"][impl]["train_accuracy"], m["runs"][impl]["test_accuracy"])
               for impl in IMPLS}),
        f"{name}: predicted class of each trained twin on a {m['boundary']['grid'][0]}² "
        "grid (argmax, or the 0.5 / 0 threshold for one output), training points on top; "
        f"right: cells where the twins disagree ({m['boundary']['disagree_fraction']:.2%}).")


def _curves_picture(doc: Doc, m: dict, plots) -> None:
    name = m["model"]
    div = {dt: m["divergence"][dt]["param_rel"] for dt in ("float64", "float32")}
    note = ("" if m["epochs"] == m["recipe_epochs"]
            else f" ({m['epochs']} of {m['recipe_epochs']} epochs)")
    d64 = m["divergence"]["float64"]
    doc.img(f"{name}-curves", plots.model_curves(
        name, {impl: m["runs"][impl]["loss"] for impl in IMPLS}, div, note),
        f"{name}: training loss of both twins (numpy solid, torch dashed); their absolute "
        f"difference per epoch; lockstep divergence over {d64['steps']} steps (float64 "
        + (f"first above 1e-6 at step {d64['first_step_above_1e-6']}"
           if d64["first_step_above_1e-6"] else "never above 1e-6")
        + "). A log axis cannot show 0: epochs or steps where the twins agree exactly are "
        "ticks in the \"= 0\" strip under each difference panel.")


def _points(name: str, seed: int):
    d = zoo.get(name).data(seed)
    return d.X_train, d.y_train


def _tiles_section(doc: Doc, R: dict, A: dict, by_name: dict, plots) -> None:
    if "cs231n-2layer" not in by_name:
        return
    m, arr = by_name["cs231n-2layer"], A["cs231n-2layer"]
    tn, tt = arr["numpy"]["tiles"], arr["torch"]["tiles"]
    flat = tn.reshape(len(tn), -1)
    span = flat.max(axis=1) - flat.min(axis=1)
    dead = int(np.sum(flat.max(axis=1) <= 0))
    units = sorted(np.argsort(-span, kind="stable")[:N_TILES].tolist())
    diff = float(np.abs(tn - tt).max())
    rtol, atol = tolerances.tolerance("float64", "output")
    bound = atol + rtol * float(np.abs(tt).max())
    X, y = _points("cs231n-2layer", m["seed"])
    with doc.collapsible(3, "cs231n-2layer: what the hidden units compute"):
        doc.img("cs231n-2layer-hidden-tiles", plots.hidden_tiles(
            units, tn[units], tuple(m["boundary"]["extent"]), X, y,
            "trained NumPy cs231n-2layer: ReLU(x·W1 + b1) over the plane"),
            f"{len(units)} of the {len(tn)} hidden units of the trained NumPy model (those with "
            f"the largest activation range over the plane, in index order; {dead} units are "
            f"zero everywhere on it), each ReLU(x·W1+b1) on a {tn.shape[1]}² grid. torch's "
            f"trained twin's maps: max |numpy − torch| over all {len(tn)} units and grid points "
            f"= {fmt_sci(diff)}: " + ("within" if diff <= bound else "BEYOND")
            + f" the float64 parity bound for outputs (atol {atol:g} + rtol {rtol:g}·max|x| = "
            f"{bound:.1e}), after the whole training trajectory.")


def _digits_section(doc: Doc, R: dict, A: dict, by_name: dict, plots) -> None:
    if "digits-2layer" not in by_name:
        return
    m, arr = by_name["digits-2layer"], A["digits-2layer"]
    d = zoo.get("digits-2layer").data(m["seed"])
    idx = [int(np.flatnonzero(d.y_test == k)[0]) for k in range(10) if np.any(d.y_test == k)]
    pn, pt = arr["numpy"]["test_pred"], arr["torch"]["test_pred"]
    with doc.collapsible(3, "digits-2layer: predictions and hidden representation"):
        doc.img("digits-2layer-predictions", plots.digit_grid(
            d.X_test[idx], d.y_test[idx], pn[idx], pt[idx], "digits-2layer, trained NumPy model"),
            "The first held-out example of each digit (standardized pixels, 8×8), NumPy's "
            "prediction (green right, red wrong; torch's added if it differs). Over all "
            f"{len(pn)} held-out digits the twins' predictions differ on "
            f"{int((pn != pt).sum())}.")
        doc.img("digits-2layer-pca", plots.pca_panels(
            {impl: arr[impl]["pca"] for impl in IMPLS},
            {impl: arr[impl]["pca_var"] for impl in IMPLS},
            d.y_test, "first hidden layer (ReLU) on the held-out digits, PCA"),
            "`parity.study.hidden.hidden_numpy` / `hidden_torch` on the held-out set, projected "
            "by `pca_2d` (signs fixed so both twins' axes point the same way), coloured by "
            "true digit.")


def _lr_section(doc: Doc, R: dict, A: dict, by_name: dict, plots) -> None:
    if "lr_finder" not in R:
        return
    lr = R["lr_finder"]
    sug = {impl: lr[impl]["suggest"] for impl in IMPLS}
    with doc.collapsible(3, "digits-minibatch: learning-rate finder"):
        doc.img("digits-minibatch-lr-finder", plots.lr_finder_curves(
            {impl: lr[impl] for impl in IMPLS}, sug,
            "LR finder, digits-minibatch (one epoch, lr 1e-5 → 10)"),
            "`parity.study.lr_finder.lr_finder`: one epoch with the lr growing exponentially, "
            "loss of each batch before its step; vertical lines: `suggest` (steepest descent "
            "of the smoothed loss) — numpy " + ", torch ".join(fmt_num(sug[i], 3) for i in IMPLS)
            + ".")


def _norm_size_section(doc: Doc, R: dict, A: dict, by_name: dict, plots) -> None:
    if "hidden_size" not in R:
        return
    hs = R["hidden_size"]
    rows = []
    for name, norm in (("spiral003", "BatchNorm"), ("spiral003-layernorm", "LayerNorm")):
        if name in by_name:
            m = by_name[name]
            rows.append([name, norm, "128, 128, 64", m["parameters"], m["epochs"]]
                        + _num_cells({i: m["runs"][i] for i in IMPLS}))
    for r in hs["rows"]:
        rows.append([f"spiral003 h={r['h']}" + (" (= spiral003 run)" if r["reused_spiral003_run"]
                                                  else ""), "BatchNorm",
                     ", ".join(map(str, r["hidden"])), r["parameters"], hs["epochs"]]
                    + _num_cells({i: r[i] for i in IMPLS}))
    with doc.collapsible(3, "BatchNorm vs LayerNorm vs hidden size"):
        doc.table(["variant", "norm", "hidden", "params", "epochs", "held-out acc np / torch",
                   "held-out loss np / torch", "train acc np / torch", "seconds np / torch"],
                  rows)
        doc.img("spiral003-hidden-size", plots.size_sweep(
            hs["sizes"], {i: [r[i]["test_accuracy"] for r in hs["rows"]] for i in IMPLS},
            {i: [r[i]["test_loss"] for r in hs["rows"]] for i in IMPLS},
            f"spiral003 (BatchNorm blocks, dropout 0.15), {hs['epochs']} epochs"),
            "Held-out accuracy and loss of spiral003 with hidden widths (h, h, h/2), both twins "
            "(dropout masks are each twin's own draw, so the twins differ by sampling).")


def _num_cells(r: dict) -> list:
    n, t = r["numpy"], r["torch"]
    return [f"{n['test_accuracy']:.4f} / {t['test_accuracy']:.4f}",
            f"{n['test_loss']:.4f} / {t['test_loss']:.4f}",
            f"{n['train_accuracy']:.4f} / {t['train_accuracy']:.4f}",
            f"{n['seconds']:.2f} / {t['seconds']:.2f}"]


def _adam_section(doc: Doc, R: dict, A: dict, by_name: dict, plots) -> None:
    pair = [n for n in ("spiral003-adam-l2", "spiral003-adamw") if n in by_name]
    if pair:
        _curves_section(doc, "Adam + L2 vs AdamW", "adam-l2-vs-adamw",
                        [(n.replace("spiral003-", ""), by_name[n]) for n in pair], plots,
                        "Training loss of both twins: Adam with L2 weight_decay 1e-3 "
                        "(added to the gradient) vs AdamW (decoupled, 1e-2).")


def _optimizers_section(doc: Doc, R: dict, A: dict, by_name: dict, plots) -> None:
    opt = [(lab, n) for lab, n in (("sgd", "spiral004-sgd"), ("momentum 0.9", "spiral004-momentum"),
                                   ("adam", "spiral004")) if n in by_name]
    if opt:
        _curves_section(doc, "Optimizer comparison", "optimizers",
                        [(lab, by_name[n]) for lab, n in opt], plots,
                        "spiral004's 2→16→8→1 net: SGD lr 0.01, SGD + momentum 0.9, "
                        "Adam lr 0.01, both twins.")


def _curves_section(doc: Doc, title: str, slug: str, items: list, plots, caption: str) -> None:
    series = [(lab, impl, m["runs"][impl]["loss"]) for lab, m in items for impl in IMPLS]
    accs = "; ".join(f"{lab}: held-out {m['runs']['numpy']['test_accuracy']:.3f} / "
                     f"{m['runs']['torch']['test_accuracy']:.3f}" for lab, m in items)
    with doc.collapsible(3, title):
        doc.img(slug, plots.overlaid_curves(series, title + " — training loss"),
                caption + f" Held-out accuracy numpy / torch — {accs}.")


def _early_stopping_section(doc: Doc, R: dict, A: dict, by_name: dict, plots) -> None:
    if "spiral004-early-stopping" not in by_name:
        return
    m = by_name["spiral004-early-stopping"]
    n, t = m["runs"]["numpy"], m["runs"]["torch"]
    series = [(kind, impl, m["runs"][impl][key]) for impl in IMPLS
              for kind, key in (("train", "loss"), ("validation", "val_loss"))]
    same = (n["best_epoch"], n["stopped_epoch"]) == (t["best_epoch"], t["stopped_epoch"])
    marks = []
    for impl, r in (("both", n),) if same else (("numpy", n), ("torch", t)):
        marks += [(r["best_epoch"] + 1, f"best {r['best_epoch'] + 1} ({impl})", "tab:green"),
                  (r["stopped_epoch"] + 1, f"stop {r['stopped_epoch'] + 1} ({impl})", "tab:red")]
    with doc.collapsible(3, "Early stopping"):
        doc.img("spiral004-early-stopping", plots.overlaid_curves(
            series, "spiral004-early-stopping: training and validation loss", marks=marks),
            f"Validation = the last 20% of the training draw; patience "
            f"{zoo.get(m['model']).patience}. Best epoch (lowest validation loss) numpy "
            f"{n['best_epoch'] + 1}, torch {t['best_epoch'] + 1}; stopped after epoch numpy "
            f"{n['stopped_epoch'] + 1}, torch {t['stopped_epoch'] + 1} (of at most "
            f"{m['epochs']}).")


def _convnet_section(doc: Doc, R: dict, A: dict, by_name: dict, plots) -> None:
    """The convnets: both twins' accuracy and training time, their first convolution's
    filters side by side, their training losses overlaid."""
    names = [m["model"] for m in R["models"] if m["source"] == zoo.CS231N_CNN]
    if not names:
        return
    with doc.collapsible(3, "The convnets: accuracy, time, filters, loss"):
        doc.table(["model", "seed", "epochs", "held-out acc np / torch", "target",
                   "training s np / torch", "held-out predictions that differ",
                   "max |Δ filters|"], [_convnet_row(by_name[n], A[n]) for n in names])
        doc.p("Seconds: each twin's training loop (`reference.training.fit`, `torch_impl.fit`), "
              "one thread. The twins start from the same NumPy-initialized weights and see the "
              "same batches; their trajectories part only by rounding (see each model's "
              "divergence curve).")
        for n in names:
            arr = A[n]
            doc.img(f"{n}-filters", plots.filter_grid(
                {impl: arr[impl]["filters"] for impl in IMPLS},
                f"{n}: the first convolution's filters after training"),
                f"The trained {n}'s first convolution, each filter as a small image, numpy and "
                "torch on one colour scale, then their absolute difference on its own.")
        series = [(n, impl, by_name[n]["runs"][impl]["loss"]) for n in names for impl in IMPLS]
        doc.img("convnets-loss", plots.overlaid_curves(series, "convnets — training loss"),
                "Training loss per epoch of both twins of each convnet (numpy solid, torch "
                "dashed: where they agree the dashes lie on the line).")


def _convnet_row(m: dict, arr: dict) -> list:
    n, t = m["runs"]["numpy"], m["runs"]["torch"]
    differ = int((arr["numpy"]["test_pred"] != arr["torch"]["test_pred"]).sum())
    dfil = float(np.abs(arr["numpy"]["filters"] - arr["torch"]["filters"]).max())
    return [m["model"], m["seed"], m["epochs"],
            f"{n['test_accuracy']:.4f} / {t['test_accuracy']:.4f}",
            f"{m['target'] or '-'}: {_met_pair(m)}", f"{n['seconds']:.2f} / {t['seconds']:.2f}",
            f"{differ} of {len(arr['numpy']['test_pred'])}", fmt_sci(dfil)]


# each source document's extra sections, after its models
_EXTRAS = {
    zoo.SEED_000: (_tiles_section,),
    zoo.SEED_002: (_digits_section, _lr_section),
    zoo.SEED_003: (_norm_size_section, _adam_section),
    zoo.SEED_004: (_optimizers_section, _early_stopping_section),
    zoo.CS231N_CNN: (_convnet_section,),
}


def _worked_failure_section(doc: Doc, R: dict, plots) -> None:
    """A selftest mutant planted (``parity.study.worked_failure``): the comparison's table
    by quantity, the layer-by-layer localization with the first disagreeing layer marked,
    its per-layer digits, and the text a user reads."""
    w = R.get("worked_failure")
    if not w:
        return
    loc = w["localization"]
    first = loc["forward"] or loc["backward"]
    doc.h(2, "A worked failure: a planted bug")
    doc.p(f"What a real bug looks like. The selftest mutant `{w['mutant']}` — "
          f"{w['description']} — is planted in the NumPy twin of {w['model']} "
          f"(`{w['layer_summary']}`) and the ordinary checks run ({w['dtype']}, seed "
          f"{w['seed']}, {w['steps']} step(s)). `nn-parity selftest` plants every such bug "
          "and requires each to be caught.")
    doc.p("**The mine-vs-torch table** (`parity.compare`): every compared tensor of the "
          f"steps, by quantity — {'passed' if w['passed'] else 'FAILED'}, "
          f"{len(w['failures'])} checks outside the rule.")
    doc.table(["quantity", "checks", "max abs", "max rel", "rtol", "atol", "decided by", "ok"],
              [[q, v["n"], fmt_sci(v["max_abs"]), fmt_sci(v["max_rel"]), f"{v['rtol']:g}",
                f"{v['atol']:g}", ", ".join(f"{k} {c}" for k, c in v["rules"].items()),
                "pass" if v["passed"] else "FAIL"] for q, v in w["quantities"].items()])
    _worked_layers(doc, w, first)
    if first is not None:
        doc.img("worked-failure-layers", plots.layer_digits(
            {w["dtype"]: layer_agreement.by_layer(w["layers"], w["dtype"])},
            f"{w['model']} with the bug planted: digits of agreement per layer, step 1",
            highlight=first["index"], full=layer_agreement.FULL_DIGITS),
            "The same per-layer picture as each model's, for the planted bug: "
            + (f"backward, layer {first['index']} ({first['kind']}) is the first to disagree "
               "(the forward pass agrees everywhere) and every layer below it inherits the "
               "difference." if loc["forward"] is None else
               f"forward, layer {first['index']} ({first['kind']}) is the first output to "
               "disagree; everything after it, and the gradients, inherit the difference."))
    doc.p("The text report (`Comparison.report()` and the localization's lines, as "
          "`compare_models(...).report()` prints them; the first failing labels shown):")
    doc.pre(_trimmed(w["report"]))


def _worked_layers(doc: Doc, w: dict, first: dict | None) -> None:
    """Per layer: output, input gradient, parameter gradients (max rel, verdict); the first
    disagreeing layer's row highlighted."""
    rows: list = []
    marked: tuple[int, ...] = ()
    layers = sorted({r["layer"]: r["kind"] for r in w["layers"]}.items())
    for i, kind in layers:
        mine = [r for r in w["layers"] if r["layer"] == i]
        cell = {what: _rel_cell(r) for r in mine for what in [r["what"]]}
        grads = "; ".join(f"{k[5:]} {v}" for k, v in cell.items() if k.startswith("grad "))
        bad = any(not r["passed"] for r in mine)
        here = first is not None and i == first["index"]
        rows.append([i, kind, cell.get("output", "-"), cell.get("input gradient", "-"),
                     grads or "-", "**first to disagree**" if here else
                     "inherits the difference" if bad else "agrees"])
        marked = marked + ((len(rows) - 1,) if here else ())
    where = (f"layer {first['index']} ({first['kind']}), {first['what']}" if first
             else "no layer")
    doc.p(f"**The localization** (`parity.localize`): step 1 again, layer by layer, each "
          "NumPy layer's output and gradients against torch's (max relative difference, "
          f"verdict). First disagreeing: {where} — forward order for outputs, from the "
          "loss backwards for gradients.")
    doc.table(["layer", "kind", "output (forward)", "input gradient (backward)",
               "parameter gradients", "reading"], rows, highlight=marked)


def _rel_cell(r: dict) -> str:
    return f"{fmt_sci(r['max_rel'])} {'ok' if r['passed'] else 'FAIL'}"


def _trimmed(report: str, shown: int = 3) -> str:
    """``report`` with its ``FAIL`` lines after the first ``shown`` counted, not listed."""
    lines, fails = [], 0
    for line in report.splitlines():
        if line.lstrip().startswith("FAIL "):
            fails += 1
            if fails > shown:
                continue
        lines.append(line)
    if fails > shown:
        at = max(i for i, x in enumerate(lines) if x.lstrip().startswith("FAIL ")) + 1
        lines.insert(at, f"  … {fails - shown} more FAIL lines")
    return "\n".join(lines)


def _xor_section(doc: Doc, R: dict) -> None:
    if not R["xor_success"]:
        return
    doc.h(2, "XOR success rate over seeds")
    rows, seeds = [], []
    for name, e in R["xor_success"].items():
        seeds = e["seeds"]
        ep = str(e["epochs"]) + ("" if e["epochs"] == e["recipe_epochs"]
                                 else f" (recipe {e['recipe_epochs']})")
        rows.append([name, ep, len(e["seeds"]), f"{e['numpy']['rate']:.2f}",
                     f"{e['torch']['rate']:.2f}",
                     ", ".join(map(str, e["numpy"]["failed"])) or "none",
                     ", ".join(map(str, e["torch"]["failed"])) or "none",
                     "yes" if e["numpy"]["succeeded"] == e["torch"]["succeeded"] else "no"])
    doc.table(["model", "epochs", "seeds", "rate numpy", "rate torch", "failing seeds numpy",
               "failing seeds torch", "same seeds succeed"], rows)
    doc.p(f"`parity.study.seed_sweep.success_rate` over seeds {_seed_range(seeds)}: a seed "
          "succeeds when the model reaches its target (100% train accuracy on XOR's four "
          "points).")


def _seed_range(seeds) -> str:
    s = list(seeds)
    if len(s) > 1 and s == list(range(s[0], s[-1] + 1)):
        return f"{s[0]}–{s[-1]}"
    return ", ".join(map(str, s))


def _claims_section(doc: Doc, R: dict) -> None:
    doc.h(2, "Claims audit")
    c = R["claims"]
    if not c.get("available"):
        doc.p(c["note"])
        return
    doc.table(["id", "seed", "claim", "stated", "measured numpy", "measured torch",
               "Bayes ceiling", "verdict", "corrected setting: numpy / torch"],
              [_claim_row(r) for r in c["rows"]])
    doc.p("From `parity.audit.claims.run_audit`; also written to `claims.json` with each "
          "claim's check, note and seed spread. Bayes ceiling: mean ± standard error of the "
          "Monte Carlo estimate (*Appendix: the rules*).")


def _claim_row(r: dict) -> list:
    b, corr = r.get("bayes_ceiling"), r.get("corrected")
    return [r.get("id", "-"), str(r.get("source", "-"))[:3], fmt_num(r.get("claim")),
            fmt_num(r.get("stated")), fmt_num(r.get("measured_numpy")),
            fmt_num(r.get("measured_torch")), _ceiling(b), fmt_num(r.get("verdict")),
            f"{corr.get('model')}: {fmt_num(corr.get('measured_numpy'))} / "
            f"{fmt_num(corr.get('measured_torch'))} ({corr.get('verdict')})"
            if isinstance(corr, dict) else fmt_num(corr)]


def _ceiling(b) -> str:
    if isinstance(b, dict) and b.get("mean") is not None:
        return fmt_pm(b["mean"], b.get("stderr") or 0.0)
    return fmt_num(b)


def _bench_section(doc: Doc, R: dict, plots) -> None:
    doc.h(2, "Benchmark")
    b = R["bench"]
    if not b.get("available"):
        doc.p(b["note"])
        return
    tr = b["trainers"]
    rows = []
    for label, mine, theirs, key in (
            ("reference trainer vs fused NumPy loop", "reference_trainer", "fused_numpy",
             "reference_vs_fused_numpy"),
            ("torch_impl trainer vs raw torch loop", "torch_impl_trainer", "raw_torch",
             "torch_impl_vs_raw_torch")):
        rows.append([label, f"{tr['seconds'][mine]:.3f} vs {tr['seconds'][theirs]:.3f}",
                     perf_cell(tr["ratios"][key], b["targets"][key])])
    doc.table(["comparison", "seconds", "speed against its performance goal"], rows)
    doc.p("Performance goals, not parity verdicts: wall-clock ratios on a shared machine vary "
          "with its load, so a goal missed here says the machine or the code was slower this "
          "time, never that the twins disagree.")
    doc.img("bench-width-sweep", plots.bench_sweep(
        b["sweep"]["rows"], "time per SGD step, NumPy vs torch (best of repeats)"),
        f"`parity.tools.bench.run_bench(quick={R['quick']})`, run alone after all trainings "
        f"({tr['model']}, {tr['steps']} steps, best of {tr['repeats']}; threads: "
        f"{fmt_threads(b['threads'])}). Where torch becomes faster: "
        f"{_wins(b['sweep']['torch_wins_from_width'])}.")
    if "convnets" in b:
        _bench_convnets(doc, b, plots)


def perf_cell(measured: float, target: float) -> Perf:
    """``target ≤ 1.1×, measured 1.134× (3% over)``: a ``Perf`` cell, never a verdict."""
    over = measured / target - 1
    return Perf(f"target ≤ {target:g}×, measured {measured:.3f}× ("
                + (f"{over:.0%} over" if over > 0 else "within") + ")")


def _bench_convnets(doc: Doc, b: dict, plots) -> None:
    """The convnets' time per step, NumPy vs torch, and the NumPy step by layer."""
    c, prof = b["convnets"], b["profile"]
    doc.table(["convnet", "batch", "numpy ms / step", "torch ms / step",
               "numpy / torch (min–max)"],
              [[r["model"], r["batch"], f"{1e3 * r['numpy_s_per_step']:.3f}",
                f"{1e3 * r['torch_s_per_step']:.3f}",
                f"{r['numpy_over_torch']:.2f} ({r['ratio_range'][0]:.2f}–"
                f"{r['ratio_range'][1]:.2f})"] for r in c["rows"]])
    cost = [r["forward_s"] + r["backward_s"] for r in prof["layers"]]
    i = int(np.argmax(cost))
    doc.img("bench-convnets", plots.bench_convnets(
        c["rows"], prof, f"convnets, NumPy vs torch (threads: {fmt_threads(b['threads'])})"),
        f"`parity.tools.bench.convnet_step_times`: each twin's training step on the recipe's "
        f"first batch, torch and NumPy timed alternately ({c['rows'][0]['pairs']} pairs of "
        f"{c['rows'][0]['steps']} steps; {c['clock']}). Right: `layer_profile`, the NumPy "
        f"step by layer — layer {i} ({prof['layers'][i]['layer']}) takes "
        f"{cost[i] / sum(cost):.0%} of it.")


def _wins(by_batch: dict) -> str:
    """``{'32': 256, '128': None}`` → ``batch 32: from width 256; batch 128: at no width
    measured``."""
    return "; ".join(f"batch {k}: " + (f"from width {w}" if w is not None
                                       else "at no width measured")
                     for k, w in by_batch.items()) or "-"


def _time_section(doc: Doc, R: dict) -> None:
    """Appendix: wall and CPU seconds per kind of job and the slowest jobs."""
    meta, timing = R["meta"], R["timing"]
    kinds, cpu = timing["job_seconds_by_kind"], timing["job_cpu_seconds_by_kind"]
    doc.h(2, "Appendix: where the time went")
    doc.p(f"Jobs: {timing['jobs_wall_seconds']:.1f} s wall with {meta['jobs']} worker "
          f"process(es); benchmark {timing['bench_seconds']:.1f} s, run alone afterwards. "
          "Per kind of job, wall / CPU seconds summed over its jobs (with several workers "
          "they overlap; CPU seconds are what an idle machine would need): "
          + ", ".join(f"{k} {v:.1f} / {cpu[k]:.1f} s"
                      for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])) + ".")
    doc.table(["job (the 12 slowest)", "wall s", "CPU s"],
              [[j["job"], f"{j['seconds']:.2f}", f"{j['cpu_seconds']:.2f}"]
               for j in timing["jobs"][:12]])
