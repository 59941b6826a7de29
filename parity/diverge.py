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

import layerspec as S
import torch_impl
from parity import transfer
from parity.masks import DropoutMaskRecorder
from parity.spec import ModelSpec, check_dtype
from reference.training import epoch_batches


@dataclass
class Divergence:
    model: str
    dtype: str
    seed: int
    steps: int
    param_rel: list = field(default_factory=list)   # per step: max over tensors of normwise rel
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


def cancelled_keys(spec: ModelSpec) -> set[str]:
    """Entries whose true gradient is exactly 0, left out of ``param_rel``: the bias of a
    Linear that feeds a BatchNorm1d, and that BatchNorm's ``running_mean``.

    Linear ``h_n = W x_n + b`` (``h: (N, D)``, ``b: (D,)``), then the norm subtracts a mean.

    BatchNorm (training) normalizes each feature over the batch: ``h_nj − mean_n h_nj =
    (Wx)_nj − mean_n (Wx)_nj`` — every component ``b_j`` cancels, the output does not depend
    on ``b``, and ``db = Σ_n dh_n = 0`` (BatchNorm's ``dh_:j`` sums to 0 over the batch).
    Each side's bias is then a random walk of rounding noise (Adam turns it into steps of up
    to lr) and ``running_mean`` tracks that bias: neither changes a training-mode output.

    LayerNorm normalizes each sample over its features: ``h_n − mean_j h_nj =
    (Wx_n − mean_j (Wx_n)_j·1) + (b − mean(b)·1)`` — only the mean of the bias vector (its
    component along the ones vector ``1``) cancels. LayerNorm's ``dh_n`` is orthogonal to
    ``1`` (and to ``x̂_n``) but nothing else, so ``db = Σ_n dh_n = P Σ_n dh_n`` with
    ``P = I − 11ᵀ/D``: the gradient projected off the ones vector, not 0 (measured on
    spiral003-layernorm: max |db| ~1e-2, tests/test_diverge.py). Its bias trains like any
    other parameter and stays in the trajectory bound.
    """
    keys = set()
    for i in S.adjacent(spec.layers, S.Linear, S.BatchNorm1d):
        keys.update((f"{i}.bias", f"{i + 1}.running_mean"))
    return keys


def _normwise_rel(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(float(np.abs(a).max()), float(np.abs(b).max()))
    return float(np.abs(a - b).max()) / scale if scale > 0 else 0.0


def diverge(spec: ModelSpec, steps: int, dtype: str = "float64", seed: int = 0,
            skip_keys: set | None = None) -> Divergence:
    """Run ``steps`` optimizer steps of the spec's recipe on both twins in lockstep.

    ``skip_keys`` leaves entries out of ``param_rel`` (default: ``cancelled_keys``).
    """
    check_dtype(dtype)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    d = spec.data(seed)
    np_dt = np.dtype(dtype)
    X = d.X_train.astype(np_dt)
    np_model = spec.build_numpy(seed, dtype)
    t_model = spec.build_torch(dtype)
    transfer.numpy_to_torch(np_model, t_model)
    np_opt, t_opt = spec.numpy_optimizer(np_model), spec.torch_optimizer(t_model)
    np_loss, t_loss = spec.numpy_loss(), spec.torch_loss()
    X_t = torch.from_numpy(X)
    y_t = torch_impl.targets(spec.loss, d.y_train, X_t.dtype)
    order_rng = spec.seeds(seed)["order"] if spec.batch_size is not None else None
    if skip_keys is None:
        skip_keys = cancelled_keys(spec)
    result = Divergence(spec.name, dtype, seed, steps)
    recorder = DropoutMaskRecorder(t_model)
    t_model.train()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            batches: list = []
            for _ in range(steps):
                if not batches:
                    batches = epoch_batches(len(X), spec.batch_size, order_rng)
                idx = batches.pop(0)
                Xb, yb = (X, d.y_train) if idx is None else (X[idx], d.y_train[idx])
                Xb_t = X_t if idx is None else X_t[torch.from_numpy(idx)]
                yb_t = y_t if idx is None else y_t[torch.from_numpy(idx)]
                t_opt.zero_grad()
                L_t = t_loss(t_model(Xb_t), yb_t)
                L_t.backward()
                t_opt.step()
                for i, masks in recorder.take().items():
                    np_model.layers[i].queue_masks(masks)
                L_n = np_loss.forward(np_model.forward(Xb, training=True), yb)
                np_model.backward(np_loss.backward())
                np_opt.step(np_model.gradients())
                mine = transfer.to_torch_layout(np_model.state_dict(), t_model)
                theirs = transfer.torch_state(t_model)
                rels = {k: _normwise_rel(mine[k], theirs[k]) for k in theirs
                        if k not in skip_keys and theirs[k].dtype.kind == "f"}
                worst = max(rels, key=rels.get)
                result.param_rel.append(rels[worst])
                result.worst_param.append(worst)
                lt = L_t.item()
                result.loss_rel.append(abs(L_n - lt) / abs(lt) if lt else abs(L_n))
    finally:
        recorder.remove()
    return result
