"""Your own twins (``path/file.py:function``, the contract of ``nn-parity check``) where the
checkpoint commands take a catalogue ``ModelSpec``.

``nn-parity export file.py:function`` saves the model your function returns (no recipe: it is
saved as it is, in ``--dtype``), ``import-check`` loads a checkpoint into copies of both of
your twins and compares their predictions on the batch ``X`` your function returns.
``UserModel`` answers what those commands ask of a spec: the name a checkpoint records,
fresh copies of either twin in a dtype, the layer summary, the data. A ``torch_model`` whose
forward is a chain (``parity.chain``) is saved under its Sequential's keys (``0.weight``).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
from torch import nn

from parity import chain, inputs, reference
from parity.dtypes import check_dtype
from parity.twins import TORCH_DTYPES


@dataclass
class UserModel:
    """``name``: ``file.py:function`` (the folder left out, so a checkpoint outlives a
    move); the two twins as your function returned them; ``X``, ``y``: its batch."""

    name: str
    numpy_model: reference.Sequential
    torch_model: nn.Sequential
    X: np.ndarray
    y: np.ndarray
    pinned_seed: int = 0

    @classmethod
    def of(cls, target: str, got: dict) -> UserModel:
        """From what ``parity.usercode.loaded(target)`` yields; ``ValueError``/``TypeError``
        naming ``target`` for a function pair (no model to save) or a model of another
        kind."""
        if "loss_and_grads" in got:
            raise ValueError(f"{target}: returns loss_and_grads; export and import-check need "
                             f"numpy_model and torch_model")
        np_model, t_model = got["numpy_model"], got["torch_model"]
        if not isinstance(np_model, reference.Sequential):
            raise TypeError(f"{target}: numpy_model is a {type(np_model).__name__}, expected a "
                            f"reference.Sequential")
        chained = chain.of(t_model)
        t_model = chained.sequential if chained is not None else t_model
        if not isinstance(t_model, nn.Sequential):
            raise TypeError(f"{target}: torch_model is a {type(t_model).__name__}, expected an "
                            f"nn.Sequential or a module whose forward is a chain of layers")
        inputs.torch_module(t_model)
        X, y = inputs.batch(got["X"], got["y"], got["loss"])
        path, _, function = target.rpartition(":")
        return cls(f"{os.path.basename(path)}:{function}", np_model, t_model, X, y)

    def build_numpy(self, seed: int = 0, dtype: str = "float64") -> reference.Sequential:
        """A copy of your NumPy twin in ``dtype`` (``seed`` unused: its arrays are yours)."""
        model = copy.deepcopy(self.numpy_model)
        for layer in model.layers:
            layer.to_dtype(check_dtype(dtype))
        return model

    def build_torch(self, dtype: str = "float64", torch_seed: int | None = None):
        """A copy of your torch twin in ``dtype``."""
        return copy.deepcopy(self.torch_model).to(TORCH_DTYPES[check_dtype(dtype)])

    def layer_summary(self) -> str:
        return " → ".join(type(m).__name__ for m in self.torch_model)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.torch_model.parameters() if p.requires_grad)

    def data(self, seed: int = 0) -> SimpleNamespace:
        """Your batch, as the held-out split a catalogue model's data has."""
        return SimpleNamespace(X_test=self.X, y_test=self.y)
