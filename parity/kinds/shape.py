"""Kinds that move values without arithmetic: Identity and Flatten. torch returns them bit for
bit, so the default one-rounding model is a harmless bound (measured error 0)."""

from __future__ import annotations

import torch as th  # "torch" names the module class in a record
from torch import nn

from parity import layerspec as S
from parity.kinds.record import REQUIRED, Example, LayerKind, SizeOf, Unsupported
from parity.reference import layers as L


class IdentityKind(LayerKind):
    spec, numpy, torch = S.Identity, L.Identity, nn.Identity
    examples = (Example(S.Identity(), (6, 5)),)


class FlattenKind(LayerKind):
    spec, numpy, torch = S.Flatten, L.Flatten, nn.Flatten
    examples = (Example(S.Flatten(), (6, 5)), Example(S.Flatten(), (4, 3, 4, 5)))
    functions = {th.flatten: {"start_dim": 0, "end_dim": -1},
                 "flatten": {"start_dim": 0, "end_dim": -1},
                 "view": {"*shape": REQUIRED}, "reshape": {"*shape": REQUIRED}}

    def from_call(self, options, training):
        """``x.view(x.size(0), -1)`` and ``x.reshape(x.size(0), -1)`` are ``Flatten()``;
        ``flatten`` takes its own options. Any other shape depends on the input's."""
        if "*shape" not in options:
            return super().from_call(options, training)
        shape = options["*shape"]
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple | list) else shape
        if tuple(shape) != (SizeOf(0), -1):
            text = ", ".join("x.size(0)" if s == SizeOf(0) else repr(s) for s in shape)
            raise Unsupported(f"view/reshape to ({text})",
                              "only x.view(x.size(0), -1) keeps the batch axis for any input")
        return nn.Flatten()


KINDS: tuple = (IdentityKind(), FlattenKind())
