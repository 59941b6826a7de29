"""NumPy reference networks: layers, losses, Sequential, optimizers, datasets (never torch)."""

from reference.layers import BatchNorm1d, Dropout, LayerNorm, Linear, ReLU, Sigmoid, Tanh
from reference.losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, l2_penalty
from reference.optim import SGD, Adam, AdamW
from reference.sequential import Sequential

__all__ = ["Linear", "ReLU", "Sigmoid", "Tanh", "Dropout", "BatchNorm1d", "LayerNorm",
           "CrossEntropyLoss", "BCELoss", "BCEWithLogitsLoss", "l2_penalty",
           "SGD", "Adam", "AdamW", "Sequential"]
