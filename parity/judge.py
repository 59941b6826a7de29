"""Judging evidence: each compared tensor of a step becomes one labelled ``Check``.

Running the twins (``parity.compare``) records ``Pair``s — the NumPy value, the torch value
and, below float64, a float64 evaluation of the same step with its rounding spread, collected
only for a pair whose verdict needs it (``judge_lazily``). This module only reads them. The
rules and their constants live in ``parity.tolerances``:

``table``      ``|a − b| ≤ rtol·|b| + atol·S`` elementwise. float64: ``S`` is the scale of
               the tensor's group in the step (all gradients of step 2, say), because a tensor
               that is 0 in exact arithmetic carries rounding noise of that size. Below
               float64: ``S`` is the tensor's own scale, so a small tensor is never passed blind.
``rounding``   float64, when the table fails: ``max|a − b| ≤ 2·FLOOR·σ``, σ the spread of the
               step under float64 rounding (``parity.precise``, u = 2⁻⁵³). Each twin is a
               float64 computation of the same exact value, within σ of it (σ bounds a
               twin's error: ``parity.tolerances``), so they are within 2σ of each other. It
               decides where a value is formed from much larger parts that cancel — a loss of
               1.5e-6 made of logits of 13, a saturated ``p − 1``, the bias of a BatchNorm(1)
               whose gradient is 1e-17 of its parts — whose noise no group scale measures.
``precision``  below float64, when the table fails: each twin's distance to the float64
               evaluation ``r`` is within ``FACTOR`` times the other's plus ``FLOOR`` noise
               spreads: ``d_a ≤ F·d_b + K·σ`` and ``d_b ≤ F·d_a + K·σ``.
``exact``      integer tensors (``num_batches_tracked``, Adam's ``step``) must be equal.
``finite``     a NaN or Inf in either twin's tensor fails, always: two NaNs are not an
               agreement, they are a computation neither twin finished.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from parity import tolerances as tol
from parity.distance import CHUNK, absdiff, max_absdiff, slices


@dataclass
class Pair:
    """One compared quantity of a step: ``mine`` (NumPy) against ``theirs`` (torch), both in
    torch layout. ``group`` collects tensors that share a scale (``grad``, ``state.exp_avg``);
    ``precise`` is the float64 evaluation of the same step from the same float32 state and
    ``noise`` (σ) how far rounding of the twins' dtype moves it; in the float64 tier
    ``precise`` is ``None`` and ``noise`` is measured only for a step the table fails.
    Both are collected only for a pair whose verdict needs them (``judge_lazily``); ``key``
    names the tensor within its quantity (``0.weight``), for whoever collects them."""

    label: str
    quantity: str
    group: str
    step: int | None
    mine: np.ndarray
    theirs: np.ndarray
    precise: np.ndarray | None = None
    noise: float | None = None
    key: str = ""


@dataclass
class Check:
    """One labelled verdict (``"step 2 grad 0.weight"``) and the rule that decided it."""

    label: str
    quantity: str
    max_abs: float
    max_rel: float      # normwise: max|a − b| / max(max|a|, max|b|); 0 for a tensor that is
    #                     rounding noise in its group (its scale ≤ atol·S_group)
    rtol: float
    atol: float
    passed: bool
    detail: str = ""
    rule: str = "table"          # table | rounding | precision | exact | shape | finite
    scale: float = 0.0           # the S that multiplied atol
    tiny: bool = False           # torch's tensor lies wholly below the absolute atol floor
    err_numpy: float | None = None   # max|a − r| (precision tier)
    err_torch: float | None = None   # max|b − r|
    noise: float | None = None       # σ of the float64 evaluation; None: not needed


def _as_float64(v) -> np.ndarray:
    return np.asarray(v, dtype=np.float64)


def _is_integer(v) -> bool:
    return np.asarray(v).dtype.kind in "biu"


def group_scales(pairs: list[Pair], sizes: dict | None = None) -> dict[tuple, float]:
    """``S`` per (step, group): the largest magnitude either twin shows in that group;
    ``sizes`` (when given) receives each pair's ``(max|a|, max|b|)`` by ``id``."""
    scales: dict[tuple, float] = {}
    for p in pairs:
        key = (p.step, p.group)
        m = (_maxabs(p.mine), _maxabs(p.theirs))
        if sizes is not None:
            sizes[id(p)] = m
        scales[key] = max(scales.get(key, 0.0), max(m))
    return scales


def _maxabs(v) -> float:
    """``max|v|`` (0 for an empty array; NaN when any element is NaN); beyond one slice
    (``distance.CHUNK``) without a temporary of ``v``'s size: ``max(max v, −min v)``. A float
    array in its own dtype (|·|, max, min and negation are exact in any, and float32 →
    float64 is exact), any other converted first."""
    a = np.asarray(v)
    if a.dtype.kind != "f":
        a = _as_float64(a)
    if not a.size:
        return 0.0
    if a.size <= CHUNK:                               # a temporary this small costs less
        return float(np.abs(a).max())
    hi, lo = float(a.max()), float(a.min())
    return max(hi, -lo)              # any NaN makes both NaN, and max(nan, nan) is nan


def _bound(y: np.ndarray, rtol: float, floor: float) -> np.ndarray:
    """The table's ``rtol·|y| + floor`` in float64, in an array of its own."""
    bound = np.abs(y, dtype=np.float64)
    bound *= rtol
    bound += floor
    return bound


def _scan(a: np.ndarray, b: np.ndarray, rtol: float, floor: float) -> tuple[float, bool]:
    """``(max|a − b|, all |a − b| ≤ rtol·|b| + floor)`` over same-shaped finite arrays, in
    float64, a slice (``distance.CHUNK`` elements) at a time: one pass over the values, no temporary
    of their size (a float32 tensor of 50 M elements would need 1.2 GB of float64 ones)."""
    max_abs, ok = 0.0, True
    for _, x, y in slices(a, b):
        d = absdiff(x, y)
        max_abs = max(max_abs, float(d.max()))
        if ok:
            ok = bool((d <= _bound(y, rtol, floor)).all())
    return max_abs, ok


def judge(pairs: list[Pair], dtype: str) -> list[Check]:
    """A ``Check`` for every pair, in order."""
    sizes: dict[int, tuple] = {}
    scales = group_scales(pairs, sizes)
    return [judge_pair(p, dtype, scales[(p.step, p.group)], sizes[id(p)]) for p in pairs]


Evidence = Callable[[list[Pair], bool], None]


def judge_lazily(pairs: list[Pair], dtype: str, evidence: Evidence) -> list[Check]:
    """``judge(pairs, dtype)`` with the evidence of each pair collected only when its verdict
    needs it: ``evidence(some, sigma)`` sets ``precise`` on ``some`` (below float64), and with
    ``sigma`` also ``noise``. The table needs neither; below float64 a pair the table fails
    gets ``r``, and σ only when ``FACTOR`` alone fails it (``d_a ≤ F·d_b + σ`` holds for
    every σ ≥ 0 when it holds for 0); in float64 a pair the table fails gets σ. So every
    verdict, rule and message is the one ``judge`` gives with all evidence attached; a check
    ``FACTOR`` decided keeps ``noise = None`` (σ was not measured)."""
    sizes: dict[int, tuple] = {}
    scales = group_scales(pairs, sizes)
    checks = [judge_pair(p, dtype, scales[(p.step, p.group)], sizes[id(p)]) for p in pairs]
    need = [i for i, c in enumerate(checks) if not c.passed and c.rule == "table"]
    if need:
        _settle(pairs, checks)
    for sigma in ((False, True) if dtype != "float64" else (True,)):
        if not need:
            break
        evidence([pairs[i] for i in need], sigma)
        for i in need:
            p = pairs[i]
            checks[i] = judge_pair(p, dtype, scales[(p.step, p.group)], sizes[id(p)])
        need = [i for i in need if not checks[i].passed and checks[i].rule == "precision"]
    return checks


def _settle(pairs: list[Pair], checks: list[Check]) -> None:
    """Pairs that passed give up their arrays before any evidence is computed: a step's
    evidence (a float64 evaluation, σ's samples) peaks while they would be held, and a
    tensor that nothing else keeps (an update from zero) is freed now. A failed pair keeps
    them for its report (``parity.localize`` names its shapes)."""
    for p, c in zip(pairs, checks):
        if c.passed:
            p.mine = p.theirs = np.empty(0)


def judge_pair(p: Pair, dtype: str, group_scale: float, sizes: tuple | None = None) -> Check:
    """Shape first, then integers exactly, then the table, then (below float64) precision.
    ``sizes``: ``(max|a|, max|b|)`` when known (``group_scales``)."""
    rtol, atol = tol.tolerance(dtype, p.quantity)
    a, b = np.asarray(p.mine), np.asarray(p.theirs)
    if a.shape != b.shape:
        return Check(p.label, p.quantity, float("inf"), float("inf"), rtol, atol, False,
                     f"{p.label}: shape {a.shape} (NumPy) vs {b.shape} (torch)", rule="shape")
    ma, mb = sizes if sizes is not None else (_maxabs(a), _maxabs(b))
    own = max(ma, mb)
    base: dict[str, Any] = dict(label=p.label, quantity=p.quantity, max_abs=float("inf"),
                max_rel=float("inf"), rtol=rtol, atol=atol, tiny=mb < tol.ABSOLUTE_FLOOR[dtype])
    if not (np.isfinite(ma) and np.isfinite(mb)):     # a max of |v| is finite iff all are
        return Check(**base, passed=False, rule="finite",
                     detail=_nonfinite_message(p.label, _as_float64(a), _as_float64(b)))
    scale = group_scale if dtype == "float64" else own
    max_abs, within = _scan(a, b, rtol, atol * scale)
    base.update(max_abs=max_abs, max_rel=max_abs / own if own > atol * group_scale else 0.0)
    if _is_integer(a) and _is_integer(b):
        same = bool(np.array_equal(a, b))
        return Check(**base, passed=same, rule="exact",
                     detail="" if same else f"{p.label}: {a.tolist()} vs {b.tolist()}")
    if within:
        return Check(**base, passed=True, rule="table", scale=scale)
    table_msg = _table_message(p.label, a, b, rtol, atol * scale)
    if p.precise is not None:
        return _judge_precision(p, base, scale, a, b, table_msg)
    if p.noise is not None:
        return _judge_rounding(p, base, scale, table_msg)
    return Check(**base, passed=False, rule="table", scale=scale, detail=table_msg)


def _judge_rounding(p: Pair, base: dict, scale: float, table_msg: str) -> Check:
    sigma = float(p.noise or 0.0)
    allowed = 2 * tol.FLOOR * sigma
    ok = base["max_abs"] <= allowed
    detail = "" if ok else (f"{table_msg}; beyond 2 x {tol.FLOOR:g} x the rounding spread "
                            f"{sigma:.3g} of the step")
    return Check(**base, passed=ok, rule="rounding", scale=scale, detail=detail, noise=sigma)


def _judge_precision(p: Pair, base: dict, scale: float, a, b, table_msg: str) -> Check:
    assert p.precise is not None            # judge_pair's caller: only with evidence
    r = np.broadcast_to(p.precise, np.shape(a))
    d_a, d_b = max_absdiff(a, r), max_absdiff(b, r)
    sigma = float(p.noise or 0.0)
    floor = tol.FLOOR * sigma
    ok = d_a <= tol.FACTOR * d_b + floor and d_b <= tol.FACTOR * d_a + floor
    detail = "" if ok else (
        f"{table_msg}; against the float64 evaluation: NumPy {d_a:.3g}, torch {d_b:.3g}, "
        f"allowed {tol.FACTOR:g}x the other's + {tol.FLOOR:g} x noise {sigma:.3g}")
    return Check(**base, passed=ok, rule="precision", scale=scale, detail=detail,
                 err_numpy=d_a, err_torch=d_b, noise=None if p.noise is None else sigma)


def _nonfinite_message(label: str, a64: np.ndarray, b64: np.ndarray) -> str:
    """``"step 2 grad 0.weight: non-finite: NumPy 3 (first nan at (0, 1)), torch none"``."""
    def side(v: np.ndarray) -> str:
        bad = ~np.isfinite(v)
        if not bad.any():
            return "none"
        i = tuple(int(j) for j in np.argwhere(bad)[0]) if v.ndim else ()
        return f"{int(bad.sum())} (first {float(v[i])!r} at {i})"
    return f"{label}: non-finite values: NumPy {side(a64)}, torch {side(b64)}"


def nonfinite(p: Pair) -> bool:
    """Either twin's tensor holds a NaN or an Inf (the ``finite`` rule fails it)."""
    return not (np.isfinite(_maxabs(p.mine)) and np.isfinite(_maxabs(p.theirs)))


def _table_message(label: str, a, b, rtol: float, floor: float) -> str:
    """How many elements lie outside the table and the worst of them (the largest excess
    ``|a − b| − bound``, the first of equals), a slice at a time. ``|a − b| > bound`` iff the
    excess is > 0: a difference of two finite doubles rounds to 0 only when they are equal."""
    count, worst, at = 0, -np.inf, 0
    for i, x, y in slices(a, b):
        excess = absdiff(x, y)
        excess -= _bound(y, rtol, floor)
        count += int(np.count_nonzero(excess > 0))
        j = int(np.argmax(excess))
        if excess[j] > worst:
            worst, at = float(excess[j]), i + j
    i = np.unravel_index(at, np.shape(a))
    x, y = float(np.asarray(a)[i]), float(np.asarray(b)[i])
    diff, bound = abs(x - y), float(_bound(np.asarray(y), rtol, floor))
    where = f" at index {tuple(int(j) for j in i)}" if np.ndim(a) else ""
    return (f"{label}: {count}/{np.size(a)} elements outside the table; worst"
            f"{where}: NumPy {x!r} vs torch {y!r} (|diff| {diff:.3g} > {bound:.3g})")
