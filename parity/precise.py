"""The float64 evaluation of a float32 step, and how far float32 rounding could move it.

Below float64 the twins are judged against a more precise computation (``parity.judge``,
"precision"): the same step — same weights, buffers, optimizer state, batch and dropout
masks, all upcast exactly from the NumPy twin's float32 state — run again in float64. That
evaluation ``r`` tells which twin is closer to the exact answer; its *spread* σ says how much
a float32 computation may legitimately differ from it.

σ is measured, not assumed (Monte Carlo arithmetic, Parker 1997): the float64 step is run
``samples`` more times with every intermediate a float32 kernel would round — the input, each
layer's output, the loss gradient, each layer's input gradient, every parameter gradient,
and for the update every parameter, gradient, state entry and result — multiplied by
``1 + u·δ`` with ``u = 2⁻²⁴`` (float32's unit roundoff) and ``δ ~ U(−1, 1)``. A quantity that
is ill-conditioned (LayerNorm over nearly equal inputs, a gradient that is a small difference
of large terms, a true zero like a bias feeding BatchNorm) gets a large σ; a well-conditioned
one a σ near ``u·|r|``. The perturbations come from a fixed seed: the same σ on every run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np

import reference

U32 = 2.0 ** -24   # unit roundoff of float32 (half an ulp at 1)

Perturb = Callable[..., np.ndarray]


def _identity(a, amplitude=None, axis=None):
    return a


def rounding(rng: np.random.Generator, u: float = U32) -> Perturb:
    """``x ↦ x + u·δ·amplitude``, ``δ ~ U(−1, 1)`` elementwise (``amplitude`` defaults to
    ``|x|``: one rounding of x itself), for float arrays and scalars."""
    def perturb(a, amplitude=None, axis=None):
        arr = np.asarray(a)
        if arr.dtype.kind != "f":
            return a
        amp = np.abs(arr) if amplitude is None else amplitude
        shape = list(arr.shape)
        if axis is not None:       # one δ shared along ``axis``: the error of a reduction
            shape[axis] = 1        # that every element along it reuses
        return arr + u * amp * rng.uniform(-1.0, 1.0, shape)
    return perturb


def upcast(model: reference.Sequential, optimizer=None):
    """Exact float64 copies of a float32 model (parameters, buffers) and of its optimizer
    (param groups bound to the copy's arrays, state entries upcast); ``optimizer`` may be
    ``None``. float32 → float64 is exact, so the copies start from the identical state."""
    m64 = copy.deepcopy(model)
    for layer in m64.layers:
        layer.params = {k: v.astype(np.float64) for k, v in layer.params.items()}
        layer.buffers = {k: _f64(v) for k, v in layer.buffers.items()}
        if hasattr(layer, "_dtype"):
            layer._dtype = np.dtype(np.float64)
    if optimizer is None:
        return m64, None
    params = m64.parameters()
    o64 = copy.copy(optimizer)
    o64.param_groups = [{**g, "params": {k: params[k] for k in g["params"]}}
                        for g in optimizer.param_groups]
    o64.state = {k: {sk: _f64(v) for sk, v in st.items()} for k, st in optimizer.state.items()}
    return m64, o64


def _f64(v):
    a = np.asarray(v)
    return a.astype(np.float64) if a.dtype.kind == "f" else copy.copy(v)


def forward_backward(model: reference.Sequential, loss, X, y, masks: dict[int, list],
                     perturb: Perturb = _identity) -> dict:
    """One training forward and backward, layer by layer, ``perturb`` applied to every value
    a float32 kernel produces, with the amplitude of its probabilistic error bound
    (``amplitudes``). Returns ``{"loss", "grads", "buffers"}``: the loss a float, gradients
    and buffers by state_dict key (NumPy layout)."""
    for i, m in masks.items():
        model.layers[i].queue_masks(m)
    x = perturb(np.asarray(X, dtype=np.float64))
    inputs = []
    for layer in model.layers:
        inputs.append(x)
        out = layer.forward(x, True)
        x = _shared_forward(layer, x, perturb(out, forward_amplitude(layer, x, out)), perturb)
    n = x.shape[0]
    L = loss.forward(x, y)
    L = float(perturb(np.float64(L), np.sqrt(n) * abs(L)))
    d = perturb(loss.backward())
    grads = {}
    for i in reversed(range(len(model.layers))):
        layer = model.layers[i]
        dx = layer.backward(d)
        for k, amp in gradient_amplitudes(layer, inputs[i], d).items():
            grads[f"{i}.{k}"] = perturb(layer.grads[k], amp)
        d = _shared_backward(layer, d, perturb(dx, backward_amplitude(layer, d, dx)), perturb)
    grads = {k: grads[k] for k in model.parameters()}
    buffers = {k: perturb(np.asarray(v)) for k, v in model.buffers().items()}
    return {"loss": L, "grads": grads, "buffers": buffers}


# ---- amplitudes: the probabilistic error bound of each computed value (Higham & Mary 2019:
# a sum of n terms computed in any order errs by at most about sqrt(n)·u·Σ|terms| with high
# probability), up to the factor u that ``rounding`` applies.

def forward_amplitude(layer, x, out):
    """Linear: ``√in·(|x|@|W| + |b|)``; a norm layer: its mean and variance are sums over
    the normalized axis (``m`` terms), ``|γ|·istd·√m·mean|x| + |out|``; else ``|out|``."""
    if isinstance(layer, reference.Linear):
        W, b = layer.params["weight"], layer.params["bias"]
        return np.sqrt(W.shape[0]) * (np.abs(x) @ np.abs(W) + np.abs(b))
    if isinstance(layer, reference.layers._Normalization) and layer._cache[0] == "batch":
        ax, istd = layer.axis, layer._cache[2]
        gamma = np.abs(layer.params["weight"]) if layer.affine else 1.0
        m = x.shape[ax]
        return gamma * istd * np.sqrt(m) * np.abs(x).mean(axis=ax, keepdims=True) + np.abs(out)
    return np.abs(out)


def backward_amplitude(layer, d, dx):
    """Linear: ``√out·|d|@|W|ᵀ``; a norm layer in training: its three-term formula over ``m``
    entries, ``istd/m·√m·(m|g| + Σ|g| + |x̂|·Σ|g·x̂|)`` with ``g = d·γ``; else ``|dx|``."""
    if isinstance(layer, reference.Linear):
        W = layer.params["weight"]
        return np.sqrt(W.shape[1]) * (np.abs(d) @ np.abs(W).T)
    if isinstance(layer, reference.layers._Normalization) and layer._cache[0] == "batch":
        _, xhat, istd = layer._cache
        g = np.abs(d * layer.params["weight"]) if layer.affine else np.abs(d)
        ax, m = layer.axis, xhat.shape[layer.axis]
        sums = g.sum(axis=ax, keepdims=True) + np.abs(xhat) * (g * np.abs(xhat)).sum(
            axis=ax, keepdims=True)
        return istd / m * np.sqrt(m) * (m * g + sums)
    return np.abs(dx)


def _is_batch_norm_layer(layer) -> bool:
    return (isinstance(layer, reference.layers._Normalization)
            and layer._cache[0] == "batch")


def _shared_forward(layer, x, out, perturb):
    """A norm layer's mean μ and 1/std are reductions every element along the normalized
    axis reuses, so their errors are shared (one δ per reduction), not independent:
    ``out += γ·istd·√m·mean|x|·δ_μ + γ·x̂·√m·(1 + istd·mean|x|)·δ_σ``. The second factor is
    the variance's relative error when ``x − μ`` cancels (istd·mean|x| = κ)."""
    if not _is_batch_norm_layer(layer):
        return out
    _, xhat, istd = layer._cache
    ax, m = layer.axis, x.shape[layer.axis]
    gamma = layer.params["weight"] if layer.affine else 1.0
    mean_abs = np.abs(x).mean(axis=ax, keepdims=True)
    out = perturb(out, np.abs(gamma) * istd * np.sqrt(m) * mean_abs, axis=ax)
    return perturb(out, np.abs(gamma * xhat) * np.sqrt(m) * (1 + istd * mean_abs), axis=ax)


def _shared_backward(layer, d, dx, perturb):
    """The two sums of a norm layer's backward, ``Σg`` and ``Σg·x̂`` (``g = d·γ``), enter
    every ``dx`` along the axis: ``dx += istd/m·√m·(Σ|g|·δ₁ + x̂·Σ|g·x̂|·δ₂)``. Their shared
    errors are what a bias feeding BatchNorm sums to (its exact gradient is 0)."""
    if not _is_batch_norm_layer(layer):
        return dx
    _, xhat, istd = layer._cache
    ax, m = layer.axis, xhat.shape[layer.axis]
    g = np.abs(d * layer.params["weight"]) if layer.affine else np.abs(d)
    c = istd / m * np.sqrt(m)
    dx = perturb(dx, c * g.sum(axis=ax, keepdims=True), axis=ax)
    return perturb(dx, c * np.abs(xhat) * (g * np.abs(xhat)).sum(axis=ax, keepdims=True),
                   axis=ax)


def gradient_amplitudes(layer, x, d) -> dict:
    """Parameter gradients are sums over the batch (``N`` terms): Linear
    ``√N·|x|ᵀ@|d|`` and ``√N·Σ_n|d|``; a norm layer ``√N·Σ_n|d·x̂|`` and ``√N·Σ_n|d|``."""
    n = np.sqrt(d.shape[0])
    if isinstance(layer, reference.Linear):
        return {"weight": n * (np.abs(x).T @ np.abs(d)), "bias": n * np.abs(d).sum(axis=0)}
    if isinstance(layer, reference.layers._Normalization) and layer.affine:
        xhat = layer._cache[1]
        return {"weight": n * np.abs(d * xhat).sum(axis=0), "bias": n * np.abs(d).sum(axis=0)}
    return {k: np.abs(g) for k, g in layer.grads.items()}


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
    for layer in model.layers:
        out = layer.forward(x, False)
        x = _shared_forward(layer, x, perturb(out, forward_amplitude(layer, x, out)), perturb)
    return x


def spread(runs: list, exact) -> object:
    """σ for every leaf of ``exact`` (nested dicts of arrays/floats): the largest
    ``max|run − exact|`` over the perturbed runs."""
    if isinstance(exact, dict):
        return {k: spread([r[k] for r in runs], v) for k, v in exact.items()}
    e = np.asarray(exact, dtype=np.float64)
    return max((float(np.abs(np.asarray(r, dtype=np.float64) - e).max(initial=0.0))
                for r in runs), default=0.0)


def evaluate(start, run: Callable, samples: int, seed: int) -> tuple:
    """``run(copy_of_start, perturb)`` once exactly and ``samples`` times perturbed, each on
    a fresh deep copy of ``start``; returns ``(exact, sigma)`` with ``sigma`` shaped like
    ``exact`` (see ``spread``)."""
    exact = run(copy.deepcopy(start), _identity)
    rng = np.random.default_rng(seed)
    runs = [run(copy.deepcopy(start), rounding(rng)) for _ in range(samples)]
    return exact, spread(runs, exact)
