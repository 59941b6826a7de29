"""Version drift: did a numpy or torch upgrade change the numbers?

``record(out_dir)`` runs, in the current environment, every catalogue model for a fixed number
of epochs in both twins (loss after N epochs, accuracies) plus the one-step parity diffs in
both dtypes, and writes ``drift-py{X.Y}-np{numpy}-torch{torch}-cpu{capability}-t{threads}.json``:
the ATen CPU capability in force (``ATEN_CPU_CAPABILITY`` picks it; ``parity.runtime.
kernels_in_force``) and the thread count change float32 numbers too, so machines that differ
in them keep separate records (each record also holds every kernel choice). ``combine(dir)``
reads every such file and tabulates, per model and metric, the values per environment and the
largest difference across environments, into ``drift-table.json`` and ``drift-table.md``
(never read back as records: only ``drift-py*.json`` are records, each checked for shape).
"""

from __future__ import annotations

import glob
import json
import math
import os
import platform
import re

import numpy as np
import torch

from parity.catalogue import zoo
from parity.catalogue.checks import compare
from parity.catalogue.train import run
from parity.fileio import NumberOutOfRange, atomic_write_bytes, json_text, read_json, read_regular
from parity.runtime import kernels_in_force, threads_in_force
from parity.twins import IMPLS

TABLE_FILES = ("drift-table.json", "drift-table.md")
RECORD_GLOB = "drift-py*.json"
RECORD_BYTES = 16 << 20       # a record is ~10 KB


def env_name() -> str:
    """``py3.11-np2.4.6-torch2.13.0-cpuavx2-t1``: Python, NumPy and torch versions, torch's
    CPU capability in force and its thread count."""
    py = ".".join(platform.python_version_tuple()[:2])
    cpu = re.sub(r"[^a-z0-9]+", "", str(kernels_in_force()["aten"]).lower()) or "unknown"
    return (f"py{py}-np{np.__version__}-torch{torch.__version__.split('+')[0]}-cpu{cpu}"
            f"-t{torch.get_num_threads()}")


def record(out_dir: str, epochs: int = 100, models=None, log=None) -> str:
    """Measure the catalogue here; returns the path of the JSON written."""
    models = models or list(zoo.CATALOGUE)
    rows = {}
    for name in models:
        spec = zoo.get(name)
        row = {}
        for impl in IMPLS:
            res, _ = run(spec, impl, seed=spec.pinned_seed, epochs=min(epochs, spec.epochs))
            row[f"{impl}_loss"] = res.final_loss
            row[f"{impl}_train_acc"] = res.train_accuracy
            row[f"{impl}_test_acc"] = res.test_accuracy
        for dtype in ("float64", "float32"):
            q = compare(spec, dtype, spec.pinned_seed).by_quantity()
            row[f"parity_{dtype}_max_abs"] = max(v["max_abs"] for v in q.values())
        rows[name] = row
        if log:
            log(f"{name}: {row}")
    payload = {"env": env_name(), "numpy": np.__version__, "torch": torch.__version__,
               "python": platform.python_version(), "threads": threads_in_force(),
               "kernels": kernels_in_force(),
               "epochs": epochs, "models": rows}
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"drift-{payload['env']}.json")
    atomic_write_bytes(path, json_text(payload, indent=1).encode())
    return path


MAX_EPOCHS = 10**6            # the range of ``nn-parity drift --epochs``
MAX_ENV_CHARS = 200           # env_name() is ~40 characters


def _env_ok(v) -> bool:
    """A non-empty line of printable text (it heads a column of the Markdown table)."""
    return isinstance(v, str) and 0 < len(v) <= MAX_ENV_CHARS and v.isprintable()


def _record_json(path: str):
    """The JSON value of ``path``; one ValueError line naming the file (and the field, for a
    number no float64 holds)."""
    try:
        return read_json(read_regular(path, RECORD_BYTES, "a drift record needs"))
    except NumberOutOfRange as e:
        raise ValueError(f"{path}: not a drift record: {e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ValueError(f"{path}: not a drift record (not JSON: {e})") from None


def _metrics(path: str, model: str, row) -> dict[str, float]:
    """``models[model]``: metric name → a finite number, read as a float."""
    if not isinstance(row, dict):
        raise ValueError(f"{path}: not a drift record: models[{model!r}] must map metric "
                         f"names to finite numbers, got {row!r}"[:300])
    for metric, v in row.items():
        if type(v) not in (int, float) or not math.isfinite(v):
            raise ValueError(f"{path}: not a drift record: models[{model!r}][{metric!r}] is "
                             f"{v!r}; metric values must be finite numbers"[:300])
    return {metric: float(v) for metric, v in row.items()}


def read_record(path: str) -> dict:
    """One ``drift-py*.json``: ``{"env": str, "epochs": int, "models": {model: {metric:
    finite number}}}`` (other keys kept; metrics read as floats, so a table's arithmetic
    never meets an integer past the float range); ValueError naming the file and the field.
    """
    rec = _record_json(path)
    if not isinstance(rec, dict):
        raise ValueError(f"{path}: not a drift record (a JSON {type(rec).__name__}, "
                         f"expected an object)")
    for key, ok, want in (
            ("env", _env_ok, f"a non-empty string, one line of at most {MAX_ENV_CHARS} "
                             f"printable characters"),
            ("epochs", lambda v: type(v) is int and 1 <= v <= MAX_EPOCHS,
             f"an int >= 1, at most {MAX_EPOCHS}"),
            ("models", lambda v: isinstance(v, dict), "an object")):
        if not ok(rec.get(key)):
            raise ValueError(f"{path}: not a drift record: {key!r} must be {want}, "
                             f"got {rec.get(key)!r}"[:300])
    return {**rec, "models": {m: _metrics(path, m, row) for m, row in rec["models"].items()}}


def combine(in_dir: str) -> dict:
    """Table of every metric across the environments recorded in ``in_dir``."""
    if not os.path.isdir(in_dir):
        raise ValueError(f"{in_dir}: not a directory of drift records")
    files = sorted(glob.glob(os.path.join(glob.escape(in_dir), RECORD_GLOB)))
    if not files:
        raise ValueError(f"no {RECORD_GLOB} files in {in_dir}")
    runs = [read_record(f) for f in files]
    envs = [r["env"] for r in runs]
    table = []
    order = {m: i for i, m in enumerate(zoo.CATALOGUE)}
    models = sorted(set().union(*(r["models"] for r in runs)),
                    key=lambda m: (order.get(m, len(order)), m))
    for model in models:
        metrics = sorted(set().union(*(r["models"].get(model, {}) for r in runs)))
        for metric in metrics:
            values = [r["models"].get(model, {}).get(metric) for r in runs]
            present = [v for v in values if v is not None]
            spread = max(present) - min(present) if present else None
            table.append({"model": model, "metric": metric, "values": values,
                          "max_diff": spread})
    return {"envs": envs, "epochs": sorted({r["epochs"] for r in runs}), "rows": table}


def render(result: dict, changed_only: bool = False) -> str:
    envs = result["envs"]
    lines = ["| model | metric | " + " | ".join(envs) + " | max diff |",
             "|---|---|" + "---|" * len(envs) + "---|"]
    for row in result["rows"]:
        if changed_only and not row["max_diff"]:
            continue
        vals = " | ".join("-" if v is None else f"{v:.6g}" for v in row["values"])
        lines.append(f"| {row['model']} | {row['metric']} | {vals} | {row['max_diff']:.3g} |")
    return "\n".join(lines)


def write_table(result: dict, in_dir: str) -> list[str]:
    paths = [os.path.join(in_dir, name) for name in TABLE_FILES]
    atomic_write_bytes(paths[0], json_text(result, indent=1).encode())
    atomic_write_bytes(paths[1], (render(result) + "\n").encode())
    return paths
