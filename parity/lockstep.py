"""The trainers users call — ``reference.training.fit`` and ``torch_impl.fit`` — run from the
same weights, data, batch order and dropout masks, compared step by step.

Neither ``fit`` is modified or re-implemented: each is called as ``parity.catalogue.train.run``
calls it, and observed from outside through objects it already accepts —

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

Left out of the per-step comparison (``parity.twins.cancelled_keys``): a Linear bias feeding
BatchNorm and that BatchNorm's running_mean. The bias's true gradient is exactly 0 (the
batch mean removes it), so each side's gradient is its own rounding noise (~1e-17). Adam turns
that into steps of
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

import contextlib
import copy
import functools

import numpy as np
import torch

from parity import torch_impl, transfer
from parity.compare import Check, Comparison, check_arrays
from parity.masks import DropoutMaskRecorder
from parity.reference import training as np_training
from parity.reference.training import epoch_batches
from parity.runtime import seed_torch
from parity.twins import Twins

EPOCHS = 2   # two: the second epoch re-draws the batch order


class _Recorder:
    """Per-step records of one trainer: ``(epoch, rows, loss)`` and the state after the step."""

    def __init__(self) -> None:
        self.epoch = 0
        self.steps: list[tuple[int, int, float]] = []
        self.states: list[dict] = []

    def on_epoch(self, epoch: int, loss: float) -> None:
        self.epoch = epoch + 1


def _batches(n: int, batch_size: int | None, order_rng: np.random.Generator | None):
    """``() -> one epoch's index arrays`` from a private copy of ``order_rng`` (each trainer
    gets its own copy, so both see the same order)."""
    rng = copy.deepcopy(order_rng)
    return lambda: epoch_batches(n, batch_size, rng)


def run_torch(twins: Twins, X, y, epochs: int, *, batch_size: int | None = None,
              order_rng: np.random.Generator | None = None, seed: int = 0, observe=None):
    """``torch_impl.fit`` on ``twins.torch_model`` with the twins' torch loss and optimizer
    (dropout seeded with ``seed``); returns ``(recorder, history, masks)``, ``masks`` by
    Dropout layer index. ``observe(model)``, if given, is called before training (to attach
    hooks). The hooks this function adds are removed afterwards."""
    model, loss_fn, opt, rec = twins.torch_model, twins.torch_loss, twins.torch_optimizer, \
        _Recorder()
    if observe is not None:
        observe(model)
    handles = [loss_fn.register_forward_hook(
                   lambda m, inp, out: rec.steps.append((rec.epoch, len(inp[0]), out.item()))),
               opt.register_step_post_hook(
                   lambda *_: rec.states.append(transfer.torch_state(model)))]
    penalty = twins.torch_penalty if twins.penalty_keys else None
    masks = DropoutMaskRecorder(model)
    X_t = twins.torch_input(X)
    try:
        with torch.random.fork_rng(devices=[]):
            seed_torch(seed)
            hist = torch_impl.fit(model, loss_fn, opt, X_t, twins.torch_targets(y),
                                  epochs=epochs, penalty=penalty, on_epoch=rec.on_epoch,
                                  batches=_batches(len(X), batch_size, order_rng))
    finally:
        masks.remove()
        for h in handles:
            h.remove()
    return rec, hist, masks.take()


def run_numpy(twins: Twins, X, y, epochs: int, masks: dict, *, batch_size: int | None = None,
              order_rng: np.random.Generator | None = None, observe=None):
    """``reference.training.fit`` on ``twins.numpy_model`` with ``masks`` (torch's, by
    Dropout layer index) queued; returns ``(recorder, history)``. ``observe(model)``, if
    given, is called before training. The twins' loss and optimizer are watched through
    wrappers set on the instances and removed afterwards."""
    model, loss_fn, opt, rec = twins.numpy_model, twins.numpy_loss, twins.numpy_optimizer, \
        _Recorder()
    if observe is not None:
        observe(model)
    for i, m in masks.items():
        model.layers[i].queue_masks(m)
    forward, step = loss_fn.forward, opt.step

    @functools.wraps(forward)
    def recording_forward(out, yb):
        value = forward(out, yb)
        rec.steps.append((rec.epoch, len(out), value))
        return value

    @functools.wraps(step)
    def recording_step(grads):
        step(grads)
        rec.states.append(transfer.to_torch_layout(model.state_dict(), twins.torch_model))

    with _patched(loss_fn, "forward", recording_forward), _patched(opt, "step", recording_step):
        hist = np_training.fit(model, loss_fn, opt, X, y, epochs=epochs, batch_size=batch_size,
                               order_rng=copy.deepcopy(order_rng), reg=twins.penalty_weight,
                               reg_keys=twins.penalty_keys, on_epoch=rec.on_epoch)
    return rec, hist


@contextlib.contextmanager
def _patched(obj, name: str, value):
    """``obj.name = value`` on the instance inside the block; whatever the instance held
    before (or nothing: the class attribute shows again) is put back after."""
    had, old = name in vars(obj), vars(obj).get(name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        if had:
            setattr(obj, name, old)
        else:
            delattr(obj, name)


def _copy_from_torch(np_model, t_model, keys) -> None:
    """Overwrite ``keys`` of the NumPy model with torch's values (1-D: same layout)."""
    state, theirs = np_model.state_dict(), transfer.torch_state(t_model)
    state.update({k: theirs[k] for k in keys})
    np_model.load_state_dict(state)


def _structure(label: str, passed: bool, detail: str) -> Check:
    return Check(label, "structure", 0.0, 0.0, 0.0, 0.0, passed, "" if passed else detail)


def lockstep_twins(twins: Twins, X, y, *, epochs: int = EPOCHS, batch_size: int | None = None,
                   order_rng: np.random.Generator | None = None, seed: int = 0,
                   skip_keys: set | None = None) -> Comparison:
    """Both ``fit``s on the twins (trained in place) for ``epochs`` epochs over ``X: (N, D)``,
    ``y: (N,)`` in batches of ``batch_size`` (None: full batch) ordered by copies of
    ``order_rng``, torch's dropout seeded with ``seed``; compared after every step.

    ``skip_keys`` (default ``twins.cancelled_keys()``, see the module docstring): state
    entries not compared step by step. Returns a ``parity.compare.Comparison`` (``report()``,
    ``failures()``, ``by_quantity()``) whose labels name the epoch, the step and the tensor.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    skip = twins.cancelled_keys() if skip_keys is None else skip_keys
    X = np.asarray(X).astype(np.dtype(twins.dtype))
    t_rec, t_hist, masks = run_torch(twins, X, y, epochs, seed=seed, batch_size=batch_size,
                                     order_rng=order_rng)
    n_rec, n_hist = run_numpy(twins, X, y, epochs, masks, batch_size=batch_size,
                              order_rng=order_rng)
    result = Comparison(twins.name, twins.dtype, seed, min(len(t_rec.steps), len(n_rec.steps)))
    result.loss_numpy, result.loss_torch = n_hist["loss"], t_hist["loss"]
    _judge_steps(result, n_rec, t_rec, set(twins.numpy_model.buffers()), skip)
    _judge_end(result, twins, n_hist, t_hist, X, skip)
    return result


def _judge_steps(result: Comparison, n_rec: _Recorder, t_rec: _Recorder, buffers: set,
                 skip: set) -> None:
    """Per step: the batch (epoch, rows), the loss and every state entry not in ``skip``;
    stops after the first step with a failure (the rest follows from it)."""
    add, dtype = result.checks.append, result.dtype
    for s in range(result.steps):
        (ne, nrows, nloss), (te, trows, tloss) = n_rec.steps[s], t_rec.steps[s]
        at = f"epoch {te} step {s}"
        add(_structure(f"{at} batch", (ne, nrows) == (te, trows),
                       f"numpy: epoch {ne}, {nrows} rows; torch: epoch {te}, {trows} rows"))
        add(check_arrays(f"{at} loss", "loss", nloss, tloss, dtype))
        mine, theirs = n_rec.states[s], t_rec.states[s]
        for k in theirs:
            if k not in skip:
                q = "buffer" if k in buffers else "param"
                add(check_arrays(f"{at} {q} {k}", q, mine[k], theirs[k], dtype))
        if not result.passed:
            break


def _judge_end(result: Comparison, twins: Twins, n_hist: dict, t_hist: dict, X, skip) -> None:
    """Each epoch's reported loss, the step and epoch counts, the eval-mode outputs on ``X``
    (with the ``skip`` entries copied from torch first) and that every mask was used."""
    add, dtype, n_model = result.checks.append, result.dtype, twins.numpy_model
    for e, (a, b) in enumerate(zip(n_hist["loss"], t_hist["loss"])):
        add(check_arrays(f"epoch {e} reported loss", "loss", a, b, dtype))
    add(_structure("steps", n_hist["steps"] == t_hist["steps"] and
                   len(n_hist["loss"]) == len(t_hist["loss"]),
                   f"numpy {n_hist['steps']} steps in {len(n_hist['loss'])} epochs, torch "
                   f"{t_hist['steps']} in {len(t_hist['loss'])}"))
    _copy_from_torch(n_model, twins.torch_model, skip)
    add(check_arrays("eval output", "output", *twins.predict(X), dtype))
    unused = {i: n for i, layer in enumerate(n_model.layers)
              if (n := getattr(layer, "queued", 0))}
    add(_structure("dropout masks", not unused,
                   f"torch's masks left unused by the NumPy trainer, per layer: {unused}"))
