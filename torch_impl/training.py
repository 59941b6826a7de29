"""An idiomatic torch training loop (zero_grad → forward → loss → backward → step)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn


def l2_penalty(weights: list[torch.Tensor], reg: float) -> torch.Tensor:
    """cs231n's penalty as torch computes it: ``0.5·reg·Σ_W Σ W²`` (the twin of
    ``reference.losses.l2_penalty``; torch's optimizers add ``reg·W`` to the gradient)."""
    if not weights:
        raise ValueError("l2_penalty: no weights to penalize")
    total = (weights[0] * weights[0]).sum()          # Σ in list order, as sum() would add them
    for w in weights[1:]:
        total = total + (w * w).sum()
    return 0.5 * reg * total


def fit(model: nn.Sequential, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
        X: torch.Tensor, y: torch.Tensor, *, epochs: int, batches: Callable[[], list],
        penalty: Callable[[], torch.Tensor] | None = None,
        on_epoch: Callable[[int, float], bool | None] | None = None) -> dict:
    """Train in place; returns ``{"loss": [per epoch], "steps": int, "seconds": float}``.

    ``batches()`` yields one epoch's index arrays (``None`` = the whole set) — the parity layer
    passes the reference's ``epoch_batches`` so both sides see the same order. ``penalty()``
    is the cs231n term added to the *reported* loss only (its gradient is SGD's weight decay).
    """
    n = len(X)
    history: dict = {"loss": [], "steps": 0}
    model.train()
    t0 = time.perf_counter()
    step = 0
    for epoch in range(epochs):
        total = 0.0
        for idx in batches():
            if idx is None:
                Xb, yb = X, y
            else:
                t_idx = torch.from_numpy(np.asarray(idx))
                Xb, yb = X[t_idx], y[t_idx]
            optimizer.zero_grad()
            loss = loss_fn(model(Xb), yb)
            loss.backward()
            reported = loss.item()
            if penalty is not None:
                with torch.no_grad():
                    reported += penalty().item()
            if not math.isfinite(reported):
                raise FloatingPointError(
                    f"non-finite loss {reported} at step {step} (epoch {epoch}); "
                    f"first non-finite: {find_nonfinite_layer(model, Xb)}")
            optimizer.step()
            total += reported * len(Xb)
            step += 1
        history["loss"].append(total / n)
        if on_epoch is not None and on_epoch(epoch, history["loss"][-1]):
            break
    history["steps"] = step
    history["seconds"] = time.perf_counter() - t0
    return history


@torch.no_grad()
def find_nonfinite_layer(model: nn.Sequential, X: torch.Tensor) -> str:
    """Name of the first module whose parameters or output are not finite on ``X``."""
    was_training = model.training
    model.eval()
    try:
        for i, module in enumerate(model):
            for k, p in module.named_parameters():
                if not torch.isfinite(p).all():
                    return f"layer {i} ({type(module).__name__}) parameter {k}"
            X = module(X)
            if not torch.isfinite(X).all():
                return f"layer {i} ({type(module).__name__}) output"
        return "loss"
    finally:
        model.train(was_training)


@torch.no_grad()
def accuracy(model: nn.Sequential, X: torch.Tensor, y) -> float:
    """Eval-mode accuracy: argmax for K > 1 outputs; one output is thresholded at 0.5 after a
    final ``nn.Sigmoid``, else at 0 (a logit)."""
    was_training = model.training
    model.eval()
    try:
        out = model(X)
    finally:
        model.train(was_training)
    if out.shape[1] > 1:
        pred = out.argmax(dim=1)
    else:
        threshold = 0.5 if isinstance(model[-1], nn.Sigmoid) else 0.0
        pred = (out[:, 0] > threshold).to(torch.int64)
    return float((pred.cpu().numpy() == np.asarray(y).reshape(-1)).mean())
