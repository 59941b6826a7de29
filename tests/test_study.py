"""The side-by-side study (``parity.study``): the report's files, its embedded pictures, both
twins per model in results.json, atomic replacement of a previous report, results that do not
depend on the number of worker processes, and the prediction rule behind the decision-boundary
pictures."""

import base64
import json
import os
import shutil

import numpy as np
import pytest

from parity import zoo
from parity.study import document, executor, jobs, plots
from parity.study import plan as study_plan
from parity.study import report as study_report
from parity.train import run

MODELS = ["cs231n-linear", "xor-relu"]
TINY = dict(epochs_override=20, diverge_steps=5, xor_seeds=(0, 1), claims=False, bench=False,
            grid=40, tile_grid=10)


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


def test_report_files_exist_and_html_embeds_every_png(report):
    out, _ = report
    for name in ("index.md", "index.html", "results.json"):
        assert (out / name).is_file(), name
    pngs = sorted(os.listdir(out / "img"))
    # per model: decision boundaries (2-D inputs) and curves
    assert pngs == sorted(f"{m}-{kind}.png" for m in MODELS for kind in ("boundary", "curves"))
    html = (out / "index.html").read_text()
    assert html.count("data:image/png;base64,") == len(pngs)
    md = (out / "index.md").read_text()
    for png in pngs:
        data = base64.b64encode((out / "img" / png).read_bytes()).decode("ascii")
        assert f"data:image/png;base64,{data}\"" in html, png
        assert f"](img/{png})" in md, png
    assert "claims audit not run (disabled)" in md


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


def test_bad_plan_values_are_rejected():
    with pytest.raises(ValueError, match="diverge_steps"):
        study_plan.make_plan(["xor-relu"], diverge_steps=0)
    with pytest.raises(ValueError, match="unknown model"):
        study_plan.make_plan(["no-such-model"])
    with pytest.raises(ValueError, match="jobs"):
        executor.run_study(study_plan.make_plan(["xor-relu"]), jobs=0)


# ── capped runs carry no target verdict ──────────────────────────────────────────────────

def _met_cells(md: str, name: str) -> str:
    """The "met np / torch" cell of ``name``'s row in the training table of index.md."""
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
        assert _met_cells(md, m["model"]) == f"{document.NOT_MEASURED} / {document.NOT_MEASURED}"
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
    assert _met_cells(md, "xor-relu") == f"{document.NOT_MEASURED} / {document.NOT_MEASURED}"
    lines = study_report.render_summary(s.results).splitlines()
    assert document.NOT_MEASURED not in next(x for x in lines if x.startswith("cs231n-linear"))
    assert document.NOT_MEASURED in next(x for x in lines if x.startswith("xor-relu"))
