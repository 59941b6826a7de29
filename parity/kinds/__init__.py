"""Layer kinds: one record per kind (``record.LayerKind``), looked up by generic code.

``KINDS`` lists every record; ``of_spec``, ``of_layer`` and ``of_module`` find the record of a
description, a NumPy layer or a torch module by its class (a learner's subclass of a
reference layer finds its base's record). ``numpy_model`` and ``torch_model`` build the two
twins of a description. Adding a kind: its math in ``reference/layers.py``, its description
in ``layerspec``, its record in a module of this package (found by its ``KINDS``) — every
generic check then applies to it (``tests/test_kinds.py``).
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import torch
from torch import nn

from parity import layerspec as S
from parity import reference
from parity.kinds.losses import LOSSES, LossKind, loss_kind, of_loss
from parity.kinds.optimizers import (
    OPTIMIZERS,
    OptimizerKind,
    optimizer_kind,
    optimizer_kind_of,
)
from parity.kinds.record import REQUIRED, SAME, Example, LayerKind, Layout, SizeOf, Unsupported
from parity.reference import init as initializers

__all__ = ["KINDS", "LOSSES", "OPTIMIZERS", "Example", "LayerKind", "Layout", "LossKind",
           "OptimizerKind", "SAME", "Unsupported", "decision_threshold", "drops_units",
           "layouts", "loss_kind", "numpy_model", "of_function", "of_layer", "of_loss",
           "of_module", "of_spec", "optimizer_kind", "optimizer_kind_of", "penalized_keys",
           "torch_model",
           "REQUIRED", "SizeOf"]


def _records() -> tuple[LayerKind, ...]:
    """Every module of this package that defines ``KINDS`` (a family of records), their
    records in the order ``layerspec.VOCABULARY`` lists the descriptions."""
    found: list[LayerKind] = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found += getattr(module, "KINDS", ())
    order = {spec: i for i, spec in enumerate(S.VOCABULARY)}
    return tuple(sorted(found, key=lambda k: order.get(k.spec, len(order))))


KINDS: tuple[LayerKind, ...] = _records()
_BY_SPEC = {k.spec: k for k in KINDS}
_BY_NUMPY = {k.numpy: k for k in KINDS}
_BY_TORCH = {k.torch: k for k in KINDS}


def _by_function() -> dict:
    """Each listed torch function to its one kind; two kinds listing one function (a
    subclass inheriting its parent's ``functions``) is an error in the records."""
    out: dict = {}
    for k in KINDS:
        for f in k.functions:
            if f in out:
                name = getattr(f, "__name__", f)
                raise TypeError(f"kinds {out[f].name} and {k.name} both list {name!r} in "
                                f"functions")
            out[f] = k
    return out


_BY_FUNCTION = _by_function()


def _known() -> str:
    return ", ".join(k.name for k in KINDS)


def of_spec(item) -> LayerKind:
    """The record of a ``layerspec`` description; ``TypeError`` for anything else."""
    kind = _BY_SPEC.get(type(item))
    if kind is None:
        raise TypeError(f"cannot build {item!r} ({type(item).__name__}): no layer kind "
                        f"records it; known: {_known()}")
    return kind


def of_layer(layer) -> LayerKind | None:
    """The record of a NumPy layer, by its class or the nearest base class that has one
    (``None`` for a layer of the user's own)."""
    return next((_BY_NUMPY[c] for c in type(layer).__mro__ if c in _BY_NUMPY), None)


def of_module(module: nn.Module, exact: bool = True) -> LayerKind | None:
    """The record of a torch module: of its exact class (``exact``: a subclass may change
    ``forward``, so conversion refuses it), else of its nearest base class with one."""
    if exact:
        return _BY_TORCH.get(type(module))
    return next((_BY_TORCH[c] for c in type(module).__mro__ if c in _BY_TORCH), None)


def of_function(target) -> LayerKind | None:
    """The record whose ``functions`` list a torch function (``F.relu``) or a Tensor method
    name (``"relu"``); ``None`` when no kind stands for it."""
    try:
        return _BY_FUNCTION.get(target)
    except TypeError:       # an unhashable target is no function of ours
        return None


def functions() -> list:
    """Every torch function and Tensor method name some kind stands for."""
    return list(_BY_FUNCTION)


# ---- building the twins of a description ----------------------------------------------------

def numpy_model(description, *, init: str, rng: np.random.Generator, dtype=np.float64,
                dropout_rng: np.random.Generator | None = None) -> reference.Sequential:
    """The NumPy twin: layers in order, parameters drawn from ``rng`` layer by layer by
    ``INITIALIZERS[init]``, Dropout masks from ``dropout_rng``. ``TypeError`` naming the
    index of an item that is not a layer description."""
    if init not in initializers.INITIALIZERS:
        raise ValueError(f"unknown initializer {init!r}; known: "
                         f"{sorted(initializers.INITIALIZERS)}")
    dt = np.dtype(dtype)
    return reference.Sequential(*(of_spec(item).build_numpy(
        item, dtype=dt, init=init, rng=rng, dropout_rng=dropout_rng)
        for item in S.check_layers(description)))


def torch_model(description, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """The torch twin: stock modules in an ``nn.Sequential`` (torch's own init)."""
    return nn.Sequential(*(of_spec(item).build_torch(item, dtype)
                           for item in S.check_layers(description)))


# ---- what the records say about a whole torch model ------------------------------------------

def layouts(torch_model: nn.Module) -> dict[str, Layout]:
    """``state_dict`` key → ``Layout`` for every array whose NumPy layout differs (a direct
    child's record's ``layouts``: ``{"0.weight": transposed, …}``)."""
    out = {}
    for name, m in torch_model.named_children():
        kind = of_module(m, exact=False)
        for key, layout in (kind.layouts.items() if kind else ()):
            out[f"{name}.{key}"] = layout
    return out


def drops_units(layer_or_module) -> bool:
    """A NumPy layer, torch module or ``layerspec`` description that drops units at random
    in training: its kind draws masks (``draws_masks``) and its ``p`` is above 0."""
    obj = layer_or_module
    kind = (of_module(obj, exact=False) if isinstance(obj, nn.Module)
            else _BY_SPEC.get(type(obj)) or of_layer(obj))
    return kind is not None and kind.draws_masks and getattr(obj, "p", 0) > 0


def decision_threshold(last) -> float:
    """Where a one-output model's last layer (NumPy layer or torch module) splits the two
    classes: the middle of its kind's bounded output range (0.5 after a Sigmoid), else 0 (a
    logit)."""
    kind = of_module(last, exact=False) if isinstance(last, nn.Module) else of_layer(last)
    rng = kind.output_range(last) if kind is not None else None
    if rng is None or not all(np.isfinite(rng)):
        return 0.0
    return (rng[0] + rng[1]) / 2


def penalized_keys(torch_model: nn.Module) -> list[str]:
    """The parameters an L2 "on weights only" decays (cs231n's ``W``s), in module order:
    ``fc1.weight`` for a Linear named ``fc1``, at any depth."""
    out = []
    for prefix, m in torch_model.named_modules():
        kind = of_module(m, exact=False)
        out += [f"{prefix}.{k}" if prefix else k for k in (kind.penalized if kind else ())]
    return out
