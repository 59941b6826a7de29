"""The legend under a report's table: what its rows and rule names mean, in words a learner
can read. Only the rules and quantities the table shows are explained."""

from __future__ import annotations

RULES = {
    "table": "table = |a−b| ≤ rtol·|torch| + atol·S (S: the largest value of that kind in "
             "the step)",
    "rounding": "rounding = float64 values the table failed, then held to 2σ, σ the step's "
                "measured rounding spread",
    "precision": "precision = float32 values the table failed, then held to: each side "
                 "within 4× the other's distance to a float64 evaluation, plus σ",
    "exact": "exact = integers, equal",
    "finite": "finite = a NaN or Inf, always a failure",
    "shape": "shape = the shapes differ",
}

QUANTITIES = {
    "update": "update = the optimizer's step computed from torch's gradients on both sides "
              "(every step starts from synchronized weights), so it checks the optimizer "
              "alone and can pass under wrong gradients",
    "output": "output = the model's output (functions: each layer output you returned)",
    "buffer": "buffer = running statistics after the step",
}


def legend(rules: set[str], quantities: set[str]) -> list[str]:
    """Report lines: ``n`` and ``decided by`` explained, the rules in ``rules`` and the
    quantities in ``quantities`` that need a word (update, output, buffer)."""
    shown = [RULES[r] for r in RULES if r in rules]
    lines = ["  legend: n = tensors compared; decided by = how many of them each rule judged: "
             + "; ".join(shown)]
    lines += [f"          {QUANTITIES[q]}" for q in QUANTITIES if q in quantities]
    return lines
