"""The float64 evaluation of a float32 step, and how far float32 rounding could move it.

Below float64 the twins are judged against a more precise computation (``parity.judge``,
"precision"): the same step — same weights, buffers, optimizer state, batch and dropout
masks, all upcast exactly from the NumPy twin's float32 state — run again in float64. That
evaluation ``r`` tells which twin is closer to the exact answer; its *spread* σ says how much
a float32 computation may legitimately differ from it. In the float64 tier the same machinery
runs with float64's unit roundoff (``ROUNDOFF``) and gives σ alone: the spread of a float64
step, which judges values formed from larger cancelling parts (``parity.judge``, "rounding").

σ is measured, not assumed (Monte Carlo arithmetic, Parker 1997): the float64 step is run
``samples`` more times with every intermediate a float32 kernel would round — the input, each
layer's output, the loss gradient, each layer's input gradient, every parameter gradient,
and for the update every parameter, gradient, state entry and result — moved by ``u·δ``
times its error bound, ``u = 2⁻²⁴`` (float32's unit roundoff), ``δ = ±U(1, 1.5)`` (``rounding``).
A quantity that is ill-conditioned (LayerNorm over nearly equal inputs, a gradient that is a
small difference of large terms, a true zero like a bias feeding BatchNorm) gets a large σ; a
well-conditioned one a σ near ``u·|r|``. The perturbations come from a fixed seed: the same σ
on every run. The error bounds are computed once per σ (from its first sample) and the
samples folded into a running maximum as they end (``sigma``); whoever needs ``r`` and σ
asks only where a verdict needs them (``parity.judge.judge_lazily``).

The error bounds follow the float32 kernels the twins run (torch 2.13's CPU source), wherever
a kernel's form is less accurate than the float64 formula; each layer kind's record
(``parity.kinds``) holds its terms and each loss kind its own. Which kernels, and what each
left out cost: docs/verdicts.md#the-float32-kernels-σ-models.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import cast

import numpy as np

from parity import kinds, reference
from parity.distance import max_absdiff

U32 = 2.0 ** -24   # unit roundoff of float32 (half an ulp at 1)
# float32's smallest normal: below it a float32 value keeps fewer bits (subnormals) or none
# (a kernel whose exp overflows returns 1/(1 + inf) = 0 for σ(−100) = 3.7e-44), so every
# value is known only to within it, whatever its relative error bound
TINY32 = float(np.finfo(np.float32).tiny)
# (unit roundoff, smallest normal) of each dtype whose rounding σ models: float32 for the
# precision rule, float64 for the float64 tier's rounding rule (``parity.judge``)
ROUNDOFF = {"float32": (U32, TINY32),
            "float64": (2.0 ** -53, float(np.finfo(np.float64).tiny))}

Perturb = Callable[..., np.ndarray]


def _identity(a, amplitude=None, axis=None):
    return a


def rounding(rng: np.random.Generator, u: float = U32, tiny: float = TINY32,
             memo: dict | None = None) -> Perturb:
    """``x ↦ x + u·δ·amplitude``, ``δ = ±U(1, 1.5)`` elementwise, random signs (``amplitude``
    defaults to ``|x|``: one rounding of x itself), for float arrays and scalars. ``|δ|`` is
    never below 1 (a kernel can err by its whole bound, so σ must reach it from any sample),
    random (two equal perturbations that cancel must not cancel exactly) and at most 1.5 (the
    larger the bound the weaker the rule): docs/verdicts.md#σs-perturbation-rounding.
    Sign and magnitude come from one uniform draw ``w ∈ [−½, ½)``: ``δ = w + sign(w)``.
    Every amplitude carries the dtype's smallest normal (``tiny``) as an absolute floor
    (``below_normal``). ``memo``: where the samples of one σ keep the amplitudes they share
    (``_amp``)."""
    def perturb(a, amplitude=None, axis=None):
        arr = np.asarray(a)
        if arr.dtype.kind != "f":
            return a
        if axis is None:
            out = rng.random(arr.shape)
        else:                      # one δ shared along ``axis``: the error of a reduction
            shape = list(arr.shape)    # that every element along it reuses
            shape[axis] = 1
            out = rng.random(shape)
        out = np.asarray(out)          # a 0-d draw comes back as a float
        out -= 0.5
        sign = np.copysign(1.0, out, out=np.empty_like(out))
        out += sign                                  # δ = w + sign(w) = ±U(1, 1.5)
        out *= u
        if amplitude is None and out.shape == arr.shape:
            out *= np.abs(arr, out=sign)             # one rounding of x itself
        elif amplitude is not None and np.shape(amplitude) == out.shape:
            out *= amplitude                         # in place: no third array of x's size
        else:
            out = np.asarray(np.multiply(out, np.abs(arr) if amplitude is None else amplitude,
                                         dtype=np.float64))      # 0-d stays an array
        if out.shape == arr.shape:
            out += arr
        else:
            out = np.asarray(arr + out, dtype=np.float64)
        return _floor(out, rng, tiny, sign if sign.shape == out.shape else None)
    perturb.memo = memo     # type: ignore[attr-defined]
    return perturb


# below this magnitude adding the floor ``tiny`` changes a float64 value: from
# ``2⁵³·tiny`` up, ``tiny`` is at most half an ulp and the sum rounds back to the value
_FLOOR_REACH = 2.0 ** 54


def below_normal(a: np.ndarray, rng: np.random.Generator, tiny: float = TINY32) -> np.ndarray:
    """``a`` with each magnitude moved by ``tiny`` (``δ = ±1``), never across 0: a value that
    underflows may come out as 0 or as the smallest normal, and a quantity that cannot be
    negative (a second moment, a variance) stays ≥ 0. Only values below ``2⁵⁴·tiny`` draw a
    sign and move: at any larger one the move rounds away in float64."""
    return _floor(np.array(a, dtype=np.float64), rng, tiny)


def _floor(out: np.ndarray, rng: np.random.Generator, tiny: float, scratch=None):
    """``below_normal`` in place on ``out`` (float64; ``scratch``: a free array of its
    shape); a 0-d result as a NumPy scalar. An exact 0 stays 0 (``sign(0) = 0``) and is
    skipped: a ReLU net's gradients hold many."""
    mag = np.abs(out) if scratch is None else np.abs(out, out=scratch)
    reach = _FLOOR_REACH * tiny
    if mag.size and not mag.min() >= reach:         # (a NaN goes on: it is not below)
        small = np.less(mag, reach)
        small &= mag > 0
        if small.any():
            v = out[small]
            signs = np.where(rng.random(v.shape) < 0.5, -1.0, 1.0)
            out[small] = np.sign(v) * np.maximum(np.abs(v) + tiny * signs, 0.0)
    return out if out.ndim else out[()]


def upcast(model: reference.Sequential, optimizer=None):
    """Exact float64 copies of a float32 model (parameters, buffers) and of its optimizer
    (param groups bound to the copy's arrays, state entries upcast); ``optimizer`` may be
    ``None``. float32 → float64 is exact, so the copies start from the identical state."""
    m64 = copy.deepcopy(model)
    for layer in m64.layers:
        layer.to_dtype(np.float64)
    return m64, None if optimizer is None else upcast_optimizer(m64, optimizer)


def upcast_optimizer(m64: reference.Sequential, optimizer):
    """A copy of ``optimizer`` bound to the float64 model ``m64`` (its param groups hold
    ``m64``'s arrays), its state entries upcast exactly."""
    params = m64.parameters()
    o64 = copy.copy(optimizer)
    o64.param_groups = [{**g, "params": {k: params[k] for k in g["params"]}}
                        for g in optimizer.param_groups]
    o64.state = {k: {sk: _f64(v) for sk, v in st.items()} for k, st in optimizer.state.items()}
    return o64


def _f64(v):
    a = np.asarray(v)
    return a.astype(np.float64) if a.dtype.kind == "f" else copy.copy(v)


def forward_backward(model: reference.Sequential, loss, X, y, masks: dict[int, list],
                     perturb: Perturb = _identity, dtype=np.float64,
                     layers: bool = False) -> dict:
    """One training forward and backward, layer by layer, ``perturb`` applied to every value
    a float32 kernel produces, with the amplitude of its probabilistic error bound
    (``amplitudes``), the batch ``X`` in ``dtype``. Returns ``{"loss", "grads", "buffers"}``:
    the loss a float, gradients and buffers by state_dict key (NumPy layout); with
    ``layers`` also ``"output": {i: x_{i+1}}`` and ``"input_grad": {i: dL/dx_i}`` (what
    ``parity.localize`` compares layer by layer)."""
    for i, m in masks.items():
        cast(reference.Dropout, model.layers[i]).queue_masks(m)   # masks exist for Dropout only
    x = perturb(np.asarray(X, dtype=dtype))
    inputs, outputs = [], {}
    for i, layer in enumerate(model.layers):
        inputs.append(x)
        x = outputs[i] = _rounded_forward(layer, x, True, perturb, i)
    L = float(perturb(np.float64(loss.forward(x, y)),
                      _amp(perturb, "loss", loss_amplitude, loss)))
    d = loss.backward()
    d = perturb(d, _amp(perturb, "loss grad", loss_gradient_amplitude, loss, d))
    grads, input_grads = {}, {}
    for i in reversed(range(len(model.layers))):
        layer, kind = model.layers[i], _kind(model.layers[i])
        dx = kind.rounded_backward(layer, inputs[i], d, perturb)
        amps = _amp(perturb, (i, "grads"), kind.gradient_amplitudes, layer, inputs[i], d)
        for k in layer.grads if amps is None else amps:
            # the layer keeps the rounded gradient: the unrounded one is freed at once
            grads[f"{i}.{k}"] = layer.grads[k] = perturb(layer.grads[k],
                                                         None if amps is None else amps[k])
        amp = _amp(perturb, (i, "backward"), kind.backward_amplitude, layer, inputs[i], d, dx)
        d = input_grads[i] = kind.shared_backward(layer, inputs[i], d, perturb(dx, amp), perturb)
    grads = {k: grads[k] for k in model.parameters()}
    buffers = {}
    for i, layer in enumerate(model.layers):
        amps = _amp(perturb, (i, "buffers"), _kind(layer).buffer_amplitudes, layer,
                    inputs[i]) if layer.buffers else {}
        amps = amps or {}
        buffers.update({f"{i}.{k}": perturb(np.asarray(v), amps.get(k))
                        for k, v in layer.buffers.items()})
    result = {"loss": L, "grads": grads, "buffers": buffers}
    if layers:
        result.update(output=outputs, input_grad=input_grads)
    return result


# ---- amplitudes: the probabilistic error bound of each computed value (Higham & Mary 2019:
# a sum of n terms computed in any order errs by at most about sqrt(n)·u·Σ|terms| with high
# probability), up to the factor u that ``rounding`` applies.

def loss_amplitude(loss) -> float:
    """The loss is a mean of ``n`` per-sample terms ``ℓ_i``, each formed from intermediates of
    size ``t_i`` (``loss_terms``); it errs by about ``√n·u·mean(t)`` (a sum: ``count`` times
    that, by the loss's record)."""
    return _loss_kind(loss).amplitude(loss)


def loss_terms(loss) -> np.ndarray:
    """``t_i`` of ``loss_amplitude`` (``(N,)``): the size of the parts each sample's loss is
    formed from, by the loss's record (``parity.kinds.losses``)."""
    return _loss_kind(loss).terms(loss)


def loss_gradient_amplitude(loss, d: np.ndarray) -> np.ndarray:
    """The error bound of ``d = ∂L/∂out`` (``(N, K)``), by the loss's record."""
    return _loss_kind(loss).gradient_amplitude(loss, d)


def _loss_kind(loss) -> kinds.LossKind:
    kind = kinds.of_loss(loss)
    if kind is None:
        raise TypeError(f"no rounding model for the loss {type(loss).__name__}")
    return kind


def _kind(layer) -> kinds.LayerKind:
    """The layer's record; a layer of the user's own gets the generic model (one relative
    rounding of each output and gradient)."""
    return kinds.of_layer(layer) or _GENERIC


_GENERIC = kinds.LayerKind()


def _rounded_forward(layer, x, training: bool, perturb, index: int):
    """``layer.forward(x)`` with the rounding its kind's record models (``LayerKind``:
    ``forward_amplitude``, ``shared_forward``), clipped to the range its kernel returns
    (σ(30) rounds to 1 in float32, and 1 + u is no value a twin computes: BCE refuses it)."""
    kind = _kind(layer)
    out = layer.forward(x, training)
    amp = _amp(perturb, (index, "forward"), kind.forward_amplitude, layer, x, out)
    out = kind.shared_forward(layer, x, perturb(out, amp), perturb)
    lo_hi = kind.output_range(layer)
    return out if lo_hi is None else np.clip(out, *lo_hi)


def _amp(perturb: Perturb, key, amplitude: Callable, *args):
    """``amplitude(*args)``, the error bound ``perturb`` scales its draw by: ``None`` for
    the exact run (the identity reads none), and computed once for all the samples of one σ
    (``sigma``: from the first sample's operands, within a few roundings of any other's)."""
    if perturb is _identity:
        return None
    memo = getattr(perturb, "memo", None)
    if memo is None:
        return amplitude(*args)
    if key not in memo:
        memo[key] = amplitude(*args)
    return memo[key]


def update(model: reference.Sequential, optimizer, grads: dict,
           perturb: Perturb = _identity) -> dict:
    """One optimizer step on ``grads`` (NumPy layout, upcast); returns the parameters and the
    optimizer state afterwards (``{"params": {...}, "state": {key: {entry: array}}}``)."""
    for arr in model.parameters().values():
        arr[...] = perturb(arr)
    for st in optimizer.state.values():
        for sk, v in st.items():
            if np.asarray(v).dtype.kind == "f":
                st[sk] = perturb(v)
    optimizer.step({k: perturb(np.asarray(g, dtype=np.float64)) for k, g in grads.items()})
    params = {k: perturb(v) for k, v in model.parameters().items()}
    state = {k: {sk: perturb(np.asarray(v)) for sk, v in st.items()}
             for k, st in optimizer.state.items()}
    return {"params": params, "state": state}


def predict(model: reference.Sequential, X, perturb: Perturb = _identity) -> np.ndarray:
    """Eval-mode forward in float64, ``perturb`` after every layer (as ``forward_backward``)."""
    x = perturb(np.asarray(X, dtype=np.float64))
    for i, layer in enumerate(model.layers):
        x = _rounded_forward(layer, x, False, perturb, i)
    return x


def spread(runs: list, exact) -> object:
    """σ for every leaf of ``exact`` (nested dicts of arrays/floats): the largest
    ``max|run − exact|`` over the perturbed runs."""
    sigma = None
    for r in runs:
        sigma = _running_max(sigma, r, exact)
    return sigma if sigma is not None else _zeros(exact)


def _zeros(exact):
    return {k: _zeros(v) for k, v in exact.items()} if isinstance(exact, dict) else 0.0


def _running_max(sigma, run, exact):
    """``sigma`` (``None``: no run yet) raised leaf by leaf to ``max|run − exact|``."""
    if isinstance(exact, dict):
        return {k: _running_max(None if sigma is None else sigma[k], run[k], v)
                for k, v in exact.items()}
    d = max_absdiff(run, exact)              # a slice at a time: no temporary of their size
    return d if sigma is None else max(sigma, d)


def exact(start, run: Callable, fresh: Callable = copy.deepcopy):
    """``run(fresh(start), identity)``: the unperturbed float64 evaluation. ``fresh``: the
    copy of ``start`` a run may change (default: all of it; a run that changes less may
    share the rest)."""
    return run(fresh(start), _identity)


def sigma(start, run: Callable, exact, samples: int, seed: int, dtype: str = "float32",
          fresh: Callable = copy.deepcopy):
    """σ of ``exact`` (``exact(start, run)``): ``run`` ``samples`` times on fresh copies of
    ``start`` (``fresh``, as in ``exact``), perturbed by ``dtype``'s rounding (``ROUNDOFF``)
    from ``seed``, each run folded into a running maximum as it ends (see ``spread``)."""
    rng = np.random.default_rng(seed)
    out = None
    memo: dict = {}
    for _ in range(samples):
        perturb = rounding(rng, *ROUNDOFF[dtype], memo=memo)
        out = _running_max(out, run(fresh(start), perturb), exact)
    return out if out is not None else _zeros(exact)


def evaluate(start, run: Callable, samples: int, seed: int, dtype: str = "float32") -> tuple:
    """``run(copy_of_start, perturb)`` once exactly and ``samples`` times perturbed by
    ``dtype``'s rounding (``ROUNDOFF``), each on a fresh deep copy of ``start``; returns
    ``(exact, sigma)`` with ``sigma`` shaped like ``exact`` (see ``spread``)."""
    e = exact(start, run)
    return e, sigma(start, run, e, samples, seed, dtype)
