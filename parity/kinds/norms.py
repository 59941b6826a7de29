"""Normalization layers: BatchNorm1d (over the batch) and LayerNorm (over the features).

Their float32 rounding model follows torch 2.13's CPU kernels
(``aten/src/ATen/native/cpu/batch_norm_kernel.cpp``, ``layer_norm_kernel.cpp``) wherever a
kernel's form is less accurate than the float64 formula: the mean and 1/std are reductions
whose errors every element along the normalized axis shares, the backward reads the float32
statistics the forward stored, and torch's LayerNorm forms its backward from raw ``x``.
How each term was found and measured: docs/verdicts.md#the-float32-kernels-σ-models.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from parity import layerspec as S
from parity.kinds.record import Example, LayerKind, Unsupported
from parity.reference import layers as L


def _batch_stats(layer) -> bool:
    """Normalizing with its input's own statistics (training BatchNorm, LayerNorm)."""
    return layer.saved.get("mode") == "batch"


def _reduced(m: int) -> float:
    """1 where the mean and variance are sums over ``m > 1`` entries, which round; 0 over one
    entry, where they are exact (μ = x, var = 0: torch's LayerNorm(1) returns β itself)."""
    return 1.0 if m > 1 else 0.0


class _NormKind(LayerKind):
    """The rounding model both norm layers share; ``raw_x`` says whether torch's backward
    kernel sums ``g·x`` and ``g·μ`` separately (LayerNorm) or works on ``x − μ``."""

    normalizes = True
    raw_x = False

    def forward_amplitude(self, layer, x, out):
        """Mean and variance are sums over ``m`` entries: ``|γ|·istd·√m·mean|x| + |out|``."""
        if not _batch_stats(layer):
            return np.abs(out)
        ax, istd = layer.axis, layer.saved["istd"]
        gamma = np.abs(layer.params["weight"]) if layer.affine else 1.0
        m = x.shape[ax]
        return _reduced(m) * gamma * istd * np.sqrt(m) * np.abs(x).mean(
            axis=ax, keepdims=True) + np.abs(out)

    def shared_forward(self, layer, x, out, perturb):
        """μ and 1/std are shared along the axis (one δ per reduction):
        ``out += γ·istd·√m·mean|x|·δ_μ + γ·x̂·√m·(1 + istd·mean|x|)·δ_σ``; the second factor
        is the variance's relative error when ``x − μ`` cancels (istd·mean|x| = κ)."""
        if not _batch_stats(layer) or not _reduced(x.shape[layer.axis]):
            return out
        xhat, istd = layer.saved["xhat"], layer.saved["istd"]
        ax, m = layer.axis, x.shape[layer.axis]
        gamma = layer.params["weight"] if layer.affine else 1.0
        mean_abs = np.abs(x).mean(axis=ax, keepdims=True)
        out = perturb(out, np.abs(gamma) * istd * np.sqrt(m) * mean_abs, axis=ax)
        return perturb(out, np.abs(gamma * xhat) * np.sqrt(m) * (1 + istd * mean_abs), axis=ax)

    def backward_amplitude(self, layer, x, d, dx):
        """Training: the three-term formula over ``m`` entries,
        ``istd/m·√m·(m|g| + Σ|g| + |x̂|·Σ|g·x̂|)`` with ``g = d·γ``; eval: ``|dx|``."""
        if not _batch_stats(layer):
            return np.abs(dx)
        xhat, istd = layer.saved["xhat"], layer.saved["istd"]
        g = np.abs(d * layer.params["weight"]) if layer.affine else np.abs(d)
        ax, m = layer.axis, xhat.shape[layer.axis]
        sums = g.sum(axis=ax, keepdims=True) + np.abs(xhat) * (g * np.abs(xhat)).sum(
            axis=ax, keepdims=True)
        return istd / m * np.sqrt(m) * (m * g + sums)

    def gradient_amplitudes(self, layer, x, d):
        """Batch sums: ``√N·Σ_n|d·x̂|`` and ``√N·Σ_n|d|``."""
        if not layer.affine:
            return {}
        n = np.sqrt(d.shape[0])
        xhat = layer.saved["xhat"]
        return {"weight": n * np.abs(d * xhat).sum(axis=0), "bias": n * np.abs(d).sum(axis=0)}

    def buffer_amplitudes(self, layer, x):
        """BatchNorm's running statistics ``(1 − c)·r + c·s`` (``c`` the momentum, or
        ``1/num_batches_tracked``) carry the error of the batch statistic ``s``, a sum over
        the ``m`` entries of the axis: ``c·√m·mean|x|`` for the mean, ``c·m/(m − 1)·√m·σ²``
        for the unbiased variance (``Σ(x − μ)²``; μ's own error enters it squared), beside
        the update's two roundings ``2|r|``. Without it, σ of a running mean near 0 was one
        rounding of itself while the twins' means over 32 768 entries differed by 4.7 σ."""
        if not layer.buffers or not _batch_stats(layer):
            return {}
        ax, m = layer.axis, x.shape[layer.axis]
        b = layer.buffers
        c = layer.momentum if layer.momentum is not None else 1.0 / float(
            b["num_batches_tracked"])
        root = np.sqrt(m)
        var = x.var(axis=ax) * (m / (m - 1) if m > 1 else 1.0)
        return {"running_mean": 2 * np.abs(b["running_mean"])
                + c * root * np.abs(x).mean(axis=ax),
                "running_var": 2 * np.abs(b["running_var"]) + c * root * var}

    def rounded_backward(self, layer, x, d, perturb):
        """``layer.backward(d)`` with the statistics a float32 forward stored
        (``_statistics``): the kernel reads μ and 1/std, not their exact values."""
        if not _batch_stats(layer):
            return layer.backward(d)
        exact = layer.saved
        xhat, istd = self._statistics(layer, x, perturb)
        layer.saved = {**exact, "xhat": xhat, "istd": istd}
        try:
            return layer.backward(d)
        finally:
            layer.saved = exact

    def _statistics(self, layer, x, perturb) -> tuple:
        """``(x̂, 1/std)`` as a float32 backward sees them, ``m`` entries along the axis,
        ``κ = istd·mean|x|``: μ is off by ``(√m + 1)·mean|x|·δ_μ``, shared along the axis (it
        moves every x̂ by ``istd`` times that); 1/std relatively by ``(√m·(1 + κ)/2 + 2)·δ_σ``
        (half the variance's error plus sqrt, + eps and the reciprocal), shared; each x̂ by
        its own rounding — ``istd·(|x| + |μ|)`` where torch's kernel uses raw ``x``."""
        xhat, istd = layer.saved["xhat"], layer.saved["istd"]
        ax, m = layer.axis, x.shape[layer.axis]
        mu = x.mean(axis=ax, keepdims=True)
        mean_abs = np.abs(x).mean(axis=ax, keepdims=True)
        own = istd * (np.abs(x) + np.abs(mu)) if self.raw_x else np.abs(xhat)
        xh = perturb(xhat, own)
        xh = perturb(xh, _reduced(m) * istd * (np.sqrt(m) + 1) * mean_abs, axis=ax)
        rel = perturb(np.ones_like(istd),
                      _reduced(m) * np.sqrt(m) * (1 + istd * mean_abs) / 2 + 2)
        return xh * rel, istd * rel

    def shared_backward(self, layer, x, d, dx, perturb):
        """``Σg`` and ``Σg·x̂`` (``g = d·γ``) enter every ``dx`` along the axis:
        ``dx += istd/m·√m·(Σ|g|·δ₁ + x̂·Σ|g|·w·δ₂)`` with ``w = |x̂|``, or ``istd·(|x| + |μ|)``
        where the kernel sums ``g·x`` and ``g·μ`` apart. What a bias feeding BatchNorm sums to
        (its exact gradient is 0)."""
        if not _batch_stats(layer):
            return dx
        xhat, istd = layer.saved["xhat"], layer.saved["istd"]
        ax, m = layer.axis, xhat.shape[layer.axis]
        g = np.abs(d * layer.params["weight"]) if layer.affine else np.abs(d)
        w = (istd * (np.abs(x) + np.abs(x.mean(axis=ax, keepdims=True))) if self.raw_x
             else np.abs(xhat))
        c = istd / m * np.sqrt(m)
        dx = perturb(dx, c * g.sum(axis=ax, keepdims=True), axis=ax)
        dx = perturb(dx, c * np.abs(xhat) * (g * w).sum(axis=ax, keepdims=True), axis=ax)
        return perturb(dx, self._raw_x_terms(layer, x, d), axis=0) if self.raw_x else dx

    @staticmethod
    def _raw_x_terms(layer, x, d):
        """torch's LayerNorm backward ends in ``dx = a·g + b·x + c`` (``a`` = 1/std,
        ``b = (Σg·μ − Σg·x)·a³/m``, ``c = −b·μ − a·Σg/m``): ``a·g`` and ``c`` are of size
        ``a·|g|`` even where ``dx`` is 0, each rounded where formed and in the sum:
        ``2·(|a·g| + |b·x| + |c|)``, one draw per feature shared along the batch (rows with
        equal operands err equally)."""
        istd = layer.saved["istd"]
        ax, m = layer.axis, x.shape[layer.axis]
        g = d * layer.params["weight"] if layer.affine else d
        mu = x.mean(axis=ax, keepdims=True)
        sg = g.sum(axis=ax, keepdims=True)
        b = (sg * mu - (g * x).sum(axis=ax, keepdims=True)) * istd ** 3 / m
        c = -b * mu - sg * istd / m
        return 2 * (np.abs(istd * g) + np.abs(b * x) + np.abs(c))


class BatchNorm1dKind(_NormKind):
    spec, numpy, torch = S.BatchNorm1d, L.BatchNorm1d, nn.BatchNorm1d
    cancels_feature_constant = True
    min_batch = 2
    running_state = True
    examples = (Example(S.BatchNorm1d(5), (6, 5)), Example(S.BatchNorm1d(3), (4, 3)))

    def build_numpy(self, item, *, dtype, init, rng, dropout_rng):
        return self.numpy(item.num_features, dtype=dtype)

    def build_torch(self, item, dtype):
        return self.torch(item.num_features, dtype=dtype)

    def from_torch(self, module, dtype, rng):
        if not module.track_running_stats:
            raise Unsupported(f"{self.name}(track_running_stats=False)")
        return self.numpy(module.num_features, eps=module.eps, momentum=module.momentum,
                          affine=module.affine, dtype=dtype)

    def to_torch(self, layer, dtype):
        return self.torch(layer.num_features, eps=layer.eps, momentum=layer.momentum,
                          affine=layer.affine, dtype=dtype)


class LayerNormKind(_NormKind):
    spec, numpy, torch = S.LayerNorm, L.LayerNorm, nn.LayerNorm
    raw_x = True
    examples = (Example(S.LayerNorm(5), (6, 5)), Example(S.LayerNorm(3), (4, 3)))

    def build_numpy(self, item, *, dtype, init, rng, dropout_rng):
        return L.LayerNorm(item.normalized_shape, dtype=dtype)

    def build_torch(self, item, dtype):
        return nn.LayerNorm(item.normalized_shape, dtype=dtype)

    def from_torch(self, module, dtype, rng):
        if len(module.normalized_shape) != 1:
            raise Unsupported(f"LayerNorm{tuple(module.normalized_shape)}",
                              "only one normalized dimension")
        if module.elementwise_affine and module.bias is None:
            raise Unsupported("LayerNorm(bias=False)")
        return L.LayerNorm(module.normalized_shape[0], eps=module.eps,
                           elementwise_affine=module.elementwise_affine, dtype=dtype)

    def to_torch(self, layer, dtype):
        return nn.LayerNorm(layer.num_features, eps=layer.eps,
                            elementwise_affine=layer.affine, dtype=dtype)


KINDS = (BatchNorm1dKind(), LayerNormKind())
