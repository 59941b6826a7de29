"""The oracle that trusts neither twin: central finite differences of the NumPy forward pass,
in float64, contracted with a *random* cotangent.

``parity.compare`` shows the twins agree; that alone cannot tell whether both are wrong the
same way. Here the reference's hand-written ``backward`` is checked against the derivative of
its own ``forward`` (and, in ``tests/test_gradcheck.py``, torch's autograd against torch's
forward). With the forward outputs equal across the twins, the three pin the gradients to the
math.

Method. For an array ``x`` and a function ``f`` the scalar ``g(x) = Σ cot · f(x)`` is
differentiated entry by entry, ``∂g/∂x_i ≈ (g(x + h e_i) − g(x − h e_i)) / 2h``, and compared
with ``backward(cot)``. The cotangent is random: an upstream of ones makes the softmax and
BatchNorm input gradients identically 0 (each row/column of their Jacobian sums to 0).

Contract (float64):
- a layer or loss with O(1) values passes when ``rel_error ≤ FD_RTOL``;
- a model's tensor passes, like ``torch.testing.assert_close``, when
  ``max|a − n| ≤ atol + FD_RTOL · max(|a| + |n|)`` with ``atol = max(FD_ATOL · max(1, G),
  FD_LAMBDA · ε · Q / h)``: G the largest |backward| entry, Q the rounding sensitivity
  ``√(L² + Σ_v Σ(∂L/∂v ⊙ v)²)`` over every intermediate v (``ModelCheck.sensitivity``), and
  3× that atol with Richardson extrapolation (``richardson=True``: ``(4·D(h/2) − D(h))/3``
  cancels the h² truncation term of functions with a short length scale, such as a norm
  layer over small inputs);
- a gradient that is 0 by construction (a Linear bias feeding BatchNorm in training mode)
  must have ``max(|a|, |n|) ≤ atol``.
Where finite differences are not an oracle the result says so instead of judging: a batch row
within ``KINK_MARGIN`` of a kink, or with an exact tie at one that a random step parts, is
replaced (``kink_free_rows``) and every evaluation verifies that no kink input changed side
(``kink_crossings``); BCE rows whose backward is capped are counted (``ModelCheck.capped``);
a norm layer's smallest divided variance is reported (``ModelCheck.min_norm_variance``;
below its eps the function's length scale is below any usable h).

float32. ``check_layer_float32`` / ``check_loss_float32`` run the float32 layer or loss's
own backward and compare it with central differences of the same function evaluated in
float64 on the upcast inputs, with the bound ``F32_K · u · κ + FD_RTOL`` derived in
``Float32Check``.

Randomness (dropout masks, cotangents, the entry subsets of big tensors) comes from explicit
``numpy.random.Generator`` objects. Dropout uses one fixed keep-mask, queued before every
forward. BatchNorm in training mode is differentiated through its batch statistics, with its
running buffers saved and restored around every evaluation.

How each constant was measured: docs/verdicts.md (sections on finite differences).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from parity import kinds
from parity.reference import layers as L
from parity.reference.sequential import Sequential
from parity.twins import zero_gradient_keys

H = 1e-6            # default step of the central differences
# docs/verdicts.md#finite-differences-fd_rtol-fd_atol: ≥ 7× the worst measured error
FD_RTOL = 1e-7      # relative threshold (rel_error), layers, losses and models
FD_ATOL = 1e-9      # absolute threshold: the finite differences' rounding floor at h = 1e-6
EPS = float(np.finfo(np.float64).eps)   # 2.2e-16: one rounding of a float64 intermediate
# the loss errs by ~ε·Q (Q: ModelCheck.sensitivity); λ·ε·Q/h bounds the noise
# (docs/verdicts.md#the-rounding-floor-fd_lambda)
FD_LAMBDA = 4.0
# = 100·H: smallest |kink input| in kink_free_rows (docs/verdicts.md#kinks-kink_margin)
KINK_MARGIN = 1e-4
MAX_ENTRIES = 200   # entries checked per tensor (a random subset of bigger tensors)
TIE_PROBE_STREAM = 0x71E   # _parting_ties' direction: default_rng([seed, TIE_PROBE_STREAM])


def rel_error(x, y) -> float:
    """cs231n's relative error ``max|x − y| / max(1e-8, max(|x| + |y|))`` over all entries.

    Normwise (one scale per tensor, not per entry), so entries that are ~0 on both sides do
    not blow it up; the 1e-8 floor only prevents 0/0 when both tensors are 0.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"rel_error: shapes differ, {x.shape} vs {y.shape}")
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x - y)) / max(1e-8, float(np.max(np.abs(x) + np.abs(y)))))


def _check_float64(name: str, x) -> None:
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"{name}: finite differences need a float64 numpy array, got {got}")


def numerical_grad_at(g: Callable[[], float], x: np.ndarray, indices: Iterable[int],
                      h: float = H, richardson: bool = False) -> np.ndarray:
    """Central differences of the scalar ``g()`` w.r.t. the entries ``x.flat[i]`` for ``i`` in
    ``indices``: ``D(h) = (g(x + h e_i) − g(x − h e_i)) / 2h``. ``x`` (float64) is perturbed in
    place, one entry at a time, and restored exactly (also on error). Returns
    ``(len(indices),)``.

    ``richardson=True`` returns ``(4·D(h/2) − D(h)) / 3`` instead (twice the evaluations): the
    ``h²`` truncation term cancels, leaving ``O(h⁴)`` — for functions whose length scale is
    not ≫ h (a normalization layer whose inputs are of the order of ``sqrt(eps)``)."""
    _check_float64("numerical_grad_at", x)
    if not h > 0:
        raise ValueError(f"numerical_grad_at: h must be > 0, got {h}")

    def central(i: int, step: float) -> float:
        old = x.flat[i]
        try:
            x.flat[i] = old + step
            plus = g()
            x.flat[i] = old - step
            minus = g()
        finally:
            x.flat[i] = old
        return (plus - minus) / (2 * step)

    out = []
    for i in indices:
        d = central(i, h)
        out.append((4 * central(i, h / 2) - d) / 3 if richardson else d)
    return np.asarray(out, dtype=np.float64)


def numerical_jvp_grad(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, cotangent,
                       h: float = H) -> np.ndarray:
    """``∂g/∂x`` for ``g(x) = Σ cotangent · f(x)`` by central differences, entry by entry.

    ``x``: any-shape float64 array, perturbed in place and restored; ``f(x)`` any array (or
    scalar) broadcastable against ``cotangent``. Returns an array of ``x``'s shape. ``f`` may
    ignore its argument and read ``x`` through a closure (a layer's parameter array).
    """
    cot = np.asarray(cotangent, dtype=np.float64)

    def g() -> float:
        return float(np.sum(cot * np.asarray(f(x), dtype=np.float64)))

    return numerical_grad_at(g, x, range(x.size), h).reshape(x.shape)


# ---- single layers and losses ---------------------------------------------------------------
def _layer_forward(layer: L.Layer, training: bool, keep, buffers: dict):
    """``forward(x)`` of ``layer`` with its buffers reset to ``buffers`` before every call
    (BatchNorm's running statistics) and the fixed dropout keep-mask ``keep`` queued."""
    def forward(inp: np.ndarray) -> np.ndarray:
        layer.buffers.update({k: np.array(v, copy=True) for k, v in buffers.items()})
        if keep is not None:
            cast(L.Dropout, layer).queue_masks([keep])   # masks exist for Dropout only
        return layer.forward(inp, training)
    return forward


def _layer_backward(layer: L.Layer, forward, x: np.ndarray, cot: np.ndarray,
                    jitter: np.random.Generator | None = None) -> dict:
    """``{"dx": …, <param>: …}``: the analytic backward of ``Σ cot · forward(x)`` (copies).
    ``jitter``: perturb what the forward cached by ``1 ± u`` before the backward reads it."""
    forward(x)
    if jitter is not None:
        _jitter_cache(layer, jitter)
    dx = np.array(layer.backward(cot), copy=True)
    return {"dx": dx, **{k: np.array(layer.grads[k], copy=True) for k in layer.params}}


def _layer_numeric(layer: L.Layer, forward, x: np.ndarray, cot: np.ndarray, h: float) -> dict:
    """Central differences of ``Σ cot · forward(x)`` w.r.t. ``x`` and every parameter
    (float64 throughout; ``x`` and the parameters are perturbed in place and restored)."""
    out = {"dx": numerical_jvp_grad(forward, x, cot, h)}
    for k, p in layer.params.items():
        out[k] = numerical_jvp_grad(lambda _p: forward(x), p, cot, h)
    return out


def _keep_mask(layer: L.Layer, shape, training: bool, rng: np.random.Generator):
    if training and kinds.drops_units(layer):
        dropout = cast(L.Dropout, layer)
        return rng.random(dropout.mask_shape(shape)) >= dropout.p
    return None


def kinks(layer: L.Layer) -> tuple[float, ...]:
    """Inputs where the layer's first derivative jumps (its kind's ``kinks``; ReLU's 0)."""
    kind = kinds.of_layer(layer)
    return kind.kinks(layer) if kind is not None else ()


def hazard(layer: L.Layer, x: np.ndarray) -> np.ndarray | None:
    """Per entry of ``x``, its distance to where the layer's derivative jumps (ReLU's 0, a
    max-pooling window's tie: its kind's ``kink_distance``); ``None`` for a smooth layer."""
    kind = kinds.of_layer(layer)
    return kind.kink_distance(layer, x) if kind is not None and kind.has_kinks(layer) else None


def kink_distance(x: np.ndarray, points: tuple[float, ...]) -> np.ndarray:
    """``|x − k|`` to the nearest kink ``k``, elementwise."""
    return np.min([np.abs(x - k) for k in points], axis=0)


def kink_sides(x: np.ndarray, points: tuple[float, ...]) -> np.ndarray:
    """``x > k`` for each kink, stacked: a change means a finite difference crossed one."""
    return np.stack([x > k for k in points])


def _refuse_kinks(layer: L.Layer, x: np.ndarray, h: float) -> None:
    dist = hazard(layer, x)
    if dist is not None and np.any(dist <= 10 * h):
        raise ValueError(f"check_layer({layer!r}): inputs within 10·h = {10 * h:g} of a kink "
                         f"(min distance {dist.min():.3g}): resample them")


def check_layer(layer: L.Layer, x: np.ndarray, training: bool, rng: np.random.Generator,
                h: float = H) -> dict[str, float]:
    """Relative errors of ``layer.backward(cot)`` against finite differences of
    ``Σ cot · layer.forward(x, training)``: ``{"dx": …, "weight": …, "bias": …}`` (one entry
    per parameter). ``cot ~ N(0, 1)`` of the output's shape, drawn from ``rng``; so is the
    dropout keep-mask (fixed for every forward). ``x: (N, D)`` float64 is not modified; the
    layer's buffers are left as they were before the call.
    """
    _check_float64(f"check_layer({layer!r})", x)
    _refuse_kinks(layer, x, h)
    saved = {k: np.array(v, copy=True) for k, v in layer.buffers.items()}
    forward = _layer_forward(layer, training, _keep_mask(layer, x.shape, training, rng), saved)
    xw = np.array(x, copy=True)
    try:
        cot = rng.standard_normal(forward(xw).shape)
        analytic = _layer_backward(layer, forward, xw, cot)
        numeric = _layer_numeric(layer, forward, xw, cot, h)
    finally:
        layer.buffers.update(saved)
    return {k: rel_error(analytic[k], numeric[k]) for k in analytic}


def check_loss(loss, scores: np.ndarray, y, h: float = H) -> float:
    """Relative error of ``loss.backward()`` (``dL/dscores``) against finite differences of
    ``L = loss.forward(scores, y)`` (a scalar: the cotangent is 1). ``scores`` float64 is not
    modified. For ``BCELoss`` keep the probabilities away from 0 and 1 (its logs are clamped
    at −100 there, and ``p ± h`` must stay inside [0, 1])."""
    _check_float64(f"check_loss({type(loss).__name__})", scores)
    s = np.array(scores, copy=True)
    loss.forward(s, y)
    analytic = np.array(loss.backward(), copy=True)
    numeric = numerical_jvp_grad(lambda v: loss.forward(v, y), s, 1.0, h)
    return rel_error(analytic, numeric)


# ---- float32 layers and losses against a float64 oracle -------------------------------------
U32 = float(np.finfo(np.float32).eps) / 2   # float32 unit roundoff, 2⁻²⁴ ≈ 6.0e-8
# rounding budget in units of u·κ (Float32Check; docs/verdicts.md#float32-layers-and-losses-f32_k)
F32_K = 16
COND_DRAWS = 8      # random perturbations per condition estimate


@dataclass
class Float32Check:
    """A float32 analytic gradient ``a`` against the float64 finite difference ``n`` of the
    same function at the same (float32-representable) point.

    Derivation of the bound ``rel_error(a, n) ≤ F32_K · u · κ + FD_RTOL``, u = 2⁻²⁴:
    - ``n`` is the exact gradient at the float32 point up to the float64 oracle's own error,
      ``FD_RTOL`` (measured ≤ 2.6e-9 on layers and losses).
    - The float32 run rounds (i) every input — x, parameters, buffers, cotangent — and
      (ii) every result the forward caches for the backward (a Linear's input, an
      activation's output, BatchNorm's x̂ and 1/σ, the log-probabilities) once each, by a
      relative ≤ u. κ, "the forward's condition", is how much that moves the gradient:
      ``max|Δgrad| / (u · max|grad|)``, estimated by re-running the float64 backward
      ``COND_DRAWS`` times with all of (i) and (ii) multiplied entrywise by ``1 ± u``
      (random signs), floored at 1. It is large where the backward cancels (BatchNorm's
      ``m·g − Σg − x̂·Σgx̂``, softmax − onehot) or reads a saturated output (tanh's
      ``1 − out²`` at |x| ≳ 9, where float32 rounds out to ±1: the true 1e-8 is lost).
    - (iii) The backward's own arithmetic rounds each gradient entry at most m times in an
      m-term reduction (m ≤ 8 here: batch 8, width 5) and ≤ 6 times elementwise, each
      relative to the terms it combines — the same magnitudes κ is measured on.
    So the error is ≲ (1 + 8 + 6)·u·κ: ``F32_K`` = 16. κ is estimated with random signs,
    not bounded: an m-term reduction's aligned worst case is up to √m larger, but rounding
    errors are not aligned either, and rel_error's denominator ``max(|a| + |n|)`` ≈
    2·max|grad| gives a factor 2 back. The measured worst ratio is 11× inside ``F32_K``
    (docs/verdicts.md#float32-layers-and-losses-f32_k).
    """

    key: str
    rel: float          # rel_error(float32 backward, float64 finite differences)
    cond: float         # κ estimate, ≥ 1

    @property
    def bound(self) -> float:
        return F32_K * U32 * self.cond + FD_RTOL

    @property
    def ratio(self) -> float:
        """The error in units of ``u·κ`` (compare with ``F32_K``)."""
        return self.rel / (U32 * self.cond)

    @property
    def passed(self) -> bool:
        return self.rel <= self.bound


def upcast_layer(layer: L.Layer) -> L.Layer:
    """A float64 copy of a float32 layer: parameters and float buffers upcast exactly."""
    twin = copy.deepcopy(layer)
    twin.to_dtype(np.float64)
    return twin


def _jittered(v, rng: np.random.Generator):
    """A float array multiplied entrywise by ``1 ± u`` (random signs); a tuple item-wise;
    anything else unchanged."""
    if isinstance(v, tuple):
        return tuple(_jittered(e, rng) for e in v)
    if isinstance(v, np.ndarray) and v.dtype.kind == "f":
        return v * (1 + U32 * rng.choice([-1.0, 1.0], v.shape))
    return v


def _jitter_cache(obj, rng: np.random.Generator) -> None:
    """Perturb every float array a layer or loss saved in ``forward`` (its declared ``saved``
    state) by ``1 ± u``: the rounding of the forward's results, which the backward reads."""
    obj.saved = {k: _jittered(v, rng) for k, v in obj.saved.items()}


def _condition(grad_of, inputs: dict, rng: np.random.Generator) -> dict[str, float]:
    """κ per output of ``grad_of(inputs, jitter) -> {key: array}`` (float64): the largest
    ``max|grad(perturbed) − grad| / (u·max|grad|)`` over ``COND_DRAWS`` draws that perturb
    every input and every cached forward value by ``1 ± u``; floored at 1."""
    base = grad_of(inputs, None)
    cond = dict.fromkeys(base, 1.0)
    for _ in range(COND_DRAWS):
        moved = grad_of({k: _jittered(v, rng) for k, v in inputs.items()}, rng)
        for k, g in base.items():
            scale = float(np.max(np.abs(g), initial=0.0))
            if scale > 0:
                cond[k] = max(cond[k], float(np.max(np.abs(moved[k] - g))) / (U32 * scale))
    return cond


def check_layer_float32(layer: L.Layer, x: np.ndarray, training: bool,
                        rng: np.random.Generator, h: float = H) -> dict[str, Float32Check]:
    """The float32 ``layer``'s backward on float32 ``x: (N, D)`` against central differences
    of the same function in float64 (``upcast_layer``, ``x`` and the float32 cotangent upcast
    exactly), with κ from the float64 backward (``Float32Check``). Same mask and buffer rules
    as ``check_layer``; ``x`` and the layer's buffers are left as they were."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise TypeError(f"check_layer_float32({layer!r}): x must be a float32 numpy array")
    _refuse_kinks(layer, x, h)
    keep = _keep_mask(layer, x.shape, training, rng)
    saved = {k: np.array(v, copy=True) for k, v in layer.buffers.items()}
    try:
        f32 = _layer_forward(layer, training, keep, saved)
        cot = rng.standard_normal(f32(x).shape).astype(np.float32)
        analytic = _layer_backward(layer, f32, x, cot)
    finally:
        layer.buffers.update(saved)
    twin = upcast_layer(layer)
    saved64 = {k: np.array(v, copy=True) for k, v in twin.buffers.items()}
    x64, cot64 = x.astype(np.float64), cot.astype(np.float64)
    numeric = _layer_numeric(twin, _layer_forward(twin, training, keep, saved64), x64, cot64, h)

    def grad_of(inp: dict, jitter) -> dict:
        for k in twin.params:
            twin.params[k][...] = inp[k]
        f = _layer_forward(twin, training, keep, {k: inp[k] for k in saved64})
        return _layer_backward(twin, f, inp["x"], inp["cot"], jitter)

    state = {**{k: np.array(v, copy=True) for k, v in twin.params.items()}, **saved64}
    cond = _condition(grad_of, {**state, "x": x64, "cot": cot64}, rng)
    return {k: Float32Check(k, rel_error(analytic[k], numeric[k]), cond[k]) for k in analytic}


def check_loss_float32(loss, scores: np.ndarray, y, rng: np.random.Generator,
                       h: float = H) -> Float32Check:
    """``loss.backward()`` on float32 ``scores`` against central differences of the loss in
    float64 at the same scores (upcast exactly), κ from the float64 backward."""
    if not isinstance(scores, np.ndarray) or scores.dtype != np.float32:
        raise TypeError(f"check_loss_float32({type(loss).__name__}): scores must be float32")
    loss.forward(scores, y)
    analytic = np.array(loss.backward(), copy=True)
    s64 = scores.astype(np.float64)
    numeric = numerical_jvp_grad(lambda v: loss.forward(v, y), s64, 1.0, h)

    def grad_of(inp: dict, jitter) -> dict:
        loss.forward(inp["scores"], y)
        if jitter is not None:
            _jitter_cache(loss, jitter)
        return {"dscores": np.array(loss.backward(), copy=True)}

    cond = _condition(grad_of, {"scores": s64}, rng)["dscores"]
    return Float32Check("dscores", rel_error(analytic, numeric), cond)


# ---- whole models (twins) -------------------------------------------------------------------
@dataclass
class TensorCheck:
    """One gradient tensor: backward (``a``) vs finite differences (``n``) over ``checked`` of
    ``total`` entries. ``zero`` marks a gradient that is 0 by construction."""

    key: str
    rel: float          # rel_error(a, n) over the checked entries
    max_abs: float      # max |a − n|
    scale: float        # max(|a| + |n|), rel_error's denominator
    max_value: float    # max(|a|, |n|)
    checked: int
    total: int
    zero: bool = False

    def passed(self, rtol: float = FD_RTOL, atol: float = FD_ATOL) -> bool:
        """``max|a − n| ≤ atol + rtol · max(|a| + |n|)``; a zero-by-construction gradient
        needs ``max(|a|, |n|) ≤ atol`` (both sides pure rounding noise)."""
        if self.zero:
            return self.max_value <= atol
        return self.max_abs <= atol + rtol * self.scale


@dataclass
class ModelCheck:
    """``check_twins``' result: one ``TensorCheck`` per parameter (state_dict keys) plus
    ``"input"`` (dL/dX), the batch rows used, and the evaluations during the finite
    differences where a kink input changed side — a ReLU input its sign, a max pooling window
    its argmax (must be 0 for the numbers to mean anything)."""

    model: str
    seed: int
    h: float
    rows: list
    atol: float = FD_ATOL       # max(FD_ATOL · max(1, largest |gradient|), λ·ε·Q/h), × 3
    #                             with Richardson (module docstring, "Error level")
    sensitivity: float = 0.0    # Q = √(L² + Σ_v Σ(∂L/∂v ⊙ v)²): L's rounding error is ~ε·Q
    capped: int = 0             # rows where BCE's backward caps p(1 − p) at ε = 1e-12 (torch's
    #                             convention): there the gradient is not L's derivative
    kink_crossings: int = 0
    min_norm_variance: float = float("inf")  # smallest variance a norm layer divided by
    tensors: dict = field(default_factory=dict)

    def failures(self, rtol: float = FD_RTOL, atol: float | None = None) -> list[str]:
        atol = self.atol if atol is None else atol
        bad = [f"{t.key}: rel {t.rel:.2e}, max abs diff {t.max_abs:.2e}, max |value| "
               f"{t.max_value:.2e}{' (0 by construction)' if t.zero else ''}"
               for t in self.tensors.values() if not t.passed(rtol, atol)]
        if self.kink_crossings:
            bad.append(f"{self.kink_crossings} finite-difference evaluations crossed a kink")
        return bad

    @property
    def passed(self) -> bool:
        return not self.failures()

    def worst_rel(self) -> float:
        return max((t.rel for t in self.tensors.values() if not t.zero), default=0.0)

    def report(self) -> str:
        lines = [f"{self.model} [seed {self.seed}, h {self.h:g}, atol {self.atol:.2g}, "
                 f"rows {self.rows}]: "
                 f"{'passed' if self.passed else 'FAILED'}"]
        for t in self.tensors.values():
            lines.append(f"  {t.key:<14} rel {t.rel:.2e}  max abs {t.max_abs:.2e}  max |value| "
                         f"{t.max_value:.2e}  {t.checked}/{t.total}"
                         f"{'  (0 by construction)' if t.zero else ''}")
        lines += [f"  FAIL {f}" for f in self.failures()]
        return "\n".join(lines)


def _draw_masks(model: Sequential, X: np.ndarray, rng: np.random.Generator) -> dict:
    """One keep-mask per training-mode Dropout layer, for a batch ``X`` (shapes found by a
    forward pass; BatchNorm buffers restored afterwards)."""
    saved = _save_buffers(model)
    masks, x = {}, X
    for i, layer in enumerate(model.layers):
        if kinds.drops_units(layer):
            dropout = cast(L.Dropout, layer)
            masks[i] = rng.random(dropout.mask_shape(x.shape)) >= dropout.p
            dropout.queue_masks([masks[i]])
        x = layer.forward(x, True)
    _restore_buffers(model, saved)
    return masks


def _save_buffers(model: Sequential) -> list[dict]:
    return [{k: np.array(v, copy=True) for k, v in layer.buffers.items()}
            for layer in model.layers]


def _restore_buffers(model: Sequential, saved: list[dict]) -> None:
    for layer, b in zip(model.layers, saved):
        layer.buffers.update({k: np.array(v, copy=True) for k, v in b.items()})


def _forward(model: Sequential, X: np.ndarray, masks: dict, saved: list[dict],
             outputs: list | None = None):
    """Training-mode forward with the fixed masks and restored buffers; also returns
    ``(kind, layer, input)`` of every layer with kinks (ReLU, max pooling: to detect kink
    crossings) and the smallest variance any norm layer normalized by (over the batch for
    BatchNorm, over the features for LayerNorm). Each layer's output is appended to
    ``outputs`` when given."""
    _restore_buffers(model, saved)
    kinked, norm_var, x = [], float("inf"), X
    for i, layer in enumerate(model.layers):
        kind = kinds.of_layer(layer)
        if kind is not None and kind.has_kinks(layer):
            kinked.append((kind, layer, x))
        if kind is not None and kind.normalizes:
            norm_var = min(norm_var, kind.smallest_variance(layer, x))
        if i in masks:
            cast(L.Dropout, layer).queue_masks([masks[i]])
        x = layer.forward(x, True)
        if outputs is not None:
            outputs.append(x)
    return x, kinked, norm_var


class KinkError(ValueError):
    """No batch keeps every kink input (a ReLU pre-activation, a max pooling window's lead)
    away from its kink: the finite differences of such a network measure the average of
    one-sided slopes, not the gradient."""


def kink_free_rows(model: Sequential, X_all, y_all, *, seed: int = 0, n: int = 8,
                   margin: float = KINK_MARGIN, name: str = "model", loss=None):
    """Rows of ``X_all: (M, D)`` for ``check_twins``/gradcheck: the first ``n``, except that a
    row with a kink input within ``margin`` of its kink is replaced by the next unused row, or
    dropped when none is left. Kink inputs are those of the training-mode forward of ``model``
    with fixed dropout masks, measured by their kind's ``kink_distance``: a ReLU
    pre-activation near 0, a max pooling window's maximum ahead of another entry by less
    than ``margin``. An exact tie counts only if a random step parts it (``_parting_ties``);
    ``check_twins``' crossing count verifies the ties left (``MaxPool2dKind.kink_distance``).
    Likewise a row whose output is within ``margin`` of a kink of ``loss`` (its record's
    ``kink_distance``: L1 at r = 0, the hinge at a zero margin). With BatchNorm every row
    affects every pre-activation, so this repeats until the whole batch is clear. Raises
    ``KinkError`` when too few rows are left (a dead unit feeding a zero-bias unit puts it
    exactly at 0 for every row). Returns ``(rows, X, y, masks)``; ``masks`` maps a Dropout
    layer index to its keep-mask ``(len(rows), width)``, drawn from a Generator seeded with
    ``seed``. ``model``'s buffers are left as they were."""
    X_all = np.asarray(X_all, dtype=np.float64)
    saved = _save_buffers(model)
    rows, nxt = list(range(min(n, len(X_all)))), min(n, len(X_all))
    need = max([k.min_batch for k in map(kinds.of_layer, model.layers) if k is not None],
               default=1)
    try:
        for _ in range(len(X_all) + 1):
            if len(rows) < need:
                raise KinkError(f"kink_free_rows({name}): {len(rows)} row(s) of {len(X_all)} "
                                f"keep every kink input at least {margin:g} from its kink, "
                                f"{need} needed")
            masks = _draw_masks(model, X_all[rows], np.random.default_rng(seed))
            out, kinked, _ = _forward(model, X_all[rows], masks, saved)
            bad = sorted({r for kind, layer, z in kinked for r in np.flatnonzero(
                (kind.kink_distance(layer, z, True) < margin).reshape(len(z), -1).any(1))}
                | _loss_kinked(loss, out, np.asarray(y_all)[rows], margin)
                | _parting_ties(model, X_all[rows], masks, saved, kinked, seed))
            if not bad:
                break
            for r in reversed(bad):
                if nxt < len(X_all):
                    rows[r], nxt = nxt, nxt + 1
                else:
                    del rows[r]
        else:  # pragma: no cover - each pass replaces or drops a row
            raise KinkError(f"kink_free_rows({name}): no kink-free batch found")
    finally:
        _restore_buffers(model, saved)
    return rows, X_all[rows], np.asarray(y_all)[rows], masks


def _parting_ties(model: Sequential, X: np.ndarray, masks: dict, saved: list, kinked: list,
                  seed: int, h: float = H) -> set[int]:
    """Rows holding an exact tie at a kink (``kink_ties``) that the check's steps can part.

    A tie of entries a, b parts under a step along some checked entry θ_i (a parameter or
    an input) iff ``∂a/∂θ_i ≠ ∂b/∂θ_i`` for some i, iff almost surely ``u·(∇a − ∇b) ≠ 0``
    for a random direction u. So every parameter and ``X`` move by ``±h·u``, ``u ~ N(0, 1)``
    (seeded from ``seed``), and a row whose tied kink changes side (the argmax of its
    window) at either sign is reported. Tied 0s of dead ReLUs stay tied; two equal pixels
    of a blank patch part. ``kinked``: ``_forward``'s list at ``X``; arrays restored."""
    ties = [kind.kink_ties(layer, z) for kind, layer, z in kinked]
    if not any(t is not None and t.any() for t in ties):
        return set()
    base = [kind.kink_sides(layer, z) for kind, layer, z in kinked]
    X = np.array(X, copy=True)
    arrays = [X, *model.parameters().values()]
    old = [np.array(a, copy=True) for a in arrays]
    rng = np.random.default_rng([seed, TIE_PROBE_STREAM])
    steps = [h * rng.standard_normal(a.shape) for a in arrays]
    bad: set[int] = set()
    try:
        for sign in (1.0, -1.0):
            for a, o, step in zip(arrays, old, steps):
                a[...] = o + sign * step
            _, moved, _ = _forward(model, X, masks, saved)
            for (kind, layer, z), t, b in zip(moved, ties, base):
                if t is not None:
                    parted = (kind.kink_sides(layer, z) != b) & t
                    bad |= {int(r) for r in np.flatnonzero(parted.reshape(len(z), -1).any(1))}
    finally:
        for a, o in zip(arrays, old):
            a[...] = o
    return bad


def _loss_kinked(loss, out: np.ndarray, y: np.ndarray, margin: float) -> set[int]:
    """Rows whose output lies within ``margin`` of a kink of ``loss`` (none without one)."""
    kind = kinds.of_loss(loss) if loss is not None else None
    if kind is None:
        return set()
    return {int(r) for r in np.flatnonzero((kind.kink_distance(loss, out, y) < margin).any(1))}


def check_twins(twins, X, y, *, seed: int = 0, n: int = 8, h: float = H,
                max_entries: int = MAX_ENTRIES, margin: float | None = None,
                richardson: bool = False) -> ModelCheck:
    """Every gradient of the NumPy twin (float64) on a small batch against finite
    differences of its data loss ``twins.numpy_loss`` (the cs231n L2 penalty is not part
    of it: torch puts it in the update, not in backward). The twins are not modified.

    Batch: ``kink_free_rows(model, X, y, seed=seed, n=n, margin=margin)`` (≈ the first
    ``n`` rows of ``X: (M, D)``), ``margin`` 100·h unless given.
    Training mode throughout: fixed dropout masks, BatchNorm on the batch statistics (the full
    forward is re-run per entry; running buffers restored around each run). Tensors bigger
    than ``max_entries`` are checked on a random subset of that many entries (drawn with a
    Generator seeded from ``seed``); smaller ones entirely. ``"input"`` checks dL/dX too.
    ``richardson``: see ``numerical_grad_at`` (and the module docstring, "Truncation").
    """
    if twins.dtype != "float64":
        raise TypeError(f"check_twins({twins.name}): finite differences need float64 twins, "
                        f"got {twins.dtype}")
    model, loss = twins.numpy_model, twins.numpy_loss
    margin = 100 * h if margin is None else margin
    rows, X, y, masks = kink_free_rows(model, X, y, seed=seed, n=n, margin=margin,
                                       name=twins.name, loss=loss)
    saved = _save_buffers(model)
    result = ModelCheck(twins.name, seed, h, rows)
    X = np.array(X, copy=True)
    try:
        analytic, sides = _analytic(model, loss, X, y, masks, saved, result)
        scale = max(float(np.max(np.abs(v), initial=0.0)) for v in analytic.values())
        result.atol = max(FD_ATOL * max(1.0, scale),
                          FD_LAMBDA * EPS * result.sensitivity / h) * (3 if richardson else 1)

        def g() -> float:
            o, kinked, _ = _forward(model, X, masks, saved)
            if any(not np.array_equal(kind.kink_sides(layer, z), s)
                   for (kind, layer, z), s in zip(kinked, sides)):
                result.kink_crossings += 1
            return loss.forward(o, y)

        _numeric(result, g, {**model.parameters(), "input": X}, analytic,
                 np.random.default_rng(seed), h, max_entries, richardson,
                 zero_gradient_keys(model))
    finally:
        _restore_buffers(model, saved)
    return result


def _analytic(model: Sequential, loss, X, y, masks: dict, saved: list, result: ModelCheck):
    """Backward of the training-mode loss at ``X``: ``({key: gradient copy, "input": dL/dX},
    [which side of each kink every kinked layer's input is on])``; records the smallest norm
    variance and the loss's rounding sensitivity ``Q = √(L² + Σ_v Σ(∂L/∂v ⊙ v)²)`` over the
    input and every layer's output ``v`` in ``result`` (module docstring, "Error level")."""
    outputs: list = []
    out, kinked, result.min_norm_variance = _forward(model, X, masks, saved, outputs)
    squares = float(loss.forward(out, y)) ** 2
    kind = kinds.of_loss(loss)
    result.capped = kind.capped(loss, out) if kind is not None else 0
    d = loss.backward()
    for layer, v in zip(reversed(model.layers), reversed(outputs)):
        squares += float(np.sum((d * v) ** 2))
        d = layer.backward(d)
    result.sensitivity = float(np.sqrt(squares + float(np.sum((d * X) ** 2))))
    analytic = {k: np.array(v, copy=True) for k, v in model.gradients().items()}
    analytic["input"] = np.array(d, copy=True)
    return analytic, [kind.kink_sides(layer, z) for kind, layer, z in kinked]


def _numeric(result: ModelCheck, g, arrays: dict, analytic: dict, pick: np.random.Generator,
             h: float, max_entries: int, richardson: bool, zero: set) -> None:
    """A ``TensorCheck`` per array: central differences of ``g`` on all entries, or on
    ``max_entries`` of them drawn from ``pick``, against the analytic gradient."""
    for key, arr in arrays.items():
        idx = (np.arange(arr.size) if arr.size <= max_entries
               else np.sort(pick.choice(arr.size, max_entries, replace=False)))
        num = numerical_grad_at(g, arr, idx, h, richardson)
        ana = analytic[key].reshape(-1)[idx]
        result.tensors[key] = TensorCheck(
            key, rel_error(ana, num), float(np.max(np.abs(ana - num))),
            float(np.max(np.abs(ana) + np.abs(num))),
            float(max(np.max(np.abs(ana)), np.max(np.abs(num)))), len(idx), arr.size,
            zero=key in zero)
