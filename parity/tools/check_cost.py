"""``nn-parity bench``, part 5: what one parity check costs, against the work it checks.

CHECK: ``parity.api.compare_models`` of a NumPy MLP and its torch twin (same weights), one
Adam step (torch's defaults) on one batch, in one dtype: what ``nn-parity check
file.py:function`` runs. FLOOR: the least work that step needs: one plain torch step
(zero_grad, forward, loss, backward, ``optimizer.step()``) plus one NumPy forward and backward
(parameter gradients) of the same model and batch. The model: ``IN→W→W→W→OUT`` (``DEPTH``
Linear layers, ReLU between), batch ``BATCH``, cross-entropy.

Ratios: floor and check alternate in this process (floor, check, floor, check, …), each on
the process CPU clock (``bench.CLOCK``) with the CLI's ``--threads`` (default 1); the ratio is
taken within each pair and the median printed with its min–max. One-time costs (imports:
torch._dynamo on the first optimizer) are paid before, by a check of a tiny model. Pairs run
while the cell's time budget lasts: at least one, at most ``pairs``.

Peak memory: a fresh process (forked from a server that has only imported the checker)
builds the twins, checks a tiny model, resets the kernel's peak-resident mark
(``/proc/self/clear_refs``, Linux), runs the check once and reads ``VmHWM``: (peak − resident
before the check) / parameter bytes (parameters × the dtype's itemsize). It counts NumPy,
torch's CPU allocator and Python alike; memory an earlier allocation left resident and the
check reuses is not counted (a fresh process keeps that small). Elsewhere than Linux it is
not measured.

Largest model checked in 60 s: an estimate, not a run: the float32 check's CPU seconds are
fitted as ``t = a·P^b`` through the two widest widths of the sweep (P: parameters) and solved
for 60 s. ``large=True`` (``--large``) also checks the ~50 M-parameter model (width
``LARGE_WIDTH``) once in a child process, capped at ``LARGE_TIMEOUT_S`` wall seconds, and not
started when the sweep's memory per parameter byte says it would not fit. Every measuring
child's address space is capped at ``MEMORY_SHARE`` of the memory available.

The targets (``TARGETS``) are judged from width ``FROM_WIDTH`` on: below it a sub-millisecond
floor is dwarfed by the check's fixed cost per quantity, which says nothing about scaling.
"""

from __future__ import annotations

import gc
import math
import multiprocessing
import sys
import time

import numpy as np
import torch

from parity import reference, transfer
from parity.api import compare_models
from parity.catalogue.spec import ModelSpec
from parity.layerspec import Linear, ReLU
from parity.runtime import configure_threads, threads_in_force
from parity.tools.bench import CLOCK, _clocks, _summary
from parity.twins import TORCH_DTYPES, OptimSpec

IN, OUT, DEPTH, BATCH = 32, 10, 4, 256
WIDTHS = (32, 128, 512, 2048)
DTYPES = ("float32", "float64")
FROM_WIDTH = 512
LARGE_WIDTH = 5000             # 50.2 M parameters
LARGE_TIMEOUT_S = 300
MEMORY_SHARE = 0.8             # of the available memory, the most a measuring child may map
SECONDS = 60.0                 # "the largest model checked in 60 s"
# float32: ≤ 15× the floor when the tolerance table decides every check, ≤ 40× when a rule
# needs σ (the rounding or precision rule: a float64 evaluation of the step); float64 ≤ 6×;
# peak memory ≤ 25× the parameter bytes; the 50 M model checked in ≤ 60 s of CPU.
TARGETS = {"float32": 15.0, "float32_sigma": 40.0, "float64": 6.0, "memory": 25.0,
           "large_seconds": SECONDS}
SIGMA_RULES = ("rounding", "precision")


def mlp(width: int) -> ModelSpec:
    """``IN→W→…→W→OUT``: ``DEPTH`` Linear layers with ReLU between, Adam (torch's defaults)."""
    sizes = (IN, *(width,) * (DEPTH - 1), OUT)
    layers: list = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [Linear(a, b), ReLU()]
    return ModelSpec(name=f"bench-mlp-w{width}", source="bench", summary="bench MLP",
                     layers=tuple(layers[:-1]), loss="cross_entropy",
                     optimizer=OptimSpec("adam", lr=1e-3), dataset="spiral3", init="he",
                     epochs=1)


def parameters(width: int) -> int:
    """Parameter count of ``mlp(width)``: weights and biases of every Linear."""
    sizes = (IN, *(width,) * (DEPTH - 1), OUT)
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def twins(width: int, dtype: str) -> tuple[reference.Sequential, torch.nn.Sequential,
                                          np.ndarray, np.ndarray]:
    """``(numpy model, torch model, X: (BATCH, IN) float64, y: (BATCH,))``, same weights."""
    spec = mlp(width)
    np_model, t_model = spec.build_numpy(0, dtype), spec.build_torch(dtype)
    transfer.numpy_to_torch(np_model, t_model)
    rng = np.random.default_rng(0)
    return np_model, t_model, rng.standard_normal((BATCH, IN)), rng.integers(0, OUT, BATCH)


def check(np_model, t_model, X, y, dtype: str):
    """The timed check: one Adam step of copies of both twins, judged (a ``TwinsReport``)."""
    return compare_models(np_model, t_model, X, y, loss="cross_entropy", optimizer="adam",
                          steps=1, dtype=dtype, weights="numpy", name="bench MLP")


def floor(width: int, dtype: str, pair=None):
    """``() -> None``: one plain torch Adam step and one NumPy forward and backward (no
    dL/dx) of ``pair`` (default: its own :func:`twins`) on the batch of :func:`twins`."""
    spec = mlp(width)
    np_model, t_model, X, y = twins(width, dtype) if pair is None else pair
    opt, loss_fn, np_loss = spec.torch_optimizer(t_model), spec.torch_loss(), spec.numpy_loss()
    Xn = X.astype(dtype)
    Xt, yt = torch.from_numpy(Xn), spec.torch_targets(y, TORCH_DTYPES[dtype])

    def go():
        opt.zero_grad()
        loss_fn(t_model(Xt), yt).backward()
        opt.step()
        np_loss.forward(np_model.forward(Xn, True), y)
        np_model.backward(np_loss.backward(), input_grad=False)
    return go


def warm_up() -> None:
    """Pay the one-time costs (imports, torch._dynamo on the first optimizer) on a tiny check."""
    for dtype in DTYPES:
        check(*twins(8, dtype), dtype)


def interleaved(width: int, dtype: str, pairs: int, budget_s: float) -> dict:
    """Floor and check alternately (after one untimed floor): at least one pair, then more
    while the wall seconds spent stay under ``budget_s``, ``pairs`` at most. Returns
    ``bench._summary``'s fields on the CPU clock, ``wall``, ``pairs`` and the last check's
    ``passed`` and ``rules`` (the rules that decided its checks)."""
    step = floor(width, dtype)
    np_model, t_model, X, y = twins(width, dtype)
    step()
    t_floor: list[tuple[float, float]] = []
    t_check: list[tuple[float, float]] = []
    report = None

    def run():
        nonlocal report
        report = check(np_model, t_model, X, y, dtype)
    while len(t_check) < pairs and (not t_check or sum(w for _, w in t_floor + t_check)
                                    < budget_s):
        t_floor.append(_clocks(step))
        t_check.append(_clocks(run))
    assert report is not None
    cpu = _summary([c for c, _ in t_floor], [c for c, _ in t_check])
    wall = _summary([w for _, w in t_floor], [w for _, w in t_check])
    return {**cpu, "wall": wall["ratio"], "pairs": len(t_check), "passed": report.passed,
            "rules": sorted({c.rule for c in report.checks})}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status: no {field}")


def available_bytes() -> int:
    """``MemAvailable`` of /proc/meminfo: what the machine can give without swapping."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise OSError("/proc/meminfo: no MemAvailable")


def _measure_in_child(conn, width: int, dtype: str, threads: int, cap_bytes: int) -> None:
    """In a fresh process: one check of ``mlp(width)`` → ``{"peak_bytes", "cpu_s",
    "passed"}`` (peak: resident bytes above those before the check) or ``{"error"}``; its
    address space is capped at ``cap_bytes`` (a MemoryError, not a machine out of memory)."""
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (cap_bytes, cap_bytes))
        configure_threads(threads)
        warm_up()
        np_model, t_model, X, y = twins(width, dtype)
        gc.collect()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                       # VmHWM := VmRSS (Linux ≥ 4.0)
        before = _status_kib("VmRSS")
        c0 = time.process_time()
        report = check(np_model, t_model, X, y, dtype)
        cpu = time.process_time() - c0
        conn.send({"peak_bytes": (_status_kib("VmHWM") - before) * 1024, "cpu_s": cpu,
                   "passed": report.passed})
    except Exception as e:  # noqa: BLE001 — reported as "not measured" with the reason
        conn.send({"error": f"{type(e).__name__}: {e}"})
    finally:
        conn.close()


def _fresh_processes():
    """Processes forked from a server that has only imported this module and
    ``torch._dynamo`` (``forkserver``): each starts with torch and the checker imported but
    nothing run, instead of paying a spawned interpreter's imports again."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__, "torch._dynamo"])   # the first optimizer imports it
    return ctx


def in_child(width: int, dtype: str, timeout_s: float) -> dict:
    """:func:`_measure_in_child` in a fresh process (``_fresh_processes``), stopped after
    ``timeout_s`` wall seconds, its address space capped at ``MEMORY_SHARE`` of the memory
    available now; ``{"error": why}`` when it gave no answer (or not on Linux)."""
    if not sys.platform.startswith("linux"):
        return {"error": "peak memory is read from /proc (Linux only)"}
    ctx = _fresh_processes()
    recv, send = ctx.Pipe(duplex=False)
    threads = threads_in_force()["torch"]
    cap = int(MEMORY_SHARE * available_bytes())
    proc = ctx.Process(target=_measure_in_child, args=(send, width, dtype, threads, cap),
                       daemon=True)
    proc.start()
    send.close()
    try:
        if recv.poll(timeout_s):
            return recv.recv()
        return {"error": f"no result within {timeout_s:g} s"}
    except EOFError:
        return {"error": f"the child process died (exit {proc.exitcode})"}
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join()


def _row(width: int, dtype: str, pairs: int, budget_s: float, memory_timeout_s: float) -> dict:
    t = interleaved(width, dtype, pairs, budget_s)
    sigma = any(r in SIGMA_RULES for r in t["rules"])
    target = (None if width < FROM_WIDTH else
              TARGETS["float32_sigma" if sigma else "float32"] if dtype == "float32"
              else TARGETS["float64"])
    n = parameters(width)
    mem = in_child(width, dtype, memory_timeout_s)
    multiple = mem["peak_bytes"] / (n * np.dtype(dtype).itemsize) if "peak_bytes" in mem \
        else None
    judged = width >= FROM_WIDTH
    return {"dtype": dtype, "width": width, "parameters": n, "floor_s": t["floor_s"],
            "check_s": t["trainer_s"], "ratio": t["ratio"], "min": t["min"], "max": t["max"],
            "wall_ratio": t["wall"], "pairs": t["pairs"], "passed": t["passed"],
            "decided_by": "σ" if sigma else "table", "target": target,
            "met": None if target is None else t["ratio"] <= target,
            "memory_multiple": multiple, "memory_error": mem.get("error"),
            "memory_met": None if multiple is None or not judged
            else multiple <= TARGETS["memory"]}


def largest_in(rows: list[dict], seconds: float = SECONDS) -> dict | None:
    """The float32 check's ``t = a·P^b`` through its two widest rows, solved for ``seconds``:
    ``{"parameters", "width", "exponent", "from_widths"}``; None without two rows or when
    the fit does not grow (``b ≤ 0``: noise) or grows so slowly that the answer passes
    1e300 parameters (a flat, noisy pair: ``(60/t2)^(1/b)`` would overflow)."""
    r = sorted((x for x in rows if x["dtype"] == "float32"), key=lambda x: x["parameters"])
    if len(r) < 2:
        return None
    (p1, t1), (p2, t2) = ((x["parameters"], x["check_s"]) for x in r[-2:])
    b = math.log(t2 / t1) / math.log(p2 / p1)
    if b <= 0:
        return None
    log_p = math.log(p2) + math.log(seconds / t2) / b
    if log_p > math.log(1e300):
        return None
    p = math.exp(log_p)
    # parameters(W) = (DEPTH-2)·W² + (IN + OUT + DEPTH-1)·W + OUT: the positive root
    a2, a1 = DEPTH - 2, IN + OUT + DEPTH - 1
    width = (-a1 + math.sqrt(a1 * a1 + 4 * a2 * (p - OUT))) / (2 * a2)
    return {"parameters": p, "width": width, "exponent": b,
            "from_widths": [r[-2]["width"], r[-1]["width"]]}


def large_check(timeout_s: float = LARGE_TIMEOUT_S, multiple: float | None = None) -> dict:
    """The ~50 M-parameter model (``LARGE_WIDTH``) checked once in float32, in a child
    process: ``{"width", "parameters", "cpu_s", "memory_multiple", "met"}`` or with
    ``"error"`` (not finished within ``timeout_s``, or not started because ``multiple`` —
    the sweep's peak memory per parameter byte at its widest float32 width — times the
    parameter bytes exceeds ``MEMORY_SHARE`` of the memory available: target not met)."""
    n = parameters(LARGE_WIDTH)
    need = None if multiple is None else multiple * 4 * n
    if need is not None and need > MEMORY_SHARE * available_bytes():
        return {"width": LARGE_WIDTH, "parameters": n, "timeout_s": timeout_s, "met": False,
                "error": f"not run: ≈ {need / 2**30:.1f} GiB needed at the sweep's "
                         f"{multiple:.0f}x the parameter bytes, "
                         f"{available_bytes() / 2**30:.1f} GiB available"}
    r = in_child(LARGE_WIDTH, "float32", timeout_s)
    out = {"width": LARGE_WIDTH, "parameters": n, "timeout_s": timeout_s, **r}
    if "cpu_s" in r:
        out["memory_multiple"] = r["peak_bytes"] / (4 * n)
        out["met"] = r["cpu_s"] <= TARGETS["large_seconds"]
        out["memory_met"] = out["memory_multiple"] <= TARGETS["memory"]
    else:
        out["met"] = False
    return out


def check_cost(widths=WIDTHS, pairs: int = 7, budget_s: float = 20.0,
               memory_timeout_s: float = 600.0, large: bool = False) -> dict:
    """Every (dtype, width) row of the sweep, the 60-s estimate and (``large``) the 50 M
    model: what ``nn-parity bench`` prints as part 5."""
    warm_up()
    rows = [_row(w, d, pairs, budget_s, memory_timeout_s) for d in DTYPES for w in widths]
    widest = max((r for r in rows if r["dtype"] == "float32"), key=lambda r: r["width"])
    return {"clock": CLOCK, "threads": threads_in_force(), "batch": BATCH, "depth": DEPTH,
            "in": IN, "out": OUT, "targets": TARGETS, "from_width": FROM_WIDTH, "rows": rows,
            "largest_in_60s": largest_in(rows),
            "large": large_check(multiple=widest["memory_multiple"]) if large else None}


def run(quick: bool = False, large: bool = False) -> dict:
    """:func:`check_cost` as ``nn-parity bench`` runs it; ``quick``: widths up to 512, 3
    pairs, 3 s per cell."""
    if quick:
        return check_cost(widths=(32, 128, 512), pairs=3, budget_s=3.0, large=large)
    return check_cost(large=large)


def _met(flag) -> str:
    return "-" if flag is None else ("met" if flag else "NOT met")


def _ratio(r: dict) -> str:
    return f"{r['ratio']:8.1f} ({r['min']:.1f}–{r['max']:.1f})"


def render(cost: dict) -> str:
    """The sweep as a table, then the 60-s estimate and the large model's line."""
    lines = [f"check cost: compare_models (1 Adam step, batch {cost['batch']}, MLP "
             f"{cost['in']}→W→W→W→{cost['out']}) against the floor (1 plain torch step + 1 "
             f"NumPy forward/backward); median {cost['clock']}, median of per-pair ratios "
             f"(min–max); memory: peak resident bytes of one check / parameter bytes; "
             f"targets from width {cost['from_width']} (performance, not parity):",
             "  dtype    width      params  floor_ms   check_s  check/floor (min–max)    "
             "pairs  by     target  speed    memory  mem"]
    for r in cost["rows"]:
        target = "-" if r["target"] is None else f"≤ {r['target']:g}"
        mem = "n/a" if r["memory_multiple"] is None else f"{r['memory_multiple']:.1f}x"
        lines.append(f"  {r['dtype']:<8} {r['width']:>5} {r['parameters']:>11,} "
                     f"{1e3 * r['floor_s']:9.2f} {r['check_s']:9.3f} "
                     f"{_ratio(r):<24} {r['pairs']:>5}  "
                     f"{r['decided_by']:<6} {target:<6}  {_met(r['met']):<7}  {mem:>7}  "
                     f"{_met(r['memory_met'])}" + ("" if r["passed"] else "  (check FAILED)"))
    for r in cost["rows"]:
        if r["memory_error"]:
            lines.append(f"  memory not measured ({r['dtype']}, width {r['width']}): "
                         f"{r['memory_error']}")
    lines.append(f"  memory target ≤ {cost['targets']['memory']:g}x the parameter bytes; "
                 f"float32 ≤ {cost['targets']['float32']:g}x when the table decides "
                 f"(≤ {cost['targets']['float32_sigma']:g}x when σ is needed), "
                 f"float64 ≤ {cost['targets']['float64']:g}x")
    est = cost["largest_in_60s"]
    lines.append("  largest float32 model checked in 60 s of CPU: " + (
        "not estimated (no growth between the two widest widths)" if est is None else
        f"≈ {est['parameters'] / 1e6:.1f} M parameters (width ≈ {est['width']:.0f}), "
        f"estimated: t ∝ P^{est['exponent']:.2f} through widths "
        f"{est['from_widths'][0]} and {est['from_widths'][1]}; target 50 M "
        f"{_met(est['parameters'] >= 50e6)}"))
    large = cost.get("large")
    if large is not None:
        head = (f"  measured: width {large['width']} ({large['parameters'] / 1e6:.1f} M "
                f"parameters), float32, one check in a fresh process: ")
        lines.append(head + (f"{large['cpu_s']:.1f} s CPU (target "
                             f"≤ {cost['targets']['large_seconds']:g} s {_met(large['met'])}), "
                             f"peak memory {large['memory_multiple']:.1f}x the parameter "
                             f"bytes (target ≤ {cost['targets']['memory']:g}x "
                             f"{_met(large.get('memory_met'))})"
                             if "cpu_s" in large else
                             f"{large['error']}; target NOT met"))
    return "\n".join(lines)

