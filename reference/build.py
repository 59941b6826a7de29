"""Build a reference ``Sequential`` from a layer description shared with the torch twin.

A description is a tuple of tuples: ``("linear", in, out)``, ``("relu",)``, ``("sigmoid",)``,
``("tanh",)``, ``("dropout", p)``, ``("batchnorm", C)``, ``("layernorm", D)``.
"""

from __future__ import annotations

import numpy as np

from reference import layers as L
from reference.init import INITIALIZERS
from reference.sequential import Sequential

LAYER_KINDS = ("linear", "relu", "sigmoid", "tanh", "dropout", "batchnorm", "layernorm")


def build_sequential(description, *, init: str, rng: np.random.Generator,
                     dtype=np.float64,
                     dropout_rng: np.random.Generator | None = None) -> Sequential:
    """Layers in order; each Linear initialized by ``INITIALIZERS[init]`` drawing from ``rng``
    (layer by layer, weight then bias). Dropout layers draw masks from ``dropout_rng``."""
    if init not in INITIALIZERS:
        raise ValueError(f"unknown initializer {init!r}; known: {sorted(INITIALIZERS)}")
    made = []
    for i, item in enumerate(description):
        kind, args = item[0], item[1:]
        layer: L.Layer
        if kind == "linear":
            layer = L.Linear(*args, dtype=dtype)
            w, b = INITIALIZERS[init](rng, args[0], args[1], dtype)
            layer.params["weight"][...] = w
            layer.params["bias"][...] = b
        elif kind == "relu":
            layer = L.ReLU()
        elif kind == "sigmoid":
            layer = L.Sigmoid()
        elif kind == "tanh":
            layer = L.Tanh()
        elif kind == "dropout":
            layer = L.Dropout(*args, rng=dropout_rng)
        elif kind == "batchnorm":
            layer = L.BatchNorm1d(*args, dtype=dtype)
        elif kind == "layernorm":
            layer = L.LayerNorm(*args, dtype=dtype)
        else:
            raise ValueError(f"layer {i}: unknown kind {kind!r}; known: {LAYER_KINDS}")
        made.append(layer)
    return Sequential(*made)
