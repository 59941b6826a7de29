"""One model, the other framework: ``from_torch(nn.Sequential) -> reference.Sequential`` and
``to_torch(reference.Sequential) -> nn.Sequential``, with identical weights (bit for bit).
``from_torch`` also takes a module whose forward is a chain of layers (``parity.chain``).

Each module is converted by its kind's record (``parity.kinds``): one reference layer per
stock torch module of a known kind, options included (eps, momentum, affine, p, …). A module
of no known kind, a subclass of one, or a configuration without a twin (a Linear without
bias, BatchNorm without running statistics, LayerNorm over more than one dimension) is
refused with a ``ValueError`` naming the layer and listing the supported kinds. Weights go
through ``parity.transfer``, the one place that applies layouts.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from parity import chain, kinds, reference, transfer
from parity.reference import layers as L

__all__ = ["from_torch", "option_mismatches", "supported", "to_torch", "torch_type_of"]

_TORCH_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def supported() -> str:
    """The kinds both ways convert, by name (for error messages)."""
    return ", ".join(k.name for k in kinds.KINDS)


def _unsupported(i: int, what: str, why: str = "") -> ValueError:
    reason = f" ({why})" if why else ""
    return ValueError(f"layer {i}: {what} is not supported{reason}; supported modules: "
                      f"{supported()}")


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
    kind = kinds.of_module(m)
    if kind is None:
        raise _unsupported(i, type(m).__name__)
    try:
        return kind.from_torch(m, dt, rng)
    except kinds.Unsupported as e:
        raise _unsupported(i, e.what, e.why) from None


def from_torch(module: nn.Module, *,
               rng: np.random.Generator | None = None) -> reference.Sequential:
    """The NumPy twin of ``module``: one reference layer per module, same options, the same
    parameters and buffers bit for bit (layouts applied by ``parity.transfer``), in the
    module's dtype. ``rng`` draws the Dropout masks when none are queued.

    Shapes: each parameter in the NumPy layout (``parity.transfer``): a Linear weight
    ``(in, out)`` for torch's ``(out, in)``, convolution kernels in torch's ``(C_out, C_in,
    kH, kW)``; keys are torch's ``state_dict`` keys (``0.weight``, ``1.running_var``).

    Example::

        >>> import torch
        >>> from torch import nn
        >>> import parity
        >>> torch_net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
        >>> numpy_net = parity.from_torch(torch_net)
        >>> [type(layer).__name__ for layer in numpy_net.layers]
        ['Linear', 'Tanh', 'Linear']
        >>> numpy_net.state_dict()["0.weight"].shape      # torch's is (8, 4)
        (4, 8)
        >>> W = torch_net[0].weight.detach().numpy()
        >>> bool((numpy_net.state_dict()["0.weight"] == W.T).all())         # bit for bit
        True
    """
    chained = chain.of(module)          # a custom module whose forward is a chain
    if chained is not None:
        module = chained.sequential
    if not isinstance(module, nn.Sequential):
        raise TypeError(f"from_torch: expected an nn.Sequential or a module whose forward is a "
                        f"chain of layers, got {type(module).__name__}")
    dt = _module_dtype(module)
    model = reference.Sequential(*(_layer_from(i, m, dt, rng) for i, m in enumerate(module)))
    transfer.torch_to_numpy(module, model)
    return model


def torch_type_of(layer: L.Layer) -> type | None:
    """The torch module class twinned with ``layer`` (None for a layer of the user's own)."""
    kind = kinds.of_layer(layer)
    return kind.torch if kind else None


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
    """Equal as the twins would use them: ``True`` is not ``1``, ``None`` only ``None``; an
    int stands for a tuple of itself (torch's pooling keeps ``kernel_size=2``, the NumPy
    layer ``(2, 2)``)."""
    if isinstance(a, tuple) or isinstance(b, tuple):
        a, b = (x if isinstance(x, tuple) else (x,) * len(a if x is b else b) for x in (a, b))
        return len(a) == len(b) and all(_same_option(p, q) for p, q in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return bool(a == b)


def _module_from(i: int, layer: L.Layer, dtype: torch.dtype) -> nn.Module:
    """The torch module of one reference layer (its kind's record, nearest base class)."""
    kind = kinds.of_layer(layer)
    if kind is None:
        raise _unsupported(i, type(layer).__name__)
    try:
        return kind.to_torch(layer, dtype)
    except kinds.Unsupported as e:
        raise _unsupported(i, e.what, e.why) from None


def to_torch(numpy_model: reference.Sequential) -> nn.Sequential:
    """The torch twin of ``numpy_model``: stock modules in an ``nn.Sequential``, the same
    parameters and buffers bit for bit (each kind's layout applied by ``parity.transfer``).
    A Linear weight ``(in, out)`` becomes torch's ``(out, in)``; the dtype (float32 or
    float64) is the NumPy model's.

    Example::

        >>> import parity
        >>> from parity import reference as R
        >>> numpy_net = R.Sequential(R.Linear(4, 8), R.ReLU(), R.Linear(8, 3))
        >>> torch_net = parity.to_torch(numpy_net)
        >>> [type(m).__name__ for m in torch_net], tuple(torch_net[0].weight.shape)
        (['Linear', 'ReLU', 'Linear'], (8, 4))
        >>> torch_net[0].weight.dtype
        torch.float64
    """
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
