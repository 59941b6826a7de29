"""Dropout: random in training, so the twins must drop the same units — the NumPy layer
takes torch's recorded keep-masks (``queue_masks``; ``parity.masks`` records them)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from parity import layerspec as S
from parity.kinds.record import Example, LayerKind, Unsupported
from parity.reference import layers as L


class DropoutKind(LayerKind):
    spec, numpy, torch = S.Dropout, L.Dropout, nn.Dropout
    draws_masks = True
    examples = (Example(S.Dropout(0.5), (6, 5)), Example(S.Dropout(0.15), (8, 3)))
    functions = {F.dropout: {"p": 0.5, "training": True, "inplace": False}}

    def build_numpy(self, item, *, dtype, init, rng, dropout_rng):
        return L.Dropout(item.p, rng=dropout_rng)

    def from_torch(self, module, dtype, rng):
        return L.Dropout(module.p, rng=rng)

    def from_call(self, options, training):
        """``F.dropout(x, p, training=self.training)`` is ``nn.Dropout(p)``: it drops units
        exactly when its module trains. A ``training`` that does not follow the module (the
        default ``True`` in eval mode) has no stock module."""
        if options["training"] is not training:
            raise Unsupported(f"F.dropout(training={options['training']!r}) in "
                              f"{'training' if training else 'eval'} mode",
                              "pass training=self.training, as nn.Dropout does")
        return super().from_call({k: v for k, v in options.items() if k != "training"},
                                 training)

    def replay_keep_mask(self, module, x):
        """``F.dropout`` on ones from the RNG state the module's forward started from: the
        same Bernoulli draw on torch's CPU path, as a boolean keep-mask of ``x``'s shape."""
        return F.dropout(x.new_ones(x.shape), module.p, training=True) != 0


KINDS = (DropoutKind(),)
