"""The one tolerance table: (rtol, atol) per dtype and quantity, for ``torch.testing.assert_close``
(elementwise ``|numpy − torch| ≤ atol + rtol·|torch|``).

Measured (2026-11-23, torch 2.13.0 CPU, numpy 2.4.6, 2 threads; ``parity.compare`` over every
catalogue model × seeds 0–4, 1–3 steps): worst absolute difference per quantity

    quantity   float64     float32     where (worst case)
    loss       8.9e-16     4.8e-7      digits (1437-sample mean)
    grad       8.0e-16     5.3e-7      bias feeding BatchNorm (true value 0: pure rounding)
    param      2.2e-16     1.2e-7      after SGD/momentum/Adam/AdamW updates (~1 ulp)
    state      1.4e-17     3.7e-9      Adam exp_avg / exp_avg_sq, SGD momentum_buffer
    buffer     6.7e-16     3.6e-7      BatchNorm running_mean / running_var
    output     1.1e-14     5.7e-6      digits logits (|logit| ≈ 20)
    worst normwise relative difference of a tensor above atol: 3.6e-12 (float64)

float64 is the exact tier: rtol 1e-10 / atol 1e-12 leaves ≥ 100× margin over the worst case
and is 1000× stricter than torch's float64 defaults (1e-7 / 1e-7). float32 uses torch's
float32 defaults (1.3e-6 / 1e-5) unchanged: the worst measured case is 2× inside them, so no
float32 quantity needs a looser atol for the catalogue's layer sizes (PARITY_NOTES' 1e-4 is for
a (64×256)@(256×128) matmul, larger than any layer here).

Why not 0: the two sides sum in different orders (BLAS blocking, torch's reductions), and
torch fuses some multiply-adds (Adam's lerp/addcdiv): float64 parameters after an Adam step
differ by ≤ 1 ulp. Gradients that are 0 in exact arithmetic (a Linear bias before BatchNorm,
the 3-class bias gradient at a symmetric start) are rounding noise on both sides: only atol
can judge them, and ``compare`` reports no relative difference for them.

``TRAJECTORY`` is the multi-step tier (``parity.diverge``): both twins train in lockstep from
identical weights, each on its own gradients, with shared batches and dropout masks; after
every step the worst normwise relative parameter difference and the relative loss difference
are recorded. Measured in float64 over the first 200 steps, seed 0, every catalogue model:
worst parameter difference 5.9e-12 (spiral003, BatchNorm + Adam), worst loss difference
6.7e-12 (spiral004-corrected); typical models stay at 1e-16…1e-13. The differences grow with
K: rounding differences are injected every step and amplified where the dynamics are
expanding (lr 1 on the cs231n net, Adam's 1/sqrt(v) on small gradients) — slowly at first,
then roughly exponentially once training is chaotic (PARITY_NOTES: ~1e-11 after 1k steps,
~3e-9 after 2k, ~5e-3 after 5k on cs231n at lr 1). In float32 the same runs pass 1e-6 within
1–200 steps, and BatchNorm + Adam models reach O(1) differences in parameters (Adam rescales
float32 rounding noise in small gradients to steps of size ~lr): float32 trajectories agree in
distribution (accuracy), not in digits, and no float32 trajectory bound is asserted.
Linear biases that feed a norm layer (and the following running_mean) are left out: their
true gradient is 0 and each side random-walks on its own rounding noise
(``parity.diverge.cancelled_keys``).
"""

from __future__ import annotations

QUANTITIES = ("loss", "penalty", "grad", "param", "buffer", "state", "output")

TOLERANCES: dict[str, dict[str, tuple[float, float]]] = {
    "float64": {q: (1e-10, 1e-12) for q in QUANTITIES},
    "float32": {q: (1.3e-6, 1e-5) for q in QUANTITIES},
}


def tolerance(dtype: str, quantity: str) -> tuple[float, float]:
    """``(rtol, atol)`` of ``quantity`` at ``dtype`` (``float64`` | ``float32``)."""
    return TOLERANCES[dtype][quantity]


# (steps K, bound on max param_rel and loss_rel over steps 1..K) in float64 — ~100× the worst
# measured case above.
TRAJECTORY: dict[str, tuple[int, float]] = {"float64": (100, 1e-9)}
