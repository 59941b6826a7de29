"""Run the study's jobs in order or in spawned workers; assemble ``Study`` results.

Results are keyed by job, never by completion order, so everything except wall-clock seconds
is identical for any number of workers. Workers ignore SIGINT; on an interrupt the parent
terminates them, so nothing outlives the run."""

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
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np

from layerspec import Linear
from parity import zoo
from parity.spec import ModelSpec
from parity.study.jobs import (
    hidden_size_spec,
    job_claims,
    job_hidden,
    job_lr_finder,
    job_parity,
    job_success,
    job_train,
)
from parity.study.plan import SEED_CHUNK, Plan
from parity.study.progress import _BARS, _init_worker
from parity.train import IMPLS


def _timed(func, kwargs: dict):
    """``(result, wall seconds, CPU seconds of this process)``."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = func(**kwargs)
    return result, time.perf_counter() - t0, time.process_time() - c0


@dataclass
class Job:
    key: str
    func: object
    kwargs: dict
    cost: float        # rough seconds, only to start the longest jobs first


def _step_cost(spec: ModelSpec, impl: str, rows: int) -> float:
    """Rough seconds per optimizer step (measured scale on this machine, ±2×)."""
    width = sum(item.in_features * item.out_features for item in spec.layers
                if isinstance(item, Linear))
    per_layer = 3e-5 if impl == "numpy" else 8e-5
    return per_layer * len(spec.layers) + 6e-10 * rows * width


def _run_cost(spec: ModelSpec, impl: str, epochs: int, n_train: int) -> float:
    rows = spec.batch_size or n_train
    return epochs * math.ceil(n_train / rows) * _step_cost(spec, impl, rows)


def plan_jobs(plan: Plan) -> list[Job]:
    jobs: list[Job] = []
    names = set(plan.models)
    for name in plan.models:
        spec = zoo.get(name)
        seed = plan.seed_for(spec)
        n = len(spec.data(seed).X_train)
        for impl in IMPLS:
            jobs.append(Job(f"train/{name}/{impl}", job_train,
                            dict(name=name, impl=impl, seed=seed, epochs=plan.epochs[name],
                                 grid=plan.grid, tile_grid=plan.tile_grid),
                            _run_cost(spec, impl, plan.epochs[name], n)))
        rows = spec.batch_size or n
        jobs.append(Job(f"parity/{name}", job_parity,
                        dict(name=name, seed=seed, steps=plan.diverge_steps),
                        4 * plan.diverge_steps * _step_cost(spec, "torch", rows)))
    for name in ("xor-relu", "xor-sigmoid"):
        if name not in names:
            continue
        spec = zoo.get(name)
        epochs = plan.xor_epochs or spec.epochs
        for impl in IMPLS:
            for i in range(0, len(plan.xor_seeds), SEED_CHUNK):
                chunk = tuple(plan.xor_seeds[i:i + SEED_CHUNK])
                jobs.append(Job(f"xor/{name}/{impl}/{i // SEED_CHUNK}", job_success,
                                dict(name=name, impl=impl, seeds=chunk, epochs=epochs),
                                len(chunk) * _run_cost(spec, impl, epochs, 4)))
    if "spiral003" in names:
        spec = zoo.get("spiral003")
        seed = plan.seed_for(spec)
        epochs = plan.hidden_epochs or spec.epochs
        for h in plan.hidden_sizes:
            if _reuses_main_run(plan, h):
                continue
            hs = hidden_size_spec(h)
            for impl in IMPLS:
                jobs.append(Job(f"hidden/{h}/{impl}", job_hidden,
                                dict(h=h, impl=impl, seed=seed, epochs=epochs),
                                _run_cost(hs, impl, epochs, 480)))
    if "digits-minibatch" in names:
        spec = zoo.get("digits-minibatch")
        for impl in IMPLS:
            jobs.append(Job(f"lr_finder/{impl}", job_lr_finder,
                            dict(name="digits-minibatch", impl=impl, seed=plan.seed_for(spec)),
                            0.5))
    if plan.claims:
        jobs.append(Job("claims", job_claims, dict(seed=plan.seed or 0, quick=plan.quick),
                        1e6))   # unknown cost: start it first
    return jobs


def _reuses_main_run(plan: Plan, h: int) -> bool:
    """The search's h = 128 is spiral003 itself: reuse its run when the epochs agree."""
    base = zoo.get("spiral003")
    return ("spiral003" in plan.models and hidden_size_spec(h).layers == base.layers
            and (plan.hidden_epochs or base.epochs) == plan.epochs["spiral003"])


def execute(jobs: list[Job], n_workers: int = 1, progress: bool = False, log=None) -> dict:
    """Run every job; returns ``{key: (result, wall seconds, CPU seconds)}``.

    ``n_workers > 1``: a spawned ProcessPoolExecutor, longest jobs first; results are keyed by
    job, so the order in which they finish does not matter."""
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
        if n_workers <= 1:
            _BARS.update(enabled=progress, position=1)
            for job in jobs:
                done(job, *_timed(job.func, job.kwargs))
            return out
        ctx = mp.get_context("spawn")   # no fork of a process holding torch/OpenMP state
        lock = ctx.RLock() if progress else None
        if lock is not None:
            from tqdm import tqdm
            tqdm.set_lock(lock)
        slots = ctx.Value("i", 0)
        with ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(progress, lock, slots, os.getpid())) as ex:
            try:
                with _sigint_blocked():   # workers start with SIGINT blocked: no traceback
                    pending = {ex.submit(_timed, j.func, j.kwargs): j
                               for j in sorted(jobs, key=lambda j: -j.cost)}
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for f in finished:
                        done(pending.pop(f), *f.result())
            except BaseException:
                _stop_pool(ex)
                raise
        return out
    finally:
        if overall is not None:
            overall.close()


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


def run_study(plan: Plan, jobs: int = 1, progress: bool = False, log=None) -> Study:
    """Run every job of ``plan`` (and the benchmark, alone, afterwards); assemble results."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    from parity.runtime import threads_in_force
    t0 = time.perf_counter()
    job_list = plan_jobs(plan)
    done = execute(job_list, jobs, progress, log)
    t_jobs = time.perf_counter() - t0
    res = {k: v[0] for k, v in done.items()}
    secs = {k: v[1] for k, v in done.items()}
    cpus = {k: v[2] for k, v in done.items()}

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
    results: dict = {"seed": plan.seed, "quick": plan.quick, "models": models}

    results["xor_success"] = {}
    for name in ("xor-relu", "xor-sigmoid"):
        if name not in plan.models:
            continue
        entry = {"seeds": list(plan.xor_seeds),
                 "epochs": plan.xor_epochs or zoo.get(name).epochs,
                 "recipe_epochs": zoo.get(name).epochs}
        for impl in IMPLS:
            parts = [res[f"xor/{name}/{impl}/{i}"]
                     for i in range(math.ceil(len(plan.xor_seeds) / SEED_CHUNK))]
            ok = sorted(s for p in parts for s in p["succeeded"])
            acc = {str(s): a for p in parts for s, a in p["accuracies"].items()}
            entry[impl] = {"rate": len(ok) / len(plan.xor_seeds), "succeeded": ok,
                           "failed": [s for s in plan.xor_seeds if s not in ok],
                           "accuracies": acc}
        entry["both"] = sorted(set(entry["numpy"]["succeeded"]) & set(entry["torch"]["succeeded"]))
        results["xor_success"][name] = entry

    if "spiral003" in plan.models:
        base = zoo.get("spiral003")
        rows = []
        for h in plan.hidden_sizes:
            spec = hidden_size_spec(h)
            if _reuses_main_run(plan, h):
                by_impl = {impl: dict(res[f"train/spiral003/{impl}"]["run"],
                                      parameters=spec.num_parameters()) for impl in IMPLS}
                reused = True
            else:
                by_impl = {impl: res[f"hidden/{h}/{impl}"] for impl in IMPLS}
                reused = False
            hidden_capped = (plan.hidden_epochs or base.epochs) < base.epochs
            rows.append({"h": h, "hidden": [h, h, h // 2], "layers": spec.layer_summary(),
                         "parameters": spec.num_parameters(), "reused_spiral003_run": reused,
                         **{impl: _run_numbers(_unjudged_if(hidden_capped, by_impl[impl]))
                            for impl in IMPLS}})
        results["hidden_size"] = {"epochs": plan.hidden_epochs or base.epochs,
                                  "sizes": list(plan.hidden_sizes), "rows": rows}

    if "digits-minibatch" in plan.models:
        results["lr_finder"] = {"model": "digits-minibatch",
                                **{impl: res[f"lr_finder/{impl}"] for impl in IMPLS}}

    if not plan.claims:
        results["claims"] = {"available": False, "note": "claims audit not run (disabled)"}
    elif "claims" in res:
        results["claims"] = res["claims"]
    else:
        results["claims"] = {"available": False, "note": "claims audit not run"}

    t_bench = c_bench = 0.0
    if not plan.bench:
        results["bench"] = {"available": False, "note": "benchmark not run (disabled)"}
    else:
        tb, cb = time.perf_counter(), time.process_time()
        try:
            from parity.tools import bench
            if log:
                log("benchmark (alone, after the trainings) ...")
            results["bench"] = {"available": True, **bench.run_bench(quick=plan.quick)}
        except Exception as e:
            results["bench"] = {"available": False,
                                "note": f"benchmark failed: {type(e).__name__}: {e}"}
        t_bench, c_bench = time.perf_counter() - tb, time.process_time() - cb

    import matplotlib
    import torch
    results["meta"] = {
        "command": " ".join(["nn-parity"] + sys.argv[1:]) if sys.argv and
        sys.argv[0].endswith(("nn-parity", "__main__.py")) else None,
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "python": platform.python_version(), "numpy": np.__version__,
        "torch": torch.__version__, "matplotlib": matplotlib.__version__,
        "jobs": jobs, "threads_main": threads_in_force(),
        "threads_workers": {"torch": 1, "blas": 1} if jobs > 1 else None,
        "epochs": dict(plan.epochs), "diverge_steps": plan.diverge_steps,
    }
    kinds: dict = {}
    for k in secs:
        w, c = kinds.get(k.split("/")[0], (0.0, 0.0))
        kinds[k.split("/")[0]] = (w + secs[k], c + cpus[k])
    results["timing"] = {
        "jobs_wall_seconds": t_jobs, "bench_seconds": t_bench, "bench_cpu_seconds": c_bench,
        "job_seconds_by_kind": {k: v[0] for k, v in kinds.items()},
        "job_cpu_seconds_by_kind": {k: v[1] for k, v in kinds.items()},
        "jobs": sorted(({"job": k, "seconds": secs[k], "cpu_seconds": cpus[k]} for k in secs),
                       key=lambda r: -r["seconds"])}
    return Study(results, arrays)
