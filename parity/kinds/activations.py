"""Elementwise activations: ReLU, Sigmoid, Tanh. Their rounding model beyond one relative
rounding: Sigmoid and Tanh backward read their stored float32 output."""

from __future__ import annotations

import numpy as np
from torch import nn

import layerspec as S
from parity.kinds.record import Example, LayerKind
from reference import layers as L


class ReLUKind(LayerKind):
    spec, numpy, torch = S.ReLU, L.ReLU, nn.ReLU
    examples = (Example(S.ReLU(), (6, 5)),)

    def kinks(self, layer):
        return (0.0,)


class SigmoidKind(LayerKind):
    spec, numpy, torch = S.Sigmoid, L.Sigmoid, nn.Sigmoid
    examples = (Example(S.Sigmoid(), (6, 5)),)

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

    def output_range(self, layer):
        return (-1.0, 1.0)

    def backward_amplitude(self, layer, x, d, dx):
        """``dx = d·(1 − t²)`` with the stored ``t`` rounded twice in ``t²`` and once in the
        product: ``3|d|·t²`` beside ``2|dx|``."""
        return 2 * np.abs(dx) + 3 * np.abs(d) * layer.saved["out"] ** 2


KINDS = (ReLUKind(), SigmoidKind(), TanhKind())
