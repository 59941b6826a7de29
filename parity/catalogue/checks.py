"""The core's checks on a catalogue model: each builds the twins of a ``ModelSpec``
(``from_spec``) and hands them, with the recipe's data, batch size and batch order, to the
core's twin-taking function — ``compare_twins``, ``diverge_twins``, ``lockstep_twins``,
``check_twins`` and ``kink_free_rows``."""

from __future__ import annotations

import numpy as np

from parity import kinds
from parity.catalogue.spec import ModelSpec
from parity.compare import Comparison, compare_twins
from parity.diverge import Divergence, diverge_twins
from parity.dtypes import check_dtype
from parity.finite_diff import KINK_MARGIN, MAX_ENTRIES, H, ModelCheck, check_twins, kink_free_rows
from parity.lockstep import EPOCHS, lockstep_twins
from parity.reference.datasets import split
from parity.reference.training import epoch_batches
from parity.runtime import check_device
from parity.twins import Twins

__all__ = ["IMAGE_NOISE", "check_data", "check_model", "compare", "default_steps", "diverge",
           "first_batch", "from_spec", "gradient_classes", "kink_free_batch", "lockstep",
           "training_data"]


def from_spec(spec, dtype: str = "float64", seed: int = 0, np_model=None,
              device: str = "cpu") -> Twins:
    """Twins of a catalogue ``ModelSpec``: the NumPy model initialized from ``seed`` (or the
    given ``np_model``), torch receiving the same weights, optimizers over the recipe's
    param groups, the cs231n penalty when the recipe reports it."""
    np_model = np_model if np_model is not None else spec.build_numpy(seed, dtype)
    t_model = spec.build_torch(dtype).to(check_device(device))
    twins = Twins(spec.name, dtype, np_model, t_model, spec.loss,
                  spec.numpy_optimizer(np_model), spec.torch_optimizer(t_model),
                  spec.reg_keys(), spec.optimizer.weight_decay if spec.reg_in_loss else 0.0,
                  device)
    twins.sync_weights()
    return twins


def first_batch(spec: ModelSpec, seed: int):
    """The first training batch the recipe would use: ``(X, y)`` of the data for ``seed``."""
    d = spec.data(seed)
    idx = epoch_batches(len(d.X_train), spec.batch_size, spec.seeds(seed)["order"])[0]
    if idx is None:
        return d.X_train, d.y_train
    return d.X_train[idx], d.y_train[idx]


def default_steps(spec: ModelSpec) -> int:
    """3 when the optimizer keeps state (momentum, Adam) or the model has BatchNorm buffers;
    2 with weight decay (it shows on zero-initialized biases only from step 2); else 1."""
    stateful = spec.optimizer.stateful or any(kinds.of_spec(item).running_state
                                              for item in spec.layers)
    return 3 if stateful else (2 if spec.optimizer.weight_decay else 1)


def compare(spec: ModelSpec, dtype: str = "float64", seed: int = 0, steps: int | None = None,
            batch=None, np_model=None, device: str = "cpu") -> Comparison:
    """Run ``steps`` training steps (default ``default_steps``) of a catalogue model on one
    batch (``(X, y)``, default the recipe's first) in both twins from identical weights;
    ``np_model`` injects a prepared NumPy model (tests that mutate it)."""
    check_dtype(dtype)
    steps = steps if steps is not None else default_steps(spec)
    X, y = batch if batch is not None else first_batch(spec, seed)
    twins = from_spec(spec, dtype, seed, np_model, device)
    return compare_twins(twins, X, y, steps=steps, seed=seed)


def diverge(spec: ModelSpec, steps: int, dtype: str = "float64", seed: int = 0,
            skip_keys: set | None = None) -> Divergence:
    """The catalogue path: ``diverge_twins`` on ``from_spec(spec, dtype, seed)`` over the
    recipe's training data, batch size and batch order (the ``order`` stream of ``seed``)."""
    check_dtype(dtype)
    d = spec.data(seed)
    order_rng = spec.seeds(seed)["order"] if spec.batch_size is not None else None
    return diverge_twins(from_spec(spec, dtype, seed), d.X_train, d.y_train, steps,
                         batch_size=spec.batch_size, order_rng=order_rng, seed=seed,
                         skip_keys=skip_keys)


def training_data(spec: ModelSpec, seed: int, dtype: str):
    """``(X, y)`` exactly as ``parity.catalogue.train.run`` trains on them (early-stopping
    specs: the first 80% of the training draw)."""
    d = spec.data(seed)
    X, y = d.X_train.astype(np.dtype(dtype)), d.y_train
    if spec.patience is not None:
        X, y, _, _ = split(X, y, 0.2)
    return X, y


def lockstep(spec: ModelSpec, seed: int = 0, dtype: str = "float64", epochs: int = EPOCHS,
             skip_keys: set | None = None) -> Comparison:
    """The catalogue path: ``lockstep_twins`` on ``from_spec(spec, dtype, seed)`` with the
    recipe's training data (``training_data``), batch size and batch order (the ``order``
    stream of ``seed``)."""
    check_dtype(dtype)
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    X, y = training_data(spec, seed, dtype)
    order_rng = spec.seeds(seed)["order"] if spec.batch_size is not None else None
    return lockstep_twins(from_spec(spec, dtype, seed), X, y, epochs=epochs,
                          batch_size=spec.batch_size, order_rng=order_rng, seed=seed,
                          skip_keys=skip_keys)


def gradient_classes(catalogue: dict) -> dict[str, list[str]]:
    """Catalogue models grouped by what their initial gradient depends on — layers, loss,
    initializer, dataset and its options (not the optimizer or the training recipe): the first
    name of each group → every name in it. A gradient check of one member checks them all
    (the spiral004 exercises that only change the optimizer share one group)."""
    groups: dict[tuple, list[str]] = {}
    for name, s in catalogue.items():
        key = (s.layers, s.loss, s.init, s.dataset, tuple(sorted(s.dataset_options.items())))
        groups.setdefault(key, []).append(name)
    return {names[0]: names for names in groups.values()}


# std of the Gaussian noise on an image model's pixels where its gradients are checked
# (``check_data``; docs/verdicts.md#kinks-kink_margin)
IMAGE_NOISE = 0.1
NOISE_STREAM = 0xFD     # the noise's Generator is seeded with ``[seed, NOISE_STREAM]``


def check_data(spec, seed: int, data=None, noise: float | None = None):
    """``(X, y)`` that the gradient checks pick rows from: ``data`` or the training part of
    ``spec.data(seed)``; for a model of images (``spec.image_shape``) every pixel plus
    ``N(0, noise²)``, ``noise = IMAGE_NOISE`` unless given (0: none), drawn from
    ``default_rng([seed, NOISE_STREAM])``.

    Why: a 3×3 convolution over a blank patch (half the 8×8 digits' pixels are 0) returns its
    bias exactly, at every such position. With zero biases (He init) the ReLU after it sits
    exactly on its kink; with BatchNorm2d after it, the blank positions of a pooling window
    tie, and a perturbation of one blank pixel parts them — the loss is not differentiable
    in that pixel. Random pixels, as in cs231n's gradient checks, put the check at a point
    where it is (docs/verdicts.md#kinks-kink_margin)."""
    if data is None:
        d = spec.data(seed)
        data = (d.X_train, d.y_train)
    X, y = data
    noise = (IMAGE_NOISE if spec.image_shape is not None else 0.0) if noise is None else noise
    if noise < 0:
        raise ValueError(f"check_data({spec.name}): noise must be >= 0, got {noise}")
    if noise:
        X = np.asarray(X, dtype=np.float64)
        X = X + noise * np.random.default_rng([seed, NOISE_STREAM]).standard_normal(X.shape)
    return X, y


def kink_free_batch(spec, seed: int, n: int = 8, data=None, margin: float = KINK_MARGIN,
                    noise: float | None = None):
    """The catalogue path of ``kink_free_rows``: the model ``spec.build_numpy(seed)``, the rows
    ``check_data(spec, seed, data, noise)``."""
    return kink_free_rows(spec.build_numpy(seed, "float64"), *check_data(spec, seed, data, noise),
                          seed=seed, n=n, margin=margin, name=spec.name)


def check_model(spec, seed: int = 0, n: int = 8, h: float = H, data=None,
                max_entries: int = MAX_ENTRIES, margin: float | None = None,
                richardson: bool = False, noise: float | None = None) -> ModelCheck:
    """The catalogue path of ``check_twins``: float64 twins of ``spec`` at ``seed``
    (``from_spec``), the rows ``check_data(spec, seed, data, noise)`` (an image model's
    pixels with noise)."""
    return check_twins(from_spec(spec, "float64", seed), *check_data(spec, seed, data, noise),
                       seed=seed, n=n, h=h, max_entries=max_entries, margin=margin,
                       richardson=richardson)
