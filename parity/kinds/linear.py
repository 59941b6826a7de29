"""Linear: ``out = x @ W + b``. NumPy keeps ``W: (in, out)`` (cs231n's layout), torch
``(out, in)``: the one layout change between the twins, declared here."""

from __future__ import annotations

import numpy as np
from torch import nn

from parity import layerspec as S
from parity.kinds.record import Example, LayerKind, Layout, Unsupported
from parity.reference import init as initializers
from parity.reference import layers as L

TRANSPOSED = Layout((1, 0), "NumPy Linear weights are (in, out), torch's (out, in)")


class LinearKind(LayerKind):
    spec, numpy, torch = S.Linear, L.Linear, nn.Linear
    layouts = {"weight": TRANSPOSED}
    penalized = ("weight",)
    feature_bias = "bias"
    examples = (Example(S.Linear(5, 3), (6, 5)), Example(S.Linear(1, 7), (4, 1)))

    def build_numpy(self, item, *, dtype, init, rng, dropout_rng):
        """``W: (in, out)`` then ``b: (out,)`` drawn from ``rng`` by ``INITIALIZERS[init]``."""
        layer = L.Linear(item.in_features, item.out_features, dtype=dtype)
        w, b = initializers.INITIALIZERS[init](rng, item.in_features, item.out_features, dtype)
        layer.params["weight"][...] = w
        layer.params["bias"][...] = b
        return layer

    def build_torch(self, item, dtype):
        return nn.Linear(item.in_features, item.out_features, dtype=dtype)

    def from_torch(self, module, dtype, rng):
        if module.bias is None:
            raise Unsupported("Linear(bias=False)", "reference.Linear always has a bias")
        return L.Linear(module.in_features, module.out_features, dtype=dtype)

    def to_torch(self, layer, dtype):
        return nn.Linear(layer.in_features, layer.out_features, dtype=dtype)

    def forward_amplitude(self, layer, x, out):
        """A sum of ``in`` products: ``√in·(|x|@|W| + |b|)``."""
        W, b = layer.params["weight"], layer.params["bias"]
        return np.sqrt(W.shape[0]) * (np.abs(x) @ np.abs(W) + np.abs(b))

    def backward_amplitude(self, layer, x, d, dx):
        """``dx = d @ Wᵀ``, a sum of ``out`` products: ``√out·|d|@|W|ᵀ``."""
        W = layer.params["weight"]
        return np.sqrt(W.shape[1]) * (np.abs(d) @ np.abs(W).T)

    def gradient_amplitudes(self, layer, x, d):
        """Sums over the batch (``N`` terms): ``√N·|x|ᵀ@|d|`` and ``√N·Σ_n|d|``."""
        n = np.sqrt(d.shape[0])
        return {"weight": n * (np.abs(x).T @ np.abs(d)), "bias": n * np.abs(d).sum(axis=0)}


KINDS = (LinearKind(),)
