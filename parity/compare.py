"""One comparison of the twins: same weights, same batch, same dropout masks → the losses,
every gradient, post-update parameters, buffers and optimizer state, step by step.

``compare_twins`` reads as its three stages: ``collect`` runs the twins and records every
compared quantity as a ``parity.judge.Pair``; ``parity.judge.judge_lazily`` turns each
step's pairs into ``Check``s under the rules of ``parity.tolerances``, asking
``parity.step_evidence`` for the float64 evaluation of the step and its spread σ only where
a verdict needs them; ``Comparison`` reports.
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from parity import precise, transfer
from parity import twins as twins_mod
from parity.fileio import atomic_write
from parity.judge import Check, Pair, judge, judge_lazily, nonfinite
from parity.masks import DropoutMaskRecorder
from parity.runtime import exact_float32_matmul, seed_torch
from parity.step_evidence import StartState, StepEvidence
from parity.tolerances import SAMPLES

__all__ = ["Check", "Comparison", "compare_twins"]


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
    notes: list = field(default_factory=list)   # e.g. where a NaN or Inf first appeared

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def by_quantity(self) -> dict[str, dict]:
        """Worst max_abs / max_rel per quantity, the tolerance, and which rules decided."""
        out: dict[str, dict] = {}
        for c in self.checks:
            q = out.setdefault(c.quantity, {"max_abs": 0.0, "max_rel": 0.0, "rtol": c.rtol,
                                            "atol": c.atol, "passed": True, "n": 0,
                                            "rules": {}, "tiny": 0})
            q["max_abs"] = max(q["max_abs"], c.max_abs)
            q["max_rel"] = max(q["max_rel"], c.max_rel)
            q["passed"] = q["passed"] and c.passed
            q["n"] += 1
            q["rules"][c.rule] = q["rules"].get(c.rule, 0) + 1
            q["tiny"] += int(c.tiny)
        return out

    def judged_by(self) -> dict[str, int]:
        """How many checks each rule decided (``table``, ``precision``, ``exact`` …)."""
        return dict(Counter(c.rule for c in self.checks))

    def quantity_rows(self) -> list[str]:
        """The table's header and one row per quantity: count, worst differences, the
        tolerances (``1.3e-06`` as it is, not rounded), the rules that decided, the verdict."""
        rows = [f"  {'quantity':<8} {'n':>4} {'max abs':>10} {'max rel':>10} {'rtol':>8} "
                f"{'atol':>8}  {'decided by':<22} ok"]
        for q, v in self.by_quantity().items():
            rules = ", ".join(f"{k} {n}" for k, n in v["rules"].items())
            rows.append(f"  {q:<8} {v['n']:>4} {v['max_abs']:>10.2e} {v['max_rel']:>10.2e} "
                        f"{v['rtol']:>8.2g} {v['atol']:>8.2g}  {rules:<22} "
                        f"{'yes' if v['passed'] else 'NO'}")
        return rows

    def to_json(self) -> dict:
        return {"model": self.model, "dtype": self.dtype, "seed": self.seed, "steps": self.steps,
                "passed": self.passed, "loss_numpy": self.loss_numpy,
                "loss_torch": self.loss_torch, "quantities": self.by_quantity(),
                "judged_by": self.judged_by(),
                "tiny_tensors": sum(int(c.tiny) for c in self.checks),
                "failures": [asdict(c) for c in self.failures()], "notes": self.notes}

    def report(self) -> str:
        """A mine-vs-torch table; failures listed with their label and message."""
        lines = [f"{self.model} [{self.dtype}, seed {self.seed}, {self.steps} step(s)]: "
                 f"{'passed' if self.passed else 'FAILED'}",
                 f"  loss numpy {self.loss_numpy[0]:.17g}  torch {self.loss_torch[0]:.17g}",
                 *self.quantity_rows(), *(f"  note: {n}" for n in self.notes)]
        for c in self.failures():
            lines.append(f"  FAIL {c.label}: {c.detail.splitlines()[0] if c.detail else ''}")
        return "\n".join(lines)

    def save(self, directory: str) -> None:
        """Write the evidence as .npz (torch state_dict keys, torch layout) plus summary.json;
        each file written atomically."""
        os.makedirs(directory, exist_ok=True)
        for name, arrays in self.arrays.items():
            atomic_write(os.path.join(directory, f"{name}.npz"),
                         lambda f, a=arrays: np.savez(f, **a))
        from parity.fileio import json_text
        payload = json_text(self.to_json(), indent=2).encode()
        atomic_write(os.path.join(directory, "summary.json"), lambda f: f.write(payload))


def compare_twins(twins: twins_mod.Twins, X, y, *, steps: int = 1, seed: int = 0,
                  kept: dict | None = None) -> Comparison:
    """Collect the evidence of ``steps`` steps, judge it, return the ``Comparison``.
    ``kept`` (when given) receives each step's ``StepEvidence`` by step number: what a
    localization of a failure reuses (``parity.localize.after``)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    result = Comparison(twins.name, twins.dtype, seed, steps)
    with exact_float32_matmul():
        result.checks = collect(twins, np.asarray(X, dtype=np.dtype(twins.dtype)), y, steps,
                                seed, result, kept)
    return result


def collect(twins, X, y, steps: int, seed: int, result: Comparison,
            kept: dict | None = None) -> list[Check]:
    """Run the steps (torch first: its dropout masks are handed to NumPy), record every
    compared quantity and judge each step as it ends (its evidence is at hand then);
    evidence arrays go to ``result.arrays``."""
    result.arrays["weights"] = {}   # step 1's start, the twins' common weights: filled below
    result.arrays["batch"] = {"X": X, "y": np.asarray(y)}
    recorder = DropoutMaskRecorder(twins.torch_model)
    checks: list[Check] = []
    try:
        with torch.random.fork_rng(devices=[]):
            seed_torch(seed)
            twins.torch_model.train()
            for step in range(1, steps + 1):
                before = twins.numpy_model.state_dict()
                if step == 1:     # views of a copy that nothing writes (StartState keeps it)
                    result.arrays["weights"].update(transfer.torch_views(before,
                                                                         twins.torch_model))
                nonfinite_labels, judged = _step(twins, X, y, step, recorder, seed, result,
                                                 before, kept)
                checks += judged
                if not result.notes and nonfinite_labels:
                    result.notes.append(_first_nonfinite(twins, before, nonfinite_labels[0],
                                                         X, y, step, seed))
            checks += _eval_output(twins, X, seed)
    finally:
        recorder.remove()
    return checks


def _step(twins, X, y, step: int, recorder, seed: int, result: Comparison, before: dict,
          kept: dict | None = None) -> tuple[list[str], list[Check]]:
    """One training step of both twins: the labels of its pairs that hold a NaN or an Inf,
    and their checks. The update is applied
    on torch's gradients on both sides, so parameters and optimizer state check the update
    rule itself: Adam divides by sqrt(v) + eps, so a rounding-level gradient difference on a
    parameter whose true gradient is 0 (a bias feeding BatchNorm) would become steps of up
    to lr — different by design. ``before``: the NumPy twin's ``state_dict`` at the step's
    start, the state its float64 evaluation starts from (``StartState``)."""
    t_model, t_opt, np_model = twins.torch_model, twins.torch_optimizer, twins.numpy_model
    if step > 1:
        # each step from the identical state (weights, buffers, optimizer state): the float64
        # evaluation and the rounding spread start from it, so neither twin carries the other's
        # rounding of earlier steps (an Adam moment that cancelled to 4e-5 at step 2 differed
        # by 6e-10 and σ of step 3 is 4e-12); what rounding accumulates over many steps is
        # parity.diverge's to bound
        twins.sync_state()
    t_opt.zero_grad()
    L_t = twins.torch_loss(t_model(twins.torch_input(X)), twins.torch_targets(y))
    L_t.backward()
    masks = recorder.take()
    start = StartState(np_model, twins.numpy_optimizer, before)
    for i, m in masks.items():
        np_model.layers[i].queue_masks(m)
    L_n = float(twins.numpy_loss.forward(np_model.forward(X, training=True), y))
    np_model.backward(twins.numpy_loss.backward())
    result.loss_numpy.append(L_n)
    result.loss_torch.append(L_t.item())
    grads_t = twins.torch_gradients()
    found = {"loss": {"": (L_n, L_t.item())},
             "grad": _zip(transfer.torch_views(np_model.gradients(), t_model), grads_t)}
    if twins.penalty_keys:
        found["penalty"] = {"": (twins.numpy_penalty(np_model.parameters()),
                                 twins.torch_penalty().item())}
    if step == 1:       # views of NumPy's gradients, kept past the step only as copies (a
        #                 layer of the user's may write its next gradient in place)
        result.arrays["grads_numpy"] = {k: v[0] if result.steps == 1 else v[0].copy()
                                        for k, v in found["grad"].items()}
        result.arrays["grads_torch"] = grads_t
    found["update"] = _update_from_zero(twins, grads_t)
    t_opt.step()
    twins.numpy_optimizer.step(transfer.to_numpy_layout(grads_t, t_model))
    after_np = transfer.to_torch_layout(np_model.state_dict(), t_model)
    after_t = transfer.torch_state(t_model)
    buffers = set(np_model.buffers())
    found["param"] = {k: (after_np[k], after_t[k]) for k in after_t if k not in buffers}
    found["buffer"] = {k: (after_np[k], after_t[k]) for k in after_t if k in buffers}
    found["state"] = _state_pairs(twins)
    result.arrays["params_after_numpy"], result.arrays["params_after_torch"] = after_np, after_t
    pairs = _pairs(found, step)
    del found        # the pairs alone hold the step's arrays: judging lets settled ones go
    # only a pair the table fails pays for the float64 evaluation, and below float64 only one
    # that FACTOR alone fails for its spread σ (parity.judge, judge_lazily)
    evidence = StepEvidence(twins, start, X, y, masks, grads_t, seed + step)
    if kept is not None:
        kept[step] = evidence
    checks = judge_lazily(pairs, twins.dtype, evidence.attach)
    # a pair that passed is finite (and has given up its arrays): only failed ones are looked at
    return [p.label for p, c in zip(pairs, checks) if not c.passed and nonfinite(p)], checks


def _first_nonfinite(twins, before: dict, label: str, X, y, step: int, seed: int) -> str:
    """Where step ``step``'s first NaN/Inf came from: a layer's output or gradient (traced
    layer by layer from ``before``, the NumPy state at the step's start, by
    ``parity.localize.first_nonfinite``), or else the optimizer update (``label``: the
    first pair that holds one)."""
    from parity.localize import first_nonfinite
    where = first_nonfinite(twins, before, X, y, seed + step)
    if where is None:
        where = f"{label} (forward and backward were finite: the optimizer update)"
    return f"a NaN or Inf first appeared at step {step}: {where}"


def _update_from_zero(twins, grads_t: dict) -> dict:
    """The update ``Δθ`` each optimizer would apply, measured on copies whose parameters are
    0 (state and gradients as in the real step): after ``θ ← θ + Δθ`` the float32
    parameter keeps ``Δθ`` only to the precision of ``|θ|``, so an error of 1e-4·Δθ is
    invisible in ``param`` when ``|Δθ| < 1e4·ulp(θ)``. From 0 it keeps full precision.
    (Weight decay's ``wd·θ`` vanishes here; ``param`` checks it.)"""
    names = {id(p): k for k, p in twins.torch_model.named_parameters()}
    t_opt, pairs = zero_copy(twins.torch_optimizer)
    t_opt.step()
    theirs = {names[id(o)]: c.detach().cpu().numpy().copy() for o, c in pairs}
    mine = zero_update(twins.numpy_optimizer,
                       transfer.to_numpy_layout(grads_t, twins.torch_model))
    return _zip(transfer.to_torch_layout(mine, twins.torch_model), theirs)


def zero_copy(optimizer: torch.optim.Optimizer) -> tuple[torch.optim.Optimizer, list]:
    """A torch optimizer of ``optimizer``'s class over zeros shaped like its parameters, each
    with a clone of the parameter's gradient and of its state, in param groups with the same
    options: ``(optimizer, [(original, copy), …])``. Built, not deep-copied: a deep copy of
    the whole optimizer cost 6× as much on a small net, and a constructor's own state (an
    Adagrad accumulator) is replaced by the clones."""
    pairs = [(p, torch.zeros_like(p)) for g in optimizer.param_groups for p in g["params"]]
    copies = {id(p): c for p, c in pairs}
    groups = [{**{k: v for k, v in g.items() if k != "params"},
               "params": [copies[id(p)] for p in g["params"]]} for g in optimizer.param_groups]
    build: Any = type(optimizer)       # a stock optimizer: its groups carry every option
    opt = build(groups)
    for p, c in pairs:
        if p.grad is not None:
            c.grad = p.grad.detach().clone()
        if p in optimizer.state:
            opt.state[c] = {k: v.clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)
                            for k, v in optimizer.state[p].items()}
    return opt, pairs


def zero_update(optimizer, grads: dict) -> dict:
    """``Δθ`` of one ``optimizer.step(grads)`` on a copy of a NumPy optimizer whose
    parameters are set to 0; by parameter name."""
    opt = copy.deepcopy(optimizer)
    for g in opt.param_groups:
        for p in g["params"].values():
            p[...] = 0
    opt.step(grads)
    return {k: p.copy() for g in opt.param_groups for k, p in g["params"].items()}


def _zip(mine: dict, theirs: dict) -> dict:
    return {k: (mine[k], theirs[k]) for k in theirs}


def _state_pairs(twins) -> dict:
    """Optimizer state by ``"{param}.{entry}"``: NumPy's (torch layout) against torch's. An
    entry torch keeps and NumPy lacks is paired with ``None`` (a failed check). Both are
    views, not copies (NumPy's transposed where its layout differs): the step judges them
    before either optimizer moves again."""
    lay = transfer.state_layouts(twins.torch_model)
    names = {id(p): k for k, p in twins.torch_model.named_parameters()}
    out = {}
    for p, st in twins.torch_optimizer.state.items():
        k = names[id(p)]
        mine = {sk: lay[k].torch_view(v)
                for sk, v in twins.numpy_optimizer.state.get(k, {}).items()}
        for sk, sv in st.items():
            out[f"{k}.{sk}"] = (mine.get(sk), sv.detach().cpu().numpy()
                                if isinstance(sv, torch.Tensor) else np.asarray(sv))
    return out


def _pairs(found: dict, step: int) -> list[Pair]:
    """``Pair``s labelled ``"step 2 grad 0.weight"``; groups share a scale (see judge)."""
    pairs = []
    for quantity, items in found.items():
        for key, (mine, theirs) in items.items():
            label = f"step {step} {quantity}" + (f" {key}" if key else "")
            if mine is None:
                mine = np.full(np.shape(theirs), np.nan)   # missing in NumPy: fails
                label += " (missing in the NumPy optimizer)"
            pairs.append(Pair(label, quantity, _group(quantity, key), step,
                              np.asarray(mine), np.asarray(theirs), key=key))
    return pairs


def _group(quantity: str, key: str) -> str:
    """Tensors of one kind share a scale: all gradients; each state entry (``exp_avg`` and
    ``exp_avg_sq`` differ by a square); each buffer kind."""
    if quantity in ("state", "buffer"):
        return f"{quantity}.{key.rsplit('.', 1)[-1]}"
    return quantity


def _eval_output(twins, X, seed: int) -> list[Check]:
    """Eval-mode outputs after the last step (running statistics, no dropout), judged with
    the float64 evaluation and σ only where the verdict needs them."""
    out_n, out_t = twins.predict(X)
    pair = Pair("eval output", "output", "output", None, out_n, out_t)
    r: dict = {}

    def run(m, p):
        return precise.predict(m, X, p)

    def evidence(pairs: list[Pair], sigma: bool) -> None:
        if not r:
            r["m64"] = precise.upcast(twins.numpy_model)[0]
            r["exact"] = precise.exact(r["m64"], run)
        if twins.dtype != "float64":
            pair.precise = r["exact"]
        if sigma:
            pair.noise = precise.sigma(r["m64"], run, r["exact"], SAMPLES, seed, twins.dtype)
    return judge_lazily([pair], twins.dtype, evidence)


def check_arrays(label: str, quantity: str, mine, theirs, dtype: str) -> Check:
    """Judge one tensor on its own (its group is itself): for callers outside a step, such as
    the trainer lockstep (``parity.lockstep``), whose tensors are parameters, buffers, losses
    and outputs with no structural zeros among them."""
    theirs = theirs.detach().cpu().numpy() if isinstance(theirs, torch.Tensor) else theirs
    return judge([Pair(label, quantity, quantity, None, np.asarray(mine),
                       np.asarray(theirs))], dtype)[0]
