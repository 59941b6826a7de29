"""The side-by-side study: train every catalogue model in both twins, write ``report/``.

Writes ``results.json`` and ``index.md`` into a temporary directory next to ``--out`` and
renames it into place only when everything succeeded, so a crash leaves the old report.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time

from parity import zoo
from parity.compare import compare
from parity.train import IMPLS, run

QUICK_EPOCH_CAP = 500


def run_study(models, seed: int = 0, quick: bool = False, log=print) -> dict:
    rows = []
    t0 = time.perf_counter()
    for name in models:
        spec = zoo.get(name)
        epochs = min(spec.epochs, QUICK_EPOCH_CAP) if quick else spec.epochs
        parity = {dt: compare(spec, dt, seed).to_json() for dt in ("float64", "float32")}
        runs = {}
        for impl in IMPLS:
            res, _ = run(spec, impl, seed=seed, epochs=epochs)
            runs[impl] = res.to_json(with_curve=True)
            log(f"{name:<16} {impl:<6} train {res.train_accuracy:.4f} held-out "
                f"{res.test_accuracy:.4f} loss {res.first_loss:.4f}→{res.final_loss:.4f} "
                f"{res.seconds:6.2f}s")
        rows.append({"model": name, "source": spec.source, "parameters": spec.num_parameters(),
                     "layers": spec.layer_summary(), "target": str(spec.target or "-"),
                     "epochs": epochs, "parity": parity, "runs": runs})
    return {"seed": seed, "quick": quick, "seconds": time.perf_counter() - t0, "models": rows}


def render_markdown(results: dict) -> str:
    out = ["# nn-parity study", "",
           f"seed {results['seed']}{' (quick)' if results['quick'] else ''}; "
           f"{results['seconds']:.1f} s in all", "",
           "| model | params | epochs | impl | train acc | held-out acc | first loss | "
           "final loss | seconds | parity f64 | parity f32 |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["models"]:
        for impl, run_ in r["runs"].items():
            p64, p32 = r["parity"]["float64"], r["parity"]["float32"]
            out.append(
                f"| {r['model']} | {r['parameters']} | {r['epochs']} | {impl} | "
                f"{run_['train_accuracy']:.4f} | {run_['test_accuracy']:.4f} | "
                f"{run_['first_loss']:.4f} | {run_['final_loss']:.4f} | {run_['seconds']:.2f} | "
                f"{'pass' if p64['passed'] else 'FAIL'} | {'pass' if p32['passed'] else 'FAIL'} |")
    return "\n".join(out) + "\n"


def write_report(results: dict, out_dir: str) -> None:
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".report-tmp-")
    try:
        with open(os.path.join(tmp, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
        with open(os.path.join(tmp, "index.md"), "w") as f:
            f.write(render_markdown(results))
        old = out_dir + ".old"
        if os.path.exists(out_dir):
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(args) -> int:
    models = args.models or list(zoo.CATALOGUE)
    for m in models:
        zoo.get(m)  # unknown names fail before any work
    results = run_study(models, seed=args.seed, quick=args.quick,
                        log=lambda s: print(s, file=sys.stderr))
    write_report(results, args.out)
    if args.json:
        print(json.dumps(results))
    else:
        print(render_markdown(results))
        print(f"report written to {args.out}/")
    return 0
