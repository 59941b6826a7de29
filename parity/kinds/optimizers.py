"""Optimizer kinds: one record per optimizer, as for layers and losses. A record names the
NumPy optimizer (``reference.optim``) and its ``torch.optim`` twin, builds both over the same
named param groups (torch on the single-tensor path, ``foreach=False``, the one the reference
mirrors), and says whether it keeps state between steps. ``OPTIMIZERS`` maps the names users
pass (``optimizer="adam"``) to records."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch.optim import Optimizer

from parity.reference import optim as R


class OptimizerKind:
    """The record of one optimizer; subclasses set ``name``, ``numpy``, ``torch``."""

    name: ClassVar[str]
    numpy: ClassVar[type[R.Optimizer]]
    torch: ClassVar[type]

    @property
    def defaults(self) -> dict:
        """torch's default options by name (``lr``, ``weight_decay``, ``betas`` …)."""
        return dict(self.numpy.defaults)

    def stateful(self, options: dict) -> bool:
        """Whether a step leaves state the next one reads (momentum, moments)."""
        return True

    def build_numpy(self, groups: list[dict], **options):
        """Over ``[{"params": {name: array}, "weight_decay": …}]``."""
        return self.numpy(groups, **options)

    def build_torch(self, groups: list[dict], **options) -> Optimizer:
        """Over ``[{"params": [tensor, …], "weight_decay": …}]``, single-tensor path."""
        return self.torch(groups, foreach=False, **options)


class SGDKind(OptimizerKind):
    name, numpy, torch = "sgd", R.SGD, torch.optim.SGD

    def stateful(self, options):
        """Plain SGD keeps nothing; with momentum it keeps ``momentum_buffer``."""
        return options.get("momentum", 0) != 0


class AdamKind(OptimizerKind):
    name, numpy, torch = "adam", R.Adam, torch.optim.Adam


class AdamWKind(OptimizerKind):
    name, numpy, torch = "adamw", R.AdamW, torch.optim.AdamW


class RMSpropKind(OptimizerKind):
    name, numpy, torch = "rmsprop", R.RMSprop, torch.optim.RMSprop


class AdagradKind(OptimizerKind):
    name, numpy, torch = "adagrad", R.Adagrad, torch.optim.Adagrad


OPTIMIZERS: dict[str, OptimizerKind] = {
    k.name: k for k in (SGDKind(), AdamKind(), AdamWKind(), RMSpropKind(), AdagradKind())}


def optimizer_kind(name: str) -> OptimizerKind:
    """The record of the optimizer called ``name``; ``ValueError`` listing the known names."""
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise ValueError(f"optimizer: unknown kind {name!r}; known: {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name]


def optimizer_kind_of(optimizer) -> OptimizerKind:
    """The record of ``optimizer``: a name (``"adam"``) or a ``torch.optim`` class
    (``torch.optim.Adam``); ``ValueError`` naming what is known."""
    if isinstance(optimizer, str):
        return optimizer_kind(optimizer)
    by_class = {k.torch: k for k in OPTIMIZERS.values()}
    if optimizer in by_class:
        return by_class[optimizer]
    raise ValueError(f"optimizer: {getattr(optimizer, '__name__', optimizer)!r} is neither a "
                     f"known name {sorted(OPTIMIZERS)} nor one of their torch.optim classes")
