"""Hidden representations (seed 002, exercise 4): the first hidden layer's activations of
either twin, projected to 2-D by PCA (SVD of the centred activations)."""

from __future__ import annotations

import numpy as np
import torch

from parity import reference
from parity.twins import evaluating


def hidden_numpy(model: reference.Sequential, X: np.ndarray, upto: int = 2) -> np.ndarray:
    """Eval-mode output of layers ``0 … upto−1`` (default: first Linear + its activation)."""
    for layer in model.layers[:upto]:
        X = layer.forward(X, training=False)
    return X


def hidden_torch(model: torch.nn.Sequential, X: np.ndarray, upto: int = 2) -> np.ndarray:
    """The same for the torch twin (its mode restored afterwards)."""
    with evaluating(model):
        return model[:upto](torch.from_numpy(X)).numpy()


def pca_2d(H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``H: (N, D)`` → coordinates ``(N, 2)`` on the top two principal axes, and the fraction of
    variance each explains. Signs are fixed so the largest |loading| of each axis is positive
    (the SVD's sign is arbitrary; this makes the two twins' pictures comparable)."""
    Hc = H - H.mean(axis=0)
    _, s, vt = np.linalg.svd(Hc, full_matrices=False)
    axes = vt[:2]
    axes = axes * np.sign(axes[np.arange(2), np.abs(axes).argmax(axis=1)])[:, None]
    var = s**2 / max(float((s**2).sum()), np.finfo(float).tiny)
    return Hc @ axes.T, var[:2]
