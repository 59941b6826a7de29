"""Trajectory divergence: both twins train in lockstep from identical weights — each on its
own gradients, with the same batches and the same dropout masks — and after every step we
record how far their parameters and losses have drifted apart.

In exact arithmetic the two trajectories are one; in floating point each step adds rounding
differences that the dynamics then amplify (chaotically over long runs: PARITY_NOTES measured
~1e-11 after 1k steps, ~5e-3 after 5k on the cs231n net at lr 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from parity import transfer
from parity.distance import normwise_rel
from parity.masks import DropoutMaskRecorder
from parity.reference.training import epoch_batches
from parity.runtime import seed_torch
from parity.twins import Twins


@dataclass
class Divergence:
    model: str
    dtype: str
    seed: int
    steps: int
    param_rel: list = field(default_factory=list)   # per step: max over tensors of normwise_rel
    loss_rel: list = field(default_factory=list)    # per step: |L_np − L_t| / |L_t|
    worst_param: list = field(default_factory=list)  # per step: the tensor that set param_rel

    def first_step_above(self, threshold: float) -> int | None:
        """1-based step at which the parameter difference first exceeds ``threshold``."""
        for i, v in enumerate(self.param_rel):
            if v > threshold:
                return i + 1
        return None

    def to_json(self) -> dict:
        return {"model": self.model, "dtype": self.dtype, "seed": self.seed,
                "steps": self.steps, "param_rel": self.param_rel, "loss_rel": self.loss_rel,
                "first_step_above_1e-6": self.first_step_above(1e-6),
                "max_param_rel": max(self.param_rel, default=0.0)}


def diverge_twins(twins: Twins, X, y, steps: int, *, batch_size: int | None = None,
                  order_rng: np.random.Generator | None = None, seed: int = 0,
                  skip_keys: set | None = None) -> Divergence:
    """Train both twins ``steps`` optimizer steps in lockstep (in place) on ``X: (N, D)``,
    ``y: (N,)``, in batches of ``batch_size`` (None: the full batch) drawn by
    ``reference.training.epoch_batches`` from ``order_rng``; torch's dropout draws are
    seeded with ``seed`` and handed to NumPy. After every step: the largest ``normwise_rel``
    over the state entries (torch layout) and the relative loss difference.

    ``skip_keys`` leaves entries out of ``param_rel`` (default: ``twins.cancelled_keys()``).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    X = np.asarray(X).astype(np.dtype(twins.dtype))
    skip = twins.cancelled_keys() if skip_keys is None else skip_keys
    result = Divergence(twins.name, twins.dtype, seed, steps)
    recorder = DropoutMaskRecorder(twins.torch_model)
    twins.torch_model.train()
    try:
        with torch.random.fork_rng(devices=[]):
            seed_torch(seed)
            batches: list = []
            for _ in range(steps):
                if not batches:
                    batches = epoch_batches(len(X), batch_size, order_rng)
                _record(result, _step(twins, X, y, batches.pop(0), recorder), twins, skip)
    finally:
        recorder.remove()
    return result


def _step(twins: Twins, X, y, idx, recorder) -> tuple[float, float]:
    """One optimizer step of each twin on rows ``idx`` (None: all), torch first so its dropout
    masks can be queued on the NumPy layers; returns ``(L_numpy, L_torch)``."""
    Xb, yb = (X, y) if idx is None else (X[idx], np.asarray(y)[idx])
    t_model, t_opt = twins.torch_model, twins.torch_optimizer
    t_opt.zero_grad()
    L_t = twins.torch_loss(t_model(twins.torch_input(Xb)), twins.torch_targets(yb))
    L_t.backward()
    t_opt.step()
    for i, masks in recorder.take().items():
        twins.numpy_model.layers[i].queue_masks(masks)
    np_model = twins.numpy_model
    L_n = twins.numpy_loss.forward(np_model.forward(Xb, training=True), yb)
    np_model.backward(twins.numpy_loss.backward())
    twins.numpy_optimizer.step(np_model.gradients())
    return L_n, L_t.item()


def _record(result: Divergence, losses: tuple[float, float], twins: Twins, skip) -> None:
    """Append this step's worst ``normwise_rel`` (and its key) and relative loss difference."""
    mine = transfer.to_torch_layout(twins.numpy_model.state_dict(), twins.torch_model)
    theirs = transfer.torch_state(twins.torch_model)
    rels = {k: normwise_rel(mine[k], theirs[k]) for k in theirs
            if k not in skip and theirs[k].dtype.kind == "f"}
    worst = max(rels, key=rels.__getitem__)
    result.param_rel.append(rels[worst])
    result.worst_param.append(worst)
    L_n, lt = losses
    result.loss_rel.append(abs(L_n - lt) / abs(lt) if lt else abs(L_n))
