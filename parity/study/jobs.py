"""The study's jobs: each a pure function of its arguments (every random draw from the seed)."""

from __future__ import annotations

import dataclasses

import numpy as np

from parity.catalogue import zoo
from parity.catalogue.spec import ModelSpec
from parity.catalogue.train import run
from parity.study.progress import _run_bar
from parity.twins import predict


def is_2d(spec: ModelSpec) -> bool:
    """Whether the model reads 2-D points (its first layer has 2 input features): then its
    decision regions can be drawn on the plane."""
    return getattr(spec.layers[0], "in_features", None) == 2


def grid_extent(X: np.ndarray) -> tuple:
    """``(xmin, xmax, ymin, ymax)``: the points' box plus 10% (at least 0.25) on each side."""
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = np.maximum(0.1 * (hi - lo), 0.25)
    return (float(lo[0] - pad[0]), float(hi[0] + pad[0]),
            float(lo[1] - pad[1]), float(hi[1] + pad[1]))


def grid_points(extent: tuple, n: int) -> np.ndarray:
    """``(n·n, 2)`` points, row-major with y along rows: reshape a result to ``(n, n)``."""
    xs = np.linspace(extent[0], extent[1], n)
    ys = np.linspace(extent[2], extent[3], n)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def predict_classes(model, X: np.ndarray) -> np.ndarray:
    """Predicted class per row, as ``accuracy`` decides in both twins: argmax for K > 1
    outputs; one output thresholded at 0.5 after a final Sigmoid, else at 0 (a logit)."""
    import torch

    from parity.kinds import decision_threshold
    out = predict(model, X)
    if out.shape[1] > 1:
        return out.argmax(axis=1)
    last = model[-1] if isinstance(model, torch.nn.Sequential) else model.layers[-1]
    return (out[:, 0] > decision_threshold(last)).astype(np.int64)


def held_out_loss(spec: ModelSpec, model, X: np.ndarray, y: np.ndarray) -> float:
    """The data loss (no L2 term) on ``(X, y)`` in eval mode, computed by the model's own side."""
    import torch

    if isinstance(model, torch.nn.Module):
        out = torch.from_numpy(predict(model, X))
        return float(spec.torch_loss()(out, spec.torch_targets(y, out.dtype)).item())
    return float(spec.numpy_loss().forward(model.predict(X), y))


def _hidden(model, X: np.ndarray) -> np.ndarray:
    import torch

    from parity.study.hidden import hidden_numpy, hidden_torch
    return (hidden_torch(model, X) if isinstance(model, torch.nn.Sequential)
            else hidden_numpy(model, X))


def first_filters(spec: ModelSpec, model) -> np.ndarray | None:
    """The first 4-D weight of either trained twin in torch layout — a convolution's filters
    ``(F, C, KH, KW)`` — or None when the model has none."""
    import torch

    from parity import transfer
    state = (transfer.torch_state(model) if isinstance(model, torch.nn.Module)
             else transfer.to_torch_layout(model.parameters(), spec.build_torch()))
    return next((np.array(v) for v in state.values() if np.ndim(v) == 4), None)


# ---- the jobs (module-level: picklable for worker processes) ------------------------------------
class _Started:
    """A ``ModelSpec`` stand-in that sees the model ``parity.catalogue.train.run`` trains:
    ``run`` builds each twin's optimizer over that model at its initial weights (the torch twin
    after the NumPy weights were copied into it), so ``started(model)`` is called then, once."""

    def __init__(self, spec: ModelSpec, started):
        self._spec, self._started = spec, started

    def __getattr__(self, name):
        return getattr(self._spec, name)

    def numpy_optimizer(self, model, *args, **kwargs):
        self._started(model)
        return self._spec.numpy_optimizer(model, *args, **kwargs)

    def torch_optimizer(self, model, *args, **kwargs):
        self._started(model)
        return self._spec.torch_optimizer(model, *args, **kwargs)


def _train_accuracy(model, X: np.ndarray, y: np.ndarray) -> float:
    """Each twin's own accuracy rule (``reference.training.accuracy`` / ``torch_impl``)."""
    import torch

    from parity import torch_impl
    from parity.reference.training import accuracy
    if isinstance(model, torch.nn.Sequential):
        return torch_impl.accuracy(model, torch.from_numpy(X), y)
    return accuracy(model, X, y)


def _tracking(spec: ModelSpec, seed: int, on_epoch):
    """``(spec stand-in, on_epoch, accs)``: accs fills with the train accuracy at the initial
    weights, then after every epoch (``len(accs) = epochs + 1``), as
    ``parity.audit.claims.measure_xor_stable_epoch`` records it."""
    d = spec.data(seed)
    accs: list = []
    box: dict = {}

    def started(model):
        box["model"] = model
        accs.append(_train_accuracy(model, d.X_train, d.y_train))

    def tracked(epoch, loss):
        if "model" not in box:
            raise RuntimeError("accuracy tracking: parity.catalogue.train.run no longer builds "
                               "the optimizer before training (_Started)")
        accs.append(_train_accuracy(box["model"], d.X_train, d.y_train))
        return on_epoch(epoch, loss) if on_epoch is not None else None

    return _Started(spec, started), tracked, accs


def job_train(name: str, impl: str, seed: int, epochs: int, grid: int, tile_grid: int,
              track_accuracy: bool = False) -> dict:
    """One training run; plus what the pictures need from the trained model: the held-out
    loss, predicted classes on a grid (2-D inputs), hidden-unit maps (cs231n-2layer), test
    predictions and hidden PCA (digits-2layer), test predictions and the first convolution's
    filters (models of images). ``track_accuracy``: also the train accuracy
    before training and after each epoch (``train_accuracy_curve``: XOR's stable epoch, a
    claim, read from this run rather than from a second one)."""
    spec = zoo.get(name)
    on_epoch, close = _run_bar(epochs, f"{name} {impl}")
    trained, accs = spec, None
    if track_accuracy:
        trained, on_epoch, accs = _tracking(spec, seed, on_epoch)
    try:
        res, model = run(trained, impl, seed=seed, epochs=epochs, on_epoch=on_epoch)
    finally:
        close()
    d = spec.data(seed)
    out = res.to_json(with_curve=True)
    out["test_loss"] = held_out_loss(spec, model, d.X_test, d.y_test)
    arrays: dict = {}
    if is_2d(spec):
        extent = grid_extent(np.concatenate([d.X_train, d.X_test]))
        arrays["grid"] = predict_classes(model, grid_points(extent, grid)).reshape(grid, grid)
        arrays["extent"] = extent
        if name == "cs231n-2layer":
            h = _hidden(model, grid_points(extent, tile_grid))          # (n·n, H)
            arrays["tiles"] = h.T.reshape(-1, tile_grid, tile_grid)
    if name == "digits-2layer":
        from parity.study.hidden import pca_2d
        arrays["test_pred"] = predict_classes(model, d.X_test)
        arrays["pca"], arrays["pca_var"] = pca_2d(_hidden(model, d.X_test))
    if spec.image_shape is not None:
        arrays["test_pred"] = predict_classes(model, d.X_test)
        arrays["filters"] = first_filters(spec, model)
    result = {"run": out, "arrays": arrays}
    if accs is not None:
        result["train_accuracy_curve"] = accs
    return result


def job_runs(keys: tuple, with_curve: bool = False, track: tuple = ()) -> dict:
    """Training runs ``(model, impl, seed, epochs)`` and nothing else (seed sweeps, the claims'
    seed spreads and corrected settings): ``{"runs": [RunResult JSON per key]}``, and for the
    keys in ``track`` ``{"train_accuracy_curves": {index: accuracies}}`` (``job_train``)."""
    runs, curves = [], {}
    for i, (name, impl, seed, epochs) in enumerate(keys):
        spec = zoo.get(name)
        if (name, impl, seed, epochs) in track:
            spec, on_epoch, curves[i] = _tracking(spec, seed, None)
        else:
            on_epoch = None
        r = run(spec, impl, seed=seed, epochs=epochs, on_epoch=on_epoch)[0].to_json(with_curve)
        runs.append(r)
    return {"runs": runs, "train_accuracy_curves": curves}


def job_parity(name: str, seed: int, steps: int) -> dict:
    """One-step ``compare`` and ``steps``-step lockstep ``diverge``, float64 and float32;
    ``parity[dtype]["layers"]``: step 1 layer by layer (``layer_agreement.measure``)."""
    from parity.catalogue.checks import compare, diverge
    from parity.study import layer_agreement
    spec = zoo.get(name)
    out: dict = {"parity": {}, "divergence": {}}
    for dtype in ("float64", "float32"):
        c = compare(spec, dtype, seed)
        q = c.by_quantity()
        worst_abs = max(q, key=lambda k: q[k]["max_abs"])
        worst_rel = max(q, key=lambda k: q[k]["max_rel"])
        out["parity"][dtype] = {
            "passed": c.passed, "steps": c.steps, "quantities": q,
            "max_abs": q[worst_abs]["max_abs"], "max_abs_quantity": worst_abs,
            "max_rel": q[worst_rel]["max_rel"], "max_rel_quantity": worst_rel,
            "failures": [f.label for f in c.failures()],
            "layers": layer_agreement.measure(spec, dtype, seed)}
        r = diverge(spec, steps, dtype, seed)
        out["divergence"][dtype] = {"steps": steps, "param_rel": r.param_rel,
                                    "loss_rel": r.loss_rel,
                                    "first_step_above_1e-6": r.first_step_above(1e-6),
                                    "final_param_rel": r.param_rel[-1],
                                    "final_worst_param": r.worst_param[-1]}
    return out


def hidden_size_spec(h: int) -> ModelSpec:
    """spiral003 with BatchNorm blocks of widths (h, h, h/2)."""
    base = zoo.get("spiral003")
    return dataclasses.replace(base, name=f"spiral003-h{h}",
                               layers=zoo._spiral003(zoo._bn_block, hidden=(h, h, h // 2)))


def job_hidden(h: int, impl: str, seed: int, epochs: int) -> dict:
    spec = hidden_size_spec(h)
    on_epoch, close = _run_bar(epochs, f"{spec.name} {impl}")
    try:
        res, model = run(spec, impl, seed=seed, epochs=epochs, on_epoch=on_epoch)
    finally:
        close()
    d = spec.data(seed)
    out = res.to_json()
    out["test_loss"] = held_out_loss(spec, model, d.X_test, d.y_test)
    out["parameters"] = spec.num_parameters()
    return out


def job_lr_finder(name: str, impl: str, seed: int) -> dict:
    from parity.study.lr_finder import lr_finder, suggest
    curve = lr_finder(zoo.get(name), impl, seed=seed)
    try:
        curve["suggest"] = suggest(curve)
    except ValueError as e:
        curve["suggest"], curve["note"] = None, str(e)
    return curve


def job_ceiling(key: tuple, seed: int, n_samples: int):
    """One Bayes ceiling of the claims audit (``parity.audit.claims.compute_ceiling``)."""
    from parity.audit.claims import compute_ceiling
    return compute_ceiling(key, seed, n_samples)


def job_xor_stable(init: str, impl: str, seed: int, epochs: int) -> dict:
    """XOR's stable epoch from an initialization no study run uses (the document's)."""
    from parity.audit.claims import measure_xor_stable_epoch
    return measure_xor_stable_epoch(impl, init, seed, epochs)


def job_worked_failure(mutant: str, seed: int) -> dict:
    """The report's worked failure: selftest mutant ``mutant`` planted, its check and the
    layer-by-layer localization (``parity.study.worked_failure.measure``)."""
    from parity.study import worked_failure
    return worked_failure.measure(mutant, seed)


def job_worked() -> dict:
    """Seed 004's worked example on both twins (``measure_worked_example``)."""
    from parity.audit.claims import measure_worked_example
    return measure_worked_example()
