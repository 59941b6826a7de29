"""One comparison of the twins: same weights, same batch, same dropout masks → the losses,
every gradient, post-update parameters, buffers and optimizer state, step by step.

Every parity assertion in the suite goes through ``compare`` and the one tolerance table in
``parity.tolerances``. A quantity passes when ``torch.testing.assert_close`` accepts the NumPy
value against the torch value with that quantity's (rtol, atol).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

import torch_impl
from parity import transfer
from parity.fileio import atomic_write
from parity.masks import DropoutMaskRecorder
from parity.spec import ModelSpec, check_dtype
from parity.tolerances import tolerance
from reference.losses import l2_penalty
from reference.training import epoch_batches


@dataclass
class Check:
    """One labelled comparison (``"step 2 grad 0.weight"``)."""

    label: str
    quantity: str      # loss | penalty | grad | param | buffer | state | output
    max_abs: float
    max_rel: float     # max|a − b| / max(max|a|, max|b|), normwise; 0 if the tensor is ≤ atol
    rtol: float
    atol: float
    passed: bool
    detail: str = ""


@dataclass
class Comparison:
    model: str
    dtype: str
    seed: int
    steps: int
    loss_numpy: list = field(default_factory=list)
    loss_torch: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    arrays: dict = field(default_factory=dict, repr=False)   # evidence, torch layout

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def by_quantity(self) -> dict[str, dict]:
        """Worst max_abs / max_rel per quantity, with the tolerance used."""
        out: dict[str, dict] = {}
        for c in self.checks:
            q = out.setdefault(c.quantity, {"max_abs": 0.0, "max_rel": 0.0, "rtol": c.rtol,
                                            "atol": c.atol, "passed": True, "n": 0})
            q["max_abs"] = max(q["max_abs"], c.max_abs)
            q["max_rel"] = max(q["max_rel"], c.max_rel)
            q["passed"] = q["passed"] and c.passed
            q["n"] += 1
        return out

    def to_json(self) -> dict:
        return {"model": self.model, "dtype": self.dtype, "seed": self.seed, "steps": self.steps,
                "passed": self.passed, "loss_numpy": self.loss_numpy,
                "loss_torch": self.loss_torch, "quantities": self.by_quantity(),
                "failures": [asdict(c) for c in self.failures()]}

    def report(self) -> str:
        """A mine-vs-torch table; failures listed with their label and message."""
        lines = [f"{self.model} [{self.dtype}, seed {self.seed}, {self.steps} step(s)]: "
                 f"{'passed' if self.passed else 'FAILED'}",
                 f"  loss numpy {self.loss_numpy[0]!r}  torch {self.loss_torch[0]!r}",
                 f"  {'quantity':<8} {'n':>4} {'max abs':>10} {'max rel':>10} {'rtol':>8} "
                 f"{'atol':>8}  ok"]
        for q, v in self.by_quantity().items():
            lines.append(f"  {q:<8} {v['n']:>4} {v['max_abs']:>10.2e} {v['max_rel']:>10.2e} "
                         f"{v['rtol']:>8.0e} {v['atol']:>8.0e}  {'yes' if v['passed'] else 'NO'}")
        for c in self.failures():
            lines.append(f"  FAIL {c.label}: {c.detail.splitlines()[0] if c.detail else ''}")
        return "\n".join(lines)

    def save(self, directory: str) -> None:
        """Write the evidence as .npz (torch state_dict keys, torch layout) plus summary.json;
        each file written atomically."""
        os.makedirs(directory, exist_ok=True)
        for name, arrays in self.arrays.items():
            _atomic_npz(os.path.join(directory, f"{name}.npz"), arrays)
        _atomic_write(os.path.join(directory, "summary.json"),
                      json.dumps(self.to_json(), indent=2).encode())


def _atomic_write(path: str, payload: bytes) -> None:
    atomic_write(path, lambda f: f.write(payload))


def _atomic_npz(path: str, arrays: dict) -> None:
    atomic_write(path, lambda f: np.savez(f, **arrays))


def check_arrays(label: str, quantity: str, mine, theirs, dtype: str) -> Check:
    """Compare a NumPy value (``mine``) to the torch value (``theirs``) under the table."""
    rtol, atol = tolerance(dtype, quantity)
    a = torch.as_tensor(np.asarray(mine))
    b = theirs.detach().cpu() if isinstance(theirs, torch.Tensor) else torch.as_tensor(
        np.asarray(theirs))
    if a.dtype != b.dtype:
        # reported losses are Python floats, torch keeps Adam's step as a float32 tensor:
        # compare the values, in float64
        a, b = a.to(torch.float64), b.to(torch.float64)
    detail = ""
    try:
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, equal_nan=False,
                                   msg=lambda m: f"{label}: {m}")
        passed = True
    except AssertionError as e:
        passed, detail = False, str(e)
    if a.shape == b.shape and a.numel():
        a64, b64 = a.to(torch.float64), b.to(torch.float64)
        max_abs = float((a64 - b64).abs().max())
        scale = max(float(a64.abs().max()), float(b64.abs().max()))
        # A tensor that is zero to within atol (the gradient of a Linear bias feeding
        # BatchNorm is 0 in exact arithmetic: both sides hold rounding noise) has no
        # meaningful relative difference; atol alone judges it.
        max_rel = max_abs / scale if scale > atol else 0.0
    else:
        max_abs = max_rel = float("inf")
    return Check(label, quantity, max_abs, max_rel, rtol, atol, passed, detail)


def first_batch(spec: ModelSpec, seed: int):
    """The first training batch the recipe would use: ``(X, y)`` of the data for ``seed``."""
    d = spec.data(seed)
    idx = epoch_batches(len(d.X_train), spec.batch_size, spec.seeds(seed)["order"])[0]
    if idx is None:
        return d.X_train, d.y_train
    return d.X_train[idx], d.y_train[idx]


def torch_penalty(spec: ModelSpec, t_model) -> torch.Tensor:
    params = dict(t_model.named_parameters())
    wd = spec.optimizer.weight_decay
    return 0.5 * wd * sum((params[k] * params[k]).sum() for k in spec.reg_keys())


def _state_arrays(state: dict, weight_keys: set, name: str, to_torch_layout: bool) -> dict:
    out = {}
    for k, v in state.items():
        arr = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
        if to_torch_layout and name in weight_keys and arr.ndim == 2:
            arr = arr.T
        out[k] = arr
    return out


def compare(spec: ModelSpec, dtype: str = "float64", seed: int = 0, steps: int | None = None,
            batch=None, np_model=None) -> Comparison:
    """Run ``steps`` training steps on one batch in both twins from identical weights.

    Gradients are compared as each side computes them; the optimizer update is then applied
    to torch's gradients on both sides, so parameters and optimizer state check the update
    rule itself (see the comment at the step). Default ``steps``: 3 when the optimizer keeps
    state (momentum, Adam) or the model has BatchNorm buffers, 2 with weight decay (it shows
    on zero-initialized biases only from step 2), else 1. After each step: reported loss (and
    cs231n penalty), every gradient, every parameter after the update, every buffer, every
    optimizer state entry; at the end the eval-mode outputs. ``batch`` overrides the data
    (``(X, y)``); ``np_model`` injects a prepared NumPy model (used by tests that mutate it).
    """
    check_dtype(dtype)
    stateful = spec.optimizer.stateful or any(item[0] == "batchnorm" for item in spec.layers)
    # weight decay on a parameter that starts at 0 (a bias) changes nothing in step 1: a
    # second step is needed to see decay applied where it should not be.
    default = 3 if stateful else (2 if spec.optimizer.weight_decay else 1)
    steps = steps if steps is not None else default
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    X, y = batch if batch is not None else first_batch(spec, seed)
    X = np.asarray(X, dtype=np.dtype(dtype))
    np_model = np_model if np_model is not None else spec.build_numpy(seed, dtype)
    t_model = spec.build_torch(dtype)
    transfer.numpy_to_torch(np_model, t_model)
    lin = transfer.linear_weight_keys(t_model)
    result = Comparison(spec.name, dtype, seed, steps)
    result.arrays["weights"] = transfer.torch_state(t_model)
    result.arrays["batch"] = {"X": X, "y": np.asarray(y)}

    np_opt, t_opt = spec.numpy_optimizer(np_model), spec.torch_optimizer(t_model)
    np_loss, t_loss = spec.numpy_loss(), spec.torch_loss()
    X_t = torch.from_numpy(X)
    y_t = torch_impl.targets(spec.loss, y, X_t.dtype)
    names = {id(p): k for k, p in t_model.named_parameters()}
    recorder = DropoutMaskRecorder(t_model)
    t_model.train()
    add = result.checks.append
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for step in range(1, steps + 1):
                t_opt.zero_grad()
                L_t = t_loss(t_model(X_t), y_t)
                L_t.backward()
                for i, masks in recorder.take().items():
                    np_model.layers[i].queue_masks(masks)
                out = np_model.forward(X, training=True)
                L_n = np_loss.forward(out, y)
                np_model.backward(np_loss.backward())
                result.loss_numpy.append(L_n)
                result.loss_torch.append(L_t.item())
                add(check_arrays(f"step {step} loss", "loss", L_n, L_t, dtype))
                if spec.reg_in_loss:
                    params_np = np_model.parameters()
                    pen_n = l2_penalty([params_np[k] for k in spec.reg_keys()],
                                       spec.optimizer.weight_decay)
                    with torch.no_grad():
                        pen_t = torch_penalty(spec, t_model)
                    add(check_arrays(f"step {step} penalty", "penalty", pen_n, pen_t, dtype))
                grads_np = transfer.to_torch_layout(np_model.gradients(), t_model)
                for k, p in t_model.named_parameters():
                    add(check_arrays(f"step {step} grad {k}", "grad", grads_np[k], p.grad, dtype))
                if step == 1:
                    result.arrays["grads_numpy"] = grads_np
                    result.arrays["grads_torch"] = {k: p.grad.detach().numpy().copy()
                                                    for k, p in t_model.named_parameters()}
                t_opt.step()
                # The update is checked on identical gradients (torch's, in NumPy layout):
                # a rounding-level gradient difference must not be amplified by the optimizer.
                # Adam divides by sqrt(v) + eps, so for a parameter whose true gradient is 0
                # (a Linear bias feeding BatchNorm) rounding noise g becomes a step of up to
                # lr·g/(|g| + eps) — a different number on each side, by construction.
                np_opt.step(transfer.to_numpy_layout(
                    {k: p.grad.detach().numpy() for k, p in t_model.named_parameters()},
                    t_model))
                after_np = transfer.to_torch_layout(np_model.state_dict(), t_model)
                after_t = transfer.torch_state(t_model)
                for k in after_t:
                    q = "buffer" if k in np_model.buffers() else "param"
                    add(check_arrays(f"step {step} {q} {k}", q, after_np[k], after_t[k], dtype))
                for p, st in t_opt.state.items():
                    k = names[id(p)]
                    mine = _state_arrays(np_opt.state.get(k, {}), lin, k, True)
                    for sk, sv in st.items():
                        if sk not in mine:
                            add(Check(f"step {step} state {k}.{sk}", "state", float("inf"),
                                      float("inf"), 0, 0, False, "missing in NumPy optimizer"))
                            continue
                        add(check_arrays(f"step {step} state {k}.{sk}", "state", mine[sk],
                                         sv, dtype))
            result.arrays["params_after_numpy"] = after_np
            result.arrays["params_after_torch"] = after_t
            t_model.eval()
            with torch.no_grad():
                out_t = t_model(X_t)
            add(check_arrays("eval output", "output", np_model.predict(X), out_t, dtype))
    finally:
        recorder.remove()
    return result
