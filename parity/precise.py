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
on every run.

The error bounds follow the float32 kernels the twins run, read from their source (torch
2.13 ``aten/src/ATen/native/cpu/layer_norm_kernel.cpp``, ``batch_norm_kernel.cpp``,
``Loss.cpp``), wherever a kernel's form is less accurate than the float64 formula:
- a norm layer's backward reads the float32 mean and 1/std its forward stored, so x̂ is off
  by the mean's error times 1/std (κ = istd·mean|x| times x̂'s own rounding) and by 1/std's
  relative error (``_norm_statistics``); torch's LayerNorm forms its backward from raw x
  (``ds = Σ g·x``, ``db = Σ g``, ``b = (db·μ − ds)·a³/m``, ``dx = a·g + b·x + c``), whose
  sums and products err by ``u·a·(|x| + |μ|)`` in x̂'s units (``_shared_backward``);
- Sigmoid and Tanh backward read their stored output: ``1 − s`` keeps s's rounding whole;
- the losses: ``σ(a) − y`` and ``softmax − onehot`` keep ``σ(a)``'s and ``p``'s rounding
  (``p = exp(log p)``, ``log p`` off by ``u·(|log p| + √K)``), and torch's
  ``(1 − y)·a − log σ(a)`` is a difference of terms of size |a| (``loss_amplitude``).
Found by ``tests/test_properties.py`` (``FLOAT32_KERNEL_FOUND``): each left out, torch or
NumPy erred by 2–10⁷ σ on float32 norm nets with 2–8 features, batches of 2 or saturated
logits.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import cast

import numpy as np

import reference

U32 = 2.0 ** -24   # unit roundoff of float32 (half an ulp at 1)
# float32's smallest normal: below it a float32 value keeps fewer bits (subnormals) or none
# (a kernel whose exp overflows returns 1/(1 + inf) = 0 for σ(−100) = 3.7e-44), so every
# value is known only to within it, whatever its relative error bound
TINY32 = float(np.finfo(np.float32).tiny)
# (unit roundoff, smallest normal) of each dtype whose rounding σ models: float32 for the
# precision rule, float64 for the float64 tier's rounding rule (``parity.judge``)
ROUNDOFF = {"float32": (U32, TINY32),
            "float64": (2.0 ** -53, float(np.finfo(np.float64).tiny))}
SIGNS = np.array([-1.0, 1.0])

Perturb = Callable[..., np.ndarray]


def _identity(a, amplitude=None, axis=None):
    return a


def rounding(rng: np.random.Generator, u: float = U32, tiny: float = TINY32) -> Perturb:
    """``x ↦ x + u·δ·amplitude``, ``δ = ±U(1, 1.5)`` elementwise, random signs (``amplitude``
    defaults to ``|x|``: one rounding of x itself), for float arrays and scalars. ``|δ|`` is
    never below 1: a kernel can err by its whole bound, so σ must reach the bound from any
    sample — with ``|δ| ~ U(0.5, 1)`` the largest of 8 stays below 0.95 in 43 % of
    comparisons, and an error shared along an axis (a reduction's, one draw per row) was
    left below 1/4 of its bound in both of 2 samples one time in 16 with ``δ ~ U(−1, 1)`` (a
    LayerNorm(2) net: torch 2.1 σ). ``|δ|`` is random: with ``δ = ±1`` two perturbations of
    equal amplitude that cancel in the result (``p − lr·g`` returning to 0, Adam's
    ``m + (1 − β₁)(g − m)`` cancelling to 3e-4 of its terms) sum to exactly 0 whenever their
    signs differ, and σ fell to the result's own rounding in 1 of 4 comparisons with 2
    samples (twins at 647 σ), 1 of 256 with 8. ``|δ|`` at most 1.5: σ is a bound, and the
    larger the bound the weaker the rule — with ``U(1, 2)`` a 1e-4 error injected into
    spiral004-numpy-challenge's output bias gradient (σ at 1.1e-4 of it) passed.
    Every amplitude carries the dtype's smallest normal (``tiny``) as an absolute floor."""
    def perturb(a, amplitude=None, axis=None):
        arr = np.asarray(a)
        if arr.dtype.kind != "f":
            return a
        amp = np.abs(arr) if amplitude is None else amplitude
        shape = list(arr.shape)
        if axis is not None:       # one δ shared along ``axis``: the error of a reduction
            shape[axis] = 1        # that every element along it reuses
        delta = rng.choice(SIGNS, size=shape) * rng.uniform(1.0, 1.5, size=shape)
        return below_normal(arr + u * amp * delta, rng, tiny)
    return perturb


def below_normal(a: np.ndarray, rng: np.random.Generator, tiny: float = TINY32) -> np.ndarray:
    """``a`` with each magnitude moved by ``tiny`` (``δ = ±1``), never across 0: a value that
    underflows may come out as 0 or as the smallest normal, and a quantity that cannot be
    negative (a second moment, a variance) stays ≥ 0."""
    mag = np.maximum(np.abs(a) + tiny * rng.choice(SIGNS, size=np.shape(a)), 0.0)
    return np.sign(a) * mag


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
        out = layer.forward(x, True)
        x = outputs[i] = _in_range(layer, _shared_forward(
            layer, x, perturb(out, forward_amplitude(layer, x, out)), perturb))
    L = float(perturb(np.float64(loss.forward(x, y)), loss_amplitude(loss)))
    d = loss.backward()
    d = perturb(d, loss_gradient_amplitude(loss, d))
    grads, input_grads = {}, {}
    for i in reversed(range(len(model.layers))):
        layer = model.layers[i]
        dx = _layer_backward(layer, inputs[i], d, perturb)
        for k, amp in gradient_amplitudes(layer, inputs[i], d).items():
            grads[f"{i}.{k}"] = perturb(layer.grads[k], amp)
        d = input_grads[i] = _shared_backward(
            layer, inputs[i], d, perturb(dx, backward_amplitude(layer, inputs[i], d, dx)), perturb)
    grads = {k: grads[k] for k in model.parameters()}
    buffers = {k: perturb(np.asarray(v)) for k, v in model.buffers().items()}
    result = {"loss": L, "grads": grads, "buffers": buffers}
    if layers:
        result.update(output=outputs, input_grad=input_grads)
    return result


# ---- amplitudes: the probabilistic error bound of each computed value (Higham & Mary 2019:
# a sum of n terms computed in any order errs by at most about sqrt(n)·u·Σ|terms| with high
# probability), up to the factor u that ``rounding`` applies.

def loss_amplitude(loss) -> float:
    """The loss is a mean of ``n`` per-sample terms ``ℓ_i``, each formed from intermediates of
    size ``t_i``; it errs by about ``√n·u·mean(t)``. ``t`` as the twins' kernels form ``ℓ``:
    cross-entropy ``log p_y = (z_y − max z) − log Σ exp(z − max z)``: the two parts' sizes
    add up to ``|log p_y|`` and the log of a sum of ``K`` positive terms errs by ``√K·u``, so
    ``t = |log p_y| + √K``; BCE with logits: torch forms ``(1 − y)·a − log σ(a)``, two terms
    of size ``|a|`` however small ``ℓ`` is (a = −40, y = 0: ``−40 − (−40 − 4e-18)`` is 0 in
    float32), so ``t = |a| + 2ℓ``; BCE: the log of an argument rounded near 1 errs by ``u``,
    so ``t = ℓ + 1``."""
    t = loss_terms(loss)
    return float(np.sqrt(t.size) * t.mean())


def loss_terms(loss) -> np.ndarray:
    """``t_i`` of ``loss_amplitude`` (``(N,)``): the size of the parts each sample's loss is
    formed from, read from the loss's cache after ``forward``."""
    if isinstance(loss, reference.CrossEntropyLoss):
        log_p, y = loss._cache
        return np.abs(log_p[np.arange(len(y)), y]) + np.sqrt(log_p.shape[1])
    if isinstance(loss, reference.BCEWithLogitsLoss):
        a, y = loss._cache
        return np.abs(a) + 2 * (np.maximum(a, 0) - a * y + np.log1p(np.exp(-np.abs(a))))
    if isinstance(loss, reference.BCELoss):
        p, y = loss._cache
        with np.errstate(divide="ignore"):
            ell = -(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log1p(-p), -100))
        return ell + 1
    raise TypeError(f"no rounding model for the loss {type(loss).__name__}")


def loss_gradient_amplitude(loss, d: np.ndarray) -> np.ndarray:
    """``d = ∂L/∂out``, ``(N, K)``. Cross-entropy ``(p − onehot)/N`` with ``p = exp(log p)``:
    ``log p`` errs by ``u·(|log p| + √K)`` (``loss_amplitude``), so ``p`` by that relative
    (+1 for exp), and subtracting the onehot cancels none of it: ``p·(|log p| + √K + 1)/N``.
    BCE with logits ``(σ(a) − y)/N``: ``σ(a)`` rounded three times (exp, 1 + e, division)
    before ``y`` is subtracted, ``3σ(a)/N`` — at ``a = 16, y = 1`` that is all of ``d``.
    BCE ``(p − y)/max(p(1 − p), ε)/N``: four relative roundings. Plus ``2|d|`` for the
    subtraction and the division by ``N``."""
    n = d.shape[0]
    if isinstance(loss, reference.CrossEntropyLoss):
        log_p = loss._cache[0]
        extra = np.exp(log_p) * (np.abs(log_p) + np.sqrt(log_p.shape[1]) + 1) / n
    elif isinstance(loss, reference.BCEWithLogitsLoss):
        extra = 3 * reference.layers.sigmoid(loss._cache[0]) / n
    elif isinstance(loss, reference.BCELoss):
        extra = 2 * np.abs(d)
    else:
        raise TypeError(f"no rounding model for the loss {type(loss).__name__}")
    return extra + 2 * np.abs(d)


def forward_amplitude(layer, x, out):
    """Linear: ``√in·(|x|@|W| + |b|)``; a norm layer: its mean and variance are sums over
    the normalized axis (``m`` terms), ``|γ|·istd·√m·mean|x| + |out|``; else ``|out|``."""
    if isinstance(layer, reference.Linear):
        W, b = layer.params["weight"], layer.params["bias"]
        return np.sqrt(W.shape[0]) * (np.abs(x) @ np.abs(W) + np.abs(b))
    if _is_batch_norm_layer(layer):
        ax, istd = layer.axis, layer._cache[2]
        gamma = np.abs(layer.params["weight"]) if layer.affine else 1.0
        m = x.shape[ax]
        return _reduced(m) * gamma * istd * np.sqrt(m) * np.abs(x).mean(
            axis=ax, keepdims=True) + np.abs(out)
    return np.abs(out)


def _reduced(m: int) -> float:
    """1 where a norm layer's mean and variance are sums over ``m > 1`` entries, which round;
    0 over one entry, where they are exact (μ = x, var = 0): torch's LayerNorm(1) returns β
    itself, and an error model that moved it sent the layers after it — LayerNorms over that
    constant, dividing by √eps — to gradients 2–7× off, while torch's matched float64."""
    return 1.0 if m > 1 else 0.0


def backward_amplitude(layer, x, d, dx):
    """Linear: ``√out·|d|@|W|ᵀ``; a norm layer in training: its three-term formula over ``m``
    entries, ``istd/m·√m·(m|g| + Σ|g| + |x̂|·Σ|g·x̂|)`` with ``g = d·γ``. Sigmoid and Tanh
    read their stored float32 output ``s`` (``t``), rounded by ``u·s`` (``u·t``): ``1 − s``
    keeps it as an absolute error, ``dx = d·(1 − s)·s`` errs by ``|d|·s²`` beside its own
    roundings (``2|dx|``), ``dx = d·(1 − t²)`` by ``3|d|·t²`` (``t²``: t's rounding twice and
    the product's); saturated, that is all of ``dx``. Else ``|dx|``."""
    if isinstance(layer, reference.Linear):
        W = layer.params["weight"]
        return np.sqrt(W.shape[1]) * (np.abs(d) @ np.abs(W).T)
    if isinstance(layer, reference.Sigmoid):
        return 2 * np.abs(dx) + np.abs(d) * layer._out ** 2
    if isinstance(layer, reference.Tanh):
        return 2 * np.abs(dx) + 3 * np.abs(d) * layer._out ** 2
    if _is_batch_norm_layer(layer):
        _, xhat, istd = layer._cache
        g = np.abs(d * layer.params["weight"]) if layer.affine else np.abs(d)
        ax, m = layer.axis, xhat.shape[layer.axis]
        sums = g.sum(axis=ax, keepdims=True) + np.abs(xhat) * (g * np.abs(xhat)).sum(
            axis=ax, keepdims=True)
        return istd / m * np.sqrt(m) * (m * g + sums)
    return np.abs(dx)


def _raw_x_terms(layer, x, d):
    """torch's LayerNorm backward ends in ``dx = a·g + b·x + c`` per element (``a`` = 1/std,
    ``g = d·γ``, ``b = (Σg·μ − Σg·x)·a³/m``, ``c = −b·μ − a·Σg/m``): three terms of which
    ``a·g`` and ``c`` are of size ``a·|g|`` even where ``dx`` is 0 (LayerNorm(1): x̂ ≡ 0).
    Each term is rounded where it is formed (``c`` from two products) and again in the sum,
    so ``dx`` errs by ``2·(|a·g| + |b·x| + |c|)`` (measured on LayerNorm(1), torch float32
    against float64: up to 3.1·u·a|g| per element, where the bound gives 4). Rows with equal
    operands err equally — after LayerNorm(1) every row's output is β, the upstream gradients
    repeat, and torch's bias gradient above it, a batch sum of these errors, reached
    1.1·u·Σa|g| (independent errors would give √N less) — so ``_shared_backward`` draws this
    error once per feature, shared along the batch."""
    _, _, istd = layer._cache
    ax, m = layer.axis, x.shape[layer.axis]
    g = d * layer.params["weight"] if layer.affine else d
    mu = x.mean(axis=ax, keepdims=True)
    sg = g.sum(axis=ax, keepdims=True)
    b = (sg * mu - (g * x).sum(axis=ax, keepdims=True)) * istd ** 3 / m
    c = -b * mu - sg * istd / m
    return 2 * (np.abs(istd * g) + np.abs(b * x) + np.abs(c))


def _is_batch_norm_layer(layer) -> bool:
    """A norm layer normalizing with statistics of its input (training BatchNorm, LayerNorm)."""
    return (isinstance(layer, reference.layers._Normalization)
            and layer._cache[0] == "batch")


def _shared_forward(layer, x, out, perturb):
    """A norm layer's mean μ and 1/std are reductions every element along the normalized
    axis reuses, so their errors are shared (one δ per reduction), not independent:
    ``out += γ·istd·√m·mean|x|·δ_μ + γ·x̂·√m·(1 + istd·mean|x|)·δ_σ``. The second factor is
    the variance's relative error when ``x − μ`` cancels (istd·mean|x| = κ)."""
    if not _is_batch_norm_layer(layer) or not _reduced(x.shape[layer.axis]):
        return out
    _, xhat, istd = layer._cache
    ax, m = layer.axis, x.shape[layer.axis]
    gamma = layer.params["weight"] if layer.affine else 1.0
    mean_abs = np.abs(x).mean(axis=ax, keepdims=True)
    out = perturb(out, np.abs(gamma) * istd * np.sqrt(m) * mean_abs, axis=ax)
    return perturb(out, np.abs(gamma * xhat) * np.sqrt(m) * (1 + istd * mean_abs), axis=ax)


def _layer_backward(layer, x, d, perturb):
    """``layer.backward(d)``; a norm layer's with the statistics a float32 forward stored
    (``_norm_statistics``) — its backward reads μ and 1/std, not their exact values."""
    if not _is_batch_norm_layer(layer):
        return layer.backward(d)
    exact = layer._cache
    layer._cache = ("batch", *_norm_statistics(layer, x, perturb))
    try:
        return layer.backward(d)
    finally:
        layer._cache = exact


def _raw_x(layer) -> bool:
    """torch's LayerNorm kernel forms its backward from raw ``x`` (``ds = Σ g·x``,
    ``dx = a·g + b·x + c`` with ``c = −b·μ − …``); its BatchNorm kernel from ``x − μ``."""
    return isinstance(layer, reference.LayerNorm)


def _norm_statistics(layer, x, perturb) -> tuple:
    """``(x̂, 1/std)`` as a float32 backward sees them, ``m`` entries along the axis, ``κ =
    istd·mean|x|``: μ is a float32 sum over ``m`` terms divided by ``m``, off by
    ``(√m + 1)·mean|x|·δ_μ`` — shared along the axis, it moves every x̂ by ``istd`` times that
    (κ-fold x̂'s own rounding); 1/std is off relatively by ``(√m·(1 + κ)/2 + 2)·δ_σ`` (half the
    variance's error, ``_shared_forward``, plus sqrt, + eps and the reciprocal), shared; each
    x̂ (or, in torch's LayerNorm, each ``b·x + c`` it stands for) by ``istd·(|x| + |μ|)``, its
    own ``|x̂|`` in BatchNorm's ``x − μ``. The backward's ``Σ g·x̂`` and ``x̂·Σ g·x̂`` then
    carry these errors, all of size ``κ·u`` where x cancels against μ."""
    _, xhat, istd = layer._cache
    ax, m = layer.axis, x.shape[layer.axis]
    mu = x.mean(axis=ax, keepdims=True)
    mean_abs = np.abs(x).mean(axis=ax, keepdims=True)
    own = istd * (np.abs(x) + np.abs(mu)) if _raw_x(layer) else np.abs(xhat)
    xh = perturb(xhat, own)
    xh = perturb(xh, _reduced(m) * istd * (np.sqrt(m) + 1) * mean_abs, axis=ax)
    rel = perturb(np.ones_like(istd), _reduced(m) * np.sqrt(m) * (1 + istd * mean_abs) / 2 + 2)
    return xh * rel, istd * rel


def _shared_backward(layer, x, d, dx, perturb):
    """The two sums of a norm layer's backward, ``Σg`` and ``Σg·x̂`` (``g = d·γ``), enter
    every ``dx`` along the axis: ``dx += istd/m·√m·(Σ|g|·δ₁ + x̂·Σ|g|·w·δ₂)`` with ``w = |x̂|``
    — or, for torch's LayerNorm kernel, which sums ``g·x`` and ``g·μ`` separately and takes
    their difference, ``w = istd·(|x| + |μ|)``. The shared errors are what a bias feeding
    BatchNorm sums to (its exact gradient is 0)."""
    if not _is_batch_norm_layer(layer):
        return dx
    _, xhat, istd = layer._cache
    ax, m = layer.axis, xhat.shape[layer.axis]
    g = np.abs(d * layer.params["weight"]) if layer.affine else np.abs(d)
    w = istd * (np.abs(x) + np.abs(x.mean(axis=ax, keepdims=True))) if _raw_x(layer) else (
        np.abs(xhat))
    c = istd / m * np.sqrt(m)
    dx = perturb(dx, c * g.sum(axis=ax, keepdims=True), axis=ax)
    dx = perturb(dx, c * np.abs(xhat) * (g * w).sum(axis=ax, keepdims=True), axis=ax)
    return perturb(dx, _raw_x_terms(layer, x, d), axis=0) if _raw_x(layer) else dx


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
        x = _in_range(layer, _shared_forward(
            layer, x, perturb(out, forward_amplitude(layer, x, out)), perturb))
    return x


# the values a float32 kernel can return: σ(a) ∈ [0, 1], tanh(a) ∈ [−1, 1]
_RANGES = {reference.Sigmoid: (0.0, 1.0), reference.Tanh: (-1.0, 1.0)}


def _in_range(layer, out):
    """A perturbed Sigmoid or Tanh output clipped to the range its kernel returns: σ(30)
    rounds to 1 in float32, and 1 + u is no value a twin computes (BCE refuses it)."""
    lo_hi = _RANGES.get(type(layer))
    return out if lo_hi is None else np.clip(out, *lo_hi)


def spread(runs: list, exact) -> object:
    """σ for every leaf of ``exact`` (nested dicts of arrays/floats): the largest
    ``max|run − exact|`` over the perturbed runs."""
    if isinstance(exact, dict):
        return {k: spread([r[k] for r in runs], v) for k, v in exact.items()}
    e = np.asarray(exact, dtype=np.float64)
    return max((float(np.abs(np.asarray(r, dtype=np.float64) - e).max(initial=0.0))
                for r in runs), default=0.0)


def evaluate(start, run: Callable, samples: int, seed: int, dtype: str = "float32") -> tuple:
    """``run(copy_of_start, perturb)`` once exactly and ``samples`` times perturbed by
    ``dtype``'s rounding (``ROUNDOFF``), each on a fresh deep copy of ``start``; returns
    ``(exact, sigma)`` with ``sigma`` shaped like ``exact`` (see ``spread``)."""
    exact = run(copy.deepcopy(start), _identity)
    rng = np.random.default_rng(seed)
    runs = [run(copy.deepcopy(start), rounding(rng, *ROUNDOFF[dtype])) for _ in range(samples)]
    return exact, spread(runs, exact)
