"""Image kinds: Conv2d, MaxPool2d, AvgPool2d, BatchNorm2d, Dropout2d (``reference.spatial``).

Both twins keep NCHW and the kernels ``(F, C, KH, KW)``: no layout changes. Their float32
rounding models count the sums each kernel forms (``rounding``: a sum of ``K`` terms errs by
``√K·Σ|terms|``): a convolution output sums ``C·KH·KW`` products, its weight gradient
``N·OH·OW``, its input gradient at most ``F·⌈KH/s⌉·⌈KW/s⌉``; max pooling picks a value
(exact); average pooling sums ``KH·KW`` values. BatchNorm2d is BatchNorm1d on the
``(N·H·W, C)`` rows, its model that one's on those rows. Only torch's defaults are twinned;
``from_torch`` refuses the rest (groups, padding modes, ``ceil_mode``, …). How the models
were measured: docs/verdicts.md#the-image-layers.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch.nn.functional as F
from torch import nn

from parity import layerspec as S
from parity.kinds.dropout import DropoutKind
from parity.kinds.norms import BatchNorm1dKind
from parity.kinds.record import Example, LayerKind, Unsupported, spec_fields
from parity.reference import init as initializers
from parity.reference import spatial as P

TINY32 = float(np.finfo(np.float32).tiny)


def _refuse(module, name: str, **defaults) -> None:
    """``Unsupported`` for the first torch option off its default (``groups=2``)."""
    for key, want in defaults.items():
        got = getattr(module, key)
        if got != want:
            raise Unsupported(f"{name}({key}={got!r})", f"only {key}={want!r} is twinned")


class Conv2dKind(LayerKind):
    spec, numpy, torch = S.Conv2d, P.Conv2d, nn.Conv2d
    penalized = ("weight",)
    feature_bias = "bias"
    examples = (Example(S.Conv2d(3, 4, 3), (2, 3, 6, 5)),
                Example(S.Conv2d(2, 3, 3, stride=2, padding=1), (3, 2, 7, 6)),
                Example(S.Conv2d(2, 3, (3, 2), padding=(1, 2), dilation=2), (2, 2, 7, 7)),
                Example(S.Conv2d(3, 2, 1, bias=False), (2, 3, 4, 4)))

    def build_numpy(self, item, *, dtype, init, rng, dropout_rng):
        """``W: (F, C, KH, KW)`` drawn as an initializer's ``(C·KH·KW, F)`` matrix (fan-in
        ``C·KH·KW``, as torch's ``kaiming_uniform_``), then ``b: (F,)``."""
        layer = P.Conv2d(**spec_fields(item), dtype=dtype)
        fan_in = item.in_channels * math.prod(item.kernel_size)
        w, b = initializers.INITIALIZERS[init](rng, fan_in, item.out_channels, dtype)
        layer.params["weight"][...] = w.T.reshape(layer.params["weight"].shape)
        if item.bias:
            layer.params["bias"][...] = b
        return layer

    def build_torch(self, item, dtype):
        return nn.Conv2d(**spec_fields(item), dtype=dtype)

    def from_torch(self, module, dtype, rng):
        _refuse(module, "Conv2d", groups=1, padding_mode="zeros")
        if isinstance(module.padding, str):
            raise Unsupported(f"Conv2d(padding={module.padding!r})", "give the padding in pixels")
        return P.Conv2d(module.in_channels, module.out_channels, module.kernel_size,
                        module.stride, module.padding, module.dilation,
                        bias=module.bias is not None, dtype=dtype)

    def to_torch(self, layer, dtype):
        return nn.Conv2d(layer.in_channels, layer.out_channels, **layer.options(),
                         bias=layer.bias, dtype=dtype)

    def forward_amplitude(self, layer, x, out):
        """A sum of ``C·KH·KW`` products, then the bias: ``√(C·KH·KW)·(|x| ⋆ |W| + |b|)``;
        exact (``b`` itself) where every product is 0 — a blank patch of an image, whose
        outputs every kernel returns equal, so a max pooling over them sees exact ties.
        "0" up to the floor ``precise`` gives every input (float32's smallest normal), which
        ``b`` absorbs."""
        W = layer.params["weight"]
        amp = P.conv2d(np.abs(x), np.abs(W), *layer.geometry())
        if layer.bias:
            floor = TINY32 * np.abs(W).sum(axis=(1, 2, 3))[:, None, None]
            amp = amp + np.where(amp > floor, np.abs(layer.params["bias"])[:, None, None], 0.0)
        return math.sqrt(W[0].size) * amp

    def backward_amplitude(self, layer, x, d, dx):
        """``dx = d_s ⋆ rot180(W)`` sums at most ``F·⌈KH/sh⌉·⌈KW/sw⌉`` products per entry:
        that root times ``|d|_s ⋆ rot180(|W|)``."""
        W = layer.params["weight"]
        (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
        terms = W.shape[0] * -(-kh // sh) * -(-kw // sw)
        return math.sqrt(terms) * P.conv2d_input_grad(np.abs(d), np.abs(W), x.shape[2:],
                                                      *layer.geometry())

    def gradient_amplitudes(self, layer, x, d):
        """Sums over ``N·OH·OW`` positions: ``√(N·OH·OW)·Σ|d| ⋆ |x|`` and ``√(N·OH·OW)·Σ|d|``."""
        root = math.sqrt(d.shape[0] * d.shape[2] * d.shape[3])
        out = {"weight": root * P.conv2d_weight_grad(np.abs(x), np.abs(d), layer.kernel_size,
                                                     *layer.geometry())}
        if layer.bias:
            out["bias"] = root * np.abs(d).sum(axis=(0, 2, 3))
        return out


def _overlap(layer) -> int:
    """How many windows at most read one input entry: ``⌈KH/sh⌉·⌈KW/sw⌉``."""
    (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
    return -(-kh // sh) * -(-kw // sw)


class _PoolKind(LayerKind):
    """What the pools share: torch's defaults only (``dilation=1``, ``ceil_mode=False``,
    …); the backward sums the gradients of up to ``_overlap`` windows per input entry."""

    refused: dict = {}

    def build_torch(self, item, dtype):
        return self.torch(**spec_fields(item))

    def from_torch(self, module, dtype, rng):
        _refuse(module, self.name, **self.refused)
        return self.numpy(module.kernel_size, module.stride, module.padding)

    def to_torch(self, layer, dtype):
        return self.torch(**layer.options())

    def backward_amplitude(self, layer, x, d, dx):
        """``dx`` adds up to ``_overlap`` window gradients: ``√overlap·scatter(|d|)``, the
        scatter being the layer's own backward of ``|d|``."""
        return math.sqrt(_overlap(layer)) * np.abs(layer.backward(np.abs(d)))


class MaxPool2dKind(_PoolKind):
    spec, numpy, torch = S.MaxPool2d, P.MaxPool2d, nn.MaxPool2d
    refused = {"dilation": 1, "ceil_mode": False, "return_indices": False}
    examples = (Example(S.MaxPool2d(2), (2, 3, 6, 4)),
                Example(S.MaxPool2d(3, stride=2, padding=1), (2, 2, 7, 6)),
                Example(S.MaxPool2d((3, 2), stride=1), (2, 2, 5, 4)))

    def forward_amplitude(self, layer, x, out):
        """Exact: the output is one of its inputs."""
        return np.zeros_like(out)

    def has_kinks(self, layer):
        """Its derivative jumps where a window's maximum ties with another entry."""
        return math.prod(layer.kernel_size) > 1

    def kink_distance(self, layer, x, ties_counted=False):
        """How far each entry may move before some window's maximum changes hands: for an
        entry equal to its window's maximum, the maximum's lead over the largest *other*
        value (0 where two entries tie, unless ``ties_counted``); for any other entry, its
        distance below the maximum; the smallest over the windows holding the entry.

        ``ties_counted``: the caller counts changes of ``kink_sides`` at every evaluation
        (``check_twins``), so an exact tie is no hazard here. If a step moves the tied
        entries at different rates, one of them overtakes the first (numpy's and torch's
        argmax) at ``+h`` or at ``−h`` and the count shows it; if it moves them alike (four
        0s of dead ReLUs, which no small step moves), the maximum's derivative is that of any
        of them and the backward's choice of the first is exact. A near-tie (a lead below the
        margin, not 0) is what a step can cross unseen."""
        flat, top = self._windows(layer, x)
        tied = flat == top
        lead = top - np.where(tied, -np.inf, flat).max(axis=-1, keepdims=True)
        if not ties_counted:
            lead = np.where(tied.sum(axis=-1, keepdims=True) > 1, 0.0, lead)
        dist = np.where(tied, lead, top - flat)    # top is finite: no ∞ − ∞
        padded = P.pad(x, layer.padding).shape
        index = P.windows(np.arange(math.prod(padded)).reshape(padded), layer.kernel_size,
                          layer.stride)
        out = np.full(math.prod(padded), np.inf)
        np.minimum.at(out, index.reshape(-1), dist.reshape(-1))
        (ph, pw), (h, w) = layer.padding, x.shape[2:]
        return out.reshape(padded)[:, :, ph:ph + h, pw:pw + w]

    def kink_ties(self, layer, x):
        """Windows ``(N, C, OH, OW)`` whose maximum two or more entries share."""
        flat, top = self._windows(layer, x)
        return (flat == top).sum(axis=-1) > 1

    def kink_sides(self, layer, x):
        """Where each window's maximum is (its flat index in the window), ``(N, C, OH, OW)``."""
        return self._windows(layer, x)[0].argmax(axis=-1)

    @staticmethod
    def _windows(layer, x):
        """``x``'s windows ``(N, C, OH, OW, KH·KW)`` (−∞ padding) and their maxima (last axis
        kept)."""
        cols = P.windows(P.pad(x, layer.padding, -np.inf), layer.kernel_size, layer.stride)
        flat = cols.reshape(*cols.shape[:4], -1)
        return flat, flat.max(axis=-1, keepdims=True)


class AvgPool2dKind(_PoolKind):
    spec, numpy, torch = S.AvgPool2d, P.AvgPool2d, nn.AvgPool2d
    refused = {"ceil_mode": False, "count_include_pad": True, "divisor_override": None}
    examples = (Example(S.AvgPool2d(2), (2, 3, 6, 4)),
                Example(S.AvgPool2d(3, stride=2, padding=1), (2, 2, 7, 6)),
                Example(S.AvgPool2d((2, 3), stride=1, padding=1), (2, 2, 5, 5)))

    def forward_amplitude(self, layer, x, out):
        """A sum of ``KH·KW`` values, then a division: ``√(KH·KW)·avg(|x|) + |out|``."""
        k = layer.kernel_size
        return math.sqrt(math.prod(k)) * P.avg_pool2d(np.abs(x), k, layer.stride,
                                                      layer.padding) + np.abs(out)


def _rows(a: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` → ``(N·H·W, C)``, the rows BatchNorm1d's model reads."""
    return a.transpose(0, 2, 3, 1).reshape(-1, a.shape[1])


def _image(rows: np.ndarray, shape: tuple) -> np.ndarray:
    n, c, h, w = shape
    return rows.reshape(n, h, w, c).transpose(0, 3, 1, 2)


class BatchNorm2dKind(BatchNorm1dKind):
    """BatchNorm1d's record on the ``(N·H·W, C)`` rows: every rounding term of that model,
    its reductions over ``m = N·H·W`` entries per channel."""

    spec, numpy, torch = S.BatchNorm2d, P.BatchNorm2d, nn.BatchNorm2d  # type: ignore[assignment]
    examples = (Example(S.BatchNorm2d(3), (2, 3, 4, 5)), Example(S.BatchNorm2d(2), (3, 2, 2, 3)))

    def forward_amplitude(self, layer, x, out):
        return _image(super().forward_amplitude(layer, _rows(x), _rows(out)), x.shape)

    def shared_forward(self, layer, x, out, perturb):
        return _image(super().shared_forward(layer, _rows(x), _rows(out), perturb), x.shape)

    def backward_amplitude(self, layer, x, d, dx):
        return _image(super().backward_amplitude(layer, _rows(x), _rows(d), _rows(dx)), x.shape)

    def gradient_amplitudes(self, layer, x, d):
        return super().gradient_amplitudes(layer, _rows(x), _rows(d))

    def buffer_amplitudes(self, layer, x):
        return super().buffer_amplitudes(layer, _rows(x))

    def smallest_variance(self, layer, x):
        return float(_rows(x).var(axis=0).min())

    def rounded_backward(self, layer, x, d, perturb):
        return super().rounded_backward(layer, _rows(x), d, perturb)

    def shared_backward(self, layer, x, d, dx, perturb):
        return _image(super().shared_backward(layer, _rows(x), _rows(d), _rows(dx), perturb),
                      x.shape)


class Dropout2dKind(DropoutKind):
    """Whole channels dropped: one keep decision per ``(n, c)``, shared by the twins as
    ``(N, C, 1, 1)`` masks (torch draws ``bernoulli_`` on a tensor of that shape)."""

    spec, numpy, torch = S.Dropout2d, P.Dropout2d, nn.Dropout2d  # type: ignore[assignment]
    examples = (Example(S.Dropout2d(0.5), (3, 4, 3, 2)), Example(S.Dropout2d(0.2), (2, 6, 2, 2)))
    # not DropoutKind's F.dropout: a chain's functional calls are flat-batch kinds only (the
    # image kinds are traced as modules; F.dropout2d is refused naming the node)
    functions: ClassVar[dict] = {}

    def build_numpy(self, item, *, dtype, init, rng, dropout_rng):
        return P.Dropout2d(item.p, rng=dropout_rng)

    def from_torch(self, module, dtype, rng):
        return P.Dropout2d(module.p, rng=rng)

    def replay_keep_mask(self, module, x):
        """``F.dropout2d`` on ones from the same RNG state: the ``(N, C, 1, 1)`` draw."""
        return F.dropout2d(x.new_ones(x.shape), module.p, training=True)[:, :, :1, :1] != 0


KINDS = (Conv2dKind(), MaxPool2dKind(), AvgPool2dKind(), BatchNorm2dKind(), Dropout2dKind())
