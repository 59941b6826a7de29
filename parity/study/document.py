"""The report's document: one list of blocks rendered to Markdown and HTML, one function per
section."""

from __future__ import annotations

import base64
import html
import os
import re

import numpy as np

from parity import zoo
from parity.study.executor import Study
from parity.study.plan import N_TILES, SOURCES
from parity.train import IMPLS


# ---- the document: one list of blocks → Markdown and self-contained HTML -------------------------
class Doc:
    """Headings, paragraphs, tables and images, rendered to Markdown (images as files under
    ``img/``) and to one HTML file (images as base64 data URIs)."""

    def __init__(self, img_dir: str) -> None:
        self.blocks: list = []
        self.img_dir = img_dir
        self.images: list[str] = []

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: list, rows: list) -> None:
        self.blocks.append(("table", header, rows))

    def img(self, name: str, fig, caption: str) -> None:
        from parity.study.plots import save_png
        fname = f"{name}.png"
        png = save_png(fig, os.path.join(self.img_dir, fname))
        self.images.append(fname)
        self.blocks.append(("img", fname, png, caption))

    @staticmethod
    def _anchor(text: str) -> str:
        return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")

    def markdown(self) -> str:
        out = []
        for b in self.blocks:
            if b[0] == "h":
                out += ["#" * b[1] + " " + b[2], ""]
            elif b[0] == "p":
                out += [b[1], ""]
            elif b[0] == "table":
                out.append("| " + " | ".join(map(str, b[1])) + " |")
                out.append("|" + "---|" * len(b[1]))
                for r in b[2]:
                    out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
                out.append("")
            else:
                out += [f"![{b[3]}](img/{b[1]})", "", f"*{b[3]}*", ""]
        return "\n".join(out)

    @staticmethod
    def _inline(text: str) -> str:
        t = html.escape(str(text))
        t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
        return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)

    def html(self, title: str) -> str:
        cls = {"pass": "good", "met": "good", "FAIL": "bad", "NOT met": "bad"}
        toc = [b for b in self.blocks if b[0] == "h" and b[1] == 2]
        body = []
        for b in self.blocks:
            if b[0] == "h":
                body.append(f'<h{b[1]} id="{self._anchor(b[2])}">{self._inline(b[2])}</h{b[1]}>')
                if b[1] == 1 and toc:
                    body.append("<nav>" + " · ".join(
                        f'<a href="#{self._anchor(t[2])}">{html.escape(t[2])}</a>'
                        for t in toc) + "</nav>")
            elif b[0] == "p":
                body.append(f"<p>{self._inline(b[1])}</p>")
            elif b[0] == "table":
                head = "".join(f"<th>{self._inline(c)}</th>" for c in b[1])
                rows = []
                for r in b[2]:
                    cells = []
                    for j, c in enumerate(r):
                        c = str(c)
                        k = next((v for w, v in cls.items() if c == w or c.startswith(w + " ")),
                                 None)
                        n = "n" if j > 0 and _NUMERIC.match(c) else None   # names stay left
                        k = " ".join(x for x in (k, n) if x)
                        cells.append(f'<td class="{k}">' if k else "<td>")
                        cells[-1] += self._inline(c) + "</td>"
                    rows.append("<tr>" + "".join(cells) + "</tr>")
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>"
                            + "".join(rows) + "</tbody></table>")
            else:
                data = base64.b64encode(b[2]).decode("ascii")
                body.append(f'<figure><img src="data:image/png;base64,{data}" '
                            f'alt="{html.escape(b[3])}"><figcaption>{self._inline(b[3])}'
                            "</figcaption></figure>")
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
                + "\n".join(body) + "\n</body></html>\n")


_NUMERIC = re.compile(r"^[-+]?(\d|\.\d|\[)")   # cells right-aligned in HTML tables

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1300px;
margin:1.5em auto;padding:0 1em;color:#222;line-height:1.4}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #aaa;margin-top:2em}
nav{font-size:.9em;margin:.5em 0 1em}
table{border-collapse:collapse;margin:.6em 0;font-size:.82em}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.n{text-align:right}
tbody tr:nth-child(even){background:#fafafa}
td.good{color:#176b1f}td.bad{color:#b00020;font-weight:bold}
figure{margin:.8em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.85em;color:#555;max-width:1100px}
code{background:#f3f3f3;padding:0 3px}
"""


def _f(x, fmt=".4f") -> str:
    return "-" if x is None else format(x, fmt)


NOT_MEASURED = "not measured (quick run)"     # the "met" cell of a capped run


def _met(r: dict, capped: bool = False) -> str:
    """The target cell of run ``r``: met / NOT met, ``-`` without a target, and no verdict
    (``NOT_MEASURED``) for a run capped below its recipe's epochs."""
    if capped and r.get("target") is not None:
        return NOT_MEASURED
    return "-" if r.get("target_met") is None else ("met" if r["target_met"] else "NOT met")


def _verdict(p: dict) -> str:
    return "pass" if p["passed"] else "FAIL"


def build_document(study: Study, img_dir: str) -> Doc:
    """Every table and picture of the report, from ``study`` (measured values only)."""
    from parity.study import plots
    from parity.tolerances import tolerance
    R, A = study.results, study.arrays
    by_name = {m["model"]: m for m in R["models"]}
    doc = Doc(img_dir)
    meta, timing = R["meta"], R["timing"]
    doc.h(1, "nn-parity study" + (" (quick)" if R["quick"] else ""))
    doc.p(f"{meta['date_utc']} UTC · python {meta['python']}, numpy {meta['numpy']}, "
          f"torch {meta['torch']}, matplotlib {meta['matplotlib']} · jobs {meta['jobs']}, "
          f"threads {meta['threads_main']} (workers: 1) · jobs took "
          f"{timing['jobs_wall_seconds']:.1f} s wall, benchmark {timing['bench_seconds']:.1f} s"
          + (f" · `{meta['command']}`" if meta.get("command") else ""))
    doc.p("Both twins start from the same NumPy-initialized weights, see the same data and "
          "the same batch order (float64). Dropout masks are each side's own draw in training "
          "runs (so dropout models agree in distribution, not in digits) and shared in the "
          "parity checks. Every number and picture below was measured in this run."
          + (" **Quick mode**: epochs capped (full-batch 300, full-batch on >1000 rows 100, "
             "minibatch 30), fewer seeds and sizes — numbers are not the recipes' results."
             if R["quick"] else ""))

    # ---- summary tables
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
                     f"{n['final_loss']:.4g} / {t['final_loss']:.4g}",
                     f"{n['test_loss']:.4g} / {t['test_loss']:.4g}",
                     f"{n['seconds']:.2f} / {t['seconds']:.2f}",
                     m["target"] or "-", f"{_met(n, m['capped'])} / {_met(t, m['capped'])}"])
    doc.table(["model", "params", "epochs", "train acc np / torch", "held-out acc np / torch",
               "final loss np / torch", "held-out loss np / torch", "seconds np / torch",
               "target", "met np / torch"], rows)
    doc.p("Final loss: the last epoch's mean training loss (cs231n models include "
          "0.5·reg·ΣW²); held-out loss: the data loss on the held-out part in eval mode. "
          "Seconds: each run's training loop"
          + (" inside a worker sharing the machine with the other workers." if meta["jobs"] > 1
             else "."))

    doc.h(2, "One-step parity")
    rows = []
    for m in R["models"]:
        p64, p32 = m["parity"]["float64"], m["parity"]["float32"]
        d64, d32 = m["divergence"]["float64"], m["divergence"]["float32"]
        rows.append([m["model"], _verdict(p64), f"{p64['max_abs']:.1e} ({p64['max_abs_quantity']})",
                     f"{p64['max_rel']:.1e} ({p64['max_rel_quantity']})",
                     _verdict(p32), f"{p32['max_abs']:.1e} ({p32['max_abs_quantity']})",
                     f"{p32['max_rel']:.1e} ({p32['max_rel_quantity']})",
                     f"{d64['final_param_rel']:.1e} / {d32['final_param_rel']:.1e}"])
    r64, a64 = tolerance("float64", "param")
    r32, a32 = tolerance("float32", "param")
    doc.table(["model", "float64", "max abs (quantity)", "max rel (quantity)", "float32",
               "max abs (quantity)", "max rel (quantity)",
               f"divergence after {R['meta']['diverge_steps']} steps f64 / f32"], rows)
    doc.p("`parity.compare`: identical weights and batch, 1 step (3 for stateful optimizers "
          "and BatchNorm); loss, every gradient, parameters after the update, buffers, "
          "optimizer state, eval outputs; the worst over all of them. Tolerances "
          f"(parity/tolerances.py): float64 rtol {r64:g} / atol {a64:g}, float32 rtol {r32:g} "
          f"/ atol {a32:g}. Divergence: `parity.diverge`, max normwise relative parameter "
          "difference after training both twins in lockstep.")

    # ---- time
    doc.h(2, "Where the time went")
    kinds, cpu = timing["job_seconds_by_kind"], timing["job_cpu_seconds_by_kind"]
    doc.p(f"Jobs: {timing['jobs_wall_seconds']:.1f} s wall with {meta['jobs']} worker(s); "
          f"benchmark {timing['bench_seconds']:.1f} s; this report's pictures are drawn after "
          "this table. Per kind of job, wall / CPU seconds summed over jobs (with several "
          "workers they overlap; CPU seconds are what an idle machine would need): "
          + ", ".join(f"{k} {v:.1f} / {cpu[k]:.1f} s"
                      for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])) + ".")
    doc.table(["job", "wall s", "CPU s"],
              [[j["job"], f"{j['seconds']:.2f}", f"{j['cpu_seconds']:.2f}"]
               for j in timing["jobs"][:12]])

    # ---- per source document
    for source, title in SOURCES.items():
        names = [m["model"] for m in R["models"] if m["source"] == source]
        if not names:
            continue
        doc.h(2, title)
        for name in names:
            _model_section(doc, by_name[name], A[name], plots)
        if source == zoo.SEED_000 and "cs231n-2layer" in by_name:
            _tiles_section(doc, by_name["cs231n-2layer"], A["cs231n-2layer"], plots)
        if source == zoo.SEED_002:
            if "digits-2layer" in by_name:
                _digits_section(doc, by_name["digits-2layer"], A["digits-2layer"], plots)
            if "lr_finder" in R:
                _lr_section(doc, R["lr_finder"], plots)
        if source == zoo.SEED_003:
            if "hidden_size" in R:
                _norm_size_section(doc, R, by_name, plots)
            pair = [n for n in ("spiral003-adam-l2", "spiral003-adamw") if n in by_name]
            if pair:
                _curves_section(doc, "Adam + L2 vs AdamW", "adam-l2-vs-adamw",
                                [(n.replace("spiral003-", ""), by_name[n]) for n in pair], plots,
                                "Training loss of both twins: Adam with L2 weight_decay 1e-3 "
                                "(added to the gradient) vs AdamW (decoupled, 1e-2).")
        if source == zoo.SEED_004:
            opt = [(lab, n) for lab, n in (("sgd", "spiral004-sgd"),
                                           ("momentum 0.9", "spiral004-momentum"),
                                           ("adam", "spiral004")) if n in by_name]
            if opt:
                _curves_section(doc, "Optimizer comparison", "optimizers",
                                [(lab, by_name[n]) for lab, n in opt], plots,
                                "spiral004's 2→16→8→1 net: SGD lr 0.01, SGD + momentum 0.9, "
                                "Adam lr 0.01, both twins.")
            if "spiral004-early-stopping" in by_name:
                _early_stopping_section(doc, by_name["spiral004-early-stopping"], plots)

    if R["xor_success"]:
        doc.h(2, "XOR success rate over seeds")
        rows = []
        for name, e in R["xor_success"].items():
            ep = str(e["epochs"]) + ("" if e["epochs"] == e["recipe_epochs"]
                                     else f" (recipe {e['recipe_epochs']})")
            rows.append([name, ep, len(e["seeds"]), f"{e['numpy']['rate']:.2f}",
                         f"{e['torch']['rate']:.2f}",
                         ", ".join(map(str, e["numpy"]["failed"])) or "none",
                         ", ".join(map(str, e["torch"]["failed"])) or "none",
                         "yes" if e["numpy"]["succeeded"] == e["torch"]["succeeded"] else "no"])
        doc.table(["model", "epochs", "seeds", "rate numpy", "rate torch", "failing seeds numpy",
                   "failing seeds torch", "same seeds succeed"], rows)
        doc.p("`parity.study.seed_sweep.success_rate` over seeds "
              f"{_seed_range(e['seeds'])}: a seed "
              "succeeds when the model reaches its target (100% train accuracy on XOR's four "
              "points).")

    doc.h(2, "Claims audit")
    c = R["claims"]
    if c.get("available"):
        rows = []
        for r in c["rows"]:
            b, corr = r.get("bayes_ceiling"), r.get("corrected")
            rows.append([r.get("id", "-"), str(r.get("source", "-"))[:3], _cell(r.get("claim")),
                         _cell(r.get("stated")), _cell(r.get("measured_numpy")),
                         _cell(r.get("measured_torch")),
                         (b.get("text") or _cell(b.get("mean"))) if isinstance(b, dict)
                         else _cell(b), _cell(r.get("verdict")),
                         f"{corr.get('model')}: {_cell(corr.get('measured_numpy'))} / "
                         f"{_cell(corr.get('measured_torch'))} ({corr.get('verdict')})"
                         if isinstance(corr, dict) else _cell(corr)])
        doc.table(["id", "seed", "claim", "stated", "measured numpy", "measured torch",
                   "Bayes ceiling", "verdict", "corrected setting: numpy / torch"], rows)
        doc.p("From `parity.audit.claims.run_audit`; also written to `claims.json`.")
    else:
        doc.p(c["note"])

    doc.h(2, "Benchmark")
    b = R["bench"]
    if b.get("available"):
        tr = b["trainers"]
        doc.table(["comparison", "seconds", "ratio", "target", "met"], [
            ["reference trainer vs fused NumPy loop",
             f"{tr['seconds']['reference_trainer']:.3f} vs {tr['seconds']['fused_numpy']:.3f}",
             f"{tr['ratios']['reference_vs_fused_numpy']:.3f}",
             f"≤ {b['targets']['reference_vs_fused_numpy']}",
             "met" if b["met"]["reference_vs_fused_numpy"] else "NOT met"],
            ["torch_impl trainer vs raw torch loop",
             f"{tr['seconds']['torch_impl_trainer']:.3f} vs {tr['seconds']['raw_torch']:.3f}",
             f"{tr['ratios']['torch_impl_vs_raw_torch']:.3f}",
             f"≤ {b['targets']['torch_impl_vs_raw_torch']}",
             "met" if b["met"]["torch_impl_vs_raw_torch"] else "NOT met"]])
        doc.img("bench-width-sweep", plots.bench_sweep(
            b["sweep"]["rows"], "time per SGD step, NumPy vs torch (best of repeats)"),
            f"`parity.tools.bench.run_bench(quick={R['quick']})`, run alone after all trainings "
            f"({tr['model']}, {tr['steps']} steps, best of {tr['repeats']}; threads "
            f"{b['threads']}). torch faster from width (per batch size): "
            f"{b['sweep']['torch_wins_from_width']}.")
    else:
        doc.p(b["note"])
    return doc


def _seed_range(seeds) -> str:
    s = list(seeds)
    return f"{s[0]}–{s[-1]}" if s == list(range(s[0], s[-1] + 1)) and len(s) > 1 else str(s)


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_cell(x) for x in v) + "]"
    return "-" if v is None else str(v)


def _model_section(doc: Doc, m: dict, arr: dict, plots) -> None:
    name = m["model"]
    n, t = m["runs"]["numpy"], m["runs"]["torch"]
    doc.h(3, name)
    p64, p32 = m["parity"]["float64"], m["parity"]["float32"]
    doc.p(f"{m['summary']}. `{m['layers']}`, {m['parameters']} parameters, seed {m['seed']}, "
          f"{m['epochs']} epochs. Target: {m['target'] or 'none'} — numpy "
          f"{_met(n, m['capped'])}, torch {_met(t, m['capped'])}. Held-out accuracy numpy "
          f"{n['test_accuracy']:.4f}, torch {t['test_accuracy']:.4f}. One-step parity float64 "
          f"{_verdict(p64)} (max abs "
          f"{p64['max_abs']:.1e}), float32 {_verdict(p32)} (max abs {p32['max_abs']:.1e})."
          + (f" Note: {m['notes']}." if m["notes"] else ""))
    if "boundary" in m:
        X, y = _points(name, m["seed"])
        doc.img(f"{name}-boundary", plots.decision_boundaries(
            name, tuple(m["boundary"]["extent"]), arr["numpy"]["grid"], arr["torch"]["grid"],
            X, y, {impl: (m["runs"][impl]["train_accuracy"], m["runs"][impl]["test_accuracy"])
                   for impl in IMPLS}),
            f"{name}: predicted class of each trained twin on a {m['boundary']['grid'][0]}² "
            "grid (argmax, or the 0.5 / 0 threshold for one output), training points on top; "
            f"right: cells where the twins disagree ({m['boundary']['disagree_fraction']:.2%}).")
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
        + "; exact zeros are not drawn on the log axes).")


def _points(name: str, seed: int):
    d = zoo.get(name).data(seed)
    return d.X_train, d.y_train


def _tiles_section(doc: Doc, m: dict, arr: dict, plots) -> None:
    from parity.tolerances import tolerance
    tn, tt = arr["numpy"]["tiles"], arr["torch"]["tiles"]
    span = tn.reshape(len(tn), -1).max(axis=1) - tn.reshape(len(tn), -1).min(axis=1)
    dead = int(np.sum(tn.reshape(len(tn), -1).max(axis=1) <= 0))
    units = sorted(np.argsort(-span, kind="stable")[:N_TILES].tolist())
    diff = float(np.abs(tn - tt).max())
    rtol, atol = tolerance("float64", "output")
    bound = atol + rtol * float(np.abs(tt).max())
    X, y = _points("cs231n-2layer", m["seed"])
    doc.h(3, "cs231n-2layer: what the hidden units compute")
    doc.img("cs231n-2layer-hidden-tiles", plots.hidden_tiles(
        units, tn[units], tuple(m["boundary"]["extent"]), X, y,
        "trained NumPy cs231n-2layer: ReLU(x·W1 + b1) over the plane"),
        f"{len(units)} of the {len(tn)} hidden units of the trained NumPy model (those with the "
        f"largest activation range over the plane, in index order; {dead} units are zero "
        f"everywhere on it), each ReLU(x·W1+b1) on a {tn.shape[1]}² grid. torch's trained twin's "
        f"maps: max |numpy − torch| over all {len(tn)} units and grid points "
        f"= {diff:.1e}: " + ("within" if diff <= bound else "BEYOND")
        + f" the float64 parity bound for outputs (atol {atol:g} + rtol {rtol:g}·max|x| = "
        f"{bound:.1e}), after the whole training trajectory.")


def _digits_section(doc: Doc, m: dict, arr: dict, plots) -> None:
    d = zoo.get("digits-2layer").data(m["seed"])
    idx = [int(np.flatnonzero(d.y_test == k)[0]) for k in range(10)
           if np.any(d.y_test == k)]
    pn, pt = arr["numpy"]["test_pred"], arr["torch"]["test_pred"]
    doc.h(3, "digits-2layer: predictions and hidden representation")
    doc.img("digits-2layer-predictions", plots.digit_grid(
        d.X_test[idx], d.y_test[idx], pn[idx], pt[idx], "digits-2layer, trained NumPy model"),
        "The first held-out example of each digit (standardized pixels, 8×8), NumPy's "
        "prediction (green right, red wrong; torch's added if it differs). Over all "
        f"{len(pn)} held-out digits the twins' predictions differ on {int((pn != pt).sum())}.")
    doc.img("digits-2layer-pca", plots.pca_panels(
        {impl: arr[impl]["pca"] for impl in IMPLS}, {impl: arr[impl]["pca_var"] for impl in IMPLS},
        d.y_test, "first hidden layer (ReLU) on the held-out digits, PCA"),
        "`parity.study.hidden.hidden_numpy` / `hidden_torch` on the held-out set, projected by "
        "`pca_2d` (signs fixed so both twins' axes point the same way), coloured by true "
        "digit.")


def _lr_section(doc: Doc, lr: dict, plots) -> None:
    doc.h(3, "digits-minibatch: learning-rate finder")
    curves = {impl: lr[impl] for impl in IMPLS}
    sug = {impl: lr[impl]["suggest"] for impl in IMPLS}
    doc.img("digits-minibatch-lr-finder", plots.lr_finder_curves(
        curves, sug, "LR finder, digits-minibatch (one epoch, lr 1e-5 → 10)"),
        "`parity.study.lr_finder.lr_finder`: one epoch with the lr growing exponentially, loss of "
        "each batch before its step; vertical lines: `suggest` (steepest descent of the "
        "smoothed loss) — numpy " + ", torch ".join(
            f"{_f(sug[i], '.3g')}" for i in IMPLS) + ".")


def _norm_size_section(doc: Doc, R: dict, by_name: dict, plots) -> None:
    hs = R["hidden_size"]
    doc.h(3, "BatchNorm vs LayerNorm vs hidden size")
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
    doc.table(["variant", "norm", "hidden", "params", "epochs", "held-out acc np / torch",
               "held-out loss np / torch", "train acc np / torch", "seconds np / torch"], rows)
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


def _curves_section(doc: Doc, title: str, slug: str, items: list, plots, caption: str) -> None:
    doc.h(3, title)
    series = [(lab, impl, m["runs"][impl]["loss"]) for lab, m in items for impl in IMPLS]
    accs = "; ".join(f"{lab}: held-out {m['runs']['numpy']['test_accuracy']:.3f} / "
                     f"{m['runs']['torch']['test_accuracy']:.3f}" for lab, m in items)
    doc.img(slug, plots.overlaid_curves(series, title + " — training loss"),
            caption + f" Held-out accuracy numpy / torch — {accs}.")


def _early_stopping_section(doc: Doc, m: dict, plots) -> None:
    doc.h(3, "Early stopping")
    series, marks = [], []
    for impl in IMPLS:
        r = m["runs"][impl]
        series += [("train", impl, r["loss"]), ("validation", impl, r["val_loss"])]
    n, t = m["runs"]["numpy"], m["runs"]["torch"]
    same = (n["best_epoch"], n["stopped_epoch"]) == (t["best_epoch"], t["stopped_epoch"])
    for impl, r in (("both", n),) if same else (("numpy", n), ("torch", t)):
        marks += [(r["best_epoch"] + 1, f"best {r['best_epoch'] + 1} ({impl})", "tab:green"),
                  (r["stopped_epoch"] + 1, f"stop {r['stopped_epoch'] + 1} ({impl})", "tab:red")]
    patience = zoo.get(m["model"]).patience
    doc.img("spiral004-early-stopping", plots.overlaid_curves(
        series, "spiral004-early-stopping: training and validation loss", marks=marks),
        f"Validation = the last 20% of the training draw; patience {patience}. Best epoch "
        f"(lowest validation loss) numpy {n['best_epoch'] + 1}, torch {t['best_epoch'] + 1}; "
        f"stopped after epoch numpy {n['stopped_epoch'] + 1}, torch {t['stopped_epoch'] + 1} "
        f"(of at most {m['epochs']}).")
