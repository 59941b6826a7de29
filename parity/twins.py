"""``Twins``: a NumPy model and a torch module that should compute the same thing, with their
losses, optimizers over the same param groups and the penalty either reports.

The core (``parity.compare``, ``parity.diverge``, ``parity.lockstep``, ``parity.finite_diff``)
runs twins; it never looks at where they came from. ``from_models`` builds them from a user's
own ``reference.Sequential`` and ``nn.Sequential``; the catalogue builds them from its
``ModelSpec``s on top of this module. Every run trains the twins in place: build fresh twins
for each run. ``OptimSpec`` describes one optimizer (kind, lr, options, weight decay and the
parameters it reaches), as either side builds it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from parity import kinds, reference, torch_impl, transfer
from parity.reference.losses import l2_penalty
from parity.runtime import check_device

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}   # by numpy name
IMPLS = ("numpy", "torch")          # the two sides, as every CLI option and result names them
DECAY = ("all", "weights")          # which parameters an optimizer's weight decay reaches


@dataclass(frozen=True)
class OptimSpec:
    """Optimizer kind (``sgd`` | ``adam`` | ``adamw`` | ``rmsprop`` | ``adagrad``), lr, options
    as torch names them (``momentum``, ``betas``, ``amsgrad``, ``alpha``, ``centered``,
    ``lr_decay``, ``initial_accumulator_value`` …) and weight decay restricted to ``decay`` params:
    ``"all"`` (torch's default — biases and norm affines too) or ``"weights"`` (Linear weights
    only: cs231n's L2)."""

    kind: str
    lr: float
    options: dict = field(default_factory=dict)
    weight_decay: float = 0.0
    decay: str = "all"

    @property
    def stateful(self) -> bool:
        return kinds.optimizer_kind(self.kind).stateful(self.options)


@dataclass
class Twins:
    """``numpy_model`` (reference layout: Linear weight ``(in, out)``) and ``torch_model``
    (an ``nn.Sequential`` with the same state_dict keys), ``loss`` one of
    ``parity.kinds.LOSSES``' names, optimizers built over the same parameters, and the cs231n
    penalty ``0.5·weight·Σ‖W_k‖²`` over ``penalty_keys`` that either side adds to its
    *reported* loss (empty: none; its gradient is the optimizer's weight decay)."""

    name: str
    dtype: str
    numpy_model: reference.Sequential
    torch_model: nn.Sequential
    loss: str
    numpy_optimizer: reference.optim.Optimizer
    torch_optimizer: torch.optim.Optimizer
    penalty_keys: list[str] = field(default_factory=list)
    penalty_weight: float = 0.0
    device: str = "cpu"
    frozen: list[str] = field(default_factory=list)   # torch parameters without requires_grad
    reduction: str = "mean"    # the loss's, on both sides: "mean" | "sum"

    def __post_init__(self) -> None:
        self.device = check_device(self.device)
        wrong = [k for k, v in self.torch_model.state_dict().items()
                 if v.device != torch.device(self.device)]
        if wrong:
            raise ValueError(f"twins on {self.device!r}: torch entries {wrong[:3]} are on "
                             f"another device (move the model before building its optimizer)")
        self.loss_kind = kinds.loss_kind(self.loss)
        self.numpy_loss: reference.losses.Loss = self.loss_kind.build_numpy(self.reduction)
        self.torch_loss: nn.Module = self.loss_kind.build_torch(self.reduction)

    def sync_weights(self) -> None:
        """Copy every NumPy parameter and buffer into the torch model (exact)."""
        transfer.numpy_to_torch(self.numpy_model, self.torch_model)

    def sync_state(self) -> None:
        """``sync_weights``, and the NumPy optimizer's state into torch's (exact): the twins
        then continue from one state."""
        self.sync_weights()
        transfer.optimizer_state_to_torch(self.numpy_optimizer, self.torch_optimizer,
                                          self.torch_model)

    def torch_targets(self, y) -> torch.Tensor:
        """Labels as the torch loss wants them, on the twins' device."""
        return self.loss_kind.torch_targets(y, TORCH_DTYPES[self.dtype]).to(
            self.device)

    def torch_input(self, X: np.ndarray) -> torch.Tensor:
        """``X: (N, D)`` as a tensor on the twins' device: always a copy (the bits unchanged),
        so an in-place first module (``ReLU(inplace=True)``, ``Dropout(inplace=True)``)
        writes into torch's own memory, never into the batch NumPy reads next."""
        return torch.tensor(X, device=self.device)

    def torch_gradients(self) -> dict[str, np.ndarray]:
        """``{key: p.grad}`` (NumPy views on CPU) of every trainable torch parameter; frozen
        ones (``requires_grad=False``) have none. Views stay what they were: ``zero_grad``
        drops a gradient and the next backward makes a new one, and no optimizer on the
        single-tensor path writes into a gradient."""
        return {k: _grad_of(k, p) for k, p in self.torch_model.named_parameters()
                if p.requires_grad}

    def numpy_penalty(self, params: dict[str, np.ndarray]) -> float:
        return l2_penalty([params[k] for k in self.penalty_keys], self.penalty_weight)

    def torch_penalty(self) -> torch.Tensor:
        params = dict(self.torch_model.named_parameters())
        with torch.no_grad():
            return torch_impl.l2_penalty([params[k] for k in self.penalty_keys],
                                         self.penalty_weight)

    def cancelled_keys(self) -> set[str]:
        """``cancelled_keys(self.numpy_model)``: state entries whose true gradient is 0."""
        return cancelled_keys(self.numpy_model)

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Eval-mode outputs ``(numpy, torch)`` of ``X: (N, D)``, each ``(N, K)``; the torch
        model's mode is restored."""
        return predict(self.numpy_model, X), predict(self.torch_model, X)


def _grad_of(key: str, p: torch.Tensor) -> np.ndarray:
    """``p.grad`` as a NumPy array (a view on CPU); a trainable parameter the loss never
    reached has none."""
    if p.grad is None:
        raise ValueError(f"torch_model: {key} received no gradient (unused by forward?); "
                         f"freeze it (requires_grad=False) or remove it")
    return p.grad.detach().cpu().numpy()


# ---- eval mode, for either twin -------------------------------------------------------------

@contextlib.contextmanager
def evaluating(model):
    """Eval mode inside the block, the previous mode restored after (also on error).

    torch: ``model.eval()`` under ``torch.no_grad()``, then ``model.train(was_training)``.
    NumPy: a ``reference.Sequential`` has no mode — each forward is told (``predict`` is the
    eval forward) — so the block changes nothing. Yields ``model``."""
    if isinstance(model, nn.Module):
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                yield model
        finally:
            model.train(was_training)
    elif isinstance(model, reference.Sequential):
        yield model
    else:
        raise TypeError(f"evaluating: expected a reference.Sequential or a torch nn.Module, "
                        f"got {type(model).__name__}")


def predict(model, X: np.ndarray) -> np.ndarray:
    """Eval-mode output of either twin on ``X: (N, D)`` as a NumPy array ``(N, K)`` (a copy;
    the torch model's mode is restored)."""
    with evaluating(model):
        if isinstance(model, reference.Sequential):
            return model.predict(X)
        x = torch.tensor(X, device=device_of(model))      # a copy (in-place modules)
        return model(x).detach().cpu().numpy().copy()


def device_of(model: nn.Module) -> torch.device:
    """Where the module's first parameter or buffer lives (CPU for one with neither)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


# ---- entries whose gradient is 0 by construction --------------------------------------------

def zero_gradient_keys(model: reference.Sequential) -> set[str]:
    """Parameters whose gradient is exactly 0 in training mode: a per-feature bias (a
    Linear's) directly followed by a layer that removes per-feature constants (BatchNorm1d's
    batch mean), as their kinds' records say (``feature_bias``, ``cancels_feature_constant``)."""
    found = [kinds.of_layer(layer) for layer in model.layers]
    return {f"{i}.{a.feature_bias}" for i, (a, b) in enumerate(zip(found, found[1:]))
            if a is not None and a.feature_bias and b is not None and b.cancels_feature_constant}


def cancelled_keys(model: reference.Sequential) -> set[str]:
    """State entries whose true gradient is exactly 0, left out of trajectory comparisons:
    the bias of a Linear that feeds a BatchNorm1d (``zero_gradient_keys``) and that
    BatchNorm's ``running_mean``.

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
    biases = zero_gradient_keys(model)
    return biases | {f"{int(k.split('.')[0]) + 1}.running_mean" for k in biases}


# ---- building twins -------------------------------------------------------------------------

def param_groups(names: list[str], weight_keys: set[str], weight_decay: float,
                 decay: str) -> list[tuple[list[str], float]]:
    """``[(names, weight_decay)]`` groups: one group when ``decay == "all"`` (torch's default:
    biases and norm affines decay too), else the ``weight_keys`` with ``weight_decay`` and
    the rest with 0 (cs231n's L2 on weights only). Empty groups are left out."""
    if decay not in DECAY:
        raise ValueError(f"decay must be one of {DECAY}, got {decay!r}")
    if weight_decay and decay == "weights":
        groups = [([k for k in names if k in weight_keys], weight_decay),
                  ([k for k in names if k not in weight_keys], 0.0)]
        return [(ks, wd) for ks, wd in groups if ks]
    return [(list(names), weight_decay)]


def _optimizers(np_model, t_model, kind: str, lr: float, options: dict,
                groups: list[tuple[list[str], float]]):
    """The NumPy and torch optimizer ``kind`` over the same named param groups."""
    if kind not in kinds.OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {tuple(kinds.OPTIMIZERS)}, got {kind!r}")
    record = kinds.OPTIMIZERS[kind]
    np_params, t_params = np_model.parameters(), dict(t_model.named_parameters())
    np_opt = record.build_numpy([{"params": {k: np_params[k] for k in ks}, "weight_decay": wd}
                                 for ks, wd in groups], lr=lr, **options)
    t_opt = record.build_torch(
        [{"params": [t_params[k] for k in ks], "weight_decay": wd} for ks, wd in groups],
        lr=lr, **options)
    return np_opt, t_opt


def _check_pair(numpy_model, torch_model, loss: str, init_from: str) -> str:
    """Types, loss name and ``init_from``; returns the dtype name of the NumPy parameters."""
    if not isinstance(numpy_model, reference.Sequential):
        raise TypeError(f"numpy_model must be a reference.Sequential, got "
                        f"{type(numpy_model).__name__}")
    if not isinstance(torch_model, nn.Sequential):
        raise TypeError(f"torch_model must be a torch.nn.Sequential, got "
                        f"{type(torch_model).__name__}")
    if loss not in kinds.LOSSES:
        raise ValueError(f"loss must be one of {sorted(kinds.LOSSES)}, got {loss!r}")
    if init_from not in IMPLS:
        raise ValueError(f"init_from must be one of {IMPLS}, got {init_from!r}")
    dtypes = {v.dtype.name for v in numpy_model.parameters().values()}
    if len(dtypes) != 1 or not dtypes <= set(TORCH_DTYPES):
        raise ValueError(f"numpy_model parameters must all be one of "
                         f"{tuple(TORCH_DTYPES)}, got {sorted(dtypes) or 'none'}")
    return dtypes.pop()


def from_models(numpy_model: reference.Sequential, torch_model: nn.Sequential, loss: str, *,
                optimizer: str = "sgd", lr: float = 0.01, options: dict | None = None,
                weight_decay: float = 0.0, decay: str = "all", penalty_in_loss: bool = False,
                init_from: str = "numpy", name: str = "twins", device: str = "cpu",
                reduction: str = "mean") -> Twins:
    """Twins of a user's own pair of models.

    ``numpy_model``: ``reference.Sequential`` (Linear weight ``(in, out)``); ``torch_model``:
    ``nn.Sequential`` with the same state_dict keys and the same dtype (float64 | float32).
    ``loss``: a name in ``parity.kinds.LOSSES`` (``mse``, ``nll`` …). ``optimizer``: ``sgd`` |
    ``adam`` | ``adamw`` with ``lr`` and ``options`` as torch names them (``momentum``,
    ``betas``, ``amsgrad`` …), ``weight_decay`` on every parameter (``decay="all"``, torch's
    default) or on Linear weights only (``"weights"``). ``penalty_in_loss``: both sides also
    report cs231n's ``0.5·weight_decay·Σ‖W‖²`` over the Linear weights (needs
    ``decay="weights"``). ``init_from``: whose weights both start from — ``"numpy"`` copies
    the NumPy model's into torch, ``"torch"`` the reverse (torch's default init). Keys, shapes
    and dtypes must match: ``ValueError`` naming the entry otherwise. ``device``: where the
    torch twin runs (``"cpu"``, ``"cuda[:N]"``; the model is moved there, TF32 stays off).
    ``reduction``: the loss's on both sides, ``"mean"`` (torch's default) or ``"sum"``.
    """
    dtype = _check_pair(numpy_model, torch_model, loss, init_from)
    if penalty_in_loss and decay != "weights":
        raise ValueError("penalty_in_loss needs decay='weights' (cs231n's L2 is on weights)")
    if init_from == "numpy":
        transfer.numpy_to_torch(numpy_model, torch_model)
    else:
        transfer.torch_to_numpy(torch_model, numpy_model)
    torch_model.to(check_device(device))     # before its optimizer holds the parameters
    weights = set(kinds.penalized_keys(torch_model))
    frozen = [k for k, p in torch_model.named_parameters() if not p.requires_grad]
    names = [k for k in numpy_model.parameters() if k not in frozen]
    if not names:
        raise ValueError("torch_model: every parameter is frozen (requires_grad=False); "
                         "there is no training step to compare")
    groups = param_groups(names, weights, weight_decay, decay)
    np_opt, t_opt = _optimizers(numpy_model, torch_model, optimizer, lr, dict(options or {}),
                                groups)
    penalty = [k for k in names if k in weights] if penalty_in_loss else []
    return Twins(name, dtype, numpy_model, torch_model, loss, np_opt, t_opt, penalty,
                 weight_decay if penalty_in_loss else 0.0, device, frozen, reduction)
