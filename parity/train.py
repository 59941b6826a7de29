"""Full training runs of either twin from the same NumPy-initialized weights → ``RunResult``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

import torch_impl
from parity import transfer
from parity.spec import ModelSpec, check_dtype
from reference.training import accuracy as np_accuracy
from reference.training import epoch_batches
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
    loss: list = field(default_factory=list, repr=False)

    def to_json(self, with_curve: bool = False) -> dict:
        d = asdict(self)
        if not with_curve:
            d.pop("loss")
        return d


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
    np_dt = np.dtype(dtype)
    Xtr, Xte = d.X_train.astype(np_dt), d.X_test.astype(np_dt)
    np_model = spec.build_numpy(seed, dtype)
    order_rng = spec.seeds(seed)["order"] if spec.batch_size is not None else None
    wd = spec.optimizer.weight_decay
    if impl == "numpy":
        hist = np_fit(np_model, spec.numpy_loss(), spec.numpy_optimizer(np_model), Xtr, d.y_train,
                      epochs=epochs, batch_size=spec.batch_size, order_rng=order_rng,
                      reg=wd, reg_keys=spec.reg_keys(), on_epoch=on_epoch)
        model = np_model
        train_acc, test_acc = np_accuracy(model, Xtr, d.y_train), np_accuracy(model, Xte, d.y_test)
    else:
        model = spec.build_torch(dtype)
        transfer.numpy_to_torch(np_model, model)
        X_t, Xte_t = torch.from_numpy(Xtr), torch.from_numpy(Xte)
        y_t = torch_impl.targets(spec.loss, d.y_train, X_t.dtype)
        params = dict(model.named_parameters())
        penalty = None
        if spec.reg_keys():
            def penalty():
                return 0.5 * wd * sum((params[k] * params[k]).sum() for k in spec.reg_keys())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            hist = torch_impl.fit(model, spec.torch_loss(), spec.torch_optimizer(model), X_t, y_t,
                                  epochs=epochs, penalty=penalty, on_epoch=on_epoch,
                                  batches=lambda: epoch_batches(len(Xtr), spec.batch_size,
                                                                order_rng))
        train_acc = torch_impl.accuracy(model, X_t, d.y_train)
        test_acc = torch_impl.accuracy(model, Xte_t, d.y_test)
    target = spec.target
    test_or_train = test_acc if (target is None or target.split == "test") else train_acc
    result = RunResult(
        model=spec.name, impl=impl, dtype=dtype, seed=seed, epochs=len(hist["loss"]),
        steps=hist["steps"], seconds=hist["seconds"], train_accuracy=train_acc,
        test_accuracy=test_acc, first_loss=hist["loss"][0], final_loss=hist["loss"][-1],
        threads=torch.get_num_threads(), target=str(target) if target else None,
        target_met=target.met(test_or_train) if target else None, loss=hist["loss"])
    return result, model
