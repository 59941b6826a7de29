"""Kinds that move values without arithmetic: Identity and Flatten. torch returns them bit for
bit, so the default one-rounding model is a harmless bound (measured error 0)."""

from __future__ import annotations

from torch import nn

import layerspec as S
from parity.kinds.record import Example, LayerKind
from reference import layers as L


class IdentityKind(LayerKind):
    spec, numpy, torch = S.Identity, L.Identity, nn.Identity
    examples = (Example(S.Identity(), (6, 5)),)


class FlattenKind(LayerKind):
    spec, numpy, torch = S.Flatten, L.Flatten, nn.Flatten
    examples = (Example(S.Flatten(), (6, 5)), Example(S.Flatten(), (4, 3, 4, 5)))



KINDS: tuple = (IdentityKind(), FlattenKind())
