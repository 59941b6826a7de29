"""The study's jobs (``parity.study.executor.plan_jobs``): every training run (model, impl,
seed, epochs) is trained by exactly one job, the claims audit reads the study's runs instead
of training its own, ``--models`` limits the claims, and the audit's rows do not depend on
who trained a run (the study's jobs, the standalone audit) nor on the number of workers."""

import collections
import json
import os
import stat

import pytest

from parity.audit import claims
from parity.catalogue import zoo
from parity.study import executor, jobs
from parity.study import plan as study_plan
from parity.study import report as study_report
from parity.study.seed_sweep import success_rate

PLANS = {"full": lambda: study_plan.make_plan(),
         "quick": lambda: study_plan.make_plan(quick=True),
         "seed 3": lambda: study_plan.make_plan(seed=3),
         "spiral004 only": lambda: study_plan.make_plan(["spiral004"]),
         "quick, --seeds 0-6": lambda: study_plan.make_plan(quick=True,
                                                            sweep_seeds=tuple(range(7)))}


@pytest.fixture(scope="module", params=sorted(PLANS))
def planned(request):
    plan = PLANS[request.param]()
    return request.param, plan, executor.plan_jobs(plan)


def test_no_run_is_trained_twice(planned):
    """Same (model, impl, seed, epochs) → same run: one job trains it, every reader shares."""
    name, plan, job_list = planned
    count = collections.Counter(k for j in job_list for k in j.trains)
    twice = sorted(k for k, n in count.items() if n > 1)
    assert not twice, f"{name} plan trains these runs more than once: {twice}"
    keys = [j.key for j in job_list]
    assert len(keys) == len(set(keys)), f"{name} plan: duplicate job keys"
    if "spiral003" in plan.models:      # the width search's h = 128 is spiral003 itself
        base = zoo.get("spiral003")
        for j in job_list:
            if j.func is jobs.job_hidden:
                same = jobs.hidden_size_spec(j.kwargs["h"]).layers == base.layers
                assert not (same and j.kwargs["epochs"] == plan.epochs["spiral003"]), j.key


def test_every_claim_measurement_is_planned(planned):
    """Each run, ceiling and XOR measurement the claims of the plan's models read has a job;
    the xor-sigmoid run records its per-epoch accuracy instead of a second training."""
    name, plan, job_list = planned
    selected, needs = executor._claims_needs(plan)
    assert [c.id for c in selected] == [c.id for c in claims.CLAIMS
                                        if claims.claim_model(c) in plan.models]
    trained = {k: j for j in job_list for k in j.trains}
    missing = sorted(needs.runs - set(trained))
    assert not missing, f"{name} plan: claims read runs no job trains: {missing}"
    keys = {j.key for j in job_list}
    for k in needs.ceilings:
        assert f"claims/bayes/{executor._ceiling_name(k)}" in keys, (name, k)
    for init, impl, seed, epochs in needs.xor:
        if init == "catalogue":
            job = trained[("xor-sigmoid", impl, seed, epochs)]
            kw = job.kwargs
            assert kw.get("track_accuracy") or ("xor-sigmoid", impl, seed, epochs) in kw.get(
                "track", ()), f"{name} plan: {job.key} does not record the accuracy curve"
        else:
            assert f"claims/xor/{init}/{impl}" in keys, (name, init, impl)
    assert ("claims/worked" in keys) == needs.worked
    assert all(j.reported for j in job_list if j.key.startswith("claims/")), name


def test_full_plan_shares_the_studys_runs_with_the_claims():
    """In the full plan every claim's own run is a study training; only the seed spreads of
    cs231n-linear (seeds 1-19) are trained for the audit alone (xor-relu's are the sweep's)."""
    plan = study_plan.make_plan()
    job_list = executor.plan_jobs(plan)
    _, needs = executor._claims_needs(plan)
    own = {k: j.key for j in job_list for k in j.trains}
    at_seed = {k for k in needs.runs if k[2] == plan.audit_seed}
    assert all(own[k].startswith("train/") for k in at_seed), sorted(
        (k, own[k]) for k in at_seed if not own[k].startswith("train/"))
    claims_only = sorted({(k[0], k[1]) for k, key in own.items() if key.startswith("claims/")})
    assert claims_only == [("cs231n-linear", "numpy")], claims_only
    assert all(own[("xor-relu", "numpy", s, 2000)].startswith(("xor/", "train/"))
               for s in range(20))


def test_models_limit_the_claims():
    """``study --models a b`` audits only the claims about a and b (a failing claim's
    corrected setting is still measured: it is trained for the audit)."""
    plan = study_plan.make_plan(["spiral004"])
    selected, needs = executor._claims_needs(plan)
    assert {claims.claim_model(c) for c in selected} == {"spiral004"}
    assert {c.id for c in selected} == {"004-params", "004-loss-start", "004-loss-end",
                                        "004-train-acc", "004-heldout"}
    assert {k[0] for k in needs.runs} == {"spiral004", "spiral004-corrected"}
    plan = study_plan.make_plan(["digits-3layer"])
    assert executor._claims_needs(plan) == ([], None)
    assert not [j for j in executor.plan_jobs(plan) if j.key.startswith("claims/")]
    with pytest.raises(ValueError, match="unknown model"):
        claims.select(models=["no-such-model"])


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
def test_the_work_splits_so_both_workers_stay_busy(quick):
    """Dealt longest first (each job to the worker free first: ``list_schedule``), the
    estimated costs of a plan fill two workers to within 1% of each other: no job is so long
    that one worker idles while the other finishes it."""
    assert executor.list_schedule([5, 4, 3, 3, 3], 2) == 10     # {5, 3}, {4, 3, 3}
    assert executor.list_schedule([3, 3, 3, 4, 5], 2) == 11     # shortest first: {3, 3, 5}
    assert executor.list_schedule([2, 1], 1) == 3
    costs = sorted((j.cost for j in executor.plan_jobs(study_plan.make_plan(quick=quick))),
                   reverse=True)
    assert all(c > 0 for c in costs)
    assert costs[0] < sum(costs) / 8, costs[:3]
    assert executor.list_schedule(costs, 2) <= 1.01 * sum(costs) / 2


@pytest.mark.parametrize("impl", ["numpy", "torch"])
def test_tracked_accuracy_is_the_xor_measurement(impl):
    """XOR's stable epoch read from the study's xor-sigmoid run (``job_train`` /
    ``job_runs`` with tracking) equals ``measure_xor_stable_epoch``'s own training."""
    epochs = 60
    own = claims.measure_xor_stable_epoch(impl, "catalogue", seed=0, epochs=epochs)
    t = jobs.job_train("xor-sigmoid", impl, 0, epochs, grid=4, tile_grid=2, track_accuracy=True)
    assert len(t["train_accuracy_curve"]) == epochs + 1
    assert claims.stable_epoch(t["train_accuracy_curve"], t["run"]["final_loss"]) == own
    key = ("xor-sigmoid", impl, 0, epochs)
    r = jobs.job_runs((key,), track=(key,))
    assert r["runs"][0]["final_loss"] == t["run"]["final_loss"]
    assert claims.stable_epoch(r["train_accuracy_curves"][0], r["runs"][0]["final_loss"]) == own
    untracked = jobs.job_train("xor-sigmoid", impl, 0, epochs, grid=4, tile_grid=2)
    assert "train_accuracy_curve" not in untracked
    assert untracked["run"]["loss"] == t["run"]["loss"]       # tracking changes no step


# ── a small study with the claims: the same rows as the standalone audit ──────────────────

MODELS = ["spiral004", "xor-sigmoid"]
SMALL = dict(quick=True, epochs_override=20, diverge_steps=3, xor_seeds=(0, 1), bench=False,
             grid=20, tile_grid=5)


def _no_seconds(o):
    if isinstance(o, dict):
        return {k: _no_seconds(v) for k, v in o.items() if k != "seconds"}
    if isinstance(o, list):
        return [_no_seconds(v) for v in o]
    return o


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("claims") / "report"
    return out, study_report.study(MODELS, out=str(out), **SMALL)


def test_study_claims_equal_the_standalone_audit(small):
    """The rows the study assembles from its jobs' runs are those of an audit that trains
    every run itself (same seed, same epochs)."""
    _, s = small
    c = s.results["claims"]
    assert c["available"], c.get("note")
    plan = study_plan.make_plan(MODELS, **SMALL)
    selected = claims.select(models=MODELS)
    alone = claims.audit_rows(selected, plan.audit_seed, plan.quick, epochs_of=plan.epochs_for)
    assert _no_seconds(c["rows"]) == _no_seconds(alone)
    assert [r["id"] for r in c["rows"]] == [x.id for x in selected]
    assert c["models"] == sorted(MODELS) and c["left_out"] == len(claims.CLAIMS) - len(selected)
    kinds = s.results["timing"]["job_cpu_seconds_by_kind"]
    assert "claims" in kinds and s.results["timing"]["makespan_cpu_seconds"] > 0


def test_claims_json_is_written_with_the_umask_mode(small):
    out, s = small
    path = out / "claims.json"
    assert json.loads(path.read_text()) == json.loads(json.dumps(s.results["claims"]["rows"]))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask


def test_a_failing_claims_part_is_reported_and_the_study_goes_on(tmp_path, monkeypatch):
    def broken(**kwargs):
        raise ArithmeticError("no ceiling today")
    monkeypatch.setattr(executor, "job_ceiling", broken)
    s = study_report.study(["spiral004"], out=str(tmp_path / "r"), **SMALL)
    c = s.results["claims"]
    assert not c["available"]
    assert "claims/bayes/two_spirals_seed004" in c["note"] and "no ceiling today" in c["note"]
    assert s.results["models"][0]["runs"]["numpy"]["epochs"] == 20
    assert not (tmp_path / "r" / "claims.json").exists()


def test_the_sweep_from_shared_runs_is_success_rate(small):
    """The XOR sweep assembled from the study's runs (seed 0 is the xor-sigmoid training
    itself) is what ``seed_sweep.success_rate`` finds training every seed anew."""
    _, s = small
    entry = s.results["xor_success"]["xor-sigmoid"]
    alone = success_rate(zoo.get("xor-sigmoid"), SMALL["xor_seeds"], epochs=20)
    for impl in ("numpy", "torch"):
        assert entry[impl]["rate"] == alone[impl]["rate"], impl
        assert entry[impl]["succeeded"] == alone[impl]["succeeded"], impl
        assert entry[impl]["accuracies"] == {str(k): v for k, v in
                                             alone[impl]["accuracies"].items()}, impl
    assert entry["both"] == alone["both"]


@pytest.mark.slow   # two spawned workers importing torch: ~10-25 s on the shared machine
def test_two_workers_give_the_same_claims(small, tmp_path):
    _, one = small
    two = study_report.study(MODELS, out=str(tmp_path / "r"), jobs=2, **SMALL)
    assert _no_seconds(two.results["claims"]) == _no_seconds(one.results["claims"])
    assert _no_seconds(two.results["xor_success"]) == _no_seconds(one.results["xor_success"])
