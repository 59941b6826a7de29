"""The study's jobs: each a pure function of its arguments (every random draw from the seed)."""

from __future__ import annotations

import dataclasses

import numpy as np

from layerspec import Linear
from parity import zoo
from parity.spec import ModelSpec
from parity.study.progress import _run_bar
from parity.train import run
from parity.twins import predict


def is_2d(spec: ModelSpec) -> bool:
    first = spec.layers[0]
    return isinstance(first, Linear) and first.in_features == 2


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

    from reference.layers import Sigmoid
    out = predict(model, X)
    if out.shape[1] > 1:
        return out.argmax(axis=1)
    last = model[-1] if isinstance(model, torch.nn.Module) else model.layers[-1]
    threshold = 0.5 if isinstance(last, (Sigmoid, torch.nn.Sigmoid)) else 0.0
    return (out[:, 0] > threshold).astype(np.int64)


def held_out_loss(spec: ModelSpec, model, X: np.ndarray, y: np.ndarray) -> float:
    """The data loss (no L2 term) on ``(X, y)`` in eval mode, computed by the model's own side."""
    import torch

    import torch_impl
    if isinstance(model, torch.nn.Module):
        out = torch.from_numpy(predict(model, X))
        return float(spec.torch_loss()(out, torch_impl.targets(spec.loss, y, out.dtype)).item())
    return float(spec.numpy_loss().forward(model.predict(X), y))


def _hidden(model, X: np.ndarray) -> np.ndarray:
    import torch

    from parity.study.hidden import hidden_numpy, hidden_torch
    return hidden_torch(model, X) if isinstance(model, torch.nn.Module) else hidden_numpy(model, X)


# ---- the jobs (module-level: picklable for worker processes) ------------------------------------
def job_train(name: str, impl: str, seed: int, epochs: int, grid: int, tile_grid: int) -> dict:
    """One training run; plus what the pictures need from the trained model: the held-out
    loss, predicted classes on a grid (2-D inputs), hidden-unit maps (cs231n-2layer), test
    predictions and hidden PCA (digits-2layer)."""
    spec = zoo.get(name)
    on_epoch, close = _run_bar(epochs, f"{name} {impl}")
    try:
        res, model = run(spec, impl, seed=seed, epochs=epochs, on_epoch=on_epoch)
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
    return {"run": out, "arrays": arrays}


def job_parity(name: str, seed: int, steps: int) -> dict:
    """One-step ``compare`` and ``steps``-step lockstep ``diverge``, float64 and float32."""
    from parity.compare import compare
    from parity.diverge import diverge
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
            "failures": [f.label for f in c.failures()]}
        r = diverge(spec, steps, dtype, seed)
        out["divergence"][dtype] = {"steps": steps, "param_rel": r.param_rel,
                                    "loss_rel": r.loss_rel,
                                    "first_step_above_1e-6": r.first_step_above(1e-6),
                                    "final_param_rel": r.param_rel[-1],
                                    "final_worst_param": r.worst_param[-1]}
    return out


def job_success(name: str, impl: str, seeds: tuple, epochs: int | None) -> dict:
    from parity.study.seed_sweep import success_rate
    return success_rate(zoo.get(name), seeds, impls=(impl,), epochs=epochs)[impl]


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


def job_claims(seed: int, quick: bool) -> dict:
    """The claims audit (``parity.audit.claims``); a failure is reported, never hidden."""
    from parity.audit import claims
    try:
        rows = claims.run_audit(seed=seed, quick=quick, log=lambda msg: None)
    except Exception as e:  # reported in the report, not hidden
        return {"available": False,
                "note": f"claims audit not available: it failed ({type(e).__name__}: {e})"}
    return {"available": True, "rows": rows}
