"""Dropout: random in training, so the twins must drop the same units — the NumPy layer
takes torch's recorded keep-masks (``queue_masks``; ``parity.masks`` records them)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

import layerspec as S
from parity.kinds.record import Example, LayerKind
from reference import layers as L


class DropoutKind(LayerKind):
    spec, numpy, torch = S.Dropout, L.Dropout, nn.Dropout
    draws_masks = True
    examples = (Example(S.Dropout(0.5), (6, 5)), Example(S.Dropout(0.15), (8, 3)))

    def build_numpy(self, item, *, dtype, init, rng, dropout_rng):
        return L.Dropout(item.p, rng=dropout_rng)

    def from_torch(self, module, dtype, rng):
        return L.Dropout(module.p, rng=rng)

    def replay_keep_mask(self, module, x):
        """``F.dropout`` on ones from the RNG state the module's forward started from: the
        same Bernoulli draw on torch's CPU path, as a boolean keep-mask of ``x``'s shape."""
        return F.dropout(x.new_ones(x.shape), module.p, training=True) != 0


KINDS = (DropoutKind(),)
