"""Full training runs of either twin from the same NumPy-initialized weights → ``RunResult``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

import torch_impl
from parity import transfer
from parity.spec import ModelSpec, check_dtype
from reference.datasets import split
from reference.training import accuracy as np_accuracy
from reference.training import check_training_data, epoch_batches
from reference.training import fit as np_fit

IMPLS = ("numpy", "torch")


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
    Xtr, Xte = d.X_train.astype(np_dt), d.X_test.astype(np_dt)
    np_model = spec.build_numpy(seed, dtype)
    # Both twins get the same clear ValueError for bad data (torch would raise a RuntimeError
    # about matmul shapes, an IndexError for labels, or train on NaN).
    Xtr, ytr = check_training_data(np_model, spec.numpy_loss(), Xtr, d.y_train)
    Xte, _ = check_training_data(np_model, spec.numpy_loss(), Xte, d.y_test)
    stopper = None
    if spec.patience is not None:   # validation = last 20% of the (already shuffled) train set
        Xtr, ytr, Xval, yval = split(Xtr, ytr, 0.2)
        stopper = EarlyStopping(spec.patience)
    order_rng = spec.seeds(seed)["order"] if spec.batch_size is not None else None
    wd = spec.optimizer.weight_decay
    if impl == "numpy":
        model = np_model
        if stopper is not None:
            val_fn = spec.numpy_loss()
            on_epoch = _with_stopper(on_epoch, stopper,
                                     lambda: val_fn.forward(model.predict(Xval), yval))
        hist = np_fit(np_model, spec.numpy_loss(), spec.numpy_optimizer(np_model), Xtr, ytr,
                      epochs=epochs, batch_size=spec.batch_size, order_rng=order_rng,
                      reg=wd, reg_keys=spec.reg_keys(), on_epoch=on_epoch)
        train_acc, test_acc = np_accuracy(model, Xtr, ytr), np_accuracy(model, Xte, d.y_test)
    else:
        model = spec.build_torch(dtype)
        transfer.numpy_to_torch(np_model, model)
        X_t, Xte_t = torch.from_numpy(Xtr), torch.from_numpy(Xte)
        y_t = torch_impl.targets(spec.loss, ytr, X_t.dtype)
        if stopper is not None:
            val_fn, Xv_t = spec.torch_loss(), torch.from_numpy(Xval)
            yv_t = torch_impl.targets(spec.loss, yval, X_t.dtype)

            @torch.no_grad()
            def val_loss():
                model.eval()
                try:
                    return val_fn(model(Xv_t), yv_t).item()
                finally:
                    model.train()
            on_epoch = _with_stopper(on_epoch, stopper, val_loss)
        penalty = spec.torch_penalty(model)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            hist = torch_impl.fit(model, spec.torch_loss(), spec.torch_optimizer(model), X_t, y_t,
                                  epochs=epochs, penalty=penalty, on_epoch=on_epoch,
                                  batches=lambda: epoch_batches(len(Xtr), spec.batch_size,
                                                                order_rng))
        train_acc = torch_impl.accuracy(model, X_t, ytr)
        test_acc = torch_impl.accuracy(model, Xte_t, d.y_test)
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
    return result, model


def _with_stopper(on_epoch, stopper: EarlyStopping, val_loss):
    """Chain a user ``on_epoch`` with early stopping on ``val_loss()``."""
    def chained(epoch, loss):
        user_stop = on_epoch(epoch, loss) if on_epoch is not None else False
        return stopper.update(epoch, val_loss()) or bool(user_stop)
    return chained
