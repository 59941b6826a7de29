"""Build a reference ``Sequential`` from a layer description shared with the torch twin.

A description is a sequence of ``layerspec`` items, e.g.
``(Linear(2, 100), ReLU(), Linear(100, 3))``; this module turns each into the NumPy layer of
``reference.layers`` by its type.
"""

from __future__ import annotations

import numpy as np

import layerspec as S
from reference import layers as L
from reference.init import INITIALIZERS
from reference.sequential import Sequential


def build_layer(item: S.LayerSpec, *, init: str, rng: np.random.Generator, dtype=np.float64,
                dropout_rng: np.random.Generator | None = None) -> L.Layer:
    """One NumPy layer for ``item``. A ``Linear`` draws ``W: (in, out)`` then ``b: (out,)``
    from ``rng`` by ``INITIALIZERS[init]``; a ``Dropout`` draws its masks from ``dropout_rng``.
    ``TypeError`` if ``item`` is not one of ``layerspec.VOCABULARY``."""
    match item:
        case S.Linear(n_in, n_out):
            layer = L.Linear(n_in, n_out, dtype=dtype)
            w, b = INITIALIZERS[init](rng, n_in, n_out, dtype)
            layer.params["weight"][...] = w
            layer.params["bias"][...] = b
            return layer
        case S.ReLU():
            return L.ReLU()
        case S.Sigmoid():
            return L.Sigmoid()
        case S.Tanh():
            return L.Tanh()
        case S.Dropout(p):
            return L.Dropout(p, rng=dropout_rng)
        case S.BatchNorm1d(c):
            return L.BatchNorm1d(c, dtype=dtype)
        case S.LayerNorm(d):
            return L.LayerNorm(d, dtype=dtype)
    raise TypeError(f"reference.build: cannot build {item!r} ({type(item).__name__}); "
                    f"known: {', '.join(t.__name__ for t in S.VOCABULARY)}")


def build_sequential(description, *, init: str, rng: np.random.Generator,
                     dtype=np.float64,
                     dropout_rng: np.random.Generator | None = None) -> Sequential:
    """Layers in order; each Linear initialized by ``INITIALIZERS[init]`` drawing from ``rng``
    (layer by layer, weight then bias). Dropout layers draw masks from ``dropout_rng``.
    ``TypeError`` naming the index of an item that is not a layer description."""
    if init not in INITIALIZERS:
        raise ValueError(f"unknown initializer {init!r}; known: {sorted(INITIALIZERS)}")
    return Sequential(*(build_layer(item, init=init, rng=rng, dtype=dtype,
                                    dropout_rng=dropout_rng)
                        for item in S.check_layers(description)))
