"""``nn-parity bench``: speed ratios, each measured within one run on this machine.

1. The reference trainer (``reference.training.fit`` through ``parity.train.run``) against a
   minimal hand-fused NumPy loop doing the same arithmetic on cs231n-2layer (target ≤ 1.25×).
2. The torch_impl trainer against a minimal raw torch loop (zero_grad/forward/loss/backward/
   step) on the same model and optimizer (target ≤ 1.10×).
3. Time per training step, NumPy vs torch, across hidden widths and batch sizes (a
   2→W→W→3 ReLU MLP, SGD): where does torch start to win?

Each timing is the best of ``repeats`` runs (the minimum is the least noisy estimate of the
cost on a shared machine); the thread counts in force are recorded.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from parity import transfer, zoo
from parity.runtime import threads_in_force
from parity.spec import ModelSpec, OptimSpec
from parity.train import run

TARGETS = {"reference_vs_fused_numpy": 1.25, "torch_impl_vs_raw_torch": 1.10}


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def fused_numpy_cs231n(X, y, params, steps, lr, reg):
    """cs231n's loop, fused by hand: the floor for the reference trainer (same arithmetic:
    forward, log-sum-exp loss + 0.5·reg·ΣW², backward, reg·W, SGD)."""
    W1, b1, W2, b2 = (params[k].copy() for k in ("0.weight", "0.bias", "2.weight", "2.bias"))
    n = len(X)
    rows = np.arange(n)
    losses = []
    for _ in range(steps):
        h = np.maximum(X @ W1 + b1, 0)
        s = h @ W2 + b2
        s = s - s.max(axis=1, keepdims=True)
        log_p = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
        losses.append(-log_p[rows, y].mean() + 0.5 * reg * ((W1 * W1).sum() + (W2 * W2).sum()))
        d = np.exp(log_p)
        d[rows, y] -= 1
        d /= n
        dW2 = h.T @ d + reg * W2
        db2 = d.sum(axis=0)
        dh = d @ W2.T
        dh[h <= 0] = 0
        dW1 = X.T @ dh + reg * W1
        db1 = dh.sum(axis=0)
        W1 -= lr * dW1
        b1 -= lr * db1
        W2 -= lr * dW2
        b2 -= lr * db2
    return losses


def raw_torch_loop(spec: ModelSpec, X, y, np_model, steps):
    """The minimal idiomatic torch loop: the floor for torch_impl's trainer."""
    model = spec.build_torch()
    transfer.numpy_to_torch(np_model, model)
    opt = spec.torch_optimizer(model)
    loss_fn = spec.torch_loss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(Xt), yt).backward()
        opt.step()


def trainer_ratios(steps: int = 2000, repeats: int = 3) -> dict:
    spec = zoo.get("cs231n-2layer")
    d = spec.data(0)
    np_model = spec.build_numpy(0)
    params = np_model.state_dict()
    lr, reg = spec.optimizer.lr, spec.optimizer.weight_decay
    t_fused = _best(lambda: fused_numpy_cs231n(d.X_train, d.y_train, params, steps, lr, reg),
                    repeats)
    t_ref = _best(lambda: run(spec, "numpy", 0, epochs=steps), repeats)
    t_raw = _best(lambda: raw_torch_loop(spec, d.X_train, d.y_train, np_model, steps), repeats)
    t_impl = _best(lambda: run(spec, "torch", 0, epochs=steps), repeats)
    return {
        "model": spec.name, "steps": steps, "repeats": repeats,
        "seconds": {"fused_numpy": t_fused, "reference_trainer": t_ref,
                    "raw_torch": t_raw, "torch_impl_trainer": t_impl},
        "ratios": {"reference_vs_fused_numpy": t_ref / t_fused,
                   "torch_impl_vs_raw_torch": t_impl / t_raw},
    }


def _mlp(width: int) -> ModelSpec:
    return ModelSpec(name=f"bench-w{width}", source="bench", summary="bench MLP",
                     layers=(("linear", 2, width), ("relu",), ("linear", width, width),
                             ("relu",), ("linear", width, 3)),
                     loss="cross_entropy", optimizer=OptimSpec("sgd", lr=0.1),
                     dataset="spiral3", init="he", epochs=1)


def step_time(width: int, batch: int, impl: str, steps: int, repeats: int) -> float:
    """Seconds per SGD step (forward + loss + backward + update) on a random batch."""
    spec = _mlp(width)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((batch, 2))
    y = rng.integers(0, 3, batch)
    np_model = spec.build_numpy(0)
    if impl == "numpy":
        opt, loss = spec.numpy_optimizer(np_model), spec.numpy_loss()

        def go():
            for _ in range(steps):
                loss.forward(np_model.forward(X, True), y)
                np_model.backward(loss.backward())
                opt.step(np_model.gradients())
    else:
        model = spec.build_torch()
        transfer.numpy_to_torch(np_model, model)
        opt, loss_fn = spec.torch_optimizer(model), spec.torch_loss()
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

        def go():
            for _ in range(steps):
                opt.zero_grad()
                loss_fn(model(Xt), yt).backward()
                opt.step()
    return _best(go, repeats) / steps


def width_sweep(widths=(16, 64, 256, 1024, 4096), batches=(32, 256), repeats: int = 3) -> dict:
    rows = []
    for batch in batches:
        for width in widths:
            steps = max(3, min(200, int(2e8 // (width * width * batch + 1))))
            t_np = step_time(width, batch, "numpy", steps, repeats)
            t_t = step_time(width, batch, "torch", steps, repeats)
            rows.append({"width": width, "batch": batch, "steps": steps,
                         "numpy_s_per_step": t_np, "torch_s_per_step": t_t,
                         "numpy_over_torch": t_np / t_t})
    crossover = {}
    for batch in batches:
        wins = [r["width"] for r in rows if r["batch"] == batch and r["numpy_over_torch"] > 1]
        crossover[str(batch)] = min(wins) if wins else None
    return {"rows": rows, "torch_wins_from_width": crossover}


def run_bench(quick: bool = False) -> dict:
    """All measurements of one run, with the targets and whether they are met."""
    ratios = trainer_ratios(steps=500 if quick else 2000, repeats=2 if quick else 3)
    sweep = width_sweep(widths=(16, 256, 1024) if quick else (16, 64, 256, 1024, 4096),
                        batches=(32,) if quick else (32, 256), repeats=2 if quick else 3)
    met = {k: ratios["ratios"][k] <= v for k, v in TARGETS.items()}
    return {"threads": threads_in_force(), "torch": torch.__version__,
            "numpy": np.__version__, "trainers": ratios, "targets": TARGETS, "met": met,
            "sweep": sweep}


def render(result: dict) -> str:
    r = result["trainers"]
    s = r["seconds"]
    lines = [f"threads {result['threads']}, torch {result['torch']}, numpy {result['numpy']}",
             f"{r['model']}, {r['steps']} full-batch steps, best of {r['repeats']}:",
             f"  fused NumPy loop     {s['fused_numpy']:8.3f} s",
             f"  reference trainer    {s['reference_trainer']:8.3f} s   ratio "
             f"{r['ratios']['reference_vs_fused_numpy']:.3f} (target ≤ "
             f"{TARGETS['reference_vs_fused_numpy']}) "
             f"{'met' if result['met']['reference_vs_fused_numpy'] else 'NOT met'}",
             f"  raw torch loop       {s['raw_torch']:8.3f} s",
             f"  torch_impl trainer   {s['torch_impl_trainer']:8.3f} s   ratio "
             f"{r['ratios']['torch_impl_vs_raw_torch']:.3f} (target ≤ "
             f"{TARGETS['torch_impl_vs_raw_torch']}) "
             f"{'met' if result['met']['torch_impl_vs_raw_torch'] else 'NOT met'}",
             "time per step (2→W→W→3 MLP, SGD): width batch numpy_ms torch_ms numpy/torch"]
    for row in result["sweep"]["rows"]:
        lines.append(f"  {row['width']:>6} {row['batch']:>5} {1e3 * row['numpy_s_per_step']:9.3f} "
                     f"{1e3 * row['torch_s_per_step']:9.3f} {row['numpy_over_torch']:8.2f}")
    lines.append(f"torch is faster from width: {result['sweep']['torch_wins_from_width']} "
                 "(per batch size)")
    return "\n".join(lines)
