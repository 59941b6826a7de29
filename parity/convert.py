"""One model, the other framework: ``from_torch(nn.Sequential) -> reference.Sequential`` and
``to_torch(reference.Sequential) -> nn.Sequential``, with identical weights (bit for bit).

Supported, module by module (the NumPy reference has exactly these layers)::

    nn.Linear(i, o)            ↔ reference.Linear(i, o)       weight (o, i) ↔ (i, o)
    nn.ReLU / Sigmoid / Tanh   ↔ reference.ReLU / Sigmoid / Tanh
    nn.Dropout(p)              ↔ reference.Dropout(p)
    nn.BatchNorm1d(C, eps, momentum, affine)  ↔ reference.BatchNorm1d (running statistics
                                                and num_batches_tracked copied)
    nn.LayerNorm(D, eps, elementwise_affine)  ↔ reference.LayerNorm

Anything else (``nn.GELU``, a Linear without bias, a nested Sequential, BatchNorm without
running statistics, LayerNorm over more than one dimension) is refused with a ``ValueError``
naming the module and listing what is supported. Weights go through ``parity.transfer``, the
one place that transposes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import reference
from parity import transfer
from reference import layers as L

__all__ = ["SUPPORTED", "from_torch", "option_mismatches", "to_torch", "torch_type_of"]

SUPPORTED = ("Linear (with bias)", "ReLU", "Sigmoid", "Tanh", "Dropout",
             "BatchNorm1d (tracking running statistics)", "LayerNorm (one dimension)")
_TORCH_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def _unsupported(i: int, what: str, why: str = "") -> ValueError:
    reason = f" ({why})" if why else ""
    return ValueError(f"layer {i}: {what} is not supported{reason}; supported modules: "
                      f"{', '.join(SUPPORTED)}")


def _module_dtype(module: nn.Sequential) -> np.dtype:
    """The one float dtype of the module's parameters and buffers (float64 when it has none)."""
    found = {t.dtype for t in [*module.parameters(), *module.buffers()] if t.is_floating_point()}
    if not found:
        return np.dtype(np.float64)
    if len(found) > 1 or not found <= set(_TORCH_DTYPES):
        raise TypeError(f"from_torch: parameters must all be float32 or all float64, got "
                        f"{sorted(str(d) for d in found)}")
    return np.dtype(_TORCH_DTYPES[found.pop()])


def _layer_from(i: int, m: nn.Module, dt: np.dtype, rng) -> L.Layer:
    """The reference layer of one torch module (weights still at their defaults)."""
    if type(m) is nn.Linear:
        if m.bias is None:
            raise _unsupported(i, "Linear(bias=False)", "reference.Linear always has a bias")
        return L.Linear(m.in_features, m.out_features, dtype=dt)
    if type(m) in (nn.ReLU, nn.Sigmoid, nn.Tanh):
        return {nn.ReLU: L.ReLU, nn.Sigmoid: L.Sigmoid, nn.Tanh: L.Tanh}[type(m)]()
    if type(m) is nn.Dropout:
        return L.Dropout(m.p, rng=rng)
    if type(m) is nn.BatchNorm1d:
        if not m.track_running_stats:
            raise _unsupported(i, "BatchNorm1d(track_running_stats=False)")
        return L.BatchNorm1d(m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                             dtype=dt)
    if type(m) is nn.LayerNorm:
        if len(m.normalized_shape) != 1:
            raise _unsupported(i, f"LayerNorm{tuple(m.normalized_shape)}",
                               "only one normalized dimension")
        if m.elementwise_affine and m.bias is None:
            raise _unsupported(i, "LayerNorm(bias=False)")
        return L.LayerNorm(m.normalized_shape[0], eps=m.eps,
                           elementwise_affine=m.elementwise_affine, dtype=dt)
    raise _unsupported(i, type(m).__name__)


def from_torch(module: nn.Sequential, *,
               rng: np.random.Generator | None = None) -> reference.Sequential:
    """The NumPy twin of ``module``: one reference layer per module, same options, the same
    parameters and buffers bit for bit (Linear weights transposed to ``(in, out)``), in the
    module's dtype. ``rng`` draws the Dropout masks when none are queued."""
    if not isinstance(module, nn.Sequential):
        raise TypeError(f"from_torch: expected an nn.Sequential, got {type(module).__name__}")
    dt = _module_dtype(module)
    model = reference.Sequential(*(_layer_from(i, m, dt, rng) for i, m in enumerate(module)))
    transfer.torch_to_numpy(module, model)
    return model


# reference layer class → its torch module class (a subclass of a reference layer, such as a
# learner's own ReLU, has its base class's twin)
TWIN_TYPES = ((L.Linear, nn.Linear), (L.ReLU, nn.ReLU), (L.Sigmoid, nn.Sigmoid),
              (L.Tanh, nn.Tanh), (L.Dropout, nn.Dropout), (L.BatchNorm1d, nn.BatchNorm1d),
              (L.LayerNorm, nn.LayerNorm))


def torch_type_of(layer: L.Layer) -> type | None:
    """The torch module class twinned with ``layer`` (None for a layer of the user's own)."""
    return next((theirs for ours, theirs in TWIN_TYPES if isinstance(layer, ours)), None)


def option_mismatches(numpy_model: reference.Sequential, torch_model: nn.Sequential) -> list[str]:
    """Every hyper-parameter a NumPy layer declares (``Layer.options``, by torch's attribute
    names) that its torch module holds otherwise, one line each: ``"layer 1 (Dropout): p 0.5
    (NumPy) vs 1.0 (torch)"``. Layers are paired by position."""
    out = []
    for i, (layer, module) in enumerate(zip(numpy_model.layers, torch_model)):
        for name, mine in layer.options().items():
            theirs = getattr(module, name, "(absent)")
            if not _same_option(mine, theirs):
                out.append(f"layer {i} ({type(layer).__name__}): {name} {mine!r} (NumPy) vs "
                           f"{theirs!r} (torch)")
    return out


def _same_option(a, b) -> bool:
    """Equal as the twins would use them: ``True`` is not ``1``, ``None`` only ``None``."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return bool(a == b)


def _module_from(i: int, layer: L.Layer, dtype: torch.dtype) -> nn.Module:
    """The torch module of one reference layer (most specific known class first)."""
    if isinstance(layer, L.Linear):
        return nn.Linear(layer.in_features, layer.out_features, dtype=dtype)
    for ours, theirs in ((L.ReLU, nn.ReLU), (L.Sigmoid, nn.Sigmoid), (L.Tanh, nn.Tanh)):
        if isinstance(layer, ours):
            return theirs()
    if isinstance(layer, L.Dropout):
        return nn.Dropout(layer.p)
    if isinstance(layer, L.BatchNorm1d):
        return nn.BatchNorm1d(layer.num_features, eps=layer.eps, momentum=layer.momentum,
                              affine=layer.affine, dtype=dtype)
    if isinstance(layer, L.LayerNorm):
        return nn.LayerNorm(layer.num_features, eps=layer.eps,
                            elementwise_affine=layer.affine, dtype=dtype)
    raise _unsupported(i, type(layer).__name__)


def to_torch(numpy_model: reference.Sequential) -> nn.Sequential:
    """The torch twin of ``numpy_model``: stock modules in an ``nn.Sequential``, the same
    parameters and buffers bit for bit (Linear weights transposed to ``(out, in)``)."""
    if not isinstance(numpy_model, reference.Sequential):
        raise TypeError(f"to_torch: expected a reference.Sequential, got "
                        f"{type(numpy_model).__name__}")
    found = {v.dtype for v in numpy_model.state_dict().values() if v.dtype.kind == "f"}
    if len(found) > 1:
        raise TypeError(f"to_torch: parameters must share one dtype, got {sorted(map(str, found))}")
    np_dtype = found.pop() if found else np.dtype(np.float64)
    dtypes = {np.dtype(v): k for k, v in _TORCH_DTYPES.items()}
    if np_dtype not in dtypes:
        raise TypeError(f"to_torch: parameters must be float32 or float64, got {np_dtype}")
    dtype = dtypes[np_dtype]
    module = nn.Sequential(*(_module_from(i, layer, dtype)
                             for i, layer in enumerate(numpy_model.layers)))
    transfer.numpy_to_torch(numpy_model, module)
    return module
