"""The side-by-side study: train every catalogue model in both twins, write ``report/``.

``nn-parity study [--models ...] [--out report] [--quick] [--jobs N]`` →
``report/index.md``, ``report/index.html`` (self-contained: every PNG embedded as a base64
data URI, and also saved under ``report/img/``), ``report/results.json`` (and
``report/claims.json`` when ``parity.claims`` exists).

Work is cut into independent jobs — one training run (model × impl), one model's parity
checks (one-step ``compare`` and lockstep ``diverge``, float64 and float32), a chunk of the
XOR seed sweep, one hidden size of the seed-003 search, one LR-finder sweep, the claims audit —
each a pure function of its arguments (every random draw comes from the seed), run in order
in this process (``jobs=1``) or in ``jobs`` spawned worker processes with one thread each.
Results are keyed by job, never by completion order, so everything except wall-clock seconds
is identical for any ``jobs`` (at one thread: the CLI's default ``--threads 1``). The
benchmark, if ``parity.bench`` exists, runs after all jobs, alone, since it measures time.

Every picture is drawn from these measurements (``parity.plots``). The report is written with
``parity.fileio.write_dir_set``: ``--out`` is checked before any job runs (a file, a device,
a foreign non-empty directory or the current directory is refused), the report is built in a
temporary sibling carrying the marker ``.nn-parity-output`` and swapped into place only at the
end: a crash, SIGINT or SIGTERM leaves the previous report as it was and no temporary behind.
Workers ignore SIGINT (a Ctrl-C reaches the whole process group); on an interrupt the parent
terminates them, so nothing outlives the run.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import html
import importlib
import importlib.util
import inspect
import json
import math
import multiprocessing as mp
import os
import platform
import re
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np

from parity import fileio, zoo
from parity.spec import ModelSpec
from parity.train import IMPLS, run

# ---- what a full and a quick study run ----------------------------------------------------------
QUICK_EPOCHS = 300            # full-batch models on small data
QUICK_EPOCHS_LARGE = 100      # full-batch models on > 1000 rows (digits: 1437 × 64 per step)
QUICK_EPOCHS_MINIBATCH = 30   # minibatch models
LARGE_ROWS = 1000
DIVERGE_STEPS, QUICK_DIVERGE_STEPS = 300, 50
XOR_SEEDS, QUICK_XOR_SEEDS = 20, 5
QUICK_XOR_EPOCHS = 1000       # quick sweep: at most this many epochs per seed (labelled)
HIDDEN_SIZES, QUICK_HIDDEN_SIZES = (16, 32, 64, 128, 256), (16, 64, 256)
GRID = 200                    # decision-boundary grid: GRID × GRID points
TILE_GRID = 60                # hidden-unit tiles: TILE_GRID × TILE_GRID points per unit
N_TILES = 25
SEED_CHUNK = 5                # XOR sweep: seeds per job

SOURCES = {
    zoo.SEED_000: "Seed 000 — the cs231n case study (spiral: linear vs 2-layer)",
    zoo.SEED_001: "Seed 001 — the blog's NumPy net on spiral.csv",
    zoo.SEED_002: "Seed 002 — XOR and digits from scratch",
    zoo.SEED_003: "Seed 003 — the two-spiral MLP with BatchNorm, Dropout, Adam",
    zoo.SEED_004: "Seed 004 — PyTorch 2→16→8→1 on two spirals, XOR by hand",
}


@dataclass(frozen=True)
class Plan:
    """What one study runs. ``seed`` None: each model's ``pinned_seed``."""

    models: tuple
    quick: bool = False
    seed: int | None = None
    epochs: dict = field(default_factory=dict)       # model → epochs
    diverge_steps: int = DIVERGE_STEPS
    xor_seeds: tuple = tuple(range(XOR_SEEDS))
    xor_epochs: int | None = None                    # None: the recipe's
    hidden_sizes: tuple = HIDDEN_SIZES
    hidden_epochs: int | None = None                 # None: spiral003's
    grid: int = GRID
    tile_grid: int = TILE_GRID
    claims: bool = True
    bench: bool = True

    def seed_for(self, spec: ModelSpec) -> int:
        return spec.pinned_seed if self.seed is None else self.seed


def quick_epochs(spec: ModelSpec, n_train: int) -> int:
    cap = (QUICK_EPOCHS_MINIBATCH if spec.batch_size is not None
           else QUICK_EPOCHS_LARGE if n_train > LARGE_ROWS else QUICK_EPOCHS)
    return min(spec.epochs, cap)


def make_plan(models=None, quick: bool = False, seed: int | None = None,
              epochs_override: int | None = None, **overrides) -> Plan:
    """The full or quick plan for ``models`` (default: the whole catalogue).
    ``epochs_override`` caps every model's epochs (tests); ``overrides`` replace Plan fields."""
    names = tuple(dict.fromkeys(models or zoo.CATALOGUE))
    epochs = {}
    for name in names:
        spec = zoo.get(name)
        e = spec.epochs
        if quick:
            e = quick_epochs(spec, len(spec.data(spec.pinned_seed if seed is None else seed)
                                       .X_train))
        if epochs_override is not None:
            e = min(e, int(epochs_override))
        epochs[name] = e
    base = dict(models=names, quick=quick, seed=seed, epochs=epochs)
    if quick:
        base.update(diverge_steps=QUICK_DIVERGE_STEPS, xor_seeds=tuple(range(QUICK_XOR_SEEDS)),
                    xor_epochs=QUICK_XOR_EPOCHS, hidden_sizes=QUICK_HIDDEN_SIZES,
                    hidden_epochs=epochs.get("spiral003", quick_epochs(zoo.get("spiral003"), 0)))
    if epochs_override is not None:
        base.update(xor_epochs=min(base.get("xor_epochs") or 10**9, int(epochs_override)),
                    hidden_epochs=min(base.get("hidden_epochs") or 10**9, int(epochs_override)))
    base.update(overrides)
    plan = Plan(**base)
    for k in ("epochs", "diverge_steps", "xor_epochs", "hidden_epochs", "grid", "tile_grid"):
        v = getattr(plan, k)
        if any(x is not None and x < 1 for x in (v.values() if k == "epochs" else [v])):
            raise ValueError(f"study plan: {k} must be >= 1, got {v}")
    return plan


# ---- per-process progress bars (tqdm on stderr) -------------------------------------------------
_BARS = {"enabled": False, "position": 1}


def _die_with_parent(parent: int) -> None:
    """Linux: SIGTERM this worker when its parent dies, even by SIGKILL (PR_SET_PDEATHSIG;
    strictly: when the parent's thread that spawned it ends — the main thread, at submit),
    so that no worker trains on, orphaned, after the run is gone."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)          # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - no libc prctl
        return
    if os.getppid() != parent:                           # it died before prctl
        os._exit(1)


def _init_worker(progress: bool, lock, slots, parent: int) -> None:
    """Worker start: SIGINT ignored (the parent decides), dies with the parent; one thread for
    torch and BLAS; a tqdm line of its own for its runs."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    from parity.runtime import configure_threads
    configure_threads(1)
    _BARS["enabled"] = progress
    if lock is not None:
        from tqdm import tqdm
        tqdm.set_lock(lock)
    with slots.get_lock():
        slots.value += 1
        _BARS["position"] = slots.value


def _run_bar(total: int, desc: str):
    """``(on_epoch, close)`` drawing a per-run bar, or no-ops when bars are off."""
    if not _BARS["enabled"]:
        return None, lambda: None
    from tqdm import tqdm
    bar = tqdm(total=total, desc=desc, unit="epoch", file=sys.stderr, leave=False,
               mininterval=0.5, position=_BARS["position"], dynamic_ncols=True)

    def on_epoch(epoch, loss):
        bar.update(1)
        if epoch % 50 == 0:
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    return on_epoch, bar.close


# ---- measurements shared by the jobs -------------------------------------------------------------
def is_2d(spec: ModelSpec) -> bool:
    return spec.layers[0][0] == "linear" and spec.layers[0][1] == 2


def grid_extent(X: np.ndarray) -> tuple:
    """``(xmin, xmax, ymin, ymax)``: the points' box plus 10% (at least 0.25) on each side."""
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = np.maximum(0.1 * (hi - lo), 0.25)
    return (float(lo[0] - pad[0]), float(hi[0] + pad[0]),
            float(lo[1] - pad[1]), float(hi[1] + pad[1]))


def grid_points(extent: tuple, n: int) -> np.ndarray:
    """``(n·n, 2)`` points, row-major with y along rows: reshape a result to ``(n, n)``."""
    xs = np.linspace(extent[0], extent[1], n)
    ys = np.linspace(extent[2], extent[3], n)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def _outputs(model, X: np.ndarray) -> np.ndarray:
    """Eval-mode outputs of either twin as a NumPy array (training mode restored)."""
    import torch
    if isinstance(model, torch.nn.Module):
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                return model(torch.from_numpy(X)).numpy()
        finally:
            model.train(was)
    return model.predict(X)


def predict_classes(model, X: np.ndarray) -> np.ndarray:
    """Predicted class per row, as ``accuracy`` decides in both twins: argmax for K > 1
    outputs; one output thresholded at 0.5 after a final Sigmoid, else at 0 (a logit)."""
    import torch

    from reference.layers import Sigmoid
    out = _outputs(model, X)
    if out.shape[1] > 1:
        return out.argmax(axis=1)
    last = model[-1] if isinstance(model, torch.nn.Module) else model.layers[-1]
    threshold = 0.5 if isinstance(last, (Sigmoid, torch.nn.Sigmoid)) else 0.0
    return (out[:, 0] > threshold).astype(np.int64)


def held_out_loss(spec: ModelSpec, model, X: np.ndarray, y: np.ndarray) -> float:
    """The data loss (no L2 term) on ``(X, y)`` in eval mode, computed by the model's own side."""
    import torch

    import torch_impl
    if isinstance(model, torch.nn.Module):
        out = torch.from_numpy(_outputs(model, X))
        return float(spec.torch_loss()(out, torch_impl.targets(spec.loss, y, out.dtype)).item())
    return float(spec.numpy_loss().forward(model.predict(X), y))


def _hidden(model, X: np.ndarray) -> np.ndarray:
    import torch

    from parity.hidden import hidden_numpy, hidden_torch
    return hidden_torch(model, X) if isinstance(model, torch.nn.Module) else hidden_numpy(model, X)


# ---- the jobs (module-level: picklable for worker processes) ------------------------------------
def job_train(name: str, impl: str, seed: int, epochs: int, grid: int, tile_grid: int) -> dict:
    """One training run; plus what the pictures need from the trained model: the held-out
    loss, predicted classes on a grid (2-D inputs), hidden-unit maps (cs231n-2layer), test
    predictions and hidden PCA (digits-2layer)."""
    spec = zoo.get(name)
    on_epoch, close = _run_bar(epochs, f"{name} {impl}")
    try:
        res, model = run(spec, impl, seed=seed, epochs=epochs, on_epoch=on_epoch)
    finally:
        close()
    d = spec.data(seed)
    out = res.to_json(with_curve=True)
    out["test_loss"] = held_out_loss(spec, model, d.X_test, d.y_test)
    arrays: dict = {}
    if is_2d(spec):
        extent = grid_extent(np.concatenate([d.X_train, d.X_test]))
        arrays["grid"] = predict_classes(model, grid_points(extent, grid)).reshape(grid, grid)
        arrays["extent"] = extent
        if name == "cs231n-2layer":
            h = _hidden(model, grid_points(extent, tile_grid))          # (n·n, H)
            arrays["tiles"] = h.T.reshape(-1, tile_grid, tile_grid)
    if name == "digits-2layer":
        from parity.hidden import pca_2d
        arrays["test_pred"] = predict_classes(model, d.X_test)
        arrays["pca"], arrays["pca_var"] = pca_2d(_hidden(model, d.X_test))
    return {"run": out, "arrays": arrays}


def job_parity(name: str, seed: int, steps: int) -> dict:
    """One-step ``compare`` and ``steps``-step lockstep ``diverge``, float64 and float32."""
    from parity.compare import compare
    from parity.diverge import diverge
    spec = zoo.get(name)
    out: dict = {"parity": {}, "divergence": {}}
    for dtype in ("float64", "float32"):
        c = compare(spec, dtype, seed)
        q = c.by_quantity()
        worst_abs = max(q, key=lambda k: q[k]["max_abs"])
        worst_rel = max(q, key=lambda k: q[k]["max_rel"])
        out["parity"][dtype] = {
            "passed": c.passed, "steps": c.steps, "quantities": q,
            "max_abs": q[worst_abs]["max_abs"], "max_abs_quantity": worst_abs,
            "max_rel": q[worst_rel]["max_rel"], "max_rel_quantity": worst_rel,
            "failures": [f.label for f in c.failures()]}
        r = diverge(spec, steps, dtype, seed)
        out["divergence"][dtype] = {"steps": steps, "param_rel": r.param_rel,
                                    "loss_rel": r.loss_rel,
                                    "first_step_above_1e-6": r.first_step_above(1e-6),
                                    "final_param_rel": r.param_rel[-1],
                                    "final_worst_param": r.worst_param[-1]}
    return out


def job_success(name: str, impl: str, seeds: tuple, epochs: int | None) -> dict:
    from parity.seed_sweep import success_rate
    return success_rate(zoo.get(name), seeds, impls=(impl,), epochs=epochs)[impl]


def hidden_size_spec(h: int) -> ModelSpec:
    """spiral003 with BatchNorm blocks of widths (h, h, h/2)."""
    base = zoo.get("spiral003")
    return dataclasses.replace(base, name=f"spiral003-h{h}",
                               layers=zoo._spiral003(zoo._bn_block, hidden=(h, h, h // 2)))


def job_hidden(h: int, impl: str, seed: int, epochs: int) -> dict:
    spec = hidden_size_spec(h)
    on_epoch, close = _run_bar(epochs, f"{spec.name} {impl}")
    try:
        res, model = run(spec, impl, seed=seed, epochs=epochs, on_epoch=on_epoch)
    finally:
        close()
    d = spec.data(seed)
    out = res.to_json()
    out["test_loss"] = held_out_loss(spec, model, d.X_test, d.y_test)
    out["parameters"] = spec.num_parameters()
    return out


def job_lr_finder(name: str, impl: str, seed: int) -> dict:
    from parity.lr_finder import lr_finder, suggest
    curve = lr_finder(zoo.get(name), impl, seed=seed)
    try:
        curve["suggest"] = suggest(curve)
    except ValueError as e:
        curve["suggest"], curve["note"] = None, str(e)
    return curve


def job_claims(seed: int, quick: bool) -> dict:
    """The claims audit of ``parity.claims`` if that module exists; never invented."""
    if importlib.util.find_spec("parity.claims") is None:
        return {"available": False,
                "note": "claims audit not available: parity.claims does not exist"}
    try:
        claims = importlib.import_module("parity.claims")
        quiet = "log" in inspect.signature(claims.run_audit).parameters
        rows = (claims.run_audit(seed=seed, quick=quick, log=lambda msg: None) if quiet
                else claims.run_audit(seed=seed, quick=quick))
    except Exception as e:  # reported in the report, not hidden
        return {"available": False,
                "note": f"claims audit not available: it failed ({type(e).__name__}: {e})"}
    return {"available": True, "rows": rows}


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
    width = sum(a[0] * a[1] for k, *a in spec.layers if k == "linear")
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
    if plan.claims and importlib.util.find_spec("parity.claims") is not None:
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
        results["claims"] = {"available": False,
                             "note": "claims audit not available: parity.claims does not exist"}

    t_bench = c_bench = 0.0
    if not plan.bench:
        results["bench"] = {"available": False, "note": "benchmark not run (disabled)"}
    elif importlib.util.find_spec("parity.bench") is None:
        results["bench"] = {"available": False,
                            "note": "benchmark not available: parity.bench does not exist"}
    else:
        tb, cb = time.perf_counter(), time.process_time()
        try:
            bench = importlib.import_module("parity.bench")
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


def _unjudged_if(capped: bool, run_json: dict) -> dict:
    """A run's JSON with ``target_met`` None when the run was capped below its recipe's
    epochs (quick mode, ``epochs_override``): a capped run missing its target says nothing
    about the recipe, so it carries no verdict (the accuracies are still reported)."""
    return dict(run_json, target_met=None) if capped else run_json


def _run_numbers(r: dict) -> dict:
    return {k: r.get(k) for k in ("train_accuracy", "test_accuracy", "final_loss", "test_loss",
                                  "seconds", "epochs", "target_met")}


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
        from parity.plots import save_png
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
    from parity import plots
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
        doc.p(f"`parity.seed_sweep.success_rate` over seeds {_seed_range(e['seeds'])}: a seed "
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
        doc.p("From `parity.claims.run_audit`; also written to `claims.json`.")
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
            f"`parity.bench.run_bench(quick={R['quick']})`, run alone after all trainings "
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
        "`parity.hidden.hidden_numpy` / `hidden_torch` on the held-out set, projected by "
        "`pca_2d` (signs fixed so both twins' axes point the same way), coloured by true "
        "digit.")


def _lr_section(doc: Doc, lr: dict, plots) -> None:
    doc.h(3, "digits-minibatch: learning-rate finder")
    curves = {impl: lr[impl] for impl in IMPLS}
    sug = {impl: lr[impl]["suggest"] for impl in IMPLS}
    doc.img("digits-minibatch-lr-finder", plots.lr_finder_curves(
        curves, sug, "LR finder, digits-minibatch (one epoch, lr 1e-5 → 10)"),
        "`parity.lr_finder.lr_finder`: one epoch with the lr growing exponentially, loss of "
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


# ---- writing ------------------------------------------------------------------------------------
def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"results.json: cannot serialize {type(o).__name__}")


def write_report(study: Study, out_dir: str, option: str | None = None) -> list[str]:
    """Write index.md, index.html, img/*.png, results.json (and claims.json) as one set with
    ``parity.fileio.write_dir_set``: built in a temporary sibling of ``out_dir``, swapped into
    place at the end; on any failure the previous report stays and the temporary directory is
    removed. ``out_dir`` must be new, empty or an earlier report. Returns the files written."""
    return fileio.write_dir_set(out_dir, lambda tmp: _write_report_files(study, tmp),
                                "study-report", option)


def _write_report_files(study: Study, tmp: str) -> None:
    img = os.path.join(tmp, "img")
    os.makedirs(img)
    t0, c0 = time.perf_counter(), time.process_time()
    doc = build_document(study, img)
    study.results["timing"].update(render_seconds=time.perf_counter() - t0,
                                   render_cpu_seconds=time.process_time() - c0)
    t = study.results["timing"]
    doc.p(f"Drawing this report's {len(doc.images)} pictures took {t['render_seconds']:.1f} s "
          f"({t['render_cpu_seconds']:.1f} s CPU).")
    claims = study.results.get("claims", {})
    if claims.get("available"):
        importlib.import_module("parity.claims").write_claims(
            claims["rows"], os.path.join(tmp, "claims.json"))
    with open(os.path.join(tmp, "results.json"), "w") as f:
        json.dump(study.results, f, indent=1, default=_jsonable)
    with open(os.path.join(tmp, "index.md"), "w") as f:
        f.write(doc.markdown())
    with open(os.path.join(tmp, "index.html"), "w") as f:
        f.write(doc.html("nn-parity study"))


def study(models=None, out: str = "report", quick: bool = False, seed: int | None = None,
          jobs: int = 1, progress: bool = False, log=None, epochs_override: int | None = None,
          out_option: str | None = None, **plan_overrides) -> Study:
    """Plan, run and write a study; returns it. ``epochs_override`` caps every run's epochs
    (tests); ``plan_overrides`` replace ``Plan`` fields (e.g. ``bench=False``)."""
    fileio.check_dir_target(out, out_option)    # before the run, not after it
    plan = make_plan(models, quick=quick, seed=seed, epochs_override=epochs_override,
                     **plan_overrides)
    s = run_study(plan, jobs=jobs, progress=progress, log=log)
    write_report(s, out, out_option)
    return s


def render_summary(results: dict) -> str:
    """The terminal table: one line per model, both twins side by side."""
    lines = [f"{'model':<26} {'held-out np':>11} {'torch':>7} {'loss np':>9} {'torch':>9} "
             f"{'s np':>6} {'torch':>6}  parity f64/f32  target"]
    for m in results["models"]:
        n, t = m["runs"]["numpy"], m["runs"]["torch"]
        lines.append(f"{m['model']:<26} {n['test_accuracy']:>11.4f} {t['test_accuracy']:>7.4f} "
                     f"{n['final_loss']:>9.4g} {t['final_loss']:>9.4g} {n['seconds']:>6.2f} "
                     f"{t['seconds']:>6.2f}  {_verdict(m['parity']['float64']):>6}/"
                     f"{_verdict(m['parity']['float32']):<6}  {_met(n, m['capped'])}/"
                     f"{_met(t, m['capped'])}")
    return "\n".join(lines)


def main(args) -> int:
    models = args.models or list(zoo.CATALOGUE)
    for m in models:
        zoo.get(m)  # unknown names fail before any work
    jobs = getattr(args, "jobs", 1) or 1
    progress = getattr(args, "progress", None)
    if progress is None:
        progress = sys.stderr.isatty()
    t0 = time.perf_counter()
    s = study(models, out=args.out, quick=args.quick, seed=args.seed, jobs=jobs,
              progress=progress, log=lambda msg: print(msg, file=sys.stderr), out_option="--out")
    total = time.perf_counter() - t0
    if args.json:
        print(json.dumps(s.results, default=_jsonable))
    else:
        print(render_summary(s.results))
        t = s.results["timing"]
        print(f"report written to {args.out}/ in {total:.1f} s (jobs {t['jobs_wall_seconds']:.1f}"
              f" s with {jobs} worker(s), benchmark {t['bench_seconds']:.1f} s, pictures "
              f"{t['render_seconds']:.1f} s)")
    return 0
