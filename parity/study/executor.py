"""Run the study's jobs in order, in spawned workers or on any ``concurrent.futures.Executor``
(Dask's among them: ``parity.study.executors``); assemble ``Study`` results.

The plan (``plan_jobs``) trains every run — (model, impl, seed, epochs) — in exactly one job:
the per-model trainings, then the XOR seed sweeps and the claims audit, which read those runs
and add jobs only for runs nobody else trains; the audit's other measurements (Bayes
ceilings, XOR from the document's initialization, the worked example) are jobs of their own.
The workers take the jobs longest (estimated CPU seconds) first, so both stay busy to the end.

Results are keyed by job, never by completion order, so everything except wall-clock seconds
is identical for any number of workers and any executor (each job on one thread). Before
the first job, ``describe_estimate`` states the jobs and their estimated CPU and wall minutes.
Workers ignore SIGINT; on an interrupt the parent terminates them (a Dask cluster it started
is closed; on a remote scheduler the jobs not yet running are cancelled), so nothing
outlives the run."""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import platform
import signal
import sys
import threading
import time
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from parity.audit import claims
from parity.catalogue import zoo
from parity.catalogue.spec import ModelSpec
from parity.study import success_rates
from parity.study.executors import WORKER_THREADS, run_job
from parity.study.jobs import (
    hidden_size_spec,
    job_ceiling,
    job_hidden,
    job_lr_finder,
    job_parity,
    job_runs,
    job_train,
    job_worked,
    job_worked_failure,
    job_xor_stable,
)
from parity.study.plan import SEED_CHUNK, Plan
from parity.study.progress import _BARS, _init_worker
from parity.study.seed_sweep import success_of
from parity.twins import IMPLS


@dataclass(frozen=True)
class Failed:
    """A ``reported`` job's exception, returned as its result (the claims audit's parts: a
    failure there is reported in the report, never hidden, and does not stop the study)."""

    error: str


def _timed(func, kwargs: dict, reported: bool = False):
    """``(result, wall seconds, CPU seconds of this process)``; ``reported``: an exception
    becomes the result ``Failed``."""
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        result = func(**kwargs)
    except Exception as e:
        if not reported:
            raise
        result = Failed(f"{type(e).__name__}: {e}")
    return result, time.perf_counter() - t0, time.process_time() - c0


@dataclass
class Job:
    key: str
    func: object
    kwargs: dict
    cost: float         # estimated CPU seconds: the longest jobs start first
    trains: tuple = ()  # the runs (model, impl, seed, epochs) it trains, in its result's order
    reported: bool = False


# ---- cost estimates (CPU seconds, one thread; only the order of the jobs depends on them) ---
# CPU seconds per optimizer step: a·layers + b·rows·Σ(in·out), fitted to the full study's
# per-job CPU seconds (float64, one thread; within ±2× of every training job measured).
_STEP = {"numpy": (1.9e-5, 2.5e-10), "torch": (5.6e-5, 2.7e-10)}


def _step_cost(spec: ModelSpec, impl: str, rows: int) -> float:
    width = spec.num_parameters()   # ≈ Σ in·out of the Linear layers, which dominate
    a, b = _STEP[impl]
    return a * len(spec.layers) + b * rows * width


def _parity_cost(spec: ModelSpec, steps: int, rows: int) -> float:
    """``job_parity``: ``steps`` lockstep steps of both twins in two dtypes (~2.7 steps' worth
    per step and twin, measured), plus the one-step checks."""
    return 0.2 + 2.7 * steps * sum(_step_cost(spec, impl, rows) for impl in IMPLS)


def _run_cost(spec: ModelSpec, impl: str, epochs: int, n_train: int) -> float:
    rows = spec.batch_size or n_train
    return epochs * math.ceil(n_train / rows) * _step_cost(spec, impl, rows)


# CPU seconds per Monte Carlo point of a Bayes ceiling (measured at 4000 points, loaded machine)
_CEILING_SECONDS_PER_POINT = {"cs231n_spiral": 1e-4, "two_spirals_as_written": 3.4e-5,
                              "two_spirals_corrected": 3.4e-5, "two_spirals_seed004": 1.1e-5}


def _key_cost(key: tuple) -> float:
    model, impl, seed, epochs = key
    spec = zoo.get(model)
    return _run_cost(spec, impl, epochs, len(spec.data(seed).X_train))


# ---- the plan as jobs ---------------------------------------------------------------------------
def plan_jobs(plan: Plan) -> list[Job]:
    """Every job of ``plan``, each training run (model, impl, seed, epochs) in exactly one:
    the study's trainings first, then the seed sweeps and the claims audit take what those
    trained and add jobs only for runs nobody else makes."""
    selected, needs = _claims_needs(plan)
    tracked = _tracked(needs)
    jobs = _train_jobs(plan, tracked)
    made = {k for j in jobs for k in j.trains}
    jobs += _sweep_jobs(plan, made, tracked)
    jobs += _seed_sweep_jobs(plan, made, tracked)
    jobs += _hidden_jobs(plan)
    if "digits-minibatch" in plan.models:
        spec = zoo.get("digits-minibatch")
        for impl in IMPLS:
            jobs.append(Job(f"lr_finder/{impl}", job_lr_finder,
                            dict(name="digits-minibatch", impl=impl, seed=plan.seed_for(spec)),
                            0.5))
    if plan.worked_failure:
        jobs.append(Job("worked-failure", job_worked_failure,
                        dict(mutant=plan.worked_failure, seed=0), 3.0))
    if needs is not None:
        jobs += _claims_jobs(plan, needs, made, tracked)
    return jobs


def _claims_needs(plan: Plan) -> tuple:
    """``(claims selected, their parity.audit.claims.Needs)``: the claims about the plan's
    models; ``(selected, None)`` when there is nothing to measure (or no audit)."""
    if not plan.claims:
        return [], None
    selected = claims.select(models=plan.models)
    if not selected:
        return selected, None
    return selected, claims.needs(selected, plan.audit_seed, plan.quick, plan.epochs_for)


def _tracked(needs) -> set:
    """The runs whose per-epoch train accuracy a claim reads (XOR's stable epoch from the
    catalogue's initialization is the xor-sigmoid run itself)."""
    if needs is None:
        return set()
    return {("xor-sigmoid", impl, seed, epochs)
            for init, impl, seed, epochs in needs.xor if init == "catalogue"}


def _claims_jobs(plan: Plan, needs, made: set, tracked: set) -> list[Job]:
    """What the claims audit measures beyond the study's runs: the runs nobody else trains
    (seed spreads, corrected settings), Bayes ceilings, XOR from the document's
    initialization, the worked example. Their failures are reported, not raised."""
    jobs = _runs_jobs("claims/runs", sorted(needs.runs), made, tracked, with_curve=True)
    for key in sorted(needs.ceilings):
        jobs.append(Job(f"claims/bayes/{_ceiling_name(key)}", job_ceiling,
                        dict(key=key, seed=plan.audit_seed, n_samples=needs.n_samples),
                        _ceiling_cost(key, needs.n_samples)))
    for init, impl, seed, epochs in sorted(needs.xor):
        if init == "catalogue":
            jobs += _runs_jobs("claims/runs", [("xor-sigmoid", impl, seed, epochs)], made,
                               tracked, with_curve=True)
            continue
        jobs.append(Job(f"claims/xor/{init}/{impl}", job_xor_stable,
                        dict(init=init, impl=impl, seed=seed, epochs=epochs),
                        _key_cost(("xor-sigmoid", impl, seed, epochs))))
    if needs.worked:
        jobs.append(Job("claims/worked", job_worked, {}, 0.05))
    for j in jobs:
        j.reported = True
    return jobs


def _ceiling_name(key: tuple) -> str:
    return key[0] + "/" + ",".join(f"{k}={v:g}" for k, v in key[1])


def _ceiling_cost(key: tuple, n_samples: int) -> float:
    """Rough CPU seconds of one Bayes ceiling (measured scale, ±2×)."""
    return n_samples * _CEILING_SECONDS_PER_POINT.get(key[0], 1e-3)


def _reuses_main_run(plan: Plan, h: int) -> bool:
    """The search's h = 128 is spiral003 itself: reuse its run when the epochs agree."""
    base = zoo.get("spiral003")
    return ("spiral003" in plan.models and hidden_size_spec(h).layers == base.layers
            and (plan.hidden_epochs or base.epochs) == plan.epochs["spiral003"])


def _train_jobs(plan: Plan, tracked: set) -> list[Job]:
    """Per model: both twins' training runs (with the pictures' arrays) and the parity job.
    A run in ``tracked`` records its per-epoch train accuracy."""
    jobs: list[Job] = []
    for name in plan.models:
        spec = zoo.get(name)
        seed, epochs = plan.seed_for(spec), plan.epochs[name]
        n = len(spec.data(seed).X_train)
        for impl in IMPLS:
            track = (name, impl, seed, epochs) in tracked
            jobs.append(Job(f"train/{name}/{impl}", job_train,
                            dict(name=name, impl=impl, seed=seed, epochs=epochs,
                                 grid=plan.grid, tile_grid=plan.tile_grid,
                                 track_accuracy=track),
                            _run_cost(spec, impl, epochs, n), trains=((name, impl, seed, epochs),)))
        rows = spec.batch_size or n
        jobs.append(Job(f"parity/{name}", job_parity,
                        dict(name=name, seed=seed, steps=plan.diverge_steps),
                        _parity_cost(spec, plan.diverge_steps, rows)))
    return jobs


def _runs_jobs(prefix: str, keys, made: set, tracked: set, with_curve: bool = False) -> list[Job]:
    """Jobs ``prefix/model/impl/i`` training the runs of ``keys`` not in ``made`` (which they
    join), ``SEED_CHUNK`` seeds per job; runs in ``tracked`` record their train accuracy."""
    todo: dict = {}
    for k in keys:
        if k not in made:
            made.add(k)
            todo.setdefault(k[:2], []).append(k)
    jobs = []
    for (model, impl), ks in todo.items():
        ks.sort(key=lambda k: (k[3], k[2]))
        for i in range(0, len(ks), SEED_CHUNK):
            chunk = tuple(ks[i:i + SEED_CHUNK])
            jobs.append(Job(f"{prefix}/{model}/{impl}/{i // SEED_CHUNK}", job_runs,
                            dict(keys=chunk, with_curve=with_curve,
                                 track=tuple(k for k in chunk if k in tracked)),
                            sum(_key_cost(k) for k in chunk), trains=chunk))
    return jobs


def sweep_keys(plan: Plan, name: str, impl: str) -> list[tuple]:
    """The runs of the XOR seed sweep of ``name`` on ``impl``."""
    epochs = plan.xor_epochs or zoo.get(name).epochs
    return [(name, impl, s, epochs) for s in plan.xor_seeds]


def _sweep_jobs(plan: Plan, made: set, tracked: set) -> list[Job]:
    return [j for name in ("xor-relu", "xor-sigmoid") if name in plan.models for impl in IMPLS
            for j in _runs_jobs("xor", sweep_keys(plan, name, impl), made, tracked)]


def _seed_sweep_jobs(plan: Plan, made: set, tracked: set) -> list[Job]:
    """``--seeds``: every model with a target, both twins, once per seed (``seeds/...``
    jobs for the runs nobody else trains)."""
    jobs = []
    for name in success_rates.swept_models(plan.models):
        epochs = plan.epochs_for(zoo.get(name))
        for impl in IMPLS:
            keys = [(name, impl, s, epochs) for s in plan.sweep_seeds]
            jobs += _runs_jobs("seeds", keys, made, tracked)
    return jobs


def _hidden_jobs(plan: Plan) -> list[Job]:
    if "spiral003" not in plan.models:
        return []
    spec = zoo.get("spiral003")
    seed = plan.seed_for(spec)
    epochs = plan.hidden_epochs or spec.epochs
    jobs = []
    for h in plan.hidden_sizes:
        if _reuses_main_run(plan, h):
            continue
        hs = hidden_size_spec(h)
        for impl in IMPLS:
            jobs.append(Job(f"hidden/{h}/{impl}", job_hidden,
                            dict(h=h, impl=impl, seed=seed, epochs=epochs),
                            _run_cost(hs, impl, epochs, 480),
                            trains=((hs.name, impl, seed, epochs),)))
    return jobs


def execute(jobs: list[Job], n_workers: int = 1, progress: bool = False, log=None,
            executor: Executor | None = None) -> dict:
    """Run every job; returns ``{key: (result, wall seconds, CPU seconds)}``.

    ``executor`` (any ``concurrent.futures.Executor``, e.g. Dask's): the jobs go there, longest
    first, each through ``executors.run_job`` (one thread); its owner closes it. Else
    ``n_workers > 1``: a spawned ProcessPoolExecutor, the same way; else in this process.
    Results are keyed by job, so the order in which they finish does not matter."""
    log = log or (lambda s: None)
    out: dict = {}
    overall = None
    if progress:
        from tqdm import tqdm
        overall = tqdm(total=len(jobs), desc="study", unit="job", file=sys.stderr,
                       position=0, dynamic_ncols=True)

    def done(job, result, seconds, cpu):
        out[job.key] = (result, seconds, cpu)
        msg = f"[{len(out)}/{len(jobs)}] {job.key} {seconds:.1f} s"
        if overall is not None:
            overall.update(1)
            overall.write(msg, file=sys.stderr)
        else:
            log(msg)

    try:
        if executor is not None:
            _run_on(executor, jobs, done)
        elif n_workers <= 1:
            _BARS.update(enabled=progress, position=1)
            for job in jobs:
                done(job, *_timed(job.func, job.kwargs, job.reported))
        else:
            _run_on_pool(jobs, n_workers, progress, done)
        return out
    finally:
        if overall is not None:
            overall.close()


def _run_on(ex: Executor, jobs: list[Job], done) -> None:
    """Submit ``jobs`` to ``ex`` longest first and hand each result to ``done`` as it comes;
    on any exception (an interrupt included) the jobs not finished are cancelled. A thread
    pool is refused: jobs set process-wide state (torch's global seed, OpenMP's per-thread
    thread count, the worked failure's planted bug), so two at once in one process would
    change each other's numbers."""
    if isinstance(ex, ThreadPoolExecutor):
        raise ValueError("a thread pool cannot run the study's jobs: each sets process-wide "
                         "state (torch's seed, thread counts, a planted bug); use processes")
    with _sigint_blocked():   # a local pool's workers start with SIGINT blocked: no traceback
        pending = {ex.submit(run_job, j.func, j.kwargs, j.reported): j
                   for j in sorted(jobs, key=lambda j: -j.cost)}
    try:
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                done(pending.pop(f), *f.result())
    except BaseException:
        for f in pending:
            f.cancel()
        raise


def _run_on_pool(jobs: list[Job], n_workers: int, progress: bool, done) -> None:
    """``_run_on`` a spawned process pool of ``n_workers`` (a tqdm line per worker); on an
    interrupt or failure the workers are terminated (``_stop_pool``)."""
    ctx = mp.get_context("spawn")   # no fork of a process holding torch/OpenMP state
    lock = ctx.RLock() if progress else None
    if lock is not None:
        from tqdm import tqdm
        tqdm.set_lock(lock)
    slots = ctx.Value("i", 0)
    with ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(progress, lock, slots, os.getpid())) as ex:
        try:
            _run_on(ex, jobs, done)
        except BaseException:
            _stop_pool(ex)
            raise


def estimate(jobs: list[Job], n_workers: int) -> tuple[float, float]:
    """``(CPU seconds, wall seconds)`` the plan's estimates give for ``jobs``: their sum, and
    the makespan of dealing them longest first to ``n_workers`` (``list_schedule``)."""
    costs = sorted((j.cost for j in jobs), reverse=True)
    return sum(costs), list_schedule(costs, n_workers)


def describe_estimate(jobs: list[Job], n_workers: int) -> str:
    """One line announcing the work: jobs, estimated CPU-minutes and wall minutes."""
    cpu, wall = estimate(jobs, n_workers)
    return (f"study: {len(jobs)} jobs, estimated {_minutes(cpu)} CPU-min, about "
            f"{_minutes(wall)} min wall on {n_workers} worker(s) (one thread each, start-up "
            f"aside; a rough guide, low for the convnets; the benchmark and the pictures "
            f"come after)")


def _minutes(seconds: float) -> str:
    """Minutes to two significant figures below 10 (``0.053``, ``2.4``), else whole."""
    m = seconds / 60
    return f"{m:.0f}" if m >= 10 else f"{m:.2g}"


@contextlib.contextmanager
def _sigint_blocked():
    """Block SIGINT in this thread while workers are spawned: they inherit the mask (until
    ``_init_worker`` ignores it), so a Ctrl-C while they import torch kills none of them with
    a traceback; a SIGINT that arrives meanwhile is delivered here when unblocked."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _stop_pool(ex: ProcessPoolExecutor, grace: float = 2.0) -> None:
    """Interrupted or failed: cancel what has not started, SIGTERM the workers, SIGKILL any
    still alive after ``grace`` seconds. The resource tracker leaves with them. (Python 3.11
    has no public handle on the workers: ``_processes``; 3.14 adds ``terminate_workers``.)"""
    procs = list((getattr(ex, "_processes", None) or {}).values())
    ex.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        with contextlib.suppress(Exception):
            p.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(1.0)


def _unjudged_if(capped: bool, run_json: dict) -> dict:
    """A run's JSON with ``target_met`` None when the run was capped below its recipe's
    epochs (quick mode, ``epochs_override``): a capped run missing its target says nothing
    about the recipe, so it carries no verdict (the accuracies are still reported)."""
    return dict(run_json, target_met=None) if capped else run_json


def _run_numbers(r: dict) -> dict:
    return {k: r.get(k) for k in ("train_accuracy", "test_accuracy", "final_loss", "test_loss",
                                  "seconds", "epochs", "target_met")}


# ---- the study ----------------------------------------------------------------------------------
@dataclass
class Study:
    results: dict                                      # → results.json
    arrays: dict = field(default_factory=dict)         # model → impl → arrays (pictures only)


def run_study(plan: Plan, jobs: int = 1, progress: bool = False, log=None,
              executor: Executor | None = None, announce=None,
              executor_meta: dict | None = None) -> Study:
    """Run every job of ``plan`` (and the benchmark, alone, afterwards); assemble results.
    ``executor``: where the jobs run (``execute``), with ``jobs`` workers; ``announce``
    receives the line of ``describe_estimate`` before any job starts."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    t0 = time.perf_counter()
    job_list = plan_jobs(plan)
    if announce is not None:
        announce(describe_estimate(job_list, jobs))
    done = execute(job_list, jobs, progress, log, executor)
    t_jobs = time.perf_counter() - t0
    res = {k: v[0] for k, v in done.items()}
    runs, curves = trained_runs(job_list, res)

    models, arrays = _model_rows(plan, res)
    results: dict = {"seed": plan.seed, "quick": plan.quick, "models": models,
                     "xor_success": _xor_success(plan, runs)}
    if "spiral003" in plan.models:
        results["hidden_size"] = _hidden_size(plan, res)
    if "digits-minibatch" in plan.models:
        results["lr_finder"] = {"model": "digits-minibatch",
                                **{impl: res[f"lr_finder/{impl}"] for impl in IMPLS}}
    if plan.worked_failure:
        results["worked_failure"] = res["worked-failure"]
    if plan.sweep_seeds:
        results["seed_sweep"] = success_rates.sweep_result(plan, runs)
    results["claims"] = _claims_result(plan, job_list, res, runs, curves)
    t_bench, c_bench = _bench(plan, results, log)
    results["meta"] = _meta(plan, jobs)
    results["meta"]["executor"] = executor_meta or {
        "kind": "local" if executor is None else type(executor).__name__, "workers": jobs}
    results["timing"] = _timing(done, t_jobs, t_bench, c_bench, job_list, jobs)
    return Study(results, arrays)


def trained_runs(job_list: list[Job], res: dict) -> tuple[dict, dict]:
    """``({run key: RunResult JSON}, {run key: train accuracy per epoch})`` over every job
    that trains (``Job.trains``), whichever job trained it."""
    runs: dict = {}
    curves: dict = {}
    for job in job_list:
        r = res.get(job.key)
        if not job.trains or r is None or isinstance(r, Failed):
            continue
        if job.func is job_runs:
            runs.update(zip(job.trains, r["runs"]))
            curves.update((job.trains[i], c) for i, c in r["train_accuracy_curves"].items())
        elif job.func is job_train:
            runs[job.trains[0]] = r["run"]
            if "train_accuracy_curve" in r:
                curves[job.trains[0]] = r["train_accuracy_curve"]
    return runs, curves


def _model_rows(plan: Plan, res: dict) -> tuple[list, dict]:
    """results.json's ``models`` (one row per model, both twins) and the pictures' arrays."""
    models, arrays = [], {}
    for name in plan.models:
        spec = zoo.get(name)
        capped = plan.epochs[name] < spec.epochs
        runs = {impl: _unjudged_if(capped, res[f"train/{name}/{impl}"]["run"])
                for impl in IMPLS}
        arrays[name] = {impl: res[f"train/{name}/{impl}"]["arrays"] for impl in IMPLS}
        p = res[f"parity/{name}"]
        row = {"model": name, "source": spec.source, "summary": spec.summary,
               "notes": spec.notes, "layers": spec.layer_summary(),
               "parameters": spec.num_parameters(), "dataset": spec.dataset,
               "seed": plan.seed_for(spec), "epochs": plan.epochs[name],
               "recipe_epochs": spec.epochs, "capped": capped,
               "target": str(spec.target) if spec.target else None,
               "runs": runs, "parity": p["parity"], "divergence": p["divergence"]}
        if "grid" in arrays[name]["numpy"]:
            a, b = arrays[name]["numpy"]["grid"], arrays[name]["torch"]["grid"]
            row["boundary"] = {"grid": list(a.shape), "extent": arrays[name]["numpy"]["extent"],
                               "disagree_cells": int((a != b).sum()),
                               "disagree_fraction": float((a != b).mean())}
        models.append(row)
    return models, arrays


def _xor_success(plan: Plan, runs: dict) -> dict:
    """Per XOR model and twin: the seeds that reach the target (``seed_sweep.success_of`` on
    the sweep's runs, whichever job trained them)."""
    out: dict[str, dict] = {}
    for name in ("xor-relu", "xor-sigmoid"):
        if name not in plan.models:
            continue
        spec = zoo.get(name)
        entry: dict[str, Any] = {"seeds": list(plan.xor_seeds),
                                 "epochs": plan.xor_epochs or spec.epochs,
                                 "recipe_epochs": spec.epochs}
        for impl in IMPLS:
            sweep = success_of(spec, {k[2]: runs[k] for k in sweep_keys(plan, name, impl)})
            ok = sorted(sweep["succeeded"])
            entry[impl] = {"rate": sweep["rate"], "succeeded": ok,
                           "failed": [s for s in plan.xor_seeds if s not in ok],
                           "accuracies": {str(s): a for s, a in sweep["accuracies"].items()}}
        entry["both"] = sorted(set(entry["numpy"]["succeeded"]) & set(entry["torch"]["succeeded"]))
        out[name] = entry
    return out


def _hidden_size(plan: Plan, res: dict) -> dict:
    base = zoo.get("spiral003")
    rows = []
    for h in plan.hidden_sizes:
        spec = hidden_size_spec(h)
        reused = _reuses_main_run(plan, h)
        if reused:
            by_impl = {impl: dict(res[f"train/spiral003/{impl}"]["run"],
                                  parameters=spec.num_parameters()) for impl in IMPLS}
        else:
            by_impl = {impl: res[f"hidden/{h}/{impl}"] for impl in IMPLS}
        hidden_capped = (plan.hidden_epochs or base.epochs) < base.epochs
        rows.append({"h": h, "hidden": [h, h, h // 2], "layers": spec.layer_summary(),
                     "parameters": spec.num_parameters(), "reused_spiral003_run": reused,
                     **{impl: _run_numbers(_unjudged_if(hidden_capped, by_impl[impl]))
                        for impl in IMPLS}})
    return {"epochs": plan.hidden_epochs or base.epochs, "sizes": list(plan.hidden_sizes),
            "rows": rows}


def _claims_result(plan: Plan, job_list: list[Job], res: dict, runs: dict,
                   curves: dict) -> dict:
    """results.json's ``claims``: the audit's rows for the claims about the plan's models,
    measured by the jobs (``claims.audit_rows`` with every measurement given); a failed part
    is reported, never hidden."""
    if not plan.claims:
        return {"available": False, "note": "claims audit not run (disabled)"}
    selected, needs = _claims_needs(plan)
    if needs is None:
        return {"available": False, "note": "claims audit: no claim is about the models of "
                                            "this study (" + ", ".join(plan.models) + ")"}
    failed = [f"{j.key}: {res[j.key].error}" for j in job_list
              if j.reported and isinstance(res.get(j.key), Failed)]
    try:
        if failed:
            raise RuntimeError("; ".join(failed))
        given = claims.Measured(
            runs={k: runs[k] for k in needs.runs},
            ceilings={k: res[f"claims/bayes/{_ceiling_name(k)}"] for k in needs.ceilings},
            xor={(init, impl): _xor_measure(res, curves, runs, (init, impl, seed, epochs))
                 for init, impl, seed, epochs in needs.xor},
            worked=res["claims/worked"] if needs.worked else None)
        rows = claims.audit_rows(selected, plan.audit_seed, plan.quick,
                                 epochs_of=plan.epochs_for, given=given)
    except Exception as e:  # reported in the report, not hidden
        return {"available": False,
                "note": f"claims audit not available: it failed ({type(e).__name__}: {e})"}
    return {"available": True, "rows": rows, "models": sorted({claims.claim_model(c)
                                                               for c in selected}),
            "left_out": len(claims.CLAIMS) - len(selected)}


def _xor_measure(res: dict, curves: dict, runs: dict, need: tuple) -> dict:
    """XOR's stable epoch: from the accuracy curve of the xor-sigmoid run (catalogue
    initialization) or from its own job (the document's)."""
    init, impl, seed, epochs = need
    if init != "catalogue":
        return res[f"claims/xor/{init}/{impl}"]
    key = ("xor-sigmoid", impl, seed, epochs)
    return claims.stable_epoch(curves[key], runs[key]["final_loss"])


def _bench(plan: Plan, results: dict, log) -> tuple[float, float]:
    """The benchmark, alone after the jobs (its timings need a quiet machine): results'
    ``bench``; returns its (wall, CPU) seconds."""
    if not plan.bench:
        results["bench"] = {"available": False, "note": "benchmark not run (disabled)"}
        return 0.0, 0.0
    tb, cb = time.perf_counter(), time.process_time()
    try:
        from parity.tools import bench
        if log:
            log("benchmark (alone, after the trainings) ...")
        results["bench"] = {"available": True, **bench.run_bench(quick=plan.quick)}
    except Exception as e:
        results["bench"] = {"available": False,
                            "note": f"benchmark failed: {type(e).__name__}: {e}"}
    return time.perf_counter() - tb, time.process_time() - cb


def _meta(plan: Plan, jobs: int) -> dict:
    import matplotlib
    import torch

    from parity.runtime import threads_in_force
    return {
        "command": " ".join(["nn-parity"] + sys.argv[1:]) if sys.argv and
        sys.argv[0].endswith(("nn-parity", "__main__.py")) else None,
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "python": platform.python_version(), "numpy": np.__version__,
        "torch": torch.__version__, "matplotlib": matplotlib.__version__,
        "jobs": jobs, "threads_main": threads_in_force(),
        "threads_workers": ({"torch": WORKER_THREADS, "blas": WORKER_THREADS} if jobs > 1
                            else None),
        "epochs": dict(plan.epochs), "diverge_steps": plan.diverge_steps,
    }


def _timing(done: dict, t_jobs: float, t_bench: float, c_bench: float, job_list: list[Job],
            n_workers: int) -> dict:
    """Wall and CPU seconds per job and per kind (the key's first part); ``makespan_cpu``:
    the longest worker's CPU seconds when the jobs' measured CPU seconds are dealt out in
    this run's order (longest estimated first) to ``n_workers`` workers — the jobs' wall time
    on an otherwise idle machine, worker start-up aside."""
    secs = {k: v[1] for k, v in done.items()}
    cpus = {k: v[2] for k, v in done.items()}
    kinds: dict = {}
    for k in secs:
        w, c = kinds.get(k.split("/")[0], (0.0, 0.0))
        kinds[k.split("/")[0]] = (w + secs[k], c + cpus[k])
    order = [cpus[j.key] for j in sorted(job_list, key=lambda j: -j.cost)]
    return {
        "jobs_wall_seconds": t_jobs, "bench_seconds": t_bench, "bench_cpu_seconds": c_bench,
        "job_seconds_by_kind": {k: v[0] for k, v in kinds.items()},
        "job_cpu_seconds_by_kind": {k: v[1] for k, v in kinds.items()},
        "jobs_cpu_seconds": sum(cpus.values()),
        "makespan_cpu_seconds": list_schedule(order, n_workers),
        "jobs": sorted(({"job": k, "seconds": secs[k], "cpu_seconds": cpus[k]} for k in secs),
                       key=lambda r: -r["seconds"])}


def list_schedule(durations, n_workers: int) -> float:
    """Makespan of dealing ``durations``, in order, each to the worker free first."""
    free = [0.0] * max(1, n_workers)
    for d in durations:
        free[free.index(min(free))] += d
    return max(free)
