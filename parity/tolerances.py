"""The verdict rules' constants: (rtol, atol) per dtype and quantity, the float32 precision
rule's FACTOR and FLOOR, and the trajectory bound. ``parity.judge`` applies them.

Table: ``|numpy − torch| ≤ rtol·|torch| + atol·S`` elementwise.
- float64 (the exact tier), ``S`` = the largest magnitude in the tensor's group at that step
  (all gradients; all parameters; one state entry kind): a tensor that is 0 in exact
  arithmetic (a Linear bias feeding BatchNorm, LayerNorm(1)'s weight) carries rounding noise
  relative to the step's magnitudes, never to an absolute 1e-12. Worst measured over the
  catalogue × seeds 0–4: normwise relative 3.6e-12 for tensors above their group's noise, so
  rtol 1e-10 / atol 1e-12 keep ≥ 25× margin and are 1000× stricter than torch's float64
  defaults. LayerNorm(1)'s torch weight gradient is −1.12e-12 of noise beside gradients of
  ~1e2: 1e-10 of the group, passed by the table as it should be.
  Rounding rule (float64, when the table fails): ``max|a − b| ≤ 2·FLOOR·σ``, σ the spread of
  the step under float64 rounding (``parity.precise``, u = 2⁻⁵³; measured only for a step
  the table fails; every step starts from one state: weights, buffers, optimizer state). A
  value formed from much larger parts that cancel carries their noise, which no group scale
  sees: a BCE-with-logits loss of 1.46e-6 that torch forms from terms of 13 (twins 1.6e-10
  of it apart), ``p − 1`` of a saturated softmax (every gradient of a step ~1e-6, twins
  ~4e-10 apart), ``σ(a) − y`` where σ(40) rounds to 1 (torch 0, NumPy −1.4e-17), a BCE
  batch whose ``p − y`` cancel.
  Found by the thorough hypothesis profile: 2 of 6 runs failed before the rule
  (tests/test_properties.py ``FLOAT64_FOUND``); the twins are 0.02–0.41 σ apart on those
  cases, within the 2σ their two errors of ≤ σ each allow. It still catches: 1e-8 injected
  into the last weight's gradient, update or a state entry fails for every catalogue model
  (tests/test_verdicts.py).
- float32, ``S`` = the tensor's own scale max(|numpy|, |torch|): a fixed absolute atol 1e-5
  passed every tensor smaller than it whatever NumPy said (catalogue × seeds 0–1: 610/1896
  optimizer state checks and 72/776 gradient checks are of that kind; ``Check.tiny`` counts
  them in the JSON output).

Precision rule (below float64, when the table fails): ``parity.precise`` evaluates the same
step in float64 from the identical float32 state (both twins are synchronized to the NumPy
state — weights, buffers, optimizer state — at each step start) and measures σ, how far
float32-sized rounding moves that evaluation (Monte Carlo arithmetic with each value
perturbed by its probabilistic error bound √n·u·Σ|terms|, Higham & Mary 2019, shared δ for
reductions every element reuses). With
``d_a``/``d_b`` each twin's max distance to the float64 value, the check passes when
``d_a ≤ FACTOR·d_b + FLOOR·σ`` and ``d_b ≤ FACTOR·d_a + FLOOR·σ`` — PyTorch's test_ops
(``_ref_test_helper``) asks ``dist(ref) ≤ dist(torch)``; we ask it of both sides, with a
factor for two kernels of different but legitimate accuracy and a floor for the noise both
may carry. Derivation, measured 2026-11-25 (torch 2.13.0 CPU, numpy 2.4.6, 1 thread):
- σ is a bound, not a typical error: over the catalogue × seeds 0–1 (82 checks reached the
  rule, all small bias gradients that cancel) the worst twin's distance was 0.154 σ (cs231n's
  b2: NumPy's float32 ``sum(axis=0)`` adds 300 rows sequentially, torch's cascade sum is 24×
  more accurate, and both are right; 0.237 σ with the first error model): FLOOR = 1 leaves
  6× margin; FACTOR = 4 lets one kernel be 4× less accurate than the other beyond that.
- the 64→512→512→10 BatchNorm/dropout net and the 784→1024→10 net pass (tests/test_verdicts).
- it still catches bugs: a 1e-4 relative error injected into any gradient, update ``Δθ``
  (checked from θ = 0, see ``parity.compare._update_from_zero``, since Δθ ≪ ulp(θ) for small
  learning rates) or optimizer state entry fails for every catalogue model — 143 gradients,
  158 updates, 214 state entries; the exceptions are the 15 gradients float32 cannot resolve
  to 1e-4 (12 biases feeding BatchNorm, exact value 0; the output biases of cs231n-linear,
  cs231n-2layer and blog-2layer, 300-term sums cancelling to 1e-4 of their terms).
- random float32 nets with BatchNorm/LayerNorm (tests/test_properties.py, no longer assumed
  away): 15 of 160 float32 norm draws failed, torch up to 10 σ and NumPy up to 10⁷ σ, while σ
  left out error sources of the float32 kernels (``parity.precise``: the stored mean and
  1/std, torch LayerNorm's raw-x backward and its three-term ``a·g + b·x + c``, ``σ(a) − y``,
  torch's BCE-with-logits loss form), drew each error ``δ ~ U(−1, 1)`` in 2 samples (a
  reduction's shared error could be small in both) and perturbed LayerNorm(1)'s exact mean.
  With those modelled, ``|δ| ~ U(1, 1.5)`` (``parity.precise.rounding``) and 8 samples
  (``SAMPLES``): 0 failures in 250 fresh float32 norm draws (LayerNorm(1) included), worst
  twin's distance 0.44 σ, worst ``(d − 4·d_other)/σ`` 0.37 (2026-11-25, torch 2.13.0 CPU,
  1 thread, numpy 2.4.6).

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
Linear biases that feed a BatchNorm (and its running_mean) are left out: their true gradient
is 0 and each side random-walks on its own rounding noise (``parity.diverge.cancelled_keys``).
A bias feeding LayerNorm is not cancelled (only its mean over features is) and is included:
spiral003-layernorm, seed 0, max param_rel 4.98e-14 over 100 steps, 9.8e-12 over 1000.
"""

from __future__ import annotations

QUANTITIES = ("loss", "penalty", "grad", "update", "param", "buffer", "state", "output")

TOLERANCES: dict[str, dict[str, tuple[float, float]]] = {
    "float64": {q: (1e-10, 1e-12) for q in QUANTITIES},
    "float32": {q: (1.3e-6, 1e-5) for q in QUANTITIES},
}


# Below float64 (see parity.judge "precision"): each twin's distance to the float64 evaluation
# may be FACTOR times the other's plus FLOOR spreads σ of that evaluation under float32-sized
# rounding perturbations (parity.precise, SAMPLES perturbed runs; float64's rounding rule
# allows 2·FLOOR·σ under float64-sized ones).
FACTOR = 4.0
FLOOR = 1.0
# σ is the largest of SAMPLES perturbed runs. A value that is a difference of two terms of equal
# size perturbed by ±u each moves by 0 in half the runs (the signs cancel): Adam's
# m + (1 − β₁)·(g − m) cancelling to 6e-7 from terms of 2e-3 had σ 7e-14 from 2 samples, both
# cancelled, while the twins erred by 1.5e-11 and 4.7e-11 (647 σ; passed by FACTOR only). A
# gradient through a norm layer, a sum of a few shared terms: with 2 samples σ fell to 1/5 of
# its 32-sample value (LayerNorm(2), κ = 31, torch with ATEN_CPU_CAPABILITY=default and 2
# threads: 1.15 σ with 2 samples, 0.24 σ with 8, 0.19 σ with 32). With 8 a two-term
# cancellation is missed once in 256. Cost over 2 samples: +45 % CPU on the float32
# catalogue comparison (2.7 → 4.0 s, 1 thread).
SAMPLES = 8

# The absolute atol the table used before it was scaled: a torch tensor wholly below it is
# counted as "tiny" in the JSON output (the old rule passed such a tensor whatever NumPy said).
ABSOLUTE_FLOOR = {"float64": 1e-12, "float32": 1e-5}


def tolerance(dtype: str, quantity: str) -> tuple[float, float]:
    """``(rtol, atol)`` of ``quantity`` at ``dtype`` (``float64`` | ``float32``)."""
    return TOLERANCES[dtype][quantity]


# (steps K, bound on max param_rel and loss_rel over steps 1..K) in float64 — ~100× the worst
# measured case above.
TRAJECTORY: dict[str, tuple[int, float]] = {"float64": (100, 1e-9)}
