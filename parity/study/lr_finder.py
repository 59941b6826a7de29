"""Learning-rate finder (seed 002, exercise 5): one epoch with the learning rate growing
exponentially from ``lr_min`` to ``lr_max``; the loss after each step against its lr.

Both twins start from the same weights and see the same batches, so their curves coincide
until the loss blows up. ``suggest`` picks the lr of the steepest loss decrease.
"""

from __future__ import annotations

import numpy as np
import torch

from parity import transfer
from parity.catalogue.spec import ModelSpec
from parity.reference.training import epoch_batches


def schedule(lr_min: float, lr_max: float, steps: int) -> np.ndarray:
    """``lr_k = lr_min · (lr_max/lr_min)^(k/(steps−1))``, k = 0 … steps−1."""
    if not 0 < lr_min < lr_max:
        raise ValueError(f"need 0 < lr_min < lr_max, got {lr_min}, {lr_max}")
    if steps < 2:
        raise ValueError(f"need at least 2 steps, got {steps}")
    return lr_min * (lr_max / lr_min) ** (np.arange(steps) / (steps - 1))


def lr_finder(spec: ModelSpec, impl: str, seed: int = 0, lr_min: float = 1e-5,
              lr_max: float = 10.0, batch_size: int | None = None) -> dict:
    """Returns ``{"lr": [...], "loss": [...]}`` (loss of each step's batch, before its update).
    The sweep is one epoch of minibatches (``batch_size``, default the spec's or 32); it stops
    early once the loss is non-finite or exceeds 4× its minimum."""
    d = spec.data(seed)
    bs = batch_size or spec.batch_size or 32
    batches = epoch_batches(len(d.X_train), bs, spec.seeds(seed)["order"])
    lrs = schedule(lr_min, lr_max, len(batches))
    np_model = spec.build_numpy(seed)
    losses: list[float] = []
    if impl == "numpy":
        opt, loss_fn = spec.numpy_optimizer(np_model), spec.numpy_loss()

        def step(idx, lr):
            for g in opt.param_groups:
                g["lr"] = lr
            loss = loss_fn.forward(np_model.forward(d.X_train[idx], True), d.y_train[idx])
            np_model.backward(loss_fn.backward())
            opt.step(np_model.gradients())
            return loss
    elif impl == "torch":
        model = spec.build_torch()
        transfer.numpy_to_torch(np_model, model)
        opt, loss_fn = spec.torch_optimizer(model), spec.torch_loss()
        X = torch.from_numpy(d.X_train)
        y = spec.torch_targets(d.y_train, X.dtype)

        def step(idx, lr):
            for g in opt.param_groups:
                g["lr"] = lr
            t_idx = torch.from_numpy(idx)
            opt.zero_grad()
            loss = loss_fn(model(X[t_idx]), y[t_idx])
            loss.backward()
            opt.step()
            return loss.item()
    else:
        raise ValueError(f"impl must be numpy or torch, got {impl!r}")
    for idx, lr in zip(batches, lrs):
        with np.errstate(all="ignore"):
            loss = step(idx, float(lr))
        losses.append(loss)
        if not np.isfinite(loss) or loss > 4 * min(losses):
            break
    return {"lr": lrs[:len(losses)].tolist(), "loss": losses}


def suggest(curve: dict) -> float:
    """The lr where the (3-point smoothed) loss falls fastest per unit of log lr."""
    lr, loss = np.asarray(curve["lr"]), np.asarray(curve["loss"])
    if len(loss) < 5:
        raise ValueError("curve too short to suggest a learning rate")
    smooth = np.convolve(loss, np.ones(3) / 3, mode="valid")
    slope = np.diff(smooth) / np.diff(np.log(lr[1:-1]))
    return float(lr[1:-1][int(np.argmin(slope))])
