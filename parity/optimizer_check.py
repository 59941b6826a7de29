"""Check a hand-written update rule against ``torch.optim``: ``compare_optimizers``.

Both sides start from the same parameters (float64, or float32) and take K steps on the
same gradients (drawn from a seeded generator, or the caller's). After every step the
parameters and the rule's state are judged with the project's rule (``parity.judge``; in
float32 against torch's rule run in float64 on the exactly upcast inputs, with the spread
of float32-sized rounding from ``parity.precise``). State is matched to torch's by name
(cs231n's ``m``, ``v``, ``t``, ``cache``, ``velocity``; the NNFS book's ``momentums``,
``cache``, ``iterations``; overridable), converted to the rule's units where its
convention differs (a velocity ``v = μ·v − lr·g`` is ``−lr`` times torch's momentum
buffer). The report names the first step and quantity that differ and, when the rule's
numbers match a known convention instead of torch's (``parity.optim_conventions``: Adam's
step counter one ahead, eps inside the square root, decay after momentum …), says which.

Rules come in three forms (``parity.update_rules``): ``plain_rule(fn)``, ``cs231n_rule(update,
config)`` and ``layer_rule(optimizer)``; a bare ``fn(params, grads) -> params`` is taken as
the first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from parity import inputs, kinds, precise
from parity import optim_conventions as conventions
from parity import tolerances as tol
from parity.judge import Check, Pair, judge
from parity.update_rules import UpdateRule, cs231n_rule, layer_rule, plain_rule

__all__ = ["STATE_NAMES", "OptimizerComparison", "UpdateRule", "compare_optimizers",
           "cs231n_rule", "layer_rule", "plain_rule"]

Convert = Callable[[np.ndarray, dict], np.ndarray]


def _velocity(buf: np.ndarray, options: dict) -> np.ndarray:
    """``v = μ·v − lr·g; θ ← θ + v`` keeps ``v = −lr·b``, ``b`` torch's momentum buffer."""
    return -options["lr"] * buf


# the rule's state name -> torch's entry (with a conversion to the rule's units), or None:
# not compared. cs231n: m, v, t, cache, velocity; NNFS book: momentums, cache, iterations.
STATE_NAMES: dict[str, dict[str, Any]] = {
    "sgd": {"velocity": ("momentum_buffer", _velocity),
            "momentums": ("momentum_buffer", _velocity), "iterations": None},
    "adam": {"m": "exp_avg", "v": "exp_avg_sq", "t": "step", "momentums": "exp_avg",
             "cache": "exp_avg_sq", "iterations": "step"},
    "rmsprop": {"cache": "square_avg", "iterations": "step"},
    "adagrad": {"cache": "sum", "iterations": "step"},
}
STATE_NAMES["adamw"] = STATE_NAMES["adam"]


@dataclass
class OptimizerComparison:
    """K steps of a rule against ``torch.optim``: one ``Check`` per parameter and matched
    state entry per step, ``hints`` naming conventions the rule's numbers match instead, and
    ``unmatched``: torch state entries no entry of the rule maps to (not compared)."""

    optimizer: str
    options: dict
    steps: int
    form: str
    checks: list[Check]
    hints: list[str]
    unmatched: list[str]
    dtype: str = "float64"

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def first(self) -> Check | None:
        """The first check that failed: the earliest step, parameters before state."""
        return next((c for c in self.checks if not c.passed), None)

    def report(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        head = (f"optimizer check ({self.form} rule) vs torch.optim {self.optimizer}({opts}), "
                f"{self.steps} steps, {self.dtype}: {'passed' if self.passed else 'FAILED'} "
                f"({sum(c.passed for c in self.checks)}/{len(self.checks)} checks)")
        lines = [head]
        if self.first is not None:   # the judge calls the first side NumPy: here the rule
            detail = self.first.detail.replace(": NumPy ", ": the rule ")
            lines.append(f"first difference: {detail or self.first.label}")
        lines += [f"hint: {h}" for h in self.hints]
        if self.unmatched:
            lines.append(f"not compared (no entry of the rule maps to them): "
                         f"{', '.join(self.unmatched)}")
        return "\n".join(lines)


def compare_optimizers(rule, torch_optimizer, params: Mapping, grads=None, *,
                       steps: int | None = None,
                       options: Mapping | None = None, state_names: Mapping | None = None,
                       seed: int = 0) -> OptimizerComparison:
    """``rule`` (an ``UpdateRule``, or a plain ``fn(params, grads) -> params``) against
    ``torch_optimizer`` (``"adam"`` or ``torch.optim.Adam``; ``options`` in torch's names)
    from ``params`` (``{name: array}``, all float64 or all float32; gradients are cast to
    that dtype) over ``steps`` steps of ``grads`` (a list of ``{name: array}``, one per step,
    ``steps`` its length; ``None``: ``steps`` (default 5) drawn from ``seed``,
    ``N(0, 1)·10^U(−3, 0)`` elementwise). ``state_names`` adds to or overrides
    ``STATE_NAMES`` (``{"mom": "exp_avg"}``, ``{"lr_t": None}`` to leave an entry out, or
    ``(torch_name, convert)``).

    Shapes: any per parameter (``{"w": (3, 2), "b": (2,)}``); each step's ``grads`` keyed and
    shaped like ``params``. Returns an ``OptimizerComparison``: ``passed``, ``checks`` (one per
    parameter and state entry per step), ``report()``, ``hints``.

    Example (plain SGD written by hand against ``torch.optim.SGD``)::

        >>> import numpy as np
        >>> import parity
        >>> def sgd(params, grads):
        ...     return {k: params[k] - 0.1 * grads[k] for k in params}
        >>> params = {"w": np.ones((3, 2)), "b": np.zeros(2)}
        >>> result = parity.compare_optimizers(sgd, "sgd", params, options={"lr": 0.1}, steps=3)
        >>> result.passed, len(result.checks)
        (True, 6)
    """
    kind = kinds.optimizer_kind_of(torch_optimizer)
    rule = rule if isinstance(rule, UpdateRule) else _callable_rule(rule)
    if steps is None:
        steps = len(grads) if isinstance(grads, Sequence) and not isinstance(grads, str) else 5
    steps = int(inputs.number(steps, "steps", *inputs.STEPS, integer=True))
    opts = _options(kind, options)
    p0 = _params(params)
    dtype = next(iter(p0.values())).dtype.name
    gs = _grads(grads, p0, steps, seed)
    names = {**STATE_NAMES.get(kind.name, {}), **dict(state_names or {})}
    theirs = _run_torch(kind, p0, gs, dict(options or {}))
    mine = _run_rule(rule, p0, gs)
    exact = None if dtype == "float64" else _float64_evaluation(kind, p0, gs, dict(options or {}))
    pairs, unmatched = _pairs(mine, theirs, names, opts, exact)
    checks = judge(pairs, dtype)
    result = OptimizerComparison(kind.name, dict(options or {}), steps, rule.form, checks, [],
                                 unmatched, dtype)
    if not result.passed:
        params_agree = all(c.passed for c in checks if c.quantity == "param")
        result.hints = (_state_hint() if params_agree
                        else _hints(kind.name, opts, p0, gs, mine[0], result.first, dtype))
    return result


def _state_hint() -> list[str]:
    return ["the parameters agree at every step, only state differs: an entry kept in other "
            "units or under another torch name (state_names=…)?"]


def _callable_rule(rule) -> UpdateRule:
    if not callable(rule):
        raise TypeError(f"rule: expected an UpdateRule or a function (params, grads) -> "
                        f"params, got {type(rule).__name__}")
    return plain_rule(rule)


def _options(kind, options) -> dict:
    """torch's defaults with ``options`` over them; only the record's option names."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(kind.defaults))
    if unknown:
        raise TypeError(f"options: {unknown} not options of {kind.name} "
                        f"(known: {sorted(kind.defaults)})")
    for k, v in options.items():
        for x in (v if isinstance(v, tuple | list) else (v,)):
            if not isinstance(x, bool):
                inputs.number(x, f"options {k}")
    return {**kind.defaults, **options}


def _params(params) -> dict[str, np.ndarray]:
    if not isinstance(params, Mapping) or not params:
        raise TypeError(f"params: expected a non-empty dict name -> array, got "
                        f"{type(params).__name__}")
    out = {str(k): inputs.array(v, f"params {k}") for k, v in params.items()}
    dtypes = sorted({a.dtype.name for a in out.values()})
    if len(dtypes) != 1 or dtypes[0] not in ("float64", "float32"):
        raise ValueError(f"params: all float64 or all float32, got {dtypes}")
    return out


def _grads(grads, p0: dict, steps: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``steps`` gradient dicts shaped like ``p0``: the caller's (checked) or drawn."""
    if grads is None:
        rng = np.random.default_rng(seed)
        return [{k: (rng.standard_normal(v.shape) * 10.0 ** rng.uniform(-3, 0, v.shape)
                     ).astype(v.dtype) for k, v in p0.items()} for _ in range(steps)]
    if isinstance(grads, Mapping | str) or not isinstance(grads, Sequence):
        raise TypeError(f"grads: expected a list of dicts (one per step), got "
                        f"{type(grads).__name__}")
    if len(grads) != steps:
        raise ValueError(f"grads: {len(grads)} steps of gradients for steps={steps}")
    out = []
    for i, g in enumerate(grads, 1):
        if not isinstance(g, Mapping) or set(g) != set(p0):
            raise ValueError(f"grads step {i}: expected the keys {sorted(p0)}, got "
                             f"{sorted(g) if isinstance(g, Mapping) else type(g).__name__}")
        d = {k: inputs.array(g[k], f"grads step {i} {k}").astype(p0[k].dtype) for k in p0}
        for k, v in d.items():
            if v.shape != p0[k].shape:
                raise ValueError(f"grads step {i} {k}: shape {v.shape}, parameter "
                                 f"{p0[k].shape}")
        out.append(d)
    return out


def _run_torch(kind, p0: dict, gs: list, options: dict):
    """torch's parameters and state (entry name -> array; ``step`` an int) after each step."""
    ts = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in p0.items()}
    opt = kind.build_torch([{"params": list(ts.values())}], **options)
    params, state = [], []
    for g in gs:
        for k, t in ts.items():
            t.grad = torch.from_numpy(g[k].copy())
        opt.step()
        params.append({k: t.detach().numpy().copy() for k, t in ts.items()})
        state.append({k: {e: _torch_value(e, v) for e, v in opt.state[t].items()}
                      for k, t in ts.items()})
    return params, state


def _torch_value(entry: str, v) -> np.ndarray:
    a = v.detach().numpy().copy() if isinstance(v, torch.Tensor) else np.asarray(v)
    return a.astype(np.int64) if entry == "step" else a   # a float tensor counting steps


def _run_rule(rule: UpdateRule, p0: dict, gs: list):
    """The rule's parameters and state after each step; its exceptions become one line."""
    cur = {k: v.copy() for k, v in p0.items()}
    params, state = [], []
    for i, g in enumerate(gs, 1):
        try:
            new = rule.step(cur, {k: v.copy() for k, v in g.items()})
            st = rule.state()
        except Exception as e:  # noqa: BLE001 — the user's code: reported, not a crash of ours
            raise ValueError(f"the rule raised at step {i}: {type(e).__name__}: "
                             f"{inputs.first_line(e)}") from e
        missing = sorted(set(p0) - set(new))
        if missing:
            raise ValueError(f"the rule returned no {missing} at step {i}")
        cur = {k: new[k] for k in p0}
        params.append({k: inputs.array(v, f"step {i} param {k}", finite=False)
                       for k, v in cur.items()})
        state.append({k: {e: np.array(v, copy=True) for e, v in entries.items()}
                      for k, entries in st.items()})
    return params, state


def _pairs(mine, theirs, names: dict, opts: dict, exact=None):
    """Per step: every parameter, then every state entry of the rule that maps to torch's;
    below float64 each with its float64 evaluation and spread (``exact``)."""
    pairs, compared = [], set()
    (my_p, my_st), (their_p, their_state) = mine, theirs
    for i, (p, st, tp, tst) in enumerate(zip(my_p, my_st, their_p, their_state), 1):
        for k in tp:
            pairs.append(Pair(f"step {i} param {k}", "param", "param", i, p[k], tp[k],
                              *_precise(exact, i, "params", k, None, None, opts)))
        for k, entries in st.items():
            for entry, value in entries.items():
                target = _target(names, entry, k, tst.get(k, {}))
                if target is None:
                    continue
                torch_name, convert = target
                if torch_name not in tst.get(k, {}):
                    raise ValueError(f"state {k}.{entry} maps to torch's {torch_name}, which "
                                     f"torch keeps no such entry for with these options")
                want = tst[k][torch_name]
                compared.add((k, torch_name))
                pairs.append(Pair(f"step {i} state {k}.{entry} (torch {torch_name})", "state",
                                  f"state.{torch_name}", i, value,
                                  convert(want, opts) if convert else want,
                                  *_precise(exact, i, "state", k, torch_name, convert, opts)))
    unmatched = sorted({f"{k}.{e}" for k, st in their_state[-1].items() for e in st
                        if (k, e) not in compared})
    return pairs, unmatched


def _float64_evaluation(kind, p0: dict, gs: list, options: dict) -> dict:
    """Below float64: torch's rule in float64 from the exactly upcast parameters and
    gradients (``"params"``/``"state"`` per step), and ``"runs"``: the reference rule
    (``reference.optim``) in float64 ``SAMPLES`` times with every parameter, gradient and
    state entry moved by float32-sized rounding at every step (``parity.precise``)."""
    up = {k: v.astype(np.float64) for k, v in p0.items()}
    g64 = [{k: v.astype(np.float64) for k, v in g.items()} for g in gs]
    ref_params, ref_state = _run_torch(kind, up, g64, options)
    rng = np.random.default_rng(0)
    runs = []
    for _ in range(tol.SAMPLES):
        perturb = precise.rounding(rng)
        p = {k: v.copy() for k, v in up.items()}
        opt = kind.build_numpy([{"params": p}], **options)
        steps = []
        for g in g64:
            for v in p.values():
                v[...] = perturb(v)
            for st in opt.state.values():
                st.update({e: perturb(v) for e, v in st.items()})
            opt.step({k: perturb(v) for k, v in g.items()})
            steps.append(({k: v.copy() for k, v in p.items()},
                          {k: {e: np.array(v, copy=True) for e, v in st.items()}
                           for k, st in opt.state.items()}))
        runs.append(steps)
    return {"params": ref_params, "state": ref_state, "runs": runs}


def _precise(exact, step: int, side: str, key: str, entry, convert, opts) -> tuple:
    """``(float64 evaluation, spread σ)`` of one compared tensor, or ``()`` in float64."""
    if exact is None:
        return ()
    conv = (lambda v: convert(v, opts)) if convert else (lambda v: v)
    pick = ((lambda d: d[key]) if side == "params" else (lambda d: d[key][entry]))
    i = 0 if side == "params" else 1
    r = conv(np.asarray(pick(exact[side][step - 1]), dtype=np.float64))
    sigma = max(float(np.max(np.abs(conv(np.asarray(pick(run[step - 1][i]), dtype=np.float64))
                                    - r), initial=0.0)) for run in exact["runs"])
    return r, sigma


def _target(names: dict, entry: str, key: str, torch_entries: dict):
    """(torch entry, conversion or None) for the rule's ``entry``, None if left out; an
    entry named as torch names it maps to itself."""
    if entry not in names and entry in torch_entries:
        return entry, None
    if entry not in names:
        raise ValueError(f"state {key}.{entry}: unknown state name {entry!r}; map it to a "
                         f"torch entry with state_names={{{entry!r}: 'exp_avg'}} or leave it "
                         f"out with {{{entry!r}: None}}")
    t = names[entry]
    return None if t is None else (t, None) if isinstance(t, str) else tuple(t)


def _hints(kind: str, opts: dict, p0: dict, gs: list, mine: list, first: Check | None,
           dtype: str = "float64"):
    """Each known convention whose rule (float64) reproduces the rule's parameters at every
    step, within the table of ``dtype``."""
    hints = []
    for name, what in conventions.CONVENTIONS.get(kind, {}).items():
        ref = conventions.run(kind, name, p0, gs, opts)
        pairs = [Pair(f"step {i} param {k}", "param", "param", i, p[k], r[k])
                 for i, (p, r) in enumerate(zip(mine, ref), 1) for k in p]
        if all(c.passed for c in judge(pairs, dtype)):
            hints.append(f"the rule matches torch's {kind} with the {name}: {what}")
    if not hints and first is not None and _step_of(first) > 1:
        hints.append("step 1 agrees: the difference is in state carried between steps "
                     "(momentum buffer, moments, step counter)")
    return hints


def _step_of(check: Check) -> int:
    return int(check.label.split()[1])
