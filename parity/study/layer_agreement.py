"""How many digits the twins agree to, layer by layer, at step 1 — the report's per-layer figure.

Nothing is compared here: the rows are the checks of ``parity.localize.localize`` (the same
layer-by-layer verdicts that name the first disagreeing layer on a failure), run on the
recipe's first batch with the twins' shared dropout masks. Each row keeps the layer, what was
compared (its output in the forward pass; its input gradient and parameter gradients in the
backward pass), the largest absolute and normwise relative difference and the verdict.

Digits of agreement: ``−log10(max_rel)``, capped at the dtype's precision (``FULL_DIGITS``:
53 bits ≈ 15.95 digits in float64, 24 bits ≈ 7.22 in float32); a difference of exactly 0 is
"exact", and a tensor that is only rounding noise of its group (``max_rel`` 0 with a
non-zero difference: a value that is 0 in exact arithmetic) is "noise", not a digit count.
"""

from __future__ import annotations

import math

FULL_DIGITS = {"float64": 53 * math.log10(2), "float32": 24 * math.log10(2)}
FORWARD, BACKWARD = "forward", "backward"


def measure(spec, dtype: str, seed: int) -> list[dict]:
    """The layer-by-layer checks of step 1 of catalogue model ``spec`` (``from_spec``, the
    recipe's first batch) as rows (``rows_of``)."""
    from parity import localize
    from parity.catalogue.checks import first_batch, from_spec
    X, y = first_batch(spec, seed)
    return rows_of(localize.localize(from_spec(spec, dtype, seed), X, y, seed).checks)


def rows_of(checks) -> list[dict]:
    """``parity.localize`` checks (labels ``step 1 layer 2 (ReLU) output``, ``… input
    gradient``, ``… grad 4.weight``) → ``{"layer", "kind", "what", "direction", "max_abs",
    "max_rel", "passed", "rule"}``, in the checks' order."""
    from parity.localize import label_parts
    rows = []
    for c in checks:
        layer, kind, what = label_parts(c.label)
        rows.append({"layer": layer, "kind": kind, "what": what,
                     "direction": FORWARD if what == "output" else BACKWARD,
                     "max_abs": float(c.max_abs), "max_rel": float(c.max_rel),
                     "passed": bool(c.passed), "rule": c.rule})
    return rows


def digits(row: dict, dtype: str) -> tuple[float, str]:
    """``(digits, state)`` of one row: state ``exact`` (difference 0: the cap), ``noise``
    (rounding noise of its group: 0 digits drawn, marked), ``full`` (at or past the cap) or
    ``measured``; digits = min(−log10(max_rel), cap), never below 0."""
    cap = FULL_DIGITS[dtype]
    if row["max_abs"] == 0:
        return cap, "exact"
    if row["max_rel"] == 0:
        return 0.0, "noise"
    d = -math.log10(row["max_rel"]) if math.isfinite(row["max_rel"]) else 0.0
    return (cap, "full") if d >= cap else (max(d, 0.0), "measured")


def by_layer(rows: list[dict], dtype: str) -> list[dict]:
    """Per layer, in forward order: ``{"layer", "kind", "forward": (digits, state, passed),
    "backward": (…)}`` — forward is the layer's output; backward the worst of its input
    gradient and parameter gradients (a failing check first, then the fewest digits; a tensor
    that is only group noise counts as agreeing, shown only when nothing else is there);
    None where the layer has none."""
    layers: dict[int, dict] = {}
    for r in rows:
        entry = layers.setdefault(r["layer"], {"layer": r["layer"], "kind": r["kind"],
                                               FORWARD: None, BACKWARD: None})
        d, state = digits(r, dtype)
        cur = entry[r["direction"]]
        if cur is None or _rank(d, state, r["passed"]) < _rank(*cur):
            entry[r["direction"]] = (d, state, r["passed"])
    return [layers[i] for i in sorted(layers)]


def _rank(d: float, state: str, passed: bool) -> tuple:
    """Sort key of "worse": a failure, then fewer digits; noise ranks as agreement."""
    return (passed, math.inf if state == "noise" else d)
