"""The trainers users call — ``reference.training.fit`` and ``torch_impl.fit`` — run from the
same weights, data, batch order and dropout masks, compared step by step.

Neither ``fit`` is modified or re-implemented: each is called as ``parity.train.run`` calls
it, and observed from outside through objects it already accepts —

- the loss: a forward hook on the torch loss module, ``forward`` wrapped on the NumPy loss
  instance, record every step's data loss and batch size;
- the optimizer: ``register_step_post_hook`` on torch's, ``step`` wrapped on the NumPy
  instance, snapshot every parameter and buffer (torch layout) after every step;
- ``on_epoch`` counts epochs, so each step is labelled ``epoch E step S`` (S global, 0-based,
  as ``fit``'s own error messages);
- dropout: torch's ``fit`` runs first under ``parity.masks.DropoutMaskRecorder``; every mask it
  drew is queued on the NumPy ``Dropout`` (``queue_masks``) before the NumPy ``fit`` runs, and
  every queued mask must be consumed by the end (one per training forward).

Verdict: ``parity.compare.check_arrays`` with the one tolerance table (float64: rtol 1e-10,
atol 1e-12) on every step's loss, parameters and buffers, every epoch's reported loss and the
final eval-mode outputs on the training set, plus the structure (same epoch and batch size at
every step, same number of steps, every mask used). Only the first disagreeing step is
reported in detail: everything after it follows from it.

Left out of the per-step comparison (``noise_keys``): a Linear bias feeding BatchNorm and that
BatchNorm's running_mean. The bias's true gradient is exactly 0 (the batch mean removes it),
so each side's gradient is its own rounding noise (~1e-17). Adam turns that into steps of
≈ lr·|g|/eps ≈ 3e-12 (spiral003: the biases 1e-11 apart after 16 steps, above atol 1e-12).
Adam with L2 (spiral003-adam-l2) even amplifies it: with ``g = wd·b`` and ``|g| ≪ eps`` the
step is ≈ −lr·wd·b/eps = −300·b, so b flips sign and grows ~100× per step until
``|wd·b| ~ eps``, then walks with steps of ~lr (measured: 1e-11 → 1e-3 in five steps, on each
side from its own noise). running_mean tracks that bias. Neither changes anything in
training mode. In eval mode they act through ``bias − running_mean``; the final eval-output
check therefore runs with those entries copied from torch into the NumPy model, so it
judges everything else that shapes the eval function (weights, running_var, affines).
Biases feeding LayerNorm are compared: a per-feature bias does not cancel in a mean over
features.
"""

from __future__ import annotations

import numpy as np
import torch

import torch_impl
from parity import transfer
from parity.compare import Check, Comparison, check_arrays
from parity.finite_diff import zero_gradient_keys
from parity.masks import DropoutMaskRecorder
from parity.spec import ModelSpec, check_dtype
from reference import training as np_training
from reference.datasets import split
from reference.layers import Dropout
from reference.training import epoch_batches

EPOCHS = 2   # two: the second epoch re-draws the batch order


class _Recorder:
    """Per-step records of one trainer: ``(epoch, rows, loss)`` and the state after the step."""

    def __init__(self) -> None:
        self.epoch = 0
        self.steps: list[tuple[int, int, float]] = []
        self.states: list[dict] = []

    def on_epoch(self, epoch: int, loss: float) -> None:
        self.epoch = epoch + 1


def training_data(spec: ModelSpec, seed: int, dtype: str):
    """``(X, y)`` exactly as ``parity.train.run`` trains on them (early-stopping specs: the
    first 80% of the training draw)."""
    d = spec.data(seed)
    X, y = d.X_train.astype(np.dtype(dtype)), d.y_train
    if spec.patience is not None:
        X, y, _, _ = split(X, y, 0.2)
    return X, y


def _order_rng(spec: ModelSpec, seed: int):
    return spec.seeds(seed)["order"] if spec.batch_size is not None else None


def run_torch(spec: ModelSpec, seed: int, dtype: str, epochs: int, X, y, observe=None):
    """``torch_impl.fit`` on the twin of ``spec.build_numpy(seed)``; returns
    ``(recorder, history, masks, model)``, ``masks`` by Dropout layer index.
    ``observe(model)``, if given, is called before training (to attach hooks)."""
    np_model = spec.build_numpy(seed, dtype)
    model = spec.build_torch(dtype)
    transfer.numpy_to_torch(np_model, model)
    if observe is not None:
        observe(model)
    rec, loss_fn, opt = _Recorder(), spec.torch_loss(), spec.torch_optimizer(model)
    loss_fn.register_forward_hook(
        lambda m, inp, out: rec.steps.append((rec.epoch, len(inp[0]), out.item())))
    opt.register_step_post_hook(lambda *_: rec.states.append(transfer.torch_state(model)))
    penalty = spec.torch_penalty(model)
    order_rng, masks = _order_rng(spec, seed), DropoutMaskRecorder(model)
    X_t = torch.from_numpy(X)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            hist = torch_impl.fit(model, loss_fn, opt, X_t,
                                  torch_impl.targets(spec.loss, y, X_t.dtype), epochs=epochs,
                                  penalty=penalty, on_epoch=rec.on_epoch,
                                  batches=lambda: epoch_batches(len(X), spec.batch_size,
                                                                order_rng))
    finally:
        masks.remove()
    return rec, hist, masks.take(), model


def run_numpy(spec: ModelSpec, seed: int, dtype: str, epochs: int, X, y, masks, t_model,
              observe=None):
    """``reference.training.fit`` on ``spec.build_numpy(seed)`` with torch's dropout masks
    queued; returns ``(recorder, history, model)``. ``t_model`` only names the layout;
    ``observe(model)``, if given, is called before training."""
    model = spec.build_numpy(seed, dtype)
    if observe is not None:
        observe(model)
    for i, m in masks.items():
        model.layers[i].queue_masks(m)
    rec, loss_fn, opt = _Recorder(), spec.numpy_loss(), spec.numpy_optimizer(model)
    forward, step = loss_fn.forward, opt.step

    def recording_forward(out, yb):
        value = forward(out, yb)
        rec.steps.append((rec.epoch, len(out), value))
        return value

    def recording_step(grads):
        step(grads)
        rec.states.append(transfer.to_torch_layout(model.state_dict(), t_model))

    loss_fn.forward, opt.step = recording_forward, recording_step
    hist = np_training.fit(model, loss_fn, opt, X, y, epochs=epochs,
                           batch_size=spec.batch_size, order_rng=_order_rng(spec, seed),
                           reg=spec.optimizer.weight_decay, reg_keys=spec.reg_keys(),
                           on_epoch=rec.on_epoch)
    return rec, hist, model


def noise_keys(spec: ModelSpec) -> set[str]:
    """Linear biases feeding BatchNorm (true gradient 0) and that BatchNorm's running_mean."""
    biases = zero_gradient_keys(spec.layers)
    return biases | {f"{int(k.split('.')[0]) + 1}.running_mean" for k in biases}


def _copy_from_torch(np_model, t_model, keys) -> None:
    """Overwrite ``keys`` of the NumPy model with torch's values (1-D: same layout)."""
    state, theirs = np_model.state_dict(), transfer.torch_state(t_model)
    state.update({k: theirs[k] for k in keys})
    np_model.load_state_dict(state)


def _structure(label: str, passed: bool, detail: str) -> Check:
    return Check(label, "structure", 0.0, 0.0, 0.0, 0.0, passed, "" if passed else detail)


def lockstep(spec: ModelSpec, seed: int = 0, dtype: str = "float64", epochs: int = EPOCHS,
             skip_keys: set | None = None) -> Comparison:
    """Both ``fit``s for ``epochs`` epochs of the spec's recipe, compared after every step.

    ``skip_keys`` (default ``noise_keys(spec)``, see the module docstring): state entries
    not compared step by step. Returns a ``parity.compare.Comparison`` (``report()``,
    ``failures()``, ``by_quantity()``) whose labels name the epoch, the step and the tensor.
    """
    check_dtype(dtype)
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    skip = noise_keys(spec) if skip_keys is None else skip_keys
    X, y = training_data(spec, seed, dtype)
    t_rec, t_hist, masks, t_model = run_torch(spec, seed, dtype, epochs, X, y)
    n_rec, n_hist, n_model = run_numpy(spec, seed, dtype, epochs, X, y, masks, t_model)
    result = Comparison(spec.name, dtype, seed, min(len(t_rec.steps), len(n_rec.steps)))
    result.loss_numpy, result.loss_torch = n_hist["loss"], t_hist["loss"]
    add = result.checks.append
    for s in range(result.steps):
        (ne, nrows, nloss), (te, trows, tloss) = n_rec.steps[s], t_rec.steps[s]
        at = f"epoch {te} step {s}"
        add(_structure(f"{at} batch", (ne, nrows) == (te, trows),
                       f"numpy: epoch {ne}, {nrows} rows; torch: epoch {te}, {trows} rows"))
        add(check_arrays(f"{at} loss", "loss", nloss, tloss, dtype))
        mine, theirs = n_rec.states[s], t_rec.states[s]
        for k in theirs:
            if k not in skip:
                q = "buffer" if k in n_model.buffers() else "param"
                add(check_arrays(f"{at} {q} {k}", q, mine[k], theirs[k], dtype))
        if not result.passed:
            break
    for e, (a, b) in enumerate(zip(n_hist["loss"], t_hist["loss"])):
        add(check_arrays(f"epoch {e} reported loss", "loss", a, b, dtype))
    add(_structure("steps", n_hist["steps"] == t_hist["steps"] and
                   len(n_hist["loss"]) == len(t_hist["loss"]),
                   f"numpy {n_hist['steps']} steps in {len(n_hist['loss'])} epochs, torch "
                   f"{t_hist['steps']} in {len(t_hist['loss'])}"))
    _copy_from_torch(n_model, t_model, skip)
    add(check_arrays("eval output", "output", n_model.predict(X), _eval_output(t_model, X),
                     dtype))
    unused = {i: len(layer._queued) for i, layer in enumerate(n_model.layers)
              if isinstance(layer, Dropout) and layer._queued}
    add(_structure("dropout masks", not unused,
                   f"torch's masks left unused by the NumPy trainer, per layer: {unused}"))
    return result


@torch.no_grad()
def _eval_output(model, X):
    """Eval-mode output of the torch model on ``X``; the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        return model(torch.from_numpy(X))
    finally:
        model.train(was_training)
