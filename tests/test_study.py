"""The side-by-side study (``parity.study``): the report's files, its embedded pictures, both
twins per model in results.json, atomic replacement of a previous report, results that do not
depend on the number of worker processes, and the prediction rule behind the decision-boundary
pictures."""

import ast
import json
import os
import pathlib
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest

from parity.catalogue import zoo
from parity.catalogue.train import run
from parity.study import document, executor, jobs, plots
from parity.study import plan as study_plan
from parity.study import report as study_report

MODELS = ["cs231n-linear", "xor-relu"]
TINY = dict(epochs_override=20, diverge_steps=5, xor_seeds=(0, 1), claims=False, bench=False,
            grid=40, tile_grid=10, worked_failure=None)


def _tree(path):
    """{relative path: bytes} of every file under ``path``."""
    out = {}
    for root, _, names in os.walk(path):
        for n in names:
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, path)] = f.read()
    return out


def _stable(results: dict) -> dict:
    """results.json without what legitimately changes between runs: wall-clock seconds,
    the timing table and the environment header."""
    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k not in ("seconds", "timing", "meta")}
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o
    return strip(results)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "report"
    s = study_report.study(MODELS, out=str(out), **TINY)
    return out, s


def test_report_files_exist_and_each_picture_is_one_file_both_pages_link(report):
    """One copy of each picture: a PNG under img/, linked (never inlined) by index.html and
    index.md."""
    out, _ = report
    for name in ("index.md", "index.html", "results.json"):
        assert (out / name).is_file(), name
    pngs = sorted(os.listdir(out / "img"))
    # per model: decision boundaries (2-D inputs), curves and per-layer agreement
    assert pngs == sorted(f"{m}-{kind}.png" for m in MODELS
                          for kind in ("boundary", "curves", "layers"))
    page = _parse(out / "index.html")
    assert sorted(page.images) == [f"img/{p}" for p in pngs], "index.html: <img src> per PNG"
    assert "data:" not in (out / "index.html").read_text(), "index.html: an inlined picture"
    md = (out / "index.md").read_text()
    for png in pngs:
        assert md.count(f"](img/{png})") == 1, f"index.md: link to {png}"
    assert "claims audit not run (disabled)" in md


class _Page(HTMLParser):
    """What the report test needs from index.html: every id, every ``#`` link (and which of
    them are in the contents ``<nav>``), every ``<img>``'s attributes, the headline's text and
    the ids of the collapsible sections."""

    def __init__(self):
        super().__init__()
        self.ids, self.links, self.contents, self.details = [], [], [], []
        self.images, self.image_attrs, self.headline = [], [], ""
        self._in_nav = self._in_headline = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "details":
            self.details.append(a.get("id"))
        if tag == "nav":
            self._in_nav = True
        if tag == "p" and a.get("class") == "headline":
            self._in_headline = True
        if tag == "a" and a.get("href", "").startswith("#"):
            self.links.append(a["href"][1:])
            if self._in_nav:
                self.contents.append(a["href"][1:])
        if tag == "img":
            self.images.append(a["src"])
            self.image_attrs.append(a)

    def handle_endtag(self, tag):
        if tag == "nav":
            self._in_nav = False
        if tag == "p":
            self._in_headline = False

    def handle_data(self, data):
        if self._in_headline:
            self.headline += data


def _parse(path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def test_index_html_every_picture_loads_and_every_contents_link_resolves(report):
    """Parsed with html.parser: each <img> names a PNG beside index.html that decodes at the
    size the tag states; each ``#`` link names an id of the page; the contents list every
    section, each model's collapsible one included; ids are unique."""
    from PIL import Image
    out, _ = report
    page = _parse(out / "index.html")
    assert page.images, "index.html: no pictures"
    for attrs in page.image_attrs:
        src = attrs["src"]
        path = out / src
        assert not os.path.isabs(src) and path.resolve().parent == (out / "img").resolve(), src
        with Image.open(path) as im:
            im.load()
            assert im.format == "PNG", src
            assert (str(im.width), str(im.height)) == (attrs["width"], attrs["height"]), src
        assert attrs.get("alt"), f"{src}: no alt text"
    assert len(page.ids) == len(set(page.ids)), "index.html: duplicate ids"
    for link in page.links:
        assert link in page.ids, f"index.html: link #{link} has no target"
    for name in MODELS:
        assert name in page.details and name in page.contents, f"{name}: not collapsible+linked"
    for section in ("how-to-read-this", "verdict-legend", "appendix-the-rules",
                    "appendix-where-the-time-went"):
        assert section in page.contents, f"contents: no {section}"
    assert page.contents[-1] == "appendix-where-the-time-went", "the appendix comes last"


def test_index_md_links_resolve(report):
    out, _ = report
    md = (out / "index.md").read_text()
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', md))
    for link in re.findall(r"\]\(#([^)]+)\)", md):
        assert link in anchors, f"index.md: link #{link} has no anchor"
    for png in re.findall(r"\]\((img/[^)]+)\)", md):
        assert (out / png).is_file(), f"index.md: {png} missing"


def test_headline_counts_what_results_json_says(report):
    """The headline's numbers are the counts in results.json (not a sample of them)."""
    out, s = report
    ms = s.results["models"]
    line = _parse(out / "index.html").headline
    assert line == document.headline(s.results)
    for dt in ("float64", "float32"):
        agree = sum(m["parity"][dt]["passed"] for m in ms)
        assert f"{agree}/{len(ms)}" + (" models agree" if dt == "float64" else "") + \
            f" in {dt}" in line, (dt, line)
    with_target = [m for m in ms if m["target"]]
    met = sum(all(r["target_met"] is True for r in m["runs"].values()) for m in with_target)
    assert f"targets: {met}/{len(with_target)} met by both twins" in line, line
    assert "claims audit not run" in line


def test_the_rules_appendix_states_the_rules_from_parity_tolerances(report):
    """The appendix quotes the constants the judge uses, read from the module; "How to read
    this" up front says it in plain words and leaves the arithmetic (σ, FLOOR) to it."""
    from parity import tolerances
    out, _ = report
    md = (out / "index.md").read_text()
    front = md[md.index("# How to read this"):md.index("## ", md.index("# How to read this") + 20)]
    assert "σ" not in front and "d_a" not in front and "Appendix: the rules" in front
    section = md[md.index("# Appendix: the rules"):md.index("# Appendix: where the time went")]
    for dt in ("float64", "float32"):
        rtol, atol = tolerances.tolerance(dt, "param")
        assert f"rtol {rtol:g}, atol {atol:g}" in section, dt
    F, K = tolerances.FACTOR, tolerances.FLOOR
    assert f"d_a ≤ {F:g}·d_b + {K:g}·σ and d_b ≤ {F:g}·d_a + {K:g}·σ" in section
    for term in ("One-step parity", "Divergence", "Verdicts", "Bayes ceiling"):
        assert f"**{term}" in section, term


def test_report_has_no_python_reprs_or_meaningless_precision(report):
    out, _ = report
    for name in ("index.md", "index.html"):
        text = (out / name).read_text()
        assert not re.search(r"\{'|\[-0|-0[,\]]|± 0\.0+\b|\bNone\b", text), name


@pytest.mark.parametrize("value,text", [
    (-0.0, "0"), (0.0, "0"), ([-0.0, 0.0], "0, 0"), ([0.92412, 0.075863], "0.9241, 0.07586"),
    (None, "-"), (193, "193"), (np.float64(-0.0298), "-0.0298"), ("about 49%", "about 49%")])
def test_fmt_num_writes_values_for_people(value, text):
    assert document.fmt_num(value) == text


@pytest.mark.parametrize("mean,stderr,text", [
    (0.99333329, 2.16e-8, "0.9933 ± <5e-5"), (0.7288, 0.00204, "0.7288 ± 0.0020"),
    (0.6232, 0.00005, "0.6232 ± 0.0001")])
def test_fmt_pm_never_writes_a_zero_standard_error(mean, stderr, text):
    """A standard error below half the last printed digit is a bound, not ``± 0.0000``."""
    assert document.fmt_pm(mean, stderr) == text


def test_small_formatters():
    assert document.fmt_threads({"torch": 1, "blas": 1}) == "torch 1, BLAS 1"
    assert document.fmt_sci(0.0) == "0" and document.fmt_sci(1.234e-16) == "1.2e-16"
    assert document._wins({"32": None, "128": 256}) == \
        "batch 32: at no width measured; batch 128: from width 256"


@pytest.mark.parametrize("cell,cls", [
    ("pass", "good"), ("met / met", "good"), ("met / NOT met", "bad"), ("FAIL", "bad"),
    ("unreachable as written", "warn"), (f"{document.NOT_MEASURED} / met", "muted"),
    ("0.5 / 0.5", None), ("metre", None)])
def test_verdict_colour_of_a_cell_follows_its_worst_word(cell, cls):
    assert document.cell_class(cell) == cls


def test_results_json_has_both_twins_with_accuracies_per_model(report):
    out, _ = report
    r = json.loads((out / "results.json").read_text())
    assert [m["model"] for m in r["models"]] == MODELS
    for m in r["models"]:
        assert m["epochs"] == min(20, zoo.get(m["model"]).epochs)
        assert set(m["runs"]) == {"numpy", "torch"}
        for impl, run_ in m["runs"].items():
            for k in ("train_accuracy", "test_accuracy"):
                assert 0.0 <= run_[k] <= 1.0, (m["model"], impl, k)
            assert len(run_["loss"]) == m["epochs"]
            assert np.isfinite(run_["test_loss"])
        for dtype in ("float64", "float32"):
            assert m["parity"][dtype]["passed"], (m["model"], dtype)
            assert len(m["divergence"][dtype]["param_rel"]) == 5
        # float64, same weights/data/order, no dropout: the twins predict the same classes
        assert m["boundary"]["disagree_fraction"] == 0.0
    xor = r["xor_success"]["xor-relu"]
    assert xor["seeds"] == [0, 1] and set(xor) >= {"numpy", "torch", "both"}


def test_crash_while_writing_keeps_previous_report_and_leaves_no_temp_dir(report, tmp_path,
                                                                          monkeypatch):
    out, s = report
    target = tmp_path / "report"
    shutil.copytree(out, target)
    before = _tree(target)

    def boom(*a, **k):
        raise RuntimeError("plotting failed")
    # decision boundaries are drawn after the first model's text and before its curves:
    # the temporary report is half-written when this raises
    monkeypatch.setattr(plots, "decision_boundaries", boom)
    with pytest.raises(RuntimeError, match="plotting failed"):
        study_report.write_report(s, str(target))
    assert _tree(target) == before
    assert os.listdir(tmp_path) == ["report"]


def test_crash_during_the_swap_restores_previous_report(report, tmp_path, monkeypatch):
    out, s = report
    target = tmp_path / "report"
    shutil.copytree(out, target)
    before = _tree(target)
    real_replace = os.replace
    calls = []

    def replace(src, dst):   # the first move onto the report path is the new report: fail it
        if str(dst) == str(target):
            calls.append(src)
            if len(calls) == 1:
                raise OSError("disk full")
        return real_replace(src, dst)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(study_report, "build_document", lambda s, img_dir: document.Doc(img_dir))
    with pytest.raises(OSError, match="disk full"):
        study_report.write_report(s, str(target))
    monkeypatch.undo()
    assert len(calls) == 2          # the failed move, then the old report moved back
    assert _tree(target) == before
    assert os.listdir(tmp_path) == ["report"]


def test_failing_job_leaves_previous_report(report, tmp_path, monkeypatch):
    out, _ = report
    target = tmp_path / "report"
    shutil.copytree(out, target)
    before = _tree(target)

    def boom(**kwargs):
        raise FloatingPointError("non-finite loss")
    monkeypatch.setattr(executor, "job_parity", boom)
    with pytest.raises(FloatingPointError):
        study_report.study(["cs231n-linear"], out=str(target), **TINY)
    assert _tree(target) == before
    assert os.listdir(tmp_path) == ["report"]


@pytest.mark.slow   # spawning two workers that import torch: ~10-25 s on the shared machine
def test_two_worker_processes_give_the_same_results_as_one(report, tmp_path):
    _, one = report
    two = study_report.study(MODELS, out=str(tmp_path / "report"), jobs=2, **TINY)
    assert two.results["meta"]["jobs"] == 2
    assert _stable(two.results) == _stable(one.results)
    for m in MODELS:
        for impl in ("numpy", "torch"):
            np.testing.assert_array_equal(two.arrays[m][impl]["grid"], one.arrays[m][impl]["grid"])


@pytest.mark.parametrize("impl", ["numpy", "torch"])
@pytest.mark.parametrize("name", ["cs231n-linear", "xor-sigmoid", "spiral004"],
                         ids=["argmax", "sigmoid-0.5", "logit-0"])
def test_grid_prediction_rule_reproduces_the_trainers_accuracy(name, impl):
    """predict_classes (used on the picture grids) decides exactly as each twin's accuracy."""
    spec = zoo.get(name)
    res, model = run(spec, impl, seed=0, epochs=30)
    d = spec.data(0)
    pred = jobs.predict_classes(model, d.X_train)
    assert float(np.mean(pred == d.y_train)) == res.train_accuracy
    assert float(np.mean(jobs.predict_classes(model, d.X_test) == d.y_test)) == res.test_accuracy


def test_quick_plan_caps_every_model_and_keeps_every_section():
    plan = study_plan.make_plan(quick=True)
    assert plan.models == tuple(zoo.CATALOGUE)
    for name, e in plan.epochs.items():
        spec = zoo.get(name)
        cap = (study_plan.QUICK_EPOCHS_MINIBATCH if spec.batch_size else
               study_plan.QUICK_EPOCHS_LARGE if len(spec.data(0).X_train) > study_plan.LARGE_ROWS
               else study_plan.QUICK_EPOCHS)
        assert e == min(spec.epochs, cap), name
    keys = {j.key.split("/")[0] for j in executor.plan_jobs(plan)}
    assert {"train", "parity", "xor", "hidden", "lr_finder"} <= keys
    assert len(plan.xor_seeds) == study_plan.QUICK_XOR_SEEDS and len(plan.hidden_sizes) == 3


def test_the_convnet_section_shows_both_twins_filters_losses_and_times(tmp_path):
    """A convnet study (2 epochs): its section's table names the seed, both held-out
    accuracies and training seconds; its pictures are the first convolution's filters of
    both twins and their losses overlaid; results.json holds no array (the filters stay in
    the pictures)."""
    out = tmp_path / "report"
    s = study_report.study(["digits-convnet"], out=str(out), **dict(TINY, epochs_override=2))
    md = (out / "index.md").read_text()
    assert "Beyond the documents" in md and "The convnets: accuracy, time, filters, loss" in md
    m = s.results["models"][0]
    n, t = m["runs"]["numpy"], m["runs"]["torch"]
    row = next(line for line in md.splitlines() if line.startswith("| digits-convnet | 0 | 2 |"))
    assert f"{n['test_accuracy']:.4f} / {t['test_accuracy']:.4f}" in row
    assert f"{n['seconds']:.2f} / {t['seconds']:.2f}" in row
    assert "0 of 360" in row, "float64, same weights and batches: the same predictions"
    for png in ("digits-convnet-filters.png", "convnets-loss.png", "digits-convnet-curves.png"):
        assert f"](img/{png})" in md and (out / "img" / png).is_file(), png
    filters = s.arrays["digits-convnet"]
    assert filters["numpy"]["filters"].shape == filters["torch"]["filters"].shape == (32, 1, 3, 3)
    row = json.loads((out / "results.json").read_text())["models"][0]
    assert "filters" not in row and all("filters" not in r for r in row["runs"].values())


def test_every_model_has_a_section_in_the_report():
    """The report groups models by source (``zoo.SOURCES``): a model whose source has no
    record there would silently be left out of it."""
    missing = {n: s.source for n, s in zoo.CATALOGUE.items() if s.source not in zoo.SOURCES}
    assert not missing, f"sources without a section: {missing}"


def test_bad_plan_values_are_rejected():
    with pytest.raises(ValueError, match="diverge_steps"):
        study_plan.make_plan(["xor-relu"], diverge_steps=0)
    with pytest.raises(ValueError, match="unknown model"):
        study_plan.make_plan(["no-such-model"])
    with pytest.raises(ValueError, match="jobs"):
        executor.run_study(study_plan.make_plan(["xor-relu"]), jobs=0)


# ── capped runs carry no target verdict ──────────────────────────────────────────────────

def _met_cells(md: str, name: str) -> str:
    """The "met" cell of ``name``'s row in the training table of index.md: one verdict when
    both twins have it, else ``numpy / torch``."""
    row = next(line for line in md.splitlines() if line.startswith(f"| {name} |"))
    return row.rstrip(" |").rsplit("|", 1)[1].strip()


def test_every_capped_training_row_carries_no_target_verdict(report):
    """TINY caps every model (20 epochs): no met / NOT met anywhere, in JSON or report."""
    out, s = report
    md = (out / "index.md").read_text()
    for m in s.results["models"]:
        assert m["capped"] == (m["epochs"] < m["recipe_epochs"]) and m["capped"], m["model"]
        for impl, r in m["runs"].items():
            assert r["target_met"] is None, (m["model"], impl)
        assert _met_cells(md, m["model"]) == document.NOT_MEASURED, m["model"]
        assert document.NOT_MEASURED in study_report.render_summary(s.results)


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    """The quick path on two models: cs231n-linear's 200-epoch recipe is under the quick cap
    (uncapped), xor-relu runs 300 of its 2000 epochs (capped)."""
    out = tmp_path_factory.mktemp("quick") / "report"
    s = study_report.study(["cs231n-linear", "xor-relu"], out=str(out), quick=True, diverge_steps=5,
                    xor_seeds=(0, 1), claims=False, bench=False, grid=40, tile_grid=10)
    return out, s


def test_quick_study_judges_the_uncapped_run_and_not_the_capped_one(quick_report):
    out, s = quick_report
    by = {m["model"]: m for m in s.results["models"]}
    md = (out / "index.md").read_text()
    full, capped = by["cs231n-linear"], by["xor-relu"]
    assert not full["capped"] and full["epochs"] == full["recipe_epochs"] == 200
    assert capped["capped"] and capped["epochs"] == 300 < capped["recipe_epochs"]
    for impl in ("numpy", "torch"):
        assert isinstance(full["runs"][impl]["target_met"], bool), impl
        assert capped["runs"][impl]["target_met"] is None, impl
    assert all(c in ("met", "NOT met") for c in _met_cells(md, "cs231n-linear").split(" / "))
    assert _met_cells(md, "xor-relu") == document.NOT_MEASURED
    lines = study_report.render_summary(s.results).splitlines()
    assert document.NOT_MEASURED not in next(x for x in lines if x.startswith("cs231n-linear"))
    assert document.NOT_MEASURED in next(x for x in lines if x.startswith("xor-relu"))


# ── pictures: readable, labelled, zeros shown, functions short ──────────────────────────

def _figures():
    """One figure per plot function, drawn from small synthetic inputs: {name: Figure}."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 2)), np.arange(30) % 3
    grid = (np.arange(100).reshape(10, 10) // 34).astype(int)
    curve = list(np.linspace(1.0, 0.1, 20))
    lr = {"lr": list(np.geomspace(1e-5, 10, 20)), "loss": curve}
    rows = [{"width": w, "batch": 32, "numpy_s_per_step": 1e-4 * w, "torch_s_per_step": 5e-3}
            for w in (16, 64, 256)]
    return {
        "model_curves": plots.model_curves(
            "m", {"numpy": curve, "torch": [c + (i % 2) * 1e-3 for i, c in enumerate(curve)]},
            {"float64": [0.0, 1e-16, 0.0], "float32": [1e-7, 2e-7, 3e-7]}),
        "decision_boundaries": plots.decision_boundaries("m", (-1, 1, -1, 1), grid, grid, X, y,
                                                         {"numpy": (1, 1), "torch": (1, 1)}),
        "hidden_tiles": plots.hidden_tiles([0, 1, 2], rng.random((3, 6, 6)), (-1, 1, -1, 1),
                                           X, y, "tiles"),
        "digit_grid": plots.digit_grid(rng.random((10, 64)), np.arange(10), np.arange(10),
                                       np.arange(10), "digits"),
        "pca_panels": plots.pca_panels({"numpy": X, "torch": X}, {"numpy": [0.5, 0.2],
                                                                  "torch": [0.5, 0.2]}, y, "pca"),
        "lr_finder_curves": plots.lr_finder_curves({"numpy": lr, "torch": lr},
                                                   {"numpy": 0.1, "torch": 0.1}, "lr"),
        "overlaid_curves": plots.overlaid_curves([("a", "numpy", curve), ("a", "torch", curve)],
                                                 "curves", marks=[(5, "best 5", "tab:green")]),
        "size_sweep": plots.size_sweep([16, 64, 256], {"numpy": [0.5, 0.6, 0.7],
                                                       "torch": [0.5, 0.6, 0.7]},
                                       {"numpy": [1, 0.8, 0.7], "torch": [1, 0.8, 0.7]}, "h"),
        "bench_sweep": plots.bench_sweep(rows, "bench"),
        "filter_grid": plots.filter_grid({"numpy": rng.normal(size=(16, 1, 3, 3)),
                                          "torch": rng.normal(size=(16, 1, 3, 3))}, "filters"),
        "bench_convnets": plots.bench_convnets(
            [{"model": "c", "batch": 50, "numpy_s_per_step": 2e-3, "torch_s_per_step": 1e-3,
              "numpy_over_torch": 2.0}],
            {"model": "c", "layers": [{"layer": "Conv2d", "forward_s": 1e-4,
                                       "backward_s": 2e-4}]}, "convnets"),
    }


@pytest.fixture(scope="module")
def figures():
    figs = _figures()
    for fig in figs.values():
        fig.canvas.draw()
    yield figs
    for fig in figs.values():
        plots.plt.close(fig)


def _shown(labels):
    return [t for t in labels if t.get_visible() and t.get_text()]


@pytest.mark.parametrize("name", ["model_curves", "decision_boundaries", "hidden_tiles",
                                  "digit_grid", "pca_panels", "lr_finder_curves",
                                  "overlaid_curves", "size_sweep", "bench_sweep",
                                  "filter_grid", "bench_convnets"])
def test_every_picture_is_readable_at_100_percent_and_every_scale_labelled(figures, name):
    """Drawn no wider than the page's column (so the browser does not shrink it), no text
    under 13 px at ``plots.DPI``, and every axis that shows tick labels has a label."""
    fig = figures[name]
    assert fig.get_figwidth() * plots.DPI <= 1180, f"{name}: {fig.get_figwidth()} in wide"
    for text in fig.findobj(plots.matplotlib.text.Text):
        if text.get_visible() and text.get_text().strip():
            px = text.get_fontsize() * plots.DPI / 72
            assert px >= 13, f"{name}: {text.get_text()!r} is {px:.1f} px"
    for i, ax in enumerate(fig.axes):
        if not ax.axison:
            continue
        if _shown(ax.get_xticklabels()):
            assert ax.get_xlabel(), f"{name}: axes {i} x axis has ticks and no label"
        if _shown(ax.get_yticklabels()) and [t.get_text() for t in
                                            _shown(ax.get_yticklabels())] != ["= 0"]:
            assert ax.get_ylabel(), f"{name}: axes {i} y axis has ticks and no label"


def _zero_strips(fig):
    return [ax for ax in fig.axes if [t.get_text() for t in ax.get_yticklabels()] == ["= 0"]]


def test_loss_difference_panel_marks_every_exact_zero(figures):
    """A log axis cannot show 0: each epoch whose |loss numpy − loss torch| is exactly 0 is
    a tick in the "= 0" strip under the panel (x = the epoch), and so is each lockstep step
    with no parameter difference (one row per dtype)."""
    loss_strip, div_strip = _zero_strips(figures["model_curves"])
    ticks = [line for line in loss_strip.lines if line.get_marker() == "|"]
    assert [list(t.get_xdata()) for t in ticks] == [list(range(1, 21, 2))]
    rows = [list(t.get_xdata()) for t in div_strip.lines if t.get_marker() == "|"]
    assert rows == [[1, 3], []]       # float64 is 0 at steps 1 and 3, float32 never


def test_a_difference_that_is_zero_everywhere_is_drawn_as_zeros():
    fig = plots.model_curves("m", {"numpy": [1.0, 0.5], "torch": [1.0, 0.5]}, None)
    strip, = _zero_strips(fig)
    ticks = [line for line in strip.lines if line.get_marker() == "|"]
    assert [list(t.get_xdata()) for t in ticks] == [[1, 2]]
    assert fig.axes[1].get_title() == "loss difference: none"
    plots.plt.close(fig)


@pytest.mark.parametrize("module", ["document", "plots", "report"])
def test_report_functions_are_short(module):
    """No function of the report's modules is over 80 lines (the issue's rule for parity/)."""
    path = pathlib.Path(study_report.__file__).with_name(f"{module}.py")
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            assert n <= 80, f"{module}.{node.name}: {n} lines"


@pytest.mark.parametrize("verdicts,cell", [((True, True), "met"), ((True, False), "met / NOT met"),
                                           ((False, False), "NOT met")])
def test_met_cell_names_each_twin_only_when_they_differ(verdicts, cell):
    runs = {impl: {"target": "t", "target_met": v} for impl, v in zip(("numpy", "torch"), verdicts)}
    assert document._met_pair({"runs": runs, "capped": False}) == cell
