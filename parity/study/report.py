"""Write the study's report set and its terminal summary; the ``study`` command."""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from parity import fileio
from parity.audit import claims as claims_module
from parity.catalogue import zoo
from parity.study import executors, seed_report
from parity.study.document import _met_pair, _verdict, build_document
from parity.study.executor import Study, run_study
from parity.study.plan import make_plan
from parity.study.success_rates import parse_seeds


# ---- writing ------------------------------------------------------------------------------------
def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"results.json: cannot serialize {type(o).__name__}")


def write_report(study: Study, out_dir: str, option: str | None = None) -> list[str]:
    """Write index.md, index.html, img/*.png (each picture once; both pages link to it),
    results.json (and claims.json) as one set with
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
    seed_report.seed_sweep_section(doc, study.results)
    study.results["timing"].update(render_seconds=time.perf_counter() - t0,
                                   render_cpu_seconds=time.process_time() - c0)
    t = study.results["timing"]
    doc.p(f"After the jobs, drawing this report's {len(doc.images)} pictures took "
          f"{t['render_seconds']:.1f} s wall ({t['render_cpu_seconds']:.1f} s CPU).")
    claims = study.results.get("claims", {})
    if claims.get("available"):
        claims_module.write_claims(
            claims["rows"], os.path.join(tmp, "claims.json"))
    with open(os.path.join(tmp, "results.json"), "w") as f:
        f.write(fileio.json_text(study.results, indent=1, default=_jsonable))
    with open(os.path.join(tmp, "index.md"), "w") as f:
        f.write(doc.markdown())
    with open(os.path.join(tmp, "index.html"), "w") as f:
        f.write(doc.html("nn-parity study"))


def study(models=None, out: str = "report", quick: bool = False, seed: int | None = None,
          jobs: int = 1, progress: bool = False, log=None, epochs_override: int | None = None,
          out_option: str | None = None, executor=None, announce=None,
          **plan_overrides) -> Study:
    """Plan, run and write a study; returns it. ``epochs_override`` caps every run's epochs
    (tests); ``plan_overrides`` replace ``Plan`` fields (e.g. ``bench=False``,
    ``sweep_seeds``). ``executor``: ``--executor``'s text (``parity.study.executors``) or
    any ``concurrent.futures.Executor``."""
    fileio.check_dir_target(out, out_option)    # before the run, not after it
    plan = make_plan(models, quick=quick, seed=seed, epochs_override=epochs_override,
                     **plan_overrides)
    if executor is not None and not isinstance(executor, str):
        s = run_study(plan, jobs=jobs, progress=progress, log=log, executor=executor,
                      announce=announce)
    else:
        with executors.opened(executors.parse_executor(executor), jobs) as ex:
            s = run_study(plan, jobs=ex.workers, progress=progress, log=log,
                          executor=ex.executor, announce=announce, executor_meta=ex.meta)
    write_report(s, out, out_option)
    return s


def render_summary(results: dict) -> str:
    """The terminal table: one line per model, both twins side by side (the target verdict
    once when both twins have it, else ``numpy / torch``)."""
    lines = [f"{'model':<26} {'held-out np':>11} {'torch':>7} {'loss np':>9} {'torch':>9} "
             f"{'s np':>6} {'torch':>6}  parity f64/f32  target"]
    for m in results["models"]:
        n, t = m["runs"]["numpy"], m["runs"]["torch"]
        lines.append(f"{m['model']:<26} {n['test_accuracy']:>11.4f} {t['test_accuracy']:>7.4f} "
                     f"{n['final_loss']:>9.4g} {t['final_loss']:>9.4g} {n['seconds']:>6.2f} "
                     f"{t['seconds']:>6.2f}  {_verdict(m['parity']['float64']):>6}/"
                     f"{_verdict(m['parity']['float32']):<6}  {_met_pair(m)}")
    return "\n".join(lines)


def main(args) -> int:
    models = args.models or list(zoo.CATALOGUE)
    for m in models:
        zoo.get(m)  # unknown names fail before any work
    jobs = getattr(args, "jobs", 1) or 1
    progress = getattr(args, "progress", None)
    if progress is None:
        progress = sys.stderr.isatty()
    choice = executors.parse_executor(getattr(args, "executor", None))   # before any work
    if choice.kind != "local":
        executors.require_dask()
    sweep: dict = {"sweep_seeds": parse_seeds(args.seeds)} if getattr(args, "seeds", None) else {}
    t0 = time.perf_counter()
    s = study(models, out=args.out, quick=args.quick, seed=args.seed, jobs=jobs,
              progress=progress, log=lambda msg: print(msg, file=sys.stderr), out_option="--out",
              executor=getattr(args, "executor", None), announce=lambda line: print(
                  line, file=sys.stderr if args.json else sys.stdout, flush=True), **sweep)
    total = time.perf_counter() - t0
    if args.json:
        print(fileio.json_text(s.results, default=_jsonable))
    else:
        print(render_summary(s.results))
        t = s.results["timing"]
        workers = s.results["meta"]["executor"]["workers"]
        print(f"report written to {args.out}/ in {total:.1f} s (jobs {t['jobs_wall_seconds']:.1f}"
              f" s with {workers} worker(s), benchmark {t['bench_seconds']:.1f} s, pictures "
              f"{t['render_seconds']:.1f} s)")
    return 0
