"""``Twins``: a NumPy model and a torch module that should compute the same thing, with their
losses, optimizers over the same param groups and the penalty either reports.

The core (``parity.compare``, ``parity.diverge``) runs twins; it never looks at where they
came from. ``from_spec`` builds them from a catalogue ``ModelSpec``; users build them from
their own ``reference.Sequential`` and ``nn.Sequential``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

import reference
import torch_impl
from parity import transfer
from reference.losses import l2_penalty


@dataclass
class Twins:
    """``numpy_model`` (reference layout: Linear weight ``(in, out)``) and ``torch_model``
    (an ``nn.Sequential`` with the same state_dict keys), ``loss`` one of
    ``torch_impl.LOSSES``' names, optimizers built over the same parameters, and the cs231n
    penalty ``0.5·weight·Σ‖W_k‖²`` over ``penalty_keys`` that the NumPy side reports in its
    loss (empty: none)."""

    name: str
    dtype: str
    numpy_model: reference.Sequential
    torch_model: nn.Sequential
    loss: str
    numpy_optimizer: object
    torch_optimizer: torch.optim.Optimizer
    penalty_keys: list[str] = field(default_factory=list)
    penalty_weight: float = 0.0

    def __post_init__(self) -> None:
        self.numpy_loss = reference.losses.LOSSES[self.loss]()
        self.torch_loss = torch_impl.LOSSES[self.loss]()

    def sync_weights(self) -> None:
        """Copy every NumPy parameter and buffer into the torch model (exact)."""
        transfer.numpy_to_torch(self.numpy_model, self.torch_model)

    def torch_targets(self, y) -> torch.Tensor:
        return torch_impl.targets(self.loss, y, torch_impl.build.DTYPES[self.dtype])

    def numpy_penalty(self, params: dict[str, np.ndarray]) -> float:
        return l2_penalty([params[k] for k in self.penalty_keys], self.penalty_weight)

    def torch_penalty(self) -> torch.Tensor:
        params = dict(self.torch_model.named_parameters())
        with torch.no_grad():
            return torch_impl.l2_penalty([params[k] for k in self.penalty_keys],
                                         self.penalty_weight)


def from_spec(spec, dtype: str = "float64", seed: int = 0, np_model=None) -> Twins:
    """Twins of a catalogue ``ModelSpec``: the NumPy model initialized from ``seed`` (or the
    given ``np_model``), torch receiving the same weights, optimizers over the recipe's
    param groups, the cs231n penalty when the recipe reports it."""
    np_model = np_model if np_model is not None else spec.build_numpy(seed, dtype)
    t_model = spec.build_torch(dtype)
    twins = Twins(spec.name, dtype, np_model, t_model, spec.loss,
                  spec.numpy_optimizer(np_model), spec.torch_optimizer(t_model),
                  spec.reg_keys(), spec.optimizer.weight_decay if spec.reg_in_loss else 0.0)
    twins.sync_weights()
    return twins
