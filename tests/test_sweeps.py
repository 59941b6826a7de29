"""Study sweeps on any executor (``parity.study.executors``, ``success_rates``,
``seed_report``): --seeds parsing and Wilson intervals, the sweep's jobs and rates, the
announcement of the work before it starts, ``--executor`` values, the same numbers from any
``concurrent.futures.Executor`` (a Dask cluster of two processes included), and drift records
named by CPU capability and threads."""

import io
import json
import math
import os
import sys
from concurrent.futures import Executor, Future, ThreadPoolExecutor

import pytest
from test_study import _stable  # results.json without seconds, timings and meta

from parity import cli
from parity.study import document, executor, executors, seed_report, success_rates
from parity.study import plan as study_plan
from parity.tools import drift

TINY = dict(epochs_override=20, diverge_steps=5, xor_seeds=(0, 1), claims=False, bench=False,
            grid=40, tile_grid=10)


# ── Wilson intervals and --seeds ─────────────────────────────────────────────────────────────

@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 10), (5, 10), (10, 10), (3, 20),
                                 (17, 20), (1, 100), (99, 100), (0, 4), (4, 4)])
def test_wilson_interval_equals_scipys(k, n):
    """Against SciPy's own Wilson interval (``binomtest(...).proportion_ci('wilson')``)."""
    stats = pytest.importorskip("scipy.stats", reason="SciPy gives the reference interval")
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = success_rates.wilson_interval(k, n)
    assert math.isclose(low, ci.low, rel_tol=1e-12, abs_tol=1e-15), ("low", k, n, low, ci.low)
    assert math.isclose(high, ci.high, rel_tol=1e-12, abs_tol=1e-15), ("high", k, n)
    assert low <= k / n <= high


def test_wilson_interval_has_width_at_all_or_nothing():
    """4/4 is no certainty: the interval reaches down to ~0.51 (Wald's would be [1, 1])."""
    low, high = success_rates.wilson_interval(4, 4)
    assert high == 1.0 and 0.5 < low < 0.52
    with pytest.raises(ValueError, match="0 <= k <= n"):
        success_rates.wilson_interval(5, 4)


@pytest.mark.parametrize("text,seeds", [("0-3", (0, 1, 2, 3)), ("0,3,7", (0, 3, 7)),
                                        ("7,0-2,2", (0, 1, 2, 7)), ("5", (5,)),
                                        (" 1 - 2 ", (1, 2))])
def test_parse_seeds(text, seeds):
    assert success_rates.parse_seeds(text) == seeds


@pytest.mark.parametrize("text,message", [("3-1", "empty"), ("a", "not a seed"),
                                          ("0-", "not a seed"), ("", "give seeds"),
                                          ("-1", "not a seed"), ("0-200000", "at most"),
                                          (str(2**64), r"\[0, 2\*\*64\)")])
def test_parse_seeds_refuses(text, message):
    with pytest.raises(ValueError, match="--seeds:? .*" + message):
        success_rates.parse_seeds(text)


# ── the sweep's jobs, rates and section ──────────────────────────────────────────────────────

def test_sweep_plans_every_targeted_model_per_seed_once():
    """Every model with a target, both twins, every seed: trained by exactly one job (the
    main training where the seed is the study's own)."""
    plan = study_plan.make_plan(["xor-relu", "cs231n-linear", "spiral003"], quick=True,
                                sweep_seeds=(0, 1, 2, 3, 4, 5, 6))
    job_list = executor.plan_jobs(plan)
    trained = [k for j in job_list for k in j.trains]
    assert len(trained) == len(set(trained))
    for name in success_rates.swept_models(plan.models):
        for impl in ("numpy", "torch"):
            for s in plan.sweep_seeds:
                assert (name, impl, s, plan.epochs[name]) in trained, (name, impl, s)
    assert any(j.key.startswith("seeds/") for j in job_list)


def test_sweep_result_counts_rates_intervals_and_split_seeds():
    plan = study_plan.make_plan(["xor-relu"], quick=True, sweep_seeds=(0, 1, 2, 3))
    e = plan.epochs["xor-relu"]
    met = {"numpy": {0, 1, 2}, "torch": {0, 2, 3}}
    runs = {("xor-relu", impl, s, e): {"target_met": s in met[impl], "train_accuracy": 0.5 + s,
                                       "test_accuracy": -1.0, "final_loss": float(s)}
            for impl in met for s in range(4)}
    r = success_rates.sweep_result(plan, runs)["models"]["xor-relu"]
    assert (r["numpy"]["successes"], r["numpy"]["n"], r["numpy"]["failed"]) == (3, 4, [3])
    assert (r["numpy"]["low"], r["numpy"]["high"]) == success_rates.wilson_interval(3, 4)
    assert r["torch"]["failed"] == [1] and r["numpy"]["accuracy"]["2"] == 2.5
    assert r["both"]["successes"] == 2 and r["both"]["split"] == [1, 3]


def test_seed_section_states_each_rate_with_its_interval(tmp_path):
    plan = study_plan.make_plan(["xor-relu"], quick=True, sweep_seeds=(0, 1, 2, 3))
    e = plan.epochs["xor-relu"]
    runs = {("xor-relu", impl, s, e): {"target_met": s != 3, "train_accuracy": 1.0,
                                       "final_loss": 0.1} for impl in ("numpy", "torch")
            for s in range(4)}
    doc = document.Doc(str(tmp_path))
    seed_report.seed_sweep_section(doc, {"seed_sweep": success_rates.sweep_result(plan, runs)})
    md = doc.markdown()
    low, high = success_rates.wilson_interval(3, 4)
    assert "Success rates over seeds" in md and "seeds 0–3" in md and "Wilson" in md
    assert f"3/4 = 75% [{100 * low:.0f}%, {100 * high:.0f}%]" in md
    empty = document.Doc(str(tmp_path))
    seed_report.seed_sweep_section(empty, {})
    assert empty.blocks == []


# ── the announcement, --executor, a missing Dask ─────────────────────────────────────────────

class _Stdout(io.StringIO):
    """Records the text present at each flush."""

    def __init__(self):
        super().__init__()
        self.flushed: list[str] = []

    def flush(self):
        self.flushed.append(self.getvalue())


def test_study_announces_jobs_and_estimate_flushed_before_any_job(monkeypatch, tmp_path, capsys):
    out = _Stdout()
    seen = {}

    def stop(job_list, n_workers, *a, **k):
        seen.update(flushed=list(out.flushed), n=len(job_list), workers=n_workers)
        raise ValueError("stopped before the first job")
    monkeypatch.setattr(executor, "execute", stop)
    monkeypatch.setattr(sys, "stdout", out)
    code = cli.main(["study", "--models", "xor-relu", "--quick", "--jobs", "3",
                     "--out", str(tmp_path / "r")])
    assert code == 2 and seen, "execute was not reached"
    line = seen["flushed"][0]
    assert line.startswith(f"study: {seen['n']} jobs, estimated ") and "CPU-min," in line
    assert "min wall on 3 worker(s)" in line and seen["workers"] == 3


def test_estimate_is_the_sum_and_the_longest_first_schedule():
    jobs_ = [executor.Job(str(i), None, {}, c) for i, c in enumerate([1.0, 5.0, 2.0, 2.0])]
    assert executor.estimate(jobs_, 2) == (10.0, 5.0)
    assert executor.estimate(jobs_, 1) == (10.0, 10.0)


@pytest.mark.parametrize("value", ["dask:/host:1", "dask://host", "dask://host:0",
                                   "dask://host:70000", "ray", "dask://:8786", "Dask"])
def test_bad_executor_is_one_line_exit_2(capsys, tmp_path, value):
    code = cli.main(["study", "--executor", value, "--out", str(tmp_path / "r")])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "--executor" in err and value in err, err
    assert not (tmp_path / "r").exists()


def test_missing_dask_names_the_extra(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)    # import distributed fails
    code = cli.main(["study", "--executor", "dask", "--out", str(tmp_path / "r")])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "nn-parity[dask]" in err, err


def test_bad_seeds_is_one_line_exit_2(capsys, tmp_path):
    code = cli.main(["study", "--seeds", "9-2", "--out", str(tmp_path / "r")])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "--seeds" in err, err


def test_executor_addresses():
    assert executors.parse_executor("dask://10.0.0.5:8786").address == "tcp://10.0.0.5:8786"
    assert executors.parse_executor(None).kind == executors.parse_executor("local").kind
    assert executors.parse_executor("dask").kind == "dask"


# ── the same numbers from any executor ───────────────────────────────────────────────────────

def _tiny_plan():
    return study_plan.make_plan(["xor-relu"], sweep_seeds=(0, 1, 2), **TINY)


@pytest.fixture(scope="module")
def in_process():
    """The tiny sweep study's jobs run in this process (no executor): the numbers to match."""
    return executor.run_study(_tiny_plan())


class SerialExecutor(Executor):
    """The least an ``Executor`` does: run each submitted call at once, in this process."""

    def submit(self, fn, /, *args, **kwargs):
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def test_any_executor_gives_the_same_results(in_process):
    """Any ``concurrent.futures.Executor`` that runs one job per process at a time: here a
    serial one (~2 s), its jobs submitted longest first through ``run_job``."""
    s = executor.run_study(_tiny_plan(), jobs=2, executor=SerialExecutor())
    assert s.results["meta"]["executor"]["kind"] == "SerialExecutor"
    assert _stable(s.results) == _stable(in_process.results)
    assert s.results["seed_sweep"]["models"]["xor-relu"]["numpy"]["n"] == 3


def test_a_thread_pool_is_refused():
    """Two jobs in one process at once would share torch's seed, thread counts and the
    worked failure's planted bug: with 2 threads the worked failure's float64 rounding
    differences came out different (layer 37's max_abs 1.8e-17 vs 3.6e-17)."""
    with ThreadPoolExecutor(2) as ex, pytest.raises(ValueError, match="thread pool"):
        executor.run_study(_tiny_plan(), jobs=2, executor=ex)


@pytest.mark.slow   # a LocalCluster of two spawned processes importing torch: ~10-20 s
def test_a_two_process_dask_cluster_gives_bit_identical_results(in_process):
    pytest.importorskip("distributed", reason="Dask is the optional extra nn-parity[dask]")
    with executors.opened(executors.parse_executor("dask"), 2) as ex:
        s = executor.run_study(_tiny_plan(), jobs=ex.workers, executor=ex.executor,
                               executor_meta=ex.meta)
        # glibc's adaptive mmap threshold stays on in the workers (Dask's default environ
        # turns it off: 10x the system CPU, every step's arrays mmapped and unmapped)
        trim = ex.executor.submit(os.environ.get, "MALLOC_TRIM_THRESHOLD_").result()
    assert trim is None, f"the workers run with MALLOC_TRIM_THRESHOLD_={trim}"
    meta = s.results["meta"]["executor"]
    assert meta["kind"] == "dask" and meta["workers"] == 2
    assert len(meta["worker_environments"]) == 1
    a = json.dumps(_stable(s.results), sort_keys=True)
    b = json.dumps(_stable(in_process.results), sort_keys=True)
    assert a == b     # JSON text: floats written with repr, so equal text is equal bits


# ── drift records per CPU capability ─────────────────────────────────────────────────────────

def test_drift_records_of_two_capabilities_are_kept_apart_and_combined(tmp_path, monkeypatch):
    """One cheap model, one epoch, recorded as if on two CPUs: two files, two columns."""
    paths = []
    for aten in ("AVX2", "DEFAULT"):
        monkeypatch.setattr(drift, "kernels_in_force", lambda a=aten: {"aten": a, "numpy": []})
        paths.append(drift.record(str(tmp_path), epochs=1, models=["cs231n-linear"]))
    assert paths[0] != paths[1] and "-cpuavx2-t" in paths[0] and "-cpudefault-t" in paths[1]
    rec = drift.read_record(paths[1])
    assert rec["kernels"]["aten"] == "DEFAULT" and rec["env"] in paths[1]
    table = drift.combine(str(tmp_path))
    assert len(table["envs"]) == 2 and all("-cpu" in e for e in table["envs"])
