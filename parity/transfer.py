"""Weights between the twins: names are torch ``state_dict`` keys on both sides; layouts
(the Linear weight's ``(in, out)`` in NumPy ↔ ``(out, in)`` in torch, and whatever a kind's
record declares) are applied here and nowhere else, to parameters, buffers, gradients and
optimizer state alike. Copies are exact (bit for bit); dtypes must already agree — no silent
casts."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from parity import kinds, reference


def to_torch_layout(state: dict[str, np.ndarray], torch_model: nn.Module) -> dict:
    """NumPy-layout arrays by ``state_dict`` key → torch layout (contiguous copies where the
    layout changes)."""
    lay = kinds.layouts(torch_model)
    return {k: lay[k].to_torch(v) if k in lay else np.asarray(v) for k, v in state.items()}


def torch_views(state: dict[str, np.ndarray], torch_model: nn.Module) -> dict:
    """NumPy-layout arrays seen in torch layout without copies (transposed views where the
    layout changes): for a reader that is done before the arrays change."""
    lay = kinds.layouts(torch_model)
    return {k: lay[k].torch_view(v) if k in lay else np.asarray(v) for k, v in state.items()}


def to_numpy_layout(state: dict[str, np.ndarray], torch_model: nn.Module) -> dict:
    """Torch-layout arrays → NumPy layout (the inverse of ``to_torch_layout``)."""
    lay = kinds.layouts(torch_model)
    return {k: lay[k].to_numpy(v) if k in lay else np.asarray(v) for k, v in state.items()}


def torch_state(torch_model: nn.Module) -> dict[str, np.ndarray]:
    """The torch model's state_dict as NumPy arrays in torch layout (copies)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in torch_model.state_dict().items()}


def numpy_to_torch(np_model: reference.Sequential, torch_model: nn.Module) -> None:
    """Copy every parameter and buffer of the NumPy model into the torch model."""
    load_torch(torch_model, to_torch_layout(np_model.state_dict(), torch_model))


def torch_to_numpy(torch_model: nn.Module, np_model: reference.Sequential) -> None:
    """Copy every parameter and buffer of the torch model into the NumPy model."""
    np_model.load_state_dict(to_numpy_layout(torch_state(torch_model), torch_model))


def load_torch(torch_model: nn.Module, state: dict[str, np.ndarray]) -> None:
    """Strict, exact load of torch-layout arrays (same keys, shapes, dtypes) into the model."""
    own = torch_model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(f"torch load: missing keys {missing}, unexpected keys {unexpected}")
    tensors = {}
    for k, v in state.items():
        t = torch.from_numpy(np.array(v, copy=True))
        if tuple(t.shape) != tuple(own[k].shape) or t.dtype != own[k].dtype:
            raise ValueError(f"torch load: {k} expected {own[k].dtype} {tuple(own[k].shape)}, "
                             f"got {t.dtype} {tuple(t.shape)}")
        tensors[k] = t
    torch_model.load_state_dict(tensors, strict=True)


def state_to_torch_layout(state: dict, layout: kinds.Layout = kinds.SAME) -> dict:
    """Copies of one parameter's optimizer state entries (``{"exp_avg": array, …}``), in
    torch layout: entries shaped like the parameter take its ``layout`` (a scalar ``step``
    does not). Copies: the live state changes in place at the next step."""
    return {k: layout.to_torch(np.array(v, copy=True)) for k, v in state.items()}


def state_layouts(torch_model: nn.Module) -> dict:
    """Parameter key → its ``Layout`` (``SAME`` for most): what ``state_to_torch_layout``
    takes for that parameter's optimizer state."""
    lay = kinds.layouts(torch_model)
    return {k: lay.get(k, kinds.SAME) for k, _ in torch_model.named_parameters()}


def optimizer_state_to_torch(np_optimizer, torch_optimizer: torch.optim.Optimizer,
                             torch_model: nn.Module) -> None:
    """Copy the NumPy optimizer's float state entries (momentum buffers, Adam's moments) into
    torch's, in place and exactly, each in its parameter's layout. ``step`` counters and
    entries only one side keeps are left alone (``parity.compare`` checks them)."""
    names = {id(p): k for k, p in torch_model.named_parameters()}
    lay = state_layouts(torch_model)
    for param, st in torch_optimizer.state.items():
        key = names[id(param)]
        mine = np_optimizer.state.get(key, {})
        for entry, theirs in st.items():
            if entry == "step" or entry not in mine or not (
                    isinstance(theirs, torch.Tensor) and theirs.is_floating_point()):
                continue
            t = torch.from_numpy(state_to_torch_layout({entry: mine[entry]}, lay[key])[entry])
            if tuple(t.shape) != tuple(theirs.shape) or t.dtype != theirs.dtype:
                raise ValueError(f"optimizer state {key}.{entry}: expected {theirs.dtype} "
                                 f"{tuple(theirs.shape)}, got {t.dtype} {tuple(t.shape)}")
            with torch.no_grad():
                theirs.copy_(t)
