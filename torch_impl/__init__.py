"""The PyTorch twins: stock nn modules in nn.Sequential, stock losses and torch.optim."""

from torch_impl.build import LOSSES, build_optimizer, build_sequential, targets
from torch_impl.training import accuracy, fit, l2_penalty

__all__ = ["build_sequential", "build_optimizer", "targets", "LOSSES", "fit", "accuracy",
           "l2_penalty"]
