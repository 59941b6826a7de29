"""NumPy reference networks: layers, losses, Sequential, optimizers, datasets (never torch)."""

from parity.reference import layers as _layers
from parity.reference import spatial as _spatial
from parity.reference.layers import *  # noqa: F403 - every layer class, as reference.layers.__all__
from parity.reference.losses import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    L1Loss,
    MSELoss,
    MultiMarginLoss,
    NLLLoss,
    ProbsCrossEntropyLoss,
    SmoothL1Loss,
    l2_penalty,
)
from parity.reference.optim import SGD, Adagrad, Adam, AdamW, RMSprop
from parity.reference.sequential import Sequential
from parity.reference.spatial import AvgPool2d, BatchNorm2d, Conv2d, Dropout2d, MaxPool2d

__all__ = [*_layers.__all__, "Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm2d", "Dropout2d",
           "CrossEntropyLoss", "BCELoss", "BCEWithLogitsLoss", "MSELoss",
           "L1Loss", "SmoothL1Loss", "HuberLoss", "NLLLoss", "ProbsCrossEntropyLoss",
           "MultiMarginLoss", "l2_penalty",
           "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Sequential"]
_ = _spatial
