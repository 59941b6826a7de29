"""Full training runs of either twin from the same NumPy-initialized weights → ``RunResult``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from parity import torch_impl, transfer
from parity.catalogue.spec import ModelSpec
from parity.dtypes import check_dtype
from parity.reference.datasets import split
from parity.reference.training import accuracy as np_accuracy
from parity.reference.training import check_training_data, epoch_batches
from parity.reference.training import fit as np_fit
from parity.runtime import seed_torch
from parity.twins import IMPLS, evaluating


@dataclass
class RunResult:
    model: str
    impl: str
    dtype: str
    seed: int
    epochs: int
    steps: int
    seconds: float
    train_accuracy: float
    test_accuracy: float
    first_loss: float
    final_loss: float
    threads: int
    target: str | None = None
    target_met: bool | None = None
    stopped_epoch: int | None = None     # early stopping: last epoch run (0-based)
    best_epoch: int | None = None        # early stopping: epoch of the lowest validation loss
    loss: list = field(default_factory=list, repr=False)
    val_loss: list = field(default_factory=list, repr=False)

    def to_json(self, with_curve: bool = False) -> dict:
        d = asdict(self)
        if not with_curve:
            d.pop("loss")
            d.pop("val_loss")
        return d


class EarlyStopping:
    """Stop when the validation loss has not improved for ``patience`` epochs.

    ``update(epoch, val_loss)`` returns True to stop; ``best_epoch`` is where it was lowest.
    """

    def __init__(self, patience: int) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.patience, self.best, self.best_epoch = patience, float("inf"), -1
        self.history: list[float] = []

    def update(self, epoch: int, val_loss: float) -> bool:
        self.history.append(val_loss)
        if val_loss < self.best:
            self.best, self.best_epoch = val_loss, epoch
        return epoch - self.best_epoch >= self.patience


def check_impl(impl: str) -> str:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    return impl


def run(spec: ModelSpec, impl: str, seed: int = 0, dtype: str = "float64",
        epochs: int | None = None, on_epoch=None, data=None):
    """Train one twin with the spec's recipe; returns ``(RunResult, model)``.

    Both twins start from ``spec.build_numpy(seed)`` (torch receives those weights through
    ``parity.transfer``), see the same data and the same batch order
    (``reference.training.epoch_batches`` driven by the spec's ``order`` stream).
    Dropout masks are each side's own draw (NumPy Generator / seeded torch RNG).
    """
    check_impl(impl)
    check_dtype(dtype)
    epochs = spec.epochs if epochs is None else int(epochs)
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    d = data if data is not None else spec.data(seed)
    for name in ("X_train", "X_test"):   # astype below would drop an imaginary part silently
        X = getattr(d, name)
        if isinstance(X, np.ndarray) and X.dtype.kind not in "iuf":
            raise TypeError(f"run: data.{name} must have a real integer or floating dtype, "
                            f"got dtype {X.dtype}")
    np_dt = np.dtype(dtype)
    np_model = spec.build_numpy(seed, dtype)
    # Both twins get the same clear ValueError for bad data (torch would raise a RuntimeError
    # about matmul shapes, an IndexError for labels, or train on NaN).
    Xtr, ytr = check_training_data(np_model, spec.numpy_loss(), d.X_train.astype(np_dt),
                                   d.y_train)
    Xte, yte = check_training_data(np_model, spec.numpy_loss(), d.X_test.astype(np_dt),
                                   d.y_test)
    val = None
    if spec.patience is not None:   # validation = last 20% of the (already shuffled) train set
        Xtr, ytr, Xval, yval = split(Xtr, ytr, 0.2)
        val = (Xval, yval, EarlyStopping(spec.patience))
    order_rng = spec.seeds(seed)["order"] if spec.batch_size is not None else None
    trainer = _train_numpy if impl == "numpy" else _train_torch
    model, hist, train_acc, test_acc = trainer(spec, np_model, seed, dtype, epochs, on_epoch,
                                               (Xtr, ytr, Xte, yte), val, order_rng)
    return _result(spec, impl, seed, dtype, hist, train_acc, test_acc,
                   val[2] if val else None), model


def _train_numpy(spec, np_model, seed, dtype, epochs, on_epoch, data, val, order_rng):
    """``reference.training.fit`` on ``np_model``; ``(model, history, train acc, test acc)``.
    ``val = (X, y, EarlyStopping)`` or None."""
    Xtr, ytr, Xte, yte = data
    if val is not None:
        val_fn = spec.numpy_loss()
        on_epoch = _with_stopper(on_epoch, val[2],
                                 lambda: val_fn.forward(np_model.predict(val[0]), val[1]))
    hist = np_fit(np_model, spec.numpy_loss(), spec.numpy_optimizer(np_model), Xtr, ytr,
                  epochs=epochs, batch_size=spec.batch_size, order_rng=order_rng,
                  reg=spec.optimizer.weight_decay, reg_keys=spec.reg_keys(), on_epoch=on_epoch)
    return np_model, hist, np_accuracy(np_model, Xtr, ytr), np_accuracy(np_model, Xte, yte)


def _train_torch(spec, np_model, seed, dtype, epochs, on_epoch, data, val, order_rng):
    """``torch_impl.fit`` on the torch twin holding ``np_model``'s weights (dropout from a
    torch RNG seeded with ``seed``); ``(model, history, train acc, test acc)``."""
    Xtr, ytr, Xte, yte = data
    model = spec.build_torch(dtype)
    transfer.numpy_to_torch(np_model, model)
    X_t = torch.from_numpy(Xtr)
    y_t = spec.torch_targets(ytr, X_t.dtype)
    if val is not None:
        val_fn, Xv_t = spec.torch_loss(), torch.from_numpy(val[0])
        yv_t = spec.torch_targets(val[1], X_t.dtype)

        def val_loss():
            with evaluating(model):
                return val_fn(model(Xv_t), yv_t).item()
        on_epoch = _with_stopper(on_epoch, val[2], val_loss)
    with torch.random.fork_rng(devices=[]):
        seed_torch(seed)
        hist = torch_impl.fit(model, spec.torch_loss(), spec.torch_optimizer(model), X_t, y_t,
                              epochs=epochs, penalty=spec.torch_penalty(model),
                              on_epoch=on_epoch,
                              batches=lambda: epoch_batches(len(Xtr), spec.batch_size,
                                                            order_rng))
    return (model, hist, torch_impl.accuracy(model, X_t, ytr),
            torch_impl.accuracy(model, torch.from_numpy(Xte), yte))


def _result(spec, impl, seed, dtype, hist, train_acc, test_acc, stopper) -> RunResult:
    target = spec.target
    test_or_train = test_acc if (target is None or target.split == "test") else train_acc
    result = RunResult(
        model=spec.name, impl=impl, dtype=dtype, seed=seed, epochs=len(hist["loss"]),
        steps=hist["steps"], seconds=hist["seconds"], train_accuracy=train_acc,
        test_accuracy=test_acc, first_loss=hist["loss"][0], final_loss=hist["loss"][-1],
        threads=torch.get_num_threads(), target=str(target) if target else None,
        target_met=target.met(test_or_train) if target else None, loss=hist["loss"])
    if stopper is not None:
        result.stopped_epoch = len(hist["loss"]) - 1
        result.best_epoch = stopper.best_epoch
        result.val_loss = stopper.history
    return result


def _with_stopper(on_epoch, stopper: EarlyStopping, val_loss):
    """Chain a user ``on_epoch`` with early stopping on ``val_loss()``."""
    def chained(epoch, loss):
        user_stop = on_epoch(epoch, loss) if on_epoch is not None else False
        return stopper.update(epoch, val_loss()) or bool(user_stop)
    return chained
