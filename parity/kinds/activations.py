"""Elementwise activations: ReLU, Sigmoid, Tanh. Their rounding model beyond one relative
rounding: Sigmoid and Tanh backward read their stored float32 output."""

from __future__ import annotations

import math

import numpy as np
import torch as th  # "torch" names the module class in a record
import torch.nn.functional as F
from torch import nn

from parity import layerspec as S
from parity.kinds.record import Example, LayerKind
from parity.kinds.rounding import F32_MAX_EXP_ARG, U32, rep, sigma
from parity.reference import layers as L


class ReLUKind(LayerKind):
    spec, numpy, torch = S.ReLU, L.ReLU, nn.ReLU
    examples = (Example(S.ReLU(), (6, 5)),)
    functions = {F.relu: {"inplace": False}, th.relu: {}, "relu": {}}

    def kinks(self, layer):
        return (0.0,)

    def forward_amplitude(self, layer, x, out):
        """Exact: ``max(x, 0)`` returns one of its operands. (A rounding here would part
        equal outputs that every kernel keeps equal — the tied maxima a max pooling that
        follows must hand its gradient to the first of.)"""
        return np.zeros_like(out)


class SigmoidKind(LayerKind):
    spec, numpy, torch = S.Sigmoid, L.Sigmoid, nn.Sigmoid
    examples = (Example(S.Sigmoid(), (6, 5)),)
    functions = {th.sigmoid: {}, F.sigmoid: {}, "sigmoid": {}}

    def output_range(self, layer):
        return (0.0, 1.0)

    def backward_amplitude(self, layer, x, d, dx):
        """``dx = d·(1 − s)·s`` reads the stored float32 ``s``, rounded by ``u·s``: ``1 − s``
        keeps it as an absolute error, ``|d|·s²``, beside its own roundings ``2|dx|``;
        saturated, that is all of ``dx``."""
        return 2 * np.abs(dx) + np.abs(d) * layer.saved["out"] ** 2


class TanhKind(LayerKind):
    spec, numpy, torch = S.Tanh, L.Tanh, nn.Tanh
    examples = (Example(S.Tanh(), (6, 5)),)
    functions = {th.tanh: {}, F.tanh: {}, "tanh": {}}

    def output_range(self, layer):
        return (-1.0, 1.0)

    def backward_amplitude(self, layer, x, d, dx):
        """``dx = d·(1 − t²)`` with the stored ``t`` rounded twice in ``t²`` and once in the
        product: ``3|d|·t²`` beside ``2|dx|``."""
        return 2 * np.abs(dx) + 3 * np.abs(d) * layer.saved["out"] ** 2


# The erf inside torch's float32 GELU(approximate="none") is one of three polynomials, by
# machine and setting: oneDNN's ``eltwise_gelu_erf`` (torch's default CPU path for float32
# GELU-none, forward and backward, whenever ``torch.backends.mkldnn`` is enabled): on
# AVX-512 a piecewise degree-5 minimax polynomial in |x| (24 intervals), on AVX2
# Abramowitz & Stegun 7.1.26; with oneDNN disabled, ATen's ``Vectorized<float>::erf``, also
# A&S 7.1.26. A&S alone errs by up to 1.5e-7 = 2.5u absolutely; evaluated as
# ``1 − r·t·e^{−z²}`` in float32 it adds ``|erf|`` (the rounding near ±1) and ≤ 6u of its
# term's own roundings — ≤ 8.5u in all (at z → 0). oneDNN's minimax fit error is not
# published: measured over every float32 with 0.5 ≤ |x| ≤ 6 (59M points; 8M sampled
# beyond), it reaches 11.4u at x = −2.973 (net of the output's rounding). So erf's absolute
# error is bounded by 12u on every path, plus its argument's (``_erf_error``). torch.erf
# itself (SLEEF, 1 ulp) is not what GELU runs.
ERF_KERNEL = 12.0



class GELUKind(LayerKind):
    spec, numpy, torch = S.GELU, L.GELU, nn.GELU
    examples = (Example(S.GELU(), (6, 5)), Example(S.GELU("tanh"), (6, 5)))
    functions = {F.gelu: {"approximate": "none"}}
    """Both forms: oneDNN's ``eltwise_gelu_erf`` (none, torch's default) or ATen's
    vectorized kernels (``Gelu.h``, ``GeluBackwardKernelImpl``; tanh always). Smooth: no
    kinks. GELU' = 0 at x = −0.7518, where dx's relative error is unbounded (the bound is
    absolute). No output range: its minimum differs between the two forms (−0.16997 and
    −0.17004), and clipping a perturbed output to a rounded one moved exact values."""

    def _erf_error(self, z, tail: bool = False):
        """Absolute error of the erf inside float32 GELU at ``z = x/√2``: ``ERF_KERNEL``
        (12u, any of the three kernels) plus the argument's (``x·f32(1/√2)`` is off by 1.5u
        relative, moved through erf' = ``(2/√π)e^{−z²}``). With ``tail`` (the forward only)
        never more than ``2·erfc|z| + u·[erfc|z| ≥ u/4]``: in the tails every forward
        kernel's erf lies between ±1 and ±(1 − 2·erfc|z|) (A&S's relative error in erfc stays
        below 40 %; oneDNN returns ±1 exactly beyond its last interval), rounded to ±1 once
        the gap is below u/2 — so for |x| ≳ 5.7 the error is that of returning 0 (GELU) or x
        (measured: 0.03u·|x|/2 on [−12, −6]); floored at ``2⁻²⁷``, the float64 reference's
        own error there (its ``1 + erf`` cancels too: 1.1e-16·|x|/2). oneDNN's *backward*
        has no such tail: it errs by up to 0.5u·|d| absolutely down to x ≈ −7 and returns 0
        below −8, so the backward keeps the full bound."""
        a = np.abs(z)
        full = ERF_KERNEL + 1.5 * a * (2 / math.sqrt(math.pi)) * np.exp(-a * a)
        if not tail:
            return full
        erfc = np.vectorize(math.erfc, otypes=[float])(a) if a.size else a
        return np.minimum(full, 2 * erfc / U32 + (erfc >= U32 / 4)) + 2.0 ** -27

    def _tanh_terms(self, x):
        """``inner = β(x + κx³)`` (6u relative: x³ twice, κ's cast and product, the sum of
        same-signed terms, β's cast and product), ``t = tanh(inner)`` and t's absolute error
        ``2|t|`` (SLEEF) ``+ 6|inner|·(1 − t²)`` (the argument's)."""
        inner = L.GELU_TANH_BETA * (x + L.GELU_TANH_KAPPA * x ** 3)
        t = np.tanh(inner)
        return inner, t, 2 * np.abs(t) + 6 * np.abs(inner) * (1 - t * t)

    def forward_amplitude(self, layer, x, out):
        """none: ``(x/2)·(1 + erf z)`` errs by ``|x|/2`` times erf's absolute error
        (``_erf_error``, up to 12u: for −5.5 < x ≪ 0, where out → 0, up to |x|·6u, not
        |out|; below, float32 returns −0 and the bound falls to ~2|out|), plus ``2|out|``
        (``1 + erf``, ×).
        tanh: ``|x|/2`` times t's error (``1 + t`` cancels for x ≪ 0 the same way), plus
        ``2|out|``."""
        if layer.approximate == "none":
            z = x * L.M_SQRT1_2
            return np.abs(x) / 2 * self._erf_error(z, tail=True) + 2 * np.abs(out)
        _, _, t_err = self._tanh_terms(x)
        return np.abs(x) / 2 * t_err + 2 * np.abs(out)

    def backward_amplitude(self, layer, x, d, dx, stored=True):
        """none: ``dx = d·(cdf + x·pdf)``; cdf errs by ``½·erf's error + cdf``; ``pdf =
        β·e^{x·x·(−½)}`` by ``x²/2`` (the rounded argument) ``+ 3.5`` relative (exp, β's cast,
        ×), one more for ``x·pdf``; then ``+``, ``×``: ``2|dx|``. For x ≪ 0 the two terms
        nearly cancel (GELU' ≈ φ(x)(1/|x| − |x|)), so the bound is |d|·(cdf's absolute error).
        tanh: ``d·(½(1 + t) + (½x)(1 − t²)·β(1 + 3κx²))``: ``1 − t²`` cancels as ``1 + t``
        does, erring by ``2|t|·err(t) + t² + (1 − t²)``, times ``|½x·β(1 + 3κx²)|``;
        ``β(1 + 3κx²)`` 5u relative, the two products 2 more; then ``2|dx|``."""
        ad = np.abs(d)
        if layer.approximate == "none":
            z = x * L.M_SQRT1_2
            cdf = 0.5 * (1 + np.vectorize(math.erf, otypes=[float])(z)) if z.size else z
            xpdf = np.abs(x) * L.GELU_PDF_BETA * np.exp(-0.5 * x * x)
            return ad * (0.5 * self._erf_error(z) + cdf + xpdf * (x * x / 2 + 4.5)) \
                + 2 * np.abs(dx)
        inner, t, t_err = self._tanh_terms(x)
        left_d = 0.5 * (1 + t)
        inner_d = L.GELU_TANH_BETA * (1 + 3 * L.GELU_TANH_KAPPA * x * x)
        scale = np.abs(0.5 * x * inner_d)
        right_d = scale * (1 - t * t)
        td_err = 2 * np.abs(t) * t_err + t * t + (1 - t * t)
        return ad * (0.5 * t_err + left_d + scale * td_err + 7 * right_d) + 2 * np.abs(dx)


class LeakyReLUKind(LayerKind):
    spec, numpy, torch = S.LeakyReLU, L.LeakyReLU, nn.LeakyReLU
    examples = (Example(S.LeakyReLU(), (6, 5)), Example(S.LeakyReLU(0.2), (6, 5)))
    functions = {F.leaky_relu: {"negative_slope": 0.01, "inplace": False}}
    """``x > 0``: ``x`` and ``d`` pass exactly (the default ``|out|`` is kept: one rounding,
    never reached). ``x ≤ 0``: one product with the float32 slope: ``(1 + rep(slope))``
    relative — 1.375 at 0.01. Kink at 0 (slope 1 right, negative_slope at and left of 0)."""

    def forward_amplitude(self, layer, x, out):
        return np.where(x > 0, 1.0, 1.0 + rep(layer.negative_slope)) * np.abs(out)

    def backward_amplitude(self, layer, x, d, dx, stored=True):
        return np.where(x > 0, 1.0, 1.0 + rep(layer.negative_slope)) * np.abs(dx)

    def kinks(self, layer):
        return (0.0,) if layer.negative_slope != 1.0 else ()


class ELUKind(LayerKind):
    spec, numpy, torch = S.ELU, L.ELU, nn.ELU
    examples = (Example(S.ELU(), (6, 5)), Example(S.ELU(0.5), (6, 5)))
    functions = {F.elu: {"alpha": 1.0, "inplace": False}}
    """``x < 0``: ``expm1(x)·α`` (torch 2.13's ``Elu.h``; the exp − 1 of older torch lost
    all of eˣ − 1's digits for |x| ≲ u): expm1 2, the product 1, α's cast → ``(3 + rep α)``
    relative. Backward ``x ≤ 0``: ``(d·α)·eˣ``, ``(4 + rep α)``. ``x > 0``: exact (default
    kept). Kink at 0 where α ≠ 1 (slope α at and left of 0, 1 right). At α = 1 the first
    derivative is continuous but the second jumps (eˣ → 1 left, 0 right): a central
    difference centred at distance s < h from 0 errs by ``(h − s)²/(4h)`` ≤ h/4 = 2.5e-7,
    above FD_RTOL — so 0 is declared a kink for every α. Range ``[−α, ∞)``
    (``expm1(−17) = −1`` in float32)."""

    def forward_amplitude(self, layer, x, out):
        return np.where(x < 0, 3.0 + rep(layer.alpha), 1.0) * np.abs(out)

    def backward_amplitude(self, layer, x, d, dx, stored=True):
        return np.where(x <= 0, 4.0 + rep(layer.alpha), 1.0) * np.abs(dx)

    def kinks(self, layer):
        return (0.0,)

    def output_range(self, layer):
        return (-float(np.float32(layer.alpha)), math.inf)


class SiLUKind(LayerKind):
    spec, numpy, torch = S.SiLU, L.SiLU, nn.SiLU
    examples = (Example(S.SiLU(), (6, 5)),)
    functions = {F.silu: {"inplace": False}}
    """``x / (1 + e^{−x})``: e^{−x} 2u, carried into ``1 + e`` by ``(1 − σ)``, the sum and
    the division 1 each: ``(2 + 2(1 − σ))|out|``. Where ``e^{−x}`` overflows float32
    (``x < −88.72``) torch returns −0 for a value still above the smallest normal down to
    x ≈ −91.8: the whole value, ``|out|/u``. Range ``[−0.2785, ∞)``."""

    def forward_amplitude(self, layer, x, out):
        s = sigma(x)
        amp = (2 + 2 * (1 - s)) * np.abs(out)
        return np.where(-x > F32_MAX_EXP_ARG, np.abs(out) / U32, amp)

    def backward_amplitude(self, layer, x, d, dx, stored=True):
        """``dx = (d·σ)·(1 + x(1 − σ))`` with float32 σ off by ``ε_σ = 2(1 − σ) + 2``
        relative: ``1 − σ`` keeps σ's error absolutely (x ≫ 0: σ rounds to 1 and
        ``x(1 − σ) ≈ x·e^{−x}`` is lost whole), so ``f = 1 + x(1 − σ)`` errs by
        ``|x|(σ·ε_σ + 2(1 − σ)) + |f|``; f cancels near x = −1.278 (where SiLU' = 0). Total
        ``|d|σ|x|(σε_σ + 2(1 − σ)) + (ε_σ + 3)|dx|``; overflow as in forward."""
        s = sigma(x)
        eps_s = 2 * (1 - s) + 2
        amp = np.abs(d) * s * np.abs(x) * (s * eps_s + 2 * (1 - s)) + (eps_s + 3) * np.abs(dx)
        return np.where(-x > F32_MAX_EXP_ARG, np.abs(dx) / U32, amp)


class SoftplusKind(LayerKind):
    spec, numpy, torch = S.Softplus, L.Softplus, nn.Softplus
    examples = (Example(S.Softplus(), (6, 5)), Example(S.Softplus(2.0, 5.0), (6, 5)))
    functions = {F.softplus: {"beta": 1.0, "threshold": 20.0}}
    """``t = x·β`` (float32 β; exact when β is a power of 2), ``e = eᵗ``, ``L = log1p(e)``,
    ``out = L/β`` where ``t ≤ threshold``, else ``x`` (exact). Hazards: the two branches
    differ by ``J = log1p(e^{−threshold})/β`` at ``x = threshold/β`` — a *jump in value*
    (2.1e-9 at the defaults, 3.4e-3 at β = 2, threshold = 5), worse than a kink for finite
    differences (error J/2h); and a float32 ``t`` within an ulp of the threshold may take
    the other branch than float64 does (only when β or threshold is not exact in float32),
    which the bound adds as J. With ``threshold > 88.7`` a float32 kernel returns inf (and
    a NaN gradient) for ``88.7 < βx ≤ threshold``: no bound covers that, so a float32 check
    must refuse such an instance (the description cannot: float64 is fine up to 709).
    Range ``[0, ∞)`` (float32 returns 0 for βx < −103.9)."""

    def _parts(self, layer, x):
        beta = layer.beta
        exact_t = rep(beta) == 0 and math.frexp(beta)[0] == 0.5   # β a power of 2
        eps_t = 0.0 if exact_t else 1.0 + rep(beta)
        t = x * beta
        jump = np.log1p(np.exp(-np.minimum(np.abs(t), 700.0))) / beta
        # float32 t and threshold sit within this of float64's: closer, the branch may flip
        band = 2 * U32 * (eps_t * np.abs(t) + rep(layer.threshold) * abs(layer.threshold))
        flip = np.abs(t - layer.threshold) < band
        return t, eps_t, t > layer.threshold, np.where(flip, jump / U32, 0.0)

    def forward_amplitude(self, layer, x, out):
        """soft branch: e off by ``ε_t|t| + 2`` relative, carried through log1p by
        ``σ(t) = e/(1 + e)``; log1p 2|L|, ``/β`` 1 + rep β: ``σ(t)(ε_t|t| + 2)/β +
        (3 + rep β)|out|``."""
        t, eps_t, above, flip = self._parts(layer, x)
        soft = sigma(t) * (eps_t * np.abs(t) + 2) / layer.beta \
            + (3 + rep(layer.beta)) * np.abs(out)
        return np.where(above, np.abs(out), soft) + flip

    def backward_amplitude(self, layer, x, d, dx, stored=True):
        """soft branch ``(d·z)/(z + 1)``, z = eᵗ off by ``ε_t|t| + 2``, which the ratio
        carries by ``1 − σ(t)``; three roundings: ``((ε_t|t| + 2)(1 − σ) + 3)|dx|``. Beyond:
        ``d`` exact. A flip costs ``|d|·(1 − σ(threshold))``."""
        t, eps_t, above, flip = self._parts(layer, x)
        s = sigma(t)
        soft = ((eps_t * np.abs(t) + 2) * (1 - s) + 3) * np.abs(dx)
        return np.where(above, np.abs(dx), soft) + np.where(
            flip > 0, np.abs(d) * (1 - s) / U32, 0.0)

    def kinks(self, layer):
        return (layer.threshold / layer.beta,)

    def output_range(self, layer):
        return (0.0, math.inf)


KINDS = (ReLUKind(), SigmoidKind(), TanhKind(), GELUKind(), LeakyReLUKind(), ELUKind(),
         SiLUKind(), SoftplusKind())
