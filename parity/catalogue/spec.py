"""``ModelSpec``: the single description from which both twins, their optimizer, data and
training recipe are built. A new model is one ``ModelSpec`` in ``parity.catalogue.zoo``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from parity import kinds, reference, torch_impl
from parity import layerspec as S
from parity.catalogue import data as data_mod
from parity.dtypes import check_dtype
from parity.runtime import seed_torch
from parity.twins import TORCH_DTYPES, OptimSpec


@dataclass(frozen=True)
class Target:
    """Accuracy target on ``split`` (``test`` = held-out, ``train``): ``op`` is ``>=`` or ``<``."""

    value: float
    split: str = "test"
    op: str = ">="

    def met(self, acc: float) -> bool:
        return acc >= self.value if self.op == ">=" else acc < self.value

    def __str__(self) -> str:
        return f"{self.split} acc {self.op} {self.value:g}"


@dataclass(frozen=True)
class Source:
    """Where catalogue models come from: ``key`` is what ``ModelSpec.source`` holds (a seed
    document's file name in shared/seeds/, or a description beyond the documents), ``title``
    the document's own title (what the report and ``nn-parity list`` show first), ``about``
    what the catalogue takes from it, ``file`` the seed file name (None beyond the documents)."""

    key: str
    title: str
    about: str
    file: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str                 # a key of zoo.SOURCES: seed file name, or zoo.CS231N_CNN
    summary: str
    layers: tuple[S.LayerSpec, ...]  # the layerspec vocabulary: Linear(2, 100), ReLU(), …
    loss: str                   # a name of parity.kinds.LOSSES: cross_entropy, bce, mse …
    optimizer: OptimSpec
    dataset: str                # key of parity.catalogue.data.DATASETS
    init: str                   # key of reference.init.INITIALIZERS
    epochs: int
    batch_size: int | None = None   # None: full batch
    reg_in_loss: bool = False   # report 0.5·wd·Σ‖W‖² in the loss (cs231n) — gradient via decay
    target: Target | None = None
    dataset_options: dict = field(default_factory=dict)
    notes: str = ""
    patience: int | None = None  # early stopping on a validation split (last 20% of train)
    pinned_seed: int = 0         # the seed `nn-parity train` uses by default
    image_shape: tuple[int, int, int] | None = None  # (C, H, W) of one input image: NCHW data

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", S.check_layers(self.layers))
        shape = self.image_shape
        if shape is not None and (len(shape) != 3 or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)):
            raise ValueError(f"{self.name}: image_shape must be (C, H, W) of ints >= 1, "
                             f"got {shape!r}")

    # ---- seeds: one integer → independent streams for data, init, batch order, dropout
    def seeds(self, seed: int) -> dict[str, np.random.Generator]:
        names = ("data", "init", "order", "dropout")
        children = np.random.SeedSequence(seed).spawn(len(names))
        return {k: np.random.default_rng(s) for k, s in zip(names, children)}

    def data(self, seed: int = 0) -> data_mod.Dataset:
        return data_mod.load(self.dataset, self.seeds(seed)["data"], **self.dataset_options)

    # ---- the two twins
    def build_numpy(self, seed: int = 0, dtype: str = "float64") -> reference.Sequential:
        s = self.seeds(seed)
        return kinds.numpy_model(self.layers, init=self.init, rng=s["init"],
                                 dtype=np.dtype(check_dtype(dtype)), dropout_rng=s["dropout"])

    def build_torch(self, dtype: str = "float64", torch_seed: int | None = None):
        """The torch twin with torch's own default init (seeded locally if ``torch_seed``)."""
        tdt = TORCH_DTYPES[check_dtype(dtype)]
        with torch.random.fork_rng(devices=[]):
            if torch_seed is not None:
                seed_torch(torch_seed)
            return kinds.torch_model(self.layers, tdt)

    def numpy_loss(self):
        return kinds.loss_kind(self.loss).numpy()

    def torch_loss(self):
        return kinds.loss_kind(self.loss).torch()

    def torch_targets(self, y, dtype: torch.dtype) -> torch.Tensor:
        """``y`` as the torch loss takes it (class indices, or float ``(N, 1)``)."""
        return kinds.loss_kind(self.loss).torch_targets(y, dtype)

    # ---- optimizers over the same param groups
    def weight_keys(self) -> list[str]:
        return [f"{i}.{k}" for i, item in enumerate(self.layers)
                for k in kinds.of_spec(item).penalized]

    def param_groups(self, names: list[str]) -> list[tuple[list[str], float]]:
        o = self.optimizer
        if o.weight_decay and o.decay == "weights":
            w = set(self.weight_keys())
            groups = [([k for k in names if k in w], o.weight_decay),
                      ([k for k in names if k not in w], 0.0)]
            return [(ks, wd) for ks, wd in groups if ks]
        return [(list(names), o.weight_decay)]

    def numpy_optimizer(self, model: reference.Sequential):
        params = model.parameters()
        groups = [{"params": {k: params[k] for k in ks}, "weight_decay": wd}
                  for ks, wd in self.param_groups(list(params))]
        return kinds.optimizer_kind(self.optimizer.kind).build_numpy(
            groups, lr=self.optimizer.lr, **self.optimizer.options)

    def torch_optimizer(self, model):
        params = dict(model.named_parameters())
        groups = [{"params": [params[k] for k in ks], "weight_decay": wd}
                  for ks, wd in self.param_groups(list(params))]
        return kinds.optimizer_kind(self.optimizer.kind).build_torch(
            groups, lr=self.optimizer.lr, **self.optimizer.options)

    def torch_penalty(self, model):
        """``() -> 0.5·wd·Σ‖W‖²`` over the recipe's regularized weights of the torch twin
        (looked up once), or ``None`` when the recipe reports no penalty in its loss."""
        params = dict(model.named_parameters())
        weights = [params[k] for k in self.reg_keys()]
        wd = self.optimizer.weight_decay
        return (lambda: torch_impl.l2_penalty(weights, wd)) if weights else None

    def reg_keys(self) -> list[str]:
        return self.weight_keys() if self.reg_in_loss else []

    def layer_summary(self) -> str:
        """``Linear(2,100) → ReLU → Linear(100,3)``: each layer's ``summary`` joined by →."""
        return " → ".join(item.summary for item in self.layers)

    def num_parameters(self) -> int:
        """Trainable scalars: Σ of each layer's ``num_parameters()`` (buffers not counted)."""
        return sum(item.num_parameters() for item in self.layers)

    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input sample: ``image_shape`` ``(C, H, W)`` for a model of images
        (a convolution does not fix H and W), else ``(D,)`` with D the first layer's
        ``in_features``; a batch is ``(N, *input_shape())``."""
        if self.image_shape is not None:
            return tuple(self.image_shape)
        return (next(item.in_features for item in self.layers if hasattr(item, "in_features")),)

    def has(self, *kinds: type[S.LayerSpec]) -> bool:
        """Whether any layer is an instance of one of ``kinds`` (``spec.has(S.BatchNorm1d)``)."""
        return any(isinstance(item, kinds) for item in self.layers)
