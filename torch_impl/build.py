"""Build the torch twin from the same layer description as ``reference.build``:
stock ``torch.nn`` modules inside ``nn.Sequential``; stock losses and optimizers."""

from __future__ import annotations

import torch
from torch import nn

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def build_sequential(description, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """``("linear", i, o)`` → ``nn.Linear(i, o)`` (torch's default init; parity overwrites it),
    ``("relu",)`` → ``nn.ReLU()``, ``("dropout", p)`` → ``nn.Dropout(p)``,
    ``("batchnorm", C)`` → ``nn.BatchNorm1d(C)``, ``("layernorm", D)`` → ``nn.LayerNorm(D)``."""
    made = []
    for i, item in enumerate(description):
        kind, args = item[0], item[1:]
        if kind == "linear":
            made.append(nn.Linear(*args, dtype=dtype))
        elif kind == "relu":
            made.append(nn.ReLU())
        elif kind == "sigmoid":
            made.append(nn.Sigmoid())
        elif kind == "tanh":
            made.append(nn.Tanh())
        elif kind == "dropout":
            made.append(nn.Dropout(*args))
        elif kind == "batchnorm":
            made.append(nn.BatchNorm1d(*args, dtype=dtype))
        elif kind == "layernorm":
            made.append(nn.LayerNorm(*args, dtype=dtype))
        else:
            raise ValueError(f"layer {i}: unknown kind {kind!r}")
    return nn.Sequential(*made)


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
