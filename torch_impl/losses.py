"""Losses torch users write from stock parts rather than take from ``torch.nn``."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class NLLOfLog(nn.NLLLoss):
    """Cross-entropy of probabilities ``p: (N, K)`` — a model ending in ``nn.Softmax`` — as
    torch users write it: ``nn.NLLLoss()(torch.log(p), y)``; autograd differentiates it
    (``dp = −onehot(y)/p``, /N for the mean). ``nn.LogSoftmax`` + ``NLLLoss`` or
    ``CrossEntropyLoss`` on logits is the stable form; this one is what people port."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return super().forward(torch.log(input), target)
