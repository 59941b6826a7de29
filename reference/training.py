"""The reference training loop: forward, loss, backward, optimizer step — nothing hidden."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
from parity.reference.layers import Linear, Sigmoid
from parity.reference.losses import CrossEntropyLoss, l2_penalty
from parity.reference.sequential import Sequential
from parity.reference.validation import (
    check_binary_targets,
    check_features,
    check_images,
    check_labels,
)


def epoch_batches(n: int, batch_size: int | None, order_rng: np.random.Generator | None):
    """Index arrays of one epoch: ``None`` for full batch in order, else consecutive slices of
    ``order_rng.permutation(n)`` (or of ``arange(n)`` when ``order_rng`` is None).
    The torch trainer calls this same function, so both sides see the same batches."""
    if batch_size is None or (batch_size >= n and order_rng is None):
        return [None]
    order = order_rng.permutation(n) if order_rng is not None else np.arange(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def check_training_data(model: Sequential, loss_fn, X, y):
    """Validate the inputs — ``X: (N, D)`` (finite, D = the first Linear's inputs), or
    images ``X: (N, C, H, W)`` when the model's first layer with declared inputs reads
    channels (C = its ``in_channels``) — and the labels the loss needs (ints in ``[0, K)``
    for cross-entropy, 0/1 otherwise); ValueError names the problem."""
    first = next((layer for layer in model.layers
                  if hasattr(layer, "in_features") or hasattr(layer, "in_channels")), None)
    channels = getattr(first, "in_channels", None)
    if channels is not None:
        X = check_images(X, channels)
    else:
        X = check_features(X, getattr(first, "in_features", None))
    if isinstance(loss_fn, CrossEntropyLoss):
        last = next(layer for layer in reversed(model.layers) if isinstance(layer, Linear))
        y = check_labels(y, len(X), last.out_features)
    else:
        y = check_binary_targets(y, len(X))
    return X, y


def find_nonfinite_layer(model: Sequential, X: np.ndarray) -> str:
    """Name of the first layer whose output (or parameters) is not finite on ``X``."""
    for i, layer in enumerate(model.layers):
        for k, v in layer.params.items():
            if not np.all(np.isfinite(v)):
                return f"layer {i} ({type(layer).__name__}) parameter {k}"
        X = layer.forward(X, training=False)
        if not np.all(np.isfinite(X)):
            return f"layer {i} ({type(layer).__name__}) output"
    return "loss"


def fit(model: Sequential, loss_fn, optimizer, X: np.ndarray, y: np.ndarray, *, epochs: int,
        batch_size: int | None = None, order_rng: np.random.Generator | None = None,
        reg: float = 0.0, reg_keys=(), on_epoch: Callable[[int, float], bool | None] | None = None
        ) -> dict:
    """Train in place; returns ``{"loss": [per epoch], "steps": int, "seconds": float}``.

    Per step: ``out = model(Xb)``; ``L = loss(out, yb) + 0.5·reg·Σ_{k∈reg_keys} ‖θ_k‖²``
    (reported only — the matching ``reg·θ`` gradient is the optimizer's weight decay);
    ``model.backward(dL/dout)`` (parameter gradients only: dL/dXb is never computed);
    ``optimizer.step(grads)``. An epoch's loss is the
    batch-size-weighted mean of its steps' losses. ``on_epoch(epoch, loss)`` returning True
    stops early. A non-finite loss raises FloatingPointError naming the step and layer.
    """
    X, y = check_training_data(model, loss_fn, X, y)
    n = len(X)
    params = model.parameters()
    reg_arrays = [params[k] for k in reg_keys]
    history: dict = {"loss": [], "steps": 0}
    t0 = time.perf_counter()
    step = 0
    for epoch in range(epochs):
        total = 0.0
        for idx in epoch_batches(n, batch_size, order_rng):
            Xb, yb = (X, y) if idx is None else (X[idx], y[idx])
            out = model.forward(Xb, training=True)
            loss = loss_fn.forward(out, yb)
            if reg_arrays:
                loss += l2_penalty(reg_arrays, reg)
            if not math.isfinite(loss):
                where = find_nonfinite_layer(model, Xb)
                raise FloatingPointError(f"non-finite loss {loss} at step {step} (epoch {epoch}); "
                                         f"first non-finite: {where}")
            model.backward(loss_fn.backward(), input_grad=False)
            optimizer.step(model.gradients())
            total += loss * len(Xb)
            step += 1
        history["loss"].append(total / n)
        if on_epoch is not None and on_epoch(epoch, history["loss"][-1]):
            break
    history["steps"] = step
    history["seconds"] = time.perf_counter() - t0
    return history


def accuracy(model: Sequential, X: np.ndarray, y: np.ndarray) -> float:
    """Fraction correct in eval mode: argmax for K > 1 outputs, ``out > 0`` threshold for one
    logit, ``out > 0.5`` when the last layer is a Sigmoid (probabilities)."""
    out = model.predict(X)
    if out.shape[1] > 1:
        pred = out.argmax(axis=1)
    else:
        threshold = 0.5 if isinstance(model.layers[-1], Sigmoid) else 0.0
        pred = (out[:, 0] > threshold).astype(np.int64)
    return float(np.mean(pred == np.asarray(y).reshape(-1)))
