"""The verdict rules' constants; ``parity.judge`` applies them.

- The table: ``|numpy − torch| ≤ rtol·|torch| + atol·S`` elementwise, ``(rtol, atol)`` per
  dtype and quantity. In float64 ``S`` is the largest magnitude in the tensor's group at that
  step (all gradients; all parameters; one state entry kind), so a value that is 0 in exact
  arithmetic is held to noise relative to the step; in float32 ``S`` is the tensor's own scale.
- The float64 rounding rule (when the table fails): ``max|a − b| ≤ 2·FLOOR·σ``, σ the step's
  spread under float64 rounding (``parity.precise``).
- The precision rule (below float64, when the table fails): with ``d_a``/``d_b`` each twin's
  distance to the float64 evaluation of the same step, ``d_a ≤ FACTOR·d_b + FLOOR·σ`` and
  ``d_b ≤ FACTOR·d_a + FLOOR·σ``, σ the spread under float32-sized rounding.
- ``TRAJECTORY``: the multi-step float64 bound (``parity.diverge``).

How each constant was measured: docs/verdicts.md.
"""

from __future__ import annotations

QUANTITIES = ("loss", "penalty", "grad", "update", "param", "buffer", "state", "output")

# docs/verdicts.md#the-table-tolerances
TOLERANCES: dict[str, dict[str, tuple[float, float]]] = {
    "float64": {q: (1e-10, 1e-12) for q in QUANTITIES},
    "float32": {q: (1.3e-6, 1e-5) for q in QUANTITIES},
}


# Below float64 (see parity.judge "precision"): each twin's distance to the float64 evaluation
# may be FACTOR times the other's plus FLOOR spreads σ of that evaluation under float32-sized
# rounding perturbations (parity.precise, SAMPLES perturbed runs; float64's rounding rule
# allows 2·FLOOR·σ under float64-sized ones). docs/verdicts.md#the-precision-rule-factor-and-floor
FACTOR = 4.0
FLOOR = 1.0
# σ is the largest of SAMPLES perturbed runs: enough that a difference of two equal perturbed
# terms, which cancels in half the runs, is missed once in 256 (docs/verdicts.md#samples).
SAMPLES = 8

# The absolute atol the table used before it was scaled: a torch tensor wholly below it is
# counted as "tiny" in the JSON output (the old rule passed such a tensor whatever NumPy said).
ABSOLUTE_FLOOR = {"float64": 1e-12, "float32": 1e-5}


def tolerance(dtype: str, quantity: str) -> tuple[float, float]:
    """``(rtol, atol)`` of ``quantity`` at ``dtype`` (``float64`` | ``float32``)."""
    return TOLERANCES[dtype][quantity]


# (steps K, bound on max param_rel and loss_rel over steps 1..K) in float64, ~100× the worst
# measured case; no float32 bound (docs/verdicts.md#the-trajectory-bound-trajectory).
TRAJECTORY: dict[str, tuple[int, float]] = {"float64": (100, 1e-9)}
