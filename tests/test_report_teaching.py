"""The report teaches before it certifies (issue 24 item 2): each model's pictures show without
a click, a why-sentence drawn from what the model has, sections titled by the source
documents, per-layer digits of agreement in both dtypes, a worked failure with its first
disagreeing layer highlighted, and benchmark ratios styled as performance, not verdicts.

One tiny real study (20 epochs, two models, the worked failure; ~15 s on the shared machine)
serves every test that reads the report."""

from html.parser import HTMLParser

import pytest

from parity import layerspec as S
from parity.catalogue import zoo
from parity.study import document, layer_agreement, plots
from parity.study import report as study_report

MODELS = ["xor-relu", "digits-dropout"]   # no dropout / dropout
TINY = dict(epochs_override=20, diverge_steps=5, xor_seeds=(0,), claims=False, bench=False,
            grid=30, tile_grid=10)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("teach") / "report"
    s = study_report.study(MODELS, out=str(out), **TINY)
    return out, s


class _Folds(HTMLParser):
    """Each ``<img>`` with whether a closed ``<details>`` encloses it; each ``<h2>``'s text;
    each table row's class and cells."""

    def __init__(self):
        super().__init__()
        self.stack, self.images, self.h2, self.rows = [], [], [], []
        self._h2 = self._td = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "details":
            self.stack.append((a.get("id"), "open" in a))
        elif tag == "img":
            self.images.append((a["src"], all(o for _, o in self.stack),
                                [i for i, _ in self.stack]))
        elif tag == "h2":
            self._h2 = True
            self.h2.append("")
        elif tag == "tr":
            self.rows.append((a.get("class"), []))
        elif tag == "td":
            self._td = True
            self.rows[-1][1].append("")

    def handle_endtag(self, tag):
        if tag == "details":
            self.stack.pop()
        self._h2 = self._h2 and tag != "h2"
        self._td = self._td and tag != "td"

    def handle_data(self, data):
        if self._h2:
            self.h2[-1] += data
        if self._td:
            self.rows[-1][1][-1] += data


def _page(out) -> _Folds:
    p = _Folds()
    p.feed((out / "index.html").read_text(encoding="utf-8"))
    return p


def test_each_models_pictures_show_without_a_click(study):
    """Break tried: model sections folded again (``folded=True``) → fails."""
    out, _ = study
    images = _page(out).images
    for name in MODELS:
        mine = [(src, shown) for src, shown, ids in images if name in ids]
        assert f"img/{name}-curves.png" in [s for s, _ in mine], name
        assert all(shown for _, shown in mine), f"{name}: a picture inside a closed <details>"


def test_sections_carry_the_source_documents_titles(study):
    """Break tried: headings back to "Seed 002 — …" → fails."""
    out, _ = study
    h2 = _page(out).h2
    for name in MODELS:
        assert zoo.source_of(zoo.get(name)).title in h2, (name, h2)
    assert not any(h.startswith("Seed ") for h in h2), h2


def test_why_sentence_comes_from_what_the_model_has(study):
    """Dropout in the spec → the masks sentence with its p; no dropout → never the masks.
    Break tried: one blanket sentence for every model → fails."""
    _, s = study
    by = {m["model"]: m for m in s.results["models"]}
    drop = document.why_they_differ(by["digits-dropout"])
    p = next(x.p for x in zoo.get("digits-dropout").layers if isinstance(x, S.Dropout))
    assert drop and "dropout masks" in drop and f"p = {p:g}" in drop
    plain = document.why_they_differ(by["xor-relu"])
    assert plain is None or "dropout" not in plain.lower()
    twin = dict(by["xor-relu"], runs={i: dict(r, loss=list(by["xor-relu"]["runs"]["numpy"]
                                                           ["loss"]),
                                              test_accuracy=0.5)
                                      for i, r in by["xor-relu"]["runs"].items()})
    twin["boundary"] = dict(twin.get("boundary", {}), disagree_cells=0)
    assert document.why_they_differ(twin) is None, "identical runs need no reason"


def test_per_layer_figure_for_every_model_in_both_dtypes(study):
    """Measured in the study: every layer's output and input gradient, both dtypes, from
    ``parity.localize``; one picture per model with a float64 and a float32 panel.
    Break tried: only float64 measured/drawn → fails."""
    out, s = study
    for m in s.results["models"]:
        n_layers = len(zoo.get(m["model"]).layers)
        for dt in ("float64", "float32"):
            rows = m["parity"][dt]["layers"]
            outs = sorted(r["layer"] for r in rows if r["what"] == "output")
            assert outs == list(range(n_layers)), (m["model"], dt)
            assert {r["direction"] for r in rows} == {"forward", "backward"}
        assert (out / "img" / f"{m['model']}-layers.png").is_file()
        panels = {dt: layer_agreement.by_layer(m["parity"][dt]["layers"], dt)
                  for dt in ("float64", "float32")}
        fig = plots.layer_digits(panels, "t", full=layer_agreement.FULL_DIGITS)
        assert [ax.get_title() for ax in fig.axes] == ["float64", "float32"]
        plots.plt.close(fig)


def test_digits_mark_exact_agreement_and_cap_at_the_dtype():
    row = {"max_abs": 0.0, "max_rel": 0.0}
    assert layer_agreement.digits(row, "float64") == (layer_agreement.FULL_DIGITS["float64"],
                                                       "exact")
    assert layer_agreement.digits({"max_abs": 1e-20, "max_rel": 0.0}, "float32")[1] == "noise"
    assert layer_agreement.digits({"max_abs": 1e-3, "max_rel": 1e-3}, "float32") == (3.0,
                                                                                      "measured")
    assert layer_agreement.digits({"max_abs": 1, "max_rel": 1e-30}, "float32")[1] == "full"


def test_worked_failure_highlights_the_first_disagreeing_layer(study):
    """The planted bug (BatchNorm backward without its variance path) is first seen at the
    last BatchNorm's input gradient; that row alone is highlighted and says so.
    Break tried: the table without ``highlight`` → fails."""
    out, s = study
    w = s.results["worked_failure"]
    spec = zoo.get(w["model"])
    last_bn = max(i for i, x in enumerate(spec.layers) if isinstance(x, S.BatchNorm1d))
    first = w["localization"]["backward"]
    assert not w["passed"] and w["localization"]["forward"] is None
    assert (first["index"], first["what"]) == (last_bn, "input gradient")
    marked = [cells for cls, cells in _page(out).rows if cls == "first"]
    assert len(marked) == 1 and marked[0][0] == str(last_bn), marked
    assert "first to disagree" in marked[0][-1]
    md = (out / "index.md").read_text()
    assert f"| **{last_bn}** | **BatchNorm1d** |" in md
    assert (out / "img" / "worked-failure-layers.png").is_file()


def _bench_results(ratio: float) -> dict:
    rows = [{"width": w, "batch": 32, "numpy_s_per_step": 1e-4, "torch_s_per_step": 2e-4}
            for w in (16, 64)]
    keys = ("reference_vs_fused_numpy", "torch_impl_vs_raw_torch")
    return {"quick": True, "bench": {
        "available": True, "threads": {"torch": 1}, "targets": {k: 1.1 for k in keys},
        "met": {k: ratio <= 1.1 for k in keys},
        "trainers": {"seconds": {k: 1.0 for k in ("reference_trainer", "fused_numpy",
                                                  "torch_impl_trainer", "raw_torch")},
                     "ratios": {k: ratio for k in keys}, "model": "m", "steps": 5,
                     "repeats": 3},
        "sweep": {"rows": rows, "torch_wins_from_width": {"32": None}}}}


@pytest.mark.parametrize("ratio", [1.134, 0.97])
def test_timing_targets_are_styled_as_performance_never_as_verdicts(tmp_path, ratio):
    """Break tried: the benchmark's met / NOT met cell back → fails (a verdict class)."""
    doc = document.Doc(str(tmp_path))
    document._bench_section(doc, _bench_results(ratio), plots)
    page = doc.html("t")
    assert 'class="perf"' in page and "NOT met" not in page and ">met<" not in page
    assert f"target ≤ 1.1×, measured {ratio:.3f}×" in page
    assert 'class="bad' not in page and 'class="good' not in page
