"""The float64 evaluation of one compared step and its spread σ, computed on demand.

``parity.compare`` records a step's pairs and ``parity.judge.judge_lazily`` asks for evidence
only for the pairs whose verdict needs it. A step has three evaluations (``parity.precise``),
each run once exactly and, for σ, ``SAMPLES`` times perturbed: the training forward and
backward (loss, gradients, buffers, penalty), the update from the step's parameters (the
parameters and optimizer state after it) and the update from zero parameters (``update``).
Only the evaluations that hold a needed pair's quantity are run, each at most once; each has
its own seed, so a σ computed alone is the σ computed with the others. The forward
evaluation keeps every layer's output and input gradient: ``parity.localize`` judges a failed
step 1 layer by layer against them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np

from parity import kinds, precise, reference, transfer
from parity.judge import Pair
from parity.tolerances import SAMPLES

__all__ = ["StartState", "StepEvidence"]

# evaluation → (the quantities it holds, its seed's offset from the step's seed)
EVALUATIONS = {"forward": (("loss", "grad", "buffer", "penalty"), 0),
               "update": (("param", "state"), 1_000_003),
               "zero": (("update",), 2_000_003)}


class StartState:
    """The NumPy twin's state at a step's start, kept in its own dtype: ``state`` (its
    ``state_dict`` copies) and a shallow copy of ``optimizer`` (param groups, state entries
    copied). ``upcast()`` makes the float64 copies only when an evaluation needs them, once
    (the optimizer's only for an update): a step that the table decides never pays for them."""

    def __init__(self, model, optimizer, state: dict):
        self.model, self.state = model, state
        self.optimizer = copy.copy(optimizer)
        self.optimizer.param_groups = [dict(g) for g in optimizer.param_groups]
        self.optimizer.state = {k: {sk: v.copy() if isinstance(v, np.ndarray) else copy.copy(v)
                                    for sk, v in st.items()}
                                for k, st in optimizer.state.items()}
        self._m64: reference.Sequential | None = None
        self._o64 = None

    def upcast(self, optimizer: bool = True) -> tuple:
        """``(model, optimizer)`` in float64 at the step's start: a copy of the model (its
        layers as they are, without their caches) with ``state`` loaded, upcast, and with
        ``optimizer`` a copy of the optimizer bound to it (else ``None``). Each is made
        once, when first asked for: the forward evaluation never pays for the optimizer's."""
        m64 = self._m64
        if m64 is None:
            m64 = copy.deepcopy(self.model, _bare(self.model))
            m64.load_state_dict(self.state)
            for layer in m64.layers:
                layer.to_dtype(np.float64)
            self._m64 = m64
        if optimizer and self._o64 is None:
            self._o64 = precise.upcast_optimizer(m64, self.optimizer)
        return m64, self._o64 if optimizer else None


def _bare(model) -> dict:
    """A ``deepcopy`` memo that gives each layer of the copy empty ``saved`` and ``grads``:
    the last forward's caches and gradients, which every evaluation makes anew. Without
    them each of σ's per-sample copies holds only parameters, buffers and optimizer state
    (for the catalogue's small nets the caches were most of a copy)."""
    return {id(d): {} for layer in model.layers for d in (layer.saved, layer.grads)}


def _forward_copy(start: tuple) -> tuple:
    """What the forward evaluation may change, copied: the model's buffers (a training
    forward updates running statistics) and its layers' caches; the parameters, which a
    forward and backward only read, are shared with ``start``, and the optimizer (unused)
    is left out. Per σ sample this saves a copy of the parameters and the optimizer state:
    ≈ 3× the float64 parameter bytes with Adam."""
    model = start[0]
    memo = {id(a): a for a in model.parameters().values()}
    memo.update(_bare(model))
    return copy.deepcopy(model, memo), None


# evaluation → how a run gets its own copy of the start (``precise.exact``/``sigma``'s fresh)
_FRESH: dict[str, Callable[[tuple], tuple]] = {
    "forward": _forward_copy, "update": copy.deepcopy, "zero": copy.deepcopy}


class StepEvidence:
    """The evidence of one step of ``twins`` from ``start`` (``StartState``: the NumPy
    twin's state at the step's start, upcast when first needed), with torch's dropout
    ``masks`` and gradients ``grads_t``; ``seed`` the step's. ``attach(pairs, sigma)`` is
    ``judge_lazily``'s ``evidence``: below float64 it sets each pair's ``precise``, with
    ``sigma`` its ``noise``; in float64 only ``noise`` (the evaluation is no more precise
    than the twins)."""

    def __init__(self, twins, start: StartState, X, y, masks: dict, grads_t: dict, seed: int):
        self.twins, self.start, self.X, self.y, self.masks = twins, start, X, y, masks
        self.grads_t = grads_t
        self.seed = seed
        self._exact: dict[str, dict] = {}
        self._sigma: dict[str, dict] = {}
        self._grads: dict | None = None

    @property
    def grads(self) -> dict:
        """torch's gradients in NumPy layout, made when an update evaluation first runs."""
        if self._grads is None:
            self._grads = transfer.to_numpy_layout(self.grads_t, self.twins.torch_model)
        return self._grads

    def attach(self, pairs: list[Pair], sigma: bool) -> None:
        names = {name for p in pairs for name, (qs, _) in EVALUATIONS.items()
                 if p.quantity in qs}
        for name in sorted(names):
            ref = self._leaves(name, self.exact(name))
            sig = self._leaves(name, self.sigma(name)) if sigma else {}
            for p in pairs:
                if p.quantity in ref and p.key in ref[p.quantity]:
                    if self.twins.dtype != "float64":
                        p.precise = self._layout(p.quantity, p.key).torch_view(
                            ref[p.quantity][p.key])
                    if sigma:
                        p.noise = sig[p.quantity][p.key]

    def exact(self, name: str) -> dict:
        if name not in self._exact:
            self._exact[name] = precise.exact(self._start(name), self._run(name),
                                              _FRESH[name])
        return self._exact[name]

    def sigma(self, name: str) -> dict:
        if name not in self._sigma:
            self._sigma[name] = precise.sigma(
                self._start(name), self._run(name), self.exact(name), SAMPLES,
                self.seed + EVALUATIONS[name][1], self.twins.dtype, _FRESH[name])
        return self._sigma[name]

    def _start(self, name: str) -> tuple:
        return self.start.upcast(optimizer=name != "forward")

    def _run(self, name: str):
        twins = self.twins

        def forward(s, perturb):
            out = precise.forward_backward(s[0], copy.copy(twins.numpy_loss), self.X, self.y,
                                           self.masks, perturb, layers=True)
            if twins.penalty_keys:
                out["penalty"] = float(perturb(np.float64(
                    twins.numpy_penalty(s[0].parameters()))))
            return out

        def update(s, perturb):
            return precise.update(s[0], s[1], self.grads, perturb)

        def zero(s, perturb):
            for arr in s[0].parameters().values():
                arr[...] = 0
            return precise.update(s[0], s[1], self.grads, perturb)
        return {"forward": forward, "update": update, "zero": zero}[name]

    def _leaves(self, name: str, tree: dict) -> dict:
        """``{quantity: {key: leaf}}`` of one evaluation's result (or its σ), keys as the
        pairs name them (torch's), leaves as they are (NumPy layout: ``_layout`` moves the
        one a pair takes, so an evaluation's other tensors are never copied)."""
        if name == "forward":
            out = {"loss": {"": tree["loss"]}, "grad": tree["grads"],
                   "buffer": tree["buffers"]}
            if "penalty" in tree:
                out["penalty"] = {"": tree["penalty"]}
            return out
        if name == "zero":
            return {"update": tree["params"]}
        state = {f"{k}.{sk}": v for k, st in tree["state"].items() for sk, v in st.items()}
        return {"param": tree["params"], "state": state}

    def _layout(self, quantity: str, key: str) -> kinds.Layout:
        """The layout of a pair's tensor: a parameter's (its gradient, update and value), a
        state entry's parameter's (``"0.weight.exp_avg"``), none for a loss or a buffer
        (``parity.transfer``)."""
        if quantity == "state":
            return transfer.state_layouts(self.twins.torch_model)[key.rsplit(".", 1)[0]]
        if quantity in ("grad", "param", "update"):
            return kinds.layouts(self.twins.torch_model).get(key, kinds.SAME)
        return kinds.SAME
