"""The first layer where the twins disagree (Polygraphy's idea, extended to the backward pass).

One training forward and backward of step 1 is run layer by layer on both twins from the
same weights, batch and dropout masks, and every intermediate is judged by the one rule
(``parity.judge``; below float64 against the float64 evaluation of the same step, as
``parity.compare`` does):

- forward, in forward order: the output of layer ``i`` (``x_{i+1} = layer_i(x_i)``);
- backward, in backward order: for ``i`` from the last layer to the first, the gradient of
  the loss with respect to the layer's input (``dL/dx_i``) and its parameter gradients.

The first layer whose output disagrees is where a forward bug lives; the first layer (from the
loss backwards) whose input or parameter gradient disagrees is where a backward bug lives —
every layer before it then inherits the wrong upstream gradient, so the parameter gradients
that disagree are listed as what the bug affects.

It is run only where the comparison failed (``after``): from the state the twins started
from, with the float64 evaluation and its spread σ computed only where a verdict needs them
(``parity.judge.judge_lazily``).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from parity import precise, transfer
from parity.judge import Check, Pair, judge_lazily
from parity.masks import DropoutMaskRecorder
from parity.runtime import seed_torch
from parity.tolerances import SAMPLES
from parity.twins import device_of

__all__ = ["LayerFinding", "Localization", "localize"]


@dataclass
class LayerFinding:
    """One disagreeing tensor: layer ``index`` (its ``kind``), ``what`` (``output``,
    ``input gradient`` or ``grad 2.weight``), the worst differences and both shapes."""

    index: int | str
    kind: str
    what: str
    max_abs: float
    max_rel: float
    shape_numpy: tuple
    shape_torch: tuple
    rule: str

    def describe(self) -> str:
        shapes = (f"shape {self.shape_numpy}" if self.shape_numpy == self.shape_torch else
                  f"shapes {self.shape_numpy} (NumPy) vs {self.shape_torch} (torch)")
        return (f"layer {self.index} ({self.kind}) {self.what}: max abs {self.max_abs:.3g}, "
                f"max rel {self.max_rel:.3g}, {shapes} [{self.rule}]")


@dataclass
class Localization:
    """``forward``: the first layer whose output disagrees (or None); ``backward``: the first
    layer, from the loss backwards, whose input or parameter gradient disagrees (or None);
    ``affected``: every parameter gradient that disagrees, in backward order; ``consistent``:
    when only parameter gradients were compared (``compare_functions`` without outputs), the
    places a gradient-only finding is consistent with, instead of one layer named wrongly."""

    forward: LayerFinding | None = None
    backward: LayerFinding | None = None
    affected: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list, repr=False)
    scope: str = "every output, input gradient and parameter gradient"
    consistent: list[str] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return self.forward is None and self.backward is None

    @property
    def cause(self) -> str | None:
        """``"forward"`` when an output disagrees (every later difference follows from it),
        ``"backward"`` when only gradients do, ``None`` when everything agrees."""
        return "forward" if self.forward else "backward" if self.backward else None

    def lines(self) -> list[str]:
        if self.agrees:
            return [f"  layer by layer (step 1): {self.scope} agrees"]
        out = []
        if self.forward:
            f = self.forward
            out.append(f"  first disagreeing layer, forward order: {f.describe()}")
            out.append(f"  likely cause: the forward pass of layer {f.index} ({f.kind}); the "
                       f"later outputs, the loss and the gradients inherit its difference")
        if self.backward and not self.consistent:
            after = " (follows from the forward difference)" if self.forward else ""
            out.append(f"  first disagreeing layer, backward order: "
                       f"{self.backward.describe()}{after}")
        if self.consistent:
            out.append(f"  gradient-only finding, first in backward order "
                       f"{self.backward.describe() if self.backward else ''}; consistent "
                       f"with: {'; or '.join(self.consistent)}")
        if self.affected:
            out.append(f"  parameter gradients that disagree: {', '.join(self.affected)}")
        return out

    def to_json(self) -> dict:
        return {"forward": asdict(self.forward) if self.forward else None,
                "backward": asdict(self.backward) if self.backward else None,
                "affected": self.affected, "cause": self.cause,
                "consistent_with": self.consistent}


# ---- the NumPy side, layer by layer (with perturbations: the float64 evaluation's spread)

def numpy_layers(model, loss, X, y, masks: dict, perturb=precise._identity,
                 dtype=np.float64) -> dict:
    """``{"output": {i: x_{i+1}}, "input_grad": {i: dL/dx_i}, "grad": {key: array}}`` of one
    training forward/backward: ``parity.precise.forward_backward`` itself, so the spread σ is
    the one the verdicts use; the batch in ``dtype``. NumPy layout."""
    r = precise.forward_backward(model, loss, X, y, masks, perturb, dtype, layers=True)
    return {"output": r["output"], "input_grad": r["input_grad"], "grad": r["grads"]}


# ---- the torch side

def torch_layers(model, loss, X, targets, seed: int) -> tuple[dict, dict]:
    """Torch's intermediates of the same step (``model`` is a private copy: in-place
    activations are switched off so each output survives) and the dropout masks it drew."""
    for m in model:
        if getattr(m, "inplace", False):
            m.inplace = False
    recorder = DropoutMaskRecorder(model)
    try:
        with torch.random.fork_rng(devices=[]):
            seed_torch(seed)
            model.train()
            x = torch.from_numpy(np.array(X)).to(device_of(model)).requires_grad_(True)
            ins, outs = [], []
            for m in model:
                ins.append(x)
                x = m(x)
                x.retain_grad()
                outs.append(x)
            loss(x, targets).backward()
    finally:
        recorder.remove()
    got = {"output": {i: o.detach().cpu().numpy().copy() for i, o in enumerate(outs)},
           "input_grad": {i: t.grad.detach().cpu().numpy().copy() for i, t in enumerate(ins)
                          if t.grad is not None},
           "grad": {k: p.grad.detach().cpu().numpy().copy() for k, p in model.named_parameters()
                    if p.grad is not None}}
    return got, recorder.take()


# ---- judging and reading off the first layer

def _pairs(mine: dict, theirs: dict, kinds: list[str]) -> tuple[list[Pair], list[tuple]]:
    """The pairs, and where each one's float64 evaluation sits: ``(group, key)``."""
    pairs, where = [], []
    for group, quantity in (("output", "output"), ("input_grad", "grad"), ("grad", "grad")):
        for key, b in theirs[group].items():
            what = {"output": "output", "input_grad": "input gradient"}.get(group, f"grad {key}")
            i = key if isinstance(key, int) else int(key.split(".")[0])
            pairs.append(Pair(f"step 1 layer {i} ({kinds[i]}) {what}", quantity, group, 1,
                              np.asarray(mine[group][key]), b))
            where.append((group, key))
    return pairs, where


def label_parts(label: str) -> tuple[int, str, str]:
    """``(layer, kind, what)`` of a label ``_pairs`` wrote: ``"step 1 layer 2 (ReLU) input
    gradient"`` → ``(2, "ReLU", "input gradient")``."""
    words = label.split()
    return int(words[3]), words[4].strip("()"), label.split(") ", 1)[1]


def _finding(pair: Pair, check: Check, kinds: list[str]) -> LayerFinding:
    i, _, what = label_parts(pair.label)
    return LayerFinding(i, kinds[i], what, check.max_abs, check.max_rel,
                        tuple(np.shape(pair.mine)), tuple(np.shape(pair.theirs)), check.rule)


def read_off(pairs: list[Pair], checks: list[Check], kinds: list[str]) -> Localization:
    """The first failing output in forward order, the first failing gradient in backward order
    (per layer: its input gradient, then its parameter gradients)."""
    loc = Localization(checks=checks)
    failed = [(p, c) for p, c in zip(pairs, checks) if not c.passed]
    outputs = sorted((p for p, _ in failed if p.group == "output"), key=_layer_of)
    if outputs:
        loc.forward = _finding(outputs[0], _check_of(outputs[0], pairs, checks), kinds)
    grads = [p for p, _ in failed if p.group != "output"]
    grads.sort(key=lambda p: (-_layer_of(p), p.group != "input_grad"))
    if grads:
        loc.backward = _finding(grads[0], _check_of(grads[0], pairs, checks), kinds)
    loc.affected = [p.label.split("grad ", 1)[1] for p in grads if p.group == "grad"]
    return loc


def _layer_of(p: Pair) -> int:
    return label_parts(p.label)[0]


def _check_of(p: Pair, pairs: list[Pair], checks: list[Check]) -> Check:
    return checks[next(j for j, q in enumerate(pairs) if q is p)]


def start_state(twins) -> dict:
    """The NumPy twin's ``state_dict`` (copies) before a comparison steps the twins: the
    state ``after`` localizes from."""
    return twins.numpy_model.state_dict()


def after(comparison, twins, X, y, seed: int, state: dict | None, kept: dict | None = None
          ) -> Localization:
    """``localize`` from ``state`` (``start_state`` of the twins before ``comparison`` ran;
    ``None``: step 1's start kept in ``kept``, the same state, not copied twice) when
    ``comparison`` failed; when every check passed there is nothing to localize, and the
    localization says that everything agrees. ``kept``: the comparison's evidence by step
    (``compare_twins(kept=...)``), whose step 1 float64 evaluation and σ it reuses."""
    if comparison.passed:
        return Localization()
    evidence = (kept or {}).get(1)
    if state is None:
        if evidence is None:
            raise ValueError("localize.after: no state and no kept step 1 to start from")
        state = evidence.start.state
    return localize(twins, X, y, seed, state, evidence)


def localize(twins, X, y, seed: int = 0, state: dict | None = None,
             evidence=None) -> Localization:
    """Layer-by-layer verdicts of step 1 of ``twins`` (``parity.twins.Twins``, left untouched:
    copies run) on the batch ``(X, y)``; torch's dropout masks from ``seed`` as in
    ``parity.compare.compare_twins``. ``state``: the NumPy state (``start_state``) both
    copies start from, when the twins have stepped since (their weights are equal at the
    start: ``Twins.sync_weights``). ``evidence``: the comparison's step 1
    (``parity.step_evidence.StepEvidence``, the same start, batch and masks), whose forward
    evaluation and σ serve here instead of running them again."""
    np_model, t_model = copy.deepcopy(twins.numpy_model), copy.deepcopy(twins.torch_model)
    if state is not None:
        np_model.load_state_dict(state)
        transfer.numpy_to_torch(np_model, t_model)
    X = np.asarray(X, dtype=np.dtype(twins.dtype))
    theirs, masks = torch_layers(t_model, twins.torch_loss, X, twins.torch_targets(y), seed)
    start = precise.upcast(np_model)[0] if twins.dtype != "float64" else None
    mine = numpy_layers(np_model, copy.copy(twins.numpy_loss), X, y, masks, dtype=X.dtype)
    mine["grad"] = transfer.to_torch_layout(mine["grad"], t_model)
    kinds = [type(m).__name__ for m in twins.numpy_model.layers]
    pairs, where = _pairs(mine, theirs, kinds)
    found: dict = {}

    def run(m, p):
        out = numpy_layers(m, copy.copy(twins.numpy_loss), X, y, masks, p)
        return {**out, "grad": transfer.to_torch_layout(out["grad"], t_model)}

    def attach(some: list[Pair], sigma: bool) -> None:
        if start is None:
            return        # float64: the table alone, as the comparison's own first verdict
        if "exact" not in found:
            found["exact"] = (_layers(evidence.exact("forward"), t_model) if evidence else
                              precise.exact(start, run))
        if sigma and "sigma" not in found:    # as compare judges them
            found["sigma"] = (_layers(evidence.sigma("forward"), None) if evidence else
                              precise.sigma(start, run, found["exact"], SAMPLES, seed))
        ids = {id(q) for q in some}
        for p, (group, key) in zip(pairs, where):
            if id(p) in ids:
                p.precise = found["exact"][group][key]
                p.noise = found["sigma"][group][key] if sigma else None
    return read_off(pairs, judge_lazily(pairs, twins.dtype, attach), kinds)


def _layers(forward: dict, t_model) -> dict:
    """``numpy_layers``'s groups of a ``parity.precise.forward_backward(layers=True)`` result
    (or of its σ, ``t_model=None``), parameter gradients in torch layout."""
    grads = forward["grads"] if t_model is None else transfer.to_torch_layout(
        forward["grads"], t_model)
    return {"output": forward["output"], "input_grad": forward["input_grad"], "grad": grads}


# ---- where a NaN or Inf first appears ---------------------------------------------------------

def first_nonfinite(twins, state: dict, X, y, seed: int) -> str | None:
    """The first place one training step from NumPy ``state`` (``state_dict`` keys, NumPy
    layout) makes a NaN or Inf in either twin: a layer's output in forward order, else a
    layer's input or parameter gradient in backward order (``"layer 2 (Linear) output,
    forward: torch"``); ``None`` when forward and backward stay finite. Both twins run
    layer by layer on copies, with torch's dropout masks from ``seed`` handed to NumPy."""
    np_model, t_model = copy.deepcopy(twins.numpy_model), copy.deepcopy(twins.torch_model)
    np_model.load_state_dict(state)
    transfer.numpy_to_torch(np_model, t_model)
    X = np.asarray(X, dtype=np.dtype(twins.dtype))
    with np.errstate(all="ignore"):
        theirs, masks = torch_layers(t_model, twins.torch_loss, X, twins.torch_targets(y), seed)
        try:
            mine = numpy_layers(np_model, copy.copy(twins.numpy_loss), X, y, masks, dtype=X.dtype)
        except (ValueError, FloatingPointError):   # a loss that refuses a NaN input
            mine = {"output": {}, "input_grad": {}, "grad": {}}
    kinds = [type(m).__name__ for m in twins.numpy_model.layers]
    mine["grad"] = transfer.to_torch_layout(mine["grad"], t_model)
    order = [("output", i, "output, forward") for i in sorted(theirs["output"])]
    for i in sorted(theirs["output"], reverse=True):
        order.append(("input_grad", i, "input gradient, backward"))
        order += [("grad", k, f"grad {k}, backward") for k in theirs["grad"]
                  if int(k.split(".")[0]) == i]
    for group, key, what in order:
        sides = [name for name, got in (("NumPy", mine), ("torch", theirs))
                 if key in got[group] and not np.isfinite(got[group][key]).all()]
        if sides:
            i = key if isinstance(key, int) else int(key.split(".")[0])
            return f"layer {i} ({kinds[i]}) {what} ({' and '.join(sides)})"
    return None
