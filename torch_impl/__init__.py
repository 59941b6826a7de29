"""The PyTorch twins' idiomatic training loop. Modules, losses and optimizers are torch's own
(``torch.nn``, ``torch.optim``) as they are; ``parity.kinds`` builds them from a description,
a loss name or an optimizer name."""

from parity.torch_impl.training import accuracy, fit, l2_penalty

__all__ = ["fit", "accuracy", "l2_penalty"]
