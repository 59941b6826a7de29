"""NumPy reference networks: layers, losses, Sequential, optimizers, datasets (never torch)."""

from reference import layers as _layers
from reference import spatial as _spatial
from reference.layers import *  # noqa: F403 - every layer class, as reference.layers.__all__
from reference.losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, l2_penalty
from reference.optim import SGD, Adam, AdamW
from reference.sequential import Sequential
from reference.spatial import AvgPool2d, BatchNorm2d, Conv2d, Dropout2d, MaxPool2d

__all__ = [*_layers.__all__, "Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm2d", "Dropout2d",
           "CrossEntropyLoss", "BCELoss", "BCEWithLogitsLoss", "l2_penalty",
           "SGD", "Adam", "AdamW", "Sequential"]
_ = _spatial
