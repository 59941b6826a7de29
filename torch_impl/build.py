"""The torch side's stock pieces: losses, their targets, and optimizers on the single-tensor
path. (Modules are built from a description by each kind's record, ``parity.kinds``.)"""

from __future__ import annotations

import torch
from torch import nn

DTYPES = {"float32": torch.float32, "float64": torch.float64}


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
