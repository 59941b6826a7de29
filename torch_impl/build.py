"""Build the torch twin from the same ``layerspec`` description as ``reference.build``:
stock ``torch.nn`` modules inside ``nn.Sequential``; stock losses and optimizers."""

from __future__ import annotations

import torch
from torch import nn

import layerspec as S

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def build_layer(item: S.LayerSpec, dtype: torch.dtype = torch.float64) -> nn.Module:
    """The stock module for one ``layerspec`` item: ``Linear(i, o)`` → ``nn.Linear(i, o)``
    (torch's default init; parity overwrites it), ``ReLU()`` → ``nn.ReLU()``, ``Dropout(p)`` →
    ``nn.Dropout(p)``, ``BatchNorm1d(C)`` → ``nn.BatchNorm1d(C)``, ``LayerNorm(D)`` →
    ``nn.LayerNorm(D)``. ``TypeError`` if ``item`` is not one of ``layerspec.VOCABULARY``."""
    match item:
        case S.Linear(n_in, n_out):
            return nn.Linear(n_in, n_out, dtype=dtype)
        case S.ReLU():
            return nn.ReLU()
        case S.Sigmoid():
            return nn.Sigmoid()
        case S.Tanh():
            return nn.Tanh()
        case S.Dropout(p):
            return nn.Dropout(p)
        case S.BatchNorm1d(c):
            return nn.BatchNorm1d(c, dtype=dtype)
        case S.LayerNorm(d):
            return nn.LayerNorm(d, dtype=dtype)
    raise TypeError(f"torch_impl.build: cannot build {item!r} ({type(item).__name__}); "
                    f"known: {', '.join(t.__name__ for t in S.VOCABULARY)}")


def build_sequential(description, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """``nn.Sequential`` of ``build_layer(item)`` in order; ``TypeError`` naming the index of an
    item that is not a layer description."""
    return nn.Sequential(*(build_layer(item, dtype) for item in S.check_layers(description)))


LOSSES = {
    "cross_entropy": nn.CrossEntropyLoss,
    "bce": nn.BCELoss,
    "bce_with_logits": nn.BCEWithLogitsLoss,
}


def targets(loss: str, y, dtype: torch.dtype) -> torch.Tensor:
    """Labels as the torch loss wants them: int64 ``(N,)`` for cross-entropy, float ``(N, 1)``
    for the binary losses."""
    t = torch.as_tensor(y)
    if loss == "cross_entropy":
        return t.to(torch.int64)
    return t.to(dtype).reshape(-1, 1)


def build_optimizer(kind: str, groups: list[dict], **options) -> torch.optim.Optimizer:
    """``torch.optim.{SGD, Adam, AdamW}`` over param groups ``[{"params": [tensors], ...}]``,
    forced onto the single-tensor path (``foreach=False``) — the one the reference mirrors."""
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[kind]
    return cls(groups, foreach=False, **options)
