"""The PyTorch twins' stock pieces: losses, optimizers (torch.optim) and an idiomatic training
loop. Modules come from ``torch.nn`` as they are; ``parity.kinds`` builds them from a
description."""

from torch_impl.build import LOSSES, build_optimizer, targets
from torch_impl.training import accuracy, fit, l2_penalty

__all__ = ["build_optimizer", "targets", "LOSSES", "fit", "accuracy", "l2_penalty"]
