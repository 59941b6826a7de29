"""The public API: check *your* NumPy model against *your* torch model.

``compare_models`` pairs any ``reference.Sequential`` with any ``nn.Sequential`` (or a
module whose forward is a chain of layers: ``parity.chain`` makes it one) and runs
``steps`` training steps of both from identical weights, batch and dropout masks
(``parity.compare.compare_twins``): the losses, every gradient, the update, the parameters
after it, the optimizer state and the buffers are judged by the one tolerance rule
(``parity.judge``), and ``parity.localize`` names the first layer that disagrees.
``compare_functions`` does the same for a learner's plain-NumPy
``loss_and_grads(params, X, y) -> (loss, grads)`` (cs231n style) against a torch model.
Neither touches the models it is given: it works on copies.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import get_args

import numpy as np
import torch
from torch import nn

from parity import (
    chain,
    conventions,
    convert,
    function_twins,
    inputs,
    kinds,
    localize,
    reference,
    transfer,
)
from parity import twins as twins_mod
from parity.compare import Comparison, compare_twins
from parity.dtypes import DTYPES, check_dtype
from parity.fileio import atomic_write_bytes
from parity.legend import legend
from parity.runtime import check_seed
from parity.twins import OptimSpec
from parity.types import (
    DtypeName,
    Examples,
    LossName,
    Masks,
    OptimizerName,
    Reduction,
    RunningVar,
    Weights,
)

__all__ = ["TwinsReport", "assert_twins_close", "compare_functions", "compare_models"]

_TORCH = {"float32": torch.float32, "float64": torch.float64}
MAX_FAIL_LINES = 12


@dataclass
class TwinsReport:
    """What ``compare_models``/``compare_functions`` found: ``comparison`` (every ``Check``,
    the losses, the evidence arrays), ``localization`` (the first disagreeing layer, forward
    and backward), ``notes`` (how names and layouts were matched, what was synchronized) and
    ``names`` (torch ``state_dict`` key → your name, for ``compare_functions``).

    ``passed`` is True when every check passed; ``checks`` lists them (one ``Check`` per
    tensor and step: ``label`` such as ``"step 2 grad 0.weight"``, ``quantity``, max
    abs/rel difference, the rule that decided, ``passed``); ``report()`` is the
    mine-vs-torch table; ``to_json()`` the same as a dict; ``save(dir)`` writes the evidence.

    Example::

        >>> import numpy as np, torch
        >>> from torch import nn
        >>> import parity
        >>> from parity import reference as R
        >>> _ = torch.manual_seed(0)
        >>> torch_net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).double()
        >>> numpy_net = R.Sequential(R.Linear(4, 8), R.ReLU(), R.Linear(8, 3))  # W: (in, out)
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)   # (N, D), (N,)
        >>> report = parity.compare_models(numpy_net, torch_net, X, y, loss="cross_entropy",
        ...                                weights="torch")
        >>> report.passed, report.checks[0].label
        (True, 'step 1 loss')
        >>> print(report.report().splitlines()[0])
        your model [float64, seed 0, 1 step(s)]: passed
        >>> sorted(report.to_json())[:4]
        ['dtype', 'failures', 'hints', 'judged_by']
    """

    comparison: Comparison
    localization: localize.Localization
    notes: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    hints: list[str] = field(default_factory=list)   # a failure that matches a convention

    @property
    def passed(self) -> bool:
        return self.comparison.passed

    @property
    def checks(self) -> list:
        return self.comparison.checks

    def failures(self) -> list:
        return self.comparison.failures()

    def report(self) -> str:
        """Mine-vs-torch: the verdict, the losses, one row per quantity, the first
        disagreeing layer, the failed checks (numbers printed as numbers)."""
        c = self.comparison
        lines = [f"{c.model} [{c.dtype}, seed {c.seed}, {c.steps} step(s)]: "
                 f"{'passed' if c.passed else 'FAILED'}",
                 f"  loss  numpy {_num(c.loss_numpy[0])}  torch {_num(c.loss_torch[0])}",
                 *c.quantity_rows(),
                 *legend({x.rule for x in c.checks}, {x.quantity for x in c.checks}),
                 *self.localization.lines(), *(f"  hint: {h}" for h in self.hints),
                 *(f"  note: {n}" for n in self.notes)]
        fails = c.failures()
        for f in fails[:MAX_FAIL_LINES]:
            lines.append(f"  FAIL {f.detail}" if f.rule == "finite" else
                         f"  FAIL {f.label}: max abs {f.max_abs:.3g}, max rel {f.max_rel:.3g} "
                         f"(rtol {f.rtol:g}, atol {f.atol:g}, decided by {f.rule})")
        if len(fails) > MAX_FAIL_LINES:
            lines.append(f"  … and {len(fails) - MAX_FAIL_LINES} more failed checks (--json)")
        return "\n".join(lines)

    __str__ = report

    def to_json(self) -> dict:
        return {**self.comparison.to_json(), "localization": self.localization.to_json(),
                "notes": self.notes, "names": self.names, "hints": self.hints}

    def save(self, directory: str) -> None:
        """The evidence arrays as ``.npz`` and this report's JSON as ``summary.json``."""
        from parity.fileio import json_text
        self.comparison.save(directory)
        atomic_write_bytes(f"{directory}/summary.json",
                           json_text(self.to_json(), indent=2).encode())


def _num(v) -> str:
    """A float as its shortest round-trip text (``1.2151``, never ``np.float64(1.2151)``)."""
    return repr(float(v))


# ---- inputs ------------------------------------------------------------------------------------

def _float_dtype(arrays, who: str) -> str:
    found = {np.dtype(a.dtype).name for a in arrays if np.dtype(a.dtype).kind == "f"}
    if len(found) != 1 or not found <= set(DTYPES):
        raise TypeError(f"{who}: parameters must all be float32 or all float64, got "
                        f"{sorted(found) or 'no float parameters'}")
    return found.pop()


def _numpy_dtype(model: reference.Sequential) -> str:
    return _float_dtype(model.state_dict().values(), "the NumPy model")


def _torch_dtype(model: nn.Module) -> str:
    return _float_dtype([t.detach().cpu().numpy() for t in model.state_dict().values()],
                        "the torch model")


def _cast_numpy(model: reference.Sequential, dtype: str) -> reference.Sequential:
    """A copy of ``model`` in ``dtype`` (float parameters and buffers cast)."""
    m = copy.deepcopy(model)
    for layer in m.layers:
        layer.to_dtype(dtype)
    return m


def _check_pair(np_model, t_model) -> None:
    """Same layers (kind by kind), same ``state_dict`` keys, shapes that agree up to each
    kind's layout; ``TypeError``/``ValueError`` naming the layer or key otherwise."""
    if not isinstance(np_model, reference.Sequential):
        raise TypeError(f"numpy_model: expected a reference.Sequential, got "
                        f"{type(np_model).__name__}")
    if not isinstance(t_model, nn.Sequential):
        raise TypeError(f"torch_model: expected an nn.Sequential or a module whose forward is "
                        f"a chain of layers, got {type(t_model).__name__}")
    inputs.torch_module(t_model)
    if len(np_model.layers) != len(t_model):
        raise ValueError(f"the NumPy model has {len(np_model.layers)} layers, the torch model "
                         f"{len(t_model)}")
    for i, (a, b) in enumerate(zip(np_model.layers, t_model)):
        want = convert.torch_type_of(a)
        if want is not None and type(b) is not want:
            raise ValueError(f"layer {i}: NumPy {type(a).__name__} vs torch {type(b).__name__}")
    mine = np_model.state_dict()
    theirs = {k: tuple(v.shape) for k, v in t_model.state_dict().items()}
    missing, extra = sorted(set(theirs) - set(mine)), sorted(set(mine) - set(theirs))
    if missing or extra:
        raise ValueError(f"state_dict keys differ: torch only {missing}, NumPy only {extra}")
    layouts = kinds.layouts(t_model)
    for k, v in mine.items():
        layout = layouts.get(k, kinds.SAME)
        shape = layout.numpy_shape(theirs[k])
        if v.shape != shape:
            note = f" ({layout.note})" if layout.note else ""
            raise ValueError(f"{k}: NumPy shape {v.shape}, expected {shape} for torch's "
                             f"{theirs[k]}{note}")
    differ = convert.option_mismatches(np_model, t_model)
    if differ:
        raise ValueError(f"the twins' layer options differ: {'; '.join(differ)}")
    inputs.finite_state(mine, "the NumPy model's")
    inputs.finite_state(t_model.state_dict(), "the torch model's")


def optimizer_spec(optimizer) -> OptimSpec:
    """``None`` (SGD, lr 0.1), a name (``"sgd"``, ``"adam"``, ``"adamw"``: torch's defaults),
    a dict (``{"kind": "adam", "lr": 1e-3, "weight_decay": 0, "decay": "all", **options}``)
    or an ``OptimSpec``."""
    if isinstance(optimizer, OptimSpec):
        spec = optimizer
    elif optimizer is None:
        spec = OptimSpec("sgd", lr=0.1)
    elif isinstance(optimizer, str):
        d = kinds.OPTIMIZERS.get(optimizer, kinds.OPTIMIZERS["sgd"]).defaults
        spec = OptimSpec(optimizer, lr=d["lr"], weight_decay=d["weight_decay"])
    elif isinstance(optimizer, Mapping):
        o = dict(optimizer)
        kind = o.pop("kind", None)
        if kind is None:
            raise ValueError(f"optimizer: a dict needs 'kind' (one of "
                             f"{sorted(kinds.OPTIMIZERS)})")
        d = kinds.OPTIMIZERS.get(kind, kinds.OPTIMIZERS["sgd"]).defaults
        spec = OptimSpec(kind, lr=o.pop("lr", d["lr"]),
                         weight_decay=o.pop("weight_decay", d["weight_decay"]),
                         decay=o.pop("decay", "all"), options=o)
    else:
        raise TypeError(f"optimizer: expected None, a name, a dict or an OptimSpec, got "
                        f"{type(optimizer).__name__}")
    kinds.optimizer_kind(spec.kind)
    if spec.decay not in ("all", "weights"):
        raise ValueError(f"optimizer: decay must be 'all' or 'weights', got {spec.decay!r}")
    _check_optimizer_numbers(spec)
    return spec


def _check_optimizer_numbers(spec: OptimSpec) -> None:
    """lr and weight decay finite and >= 0; every numeric option (``momentum``, each of
    ``betas``, ``eps``) finite: torch's own ``0 <= lr`` test lets NaN through."""
    inputs.number(spec.lr, "optimizer lr", 0)
    inputs.number(spec.weight_decay, "optimizer weight_decay", 0)
    for k, v in spec.options.items():
        for x in (v if isinstance(v, tuple | list) else (v,)):
            if not isinstance(x, bool) and x is not None:
                inputs.number(x, f"optimizer {k}")


def _check_loss(loss, reduction: str = "mean") -> str:
    kinds.loss_kind(loss)
    if not isinstance(reduction, str) or reduction not in get_args(Reduction):
        raise ValueError(f"reduction: 'mean' or 'sum', got {reduction!r}")
    return loss


def _weights_note(np_model, t_model) -> str | None:
    """Whether the two models' own weights already agreed before synchronization."""
    mine = transfer.to_torch_layout(np_model.state_dict(), t_model)
    theirs = transfer.torch_state(t_model)
    diffs = {k: float(np.max(np.abs(mine[k].astype(np.float64) - theirs[k]), initial=0.0))
             for k in theirs if mine[k].dtype.kind == "f"}
    worst = max(diffs, key=lambda k: diffs[k], default=None)
    if worst is None or diffs[worst] == 0.0:
        return None
    return (f"the two models' weights differed before the comparison (worst {worst}, max abs "
            f"{diffs[worst]:.3g})")


def _guarded(fn: Callable) -> Callable:
    """User code run during a check (a module's ``forward``, a layer subclass,
    ``loss_and_grads``) that calls ``sys.exit`` becomes a ``ValueError`` naming it: a check
    that never finished must not end the caller's process, least of all with status 0."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        __tracebackhide__ = True      # pytest: the user's failure, not this frame
        try:
            return fn(*args, **kwargs)
        except SystemExit as e:
            raise ValueError(f"user code called sys.exit({e.code!r}) during the check; "
                             f"nothing was compared") from None
    return run


def _dry_run(np_model, t_model: nn.Module, X: np.ndarray, y: np.ndarray, loss: str) -> None:
    """One forward of each copy on ``X`` before any work, so that a batch a model cannot take
    (feature count, rank, BatchNorm on one sample) or labels beyond its outputs is the
    caller's input error, named, not a crash in the middle of a step. torch runs in training
    mode under a forked RNG on a copy of ``X``, and its buffers are restored after."""
    shape = _torch_dry_run(t_model, X)
    try:
        np_model.predict(X.copy())
    except Exception as e:  # noqa: BLE001 — the user's model or batch, reported as input
        raise ValueError(f"X {X.shape}: the NumPy model cannot run on it: "
                         f"{type(e).__name__}: {inputs.first_line(e)}") from None
    inputs.labels_fit(y, loss, shape)


def _torch_dry_run(t_model: nn.Module, X: np.ndarray) -> tuple:
    """The output shape of one training-mode forward of ``t_model`` on a copy of ``X``
    (forked RNG, buffers restored); ``ValueError`` naming ``X`` when torch cannot run it."""
    saved = {k: b.clone() for k, b in t_model.named_buffers()}
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            t_model.train()
            return tuple(t_model(torch.tensor(X)).shape)
    except Exception as e:  # noqa: BLE001 — the user's model or batch, reported as input
        raise ValueError(f"X {X.shape}: the torch model cannot run on it: "
                         f"{type(e).__name__}: {inputs.first_line(e)}") from None
    finally:
        with torch.no_grad():
            for k, b in t_model.named_buffers():
                b.copy_(saved[k])


# ---- compare_models ----------------------------------------------------------------------------

@_guarded
def compare_models(numpy_model: reference.Sequential, torch_model: nn.Module, X, y, *,
                   loss: LossName,
                   optimizer: OptimizerName | Mapping | OptimSpec | None = None,
                   steps: int = 1, dtype: DtypeName | None = None, masks: Masks = "shared",
                   weights: Weights | None = None, seed: int = 0, name: str = "your model",
                   device: str = "cpu", reduction: Reduction = "mean") -> TwinsReport:
    """Run ``steps`` training steps of copies of both models on the batch ``X: (N, D)`` (or
    images ``(N, C, H, W)``), ``y: (N,)`` and judge everything (losses, gradients, update,
    parameters, optimizer state, buffers, eval output) by the one tolerance rule; localize
    the first disagreeing layer.

    ``loss``: a name in ``parity.kinds.LOSSES`` (``"mse"``, ``"nll"`` …). ``optimizer``: see
    ``optimizer_spec`` (default SGD, lr 0.1). ``dtype``: ``None`` keeps the models' own (they
    must agree), ``"float64"``/``"float32"`` casts the copies. ``masks="shared"``: torch's
    dropout masks (from ``seed``) are handed to NumPy, the only mode. ``weights``: both
    copies start from the NumPy model's weights (``"numpy"``, the default) or torch's
    (``"torch"``); when you leave it out and the two models' weights differ, a note says so.
    ``device``: where the torch copy runs, ``"cpu"`` or ``"cuda[:N]"`` (TF32 off; every torch
    tensor is brought back to the CPU before it is judged). ``reduction``: the loss's on both
    sides, ``"mean"`` (torch's default) or ``"sum"`` (``parity.kinds.LOSSES`` lists the losses).

    Bad input — a NaN or Inf anywhere, complex numbers, an empty batch, labels the model
    cannot take, layer options (dropout ``p``, a norm's ``eps``) that differ, tied or meta
    parameters — is a ``ValueError``/``TypeError`` naming it, raised before any step. The
    caller's arrays and models are never touched: both frameworks work on copies. A torch
    parameter with ``requires_grad=False`` is frozen on both sides (left out of both
    optimizers; its gradient is not compared, its value must stay put).

    ``torch_model`` that is no ``nn.Sequential`` is traced (``parity.chain``): a forward
    that is a chain of layers runs as the ``nn.Sequential`` of them (checked against the
    forward on ``X``, bit for bit), and the report names its keys as yours (``0.weight
    (your fc1.weight)``); any other forward is refused naming the node that breaks it.

    Shapes: ``X`` ``(N, D)`` or ``(N, C, H, W)`` (float, finite), ``y`` ``(N,)`` integer
    class labels (``(N,)`` or ``(N, 1)`` floats in {0, 1} for ``bce``; targets of the
    output's shape for ``mse``/``l1``/``huber``); NumPy Linear weights ``(in, out)``, torch's
    ``(out, in)``.

    Example (a two-layer net, three Adam steps from torch's weights)::

        >>> import numpy as np, torch
        >>> from torch import nn
        >>> import parity
        >>> from parity import reference as R
        >>> _ = torch.manual_seed(0)
        >>> torch_net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).double()
        >>> numpy_net = R.Sequential(R.Linear(4, 8), R.ReLU(), R.Linear(8, 3))  # W: (in, out)
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)   # (N, D), (N,)
        >>> report = parity.compare_models(numpy_net, torch_net, X, y, loss="cross_entropy",
        ...                                optimizer="adam", steps=3, weights="torch")
        >>> report.passed
        True
    """
    chained = chain.of(torch_model)      # a custom module whose forward is a chain
    if chained is not None:
        torch_model = chained.sequential
    _check_pair(numpy_model, torch_model)
    assert isinstance(torch_model, nn.Sequential)      # _check_pair refuses anything else
    _check_loss(loss, reduction)
    seed = check_seed(seed, "seed")
    steps = int(inputs.number(steps, "steps", *inputs.STEPS, integer=True))
    X, y = inputs.batch(X, y, loss)
    if masks not in get_args(Masks):
        raise ValueError(f"masks: only 'shared' is supported (torch's dropout masks handed to "
                         f"NumPy), got {masks!r}")
    chosen = weights is not None
    weights = "numpy" if weights is None else weights
    if weights not in get_args(Weights):
        raise ValueError(f"weights: 'numpy' or 'torch', got {weights!r}")
    if dtype is None:
        mine, other = _numpy_dtype(numpy_model), _torch_dtype(torch_model)
        if mine != other:
            raise TypeError(f"the NumPy model is {mine}, the torch model {other}: pass "
                            f"dtype='float64' or 'float32' to compare copies in one dtype")
    dtype = check_dtype(mine if dtype is None else dtype)
    o = optimizer_spec(optimizer)
    np_model = _cast_numpy(numpy_model, dtype)
    t_model = copy.deepcopy(torch_model).to(device="cpu", dtype=_TORCH[dtype])
    X = X.astype(dtype, copy=False)      # inputs.batch made it a private copy
    _dry_run(np_model, t_model, X, y, loss)
    if chained is not None:
        chained.verify(X)
    note = None if chosen else _weights_note(np_model, t_model)
    twins = twins_mod.from_models(np_model, t_model, loss, optimizer=o.kind, lr=o.lr,
                                  options=o.options, weight_decay=o.weight_decay,
                                  decay=o.decay, init_from=weights, name=name,
                                  device=device, reduction=reduction)
    kept: dict = {}      # step 1's start state: where a failure is localized from
    result = compare_twins(twins, X, y, steps=steps, seed=seed, kept=kept)
    loc = localize.after(result, twins, X, y, seed, None, kept)   # only when a check failed
    start = "NumPy" if weights == "numpy" else "torch"
    notes = [f"{note}; both copies started from the {start} model's weights"] if note else []
    if twins.frozen:
        notes.append(f"frozen in torch (requires_grad=False): {', '.join(twins.frozen)} — "
                     f"left out of both optimizers, gradient not compared, value compared "
                     f"after every step")
    report = TwinsReport(result, loc, notes + result.notes)
    return chained.annotate(report) if chained is not None else report


def assert_twins_close(numpy_model: reference.Sequential, torch_model: nn.Module, X, y,
                       **options) -> TwinsReport:
    """``compare_models(numpy_model, torch_model, X, y, **options)``; raises
    ``AssertionError`` with the mine-vs-torch report when any check fails (in pytest this
    frame is hidden: the failure shows the test's line and the report, not this source).
    Shapes and options as ``compare_models``.

    Example (in a test: nothing happens when the twins agree)::

        >>> import numpy as np, torch
        >>> from torch import nn
        >>> import parity
        >>> from parity import reference as R
        >>> _ = torch.manual_seed(0)
        >>> torch_net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).double()
        >>> numpy_net = R.Sequential(R.Linear(4, 8), R.ReLU(), R.Linear(8, 3))  # W: (in, out)
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)   # (N, D), (N,)
        >>> report = parity.assert_twins_close(numpy_net, torch_net, X, y,
        ...                                    loss="cross_entropy", weights="torch")
        >>> report.passed
        True
    """
    __tracebackhide__ = True
    result = compare_models(numpy_model, torch_model, X, y, **options)
    if not result.passed:
        raise AssertionError("the twins disagree:\n" + result.report())
    return result


# ---- compare_functions -------------------------------------------------------------------------

@_guarded
def compare_functions(loss_and_grads: Callable, torch_model: nn.Module, X, y,
                      params: Mapping[str, np.ndarray], *, loss: LossName = "cross_entropy",
                      reg: float = 0.0, penalty=None, reduction: Reduction = "mean",
                      mapping: Mapping[str, str] | None = None,
                      transposed: bool | None = None, examples: Examples = "rows",
                      dtype: DtypeName | None = None, running_var: RunningVar = "unbiased",
                      seed: int = 0, name: str = "your functions") -> TwinsReport:
    """Judge a plain-NumPy ``loss_and_grads(params, X, y) -> (loss, grads)`` against
    ``torch_model`` at the same parameters: one training forward and backward
    (``parity.function_twins``), in float64 (params upcast exactly) or ``dtype="float32"``
    (judged by the float32 rule models are judged by).

    ``params`` (your names → arrays) is loaded into a copy of ``torch_model``; each name maps
    to a ``state_dict`` key by ``mapping`` or by shape, in order: a weight ``(in, out)`` or
    ``(out, in)`` per layer (a square one takes the others' layout, or ``transposed``), a
    bias ``(n,)``, ``(1, n)`` or ``(n, 1)`` (said in ``notes``). ``examples="columns"``: one
    example per column, ``X: (D, N)`` (Nielsen). ``reduction``: your loss, and torch's
    ``loss`` (a name of ``parity.kinds.LOSSES``), is the batch ``"mean"`` or ``"sum"``.
    ``penalty``: ``{"l2": λ, "form": "half" | "full", "l1": μ, "biases": bool}`` — L2 as
    ``λ/2·ΣW²`` (cs231n) or ``λ·ΣW²`` (nnfs), L1 as ``μ·Σ|W|``, on the Linear weights (and
    their biases); ``reg=λ`` is ``{"l2": λ}``.

    With Dropout in ``torch_model`` your function is called with ``masks=``: torch's
    keep-masks (bool, the shape of each Dropout's input), one per Dropout in forward order;
    scaling kept units by ``1/(1−p)`` is yours. Your function may return a third value
    ``{"outputs": {layer index: array}, "buffers": {name: array}}``: each layer output is
    compared with torch's (a forward bug is then named at its layer) and each buffer with
    torch's after the step (``running_var="biased"``: yours updates with the biased batch
    variance, cs231n's, where torch uses the unbiased one). A failure that matches a
    convention difference (a loss N times torch's, gradients off by ``k·W`` or a factor 2)
    is said in one ``hints`` line.

    Shapes: ``X`` ``(N, D)`` (``(D, N)`` with ``examples="columns"``), ``y`` ``(N,)``;
    ``params`` your names → arrays, weights ``(in, out)`` or ``(out, in)``, biases ``(n,)``,
    ``(1, n)`` or ``(n, 1)``; ``grads`` keyed and shaped like ``params``.

    Example (cs231n's two-layer net: ReLU, softmax cross-entropy, mean over the batch)::

        >>> import numpy as np
        >>> from torch import nn
        >>> import parity
        >>> def loss_and_grads(p, X, y):
        ...     h = np.maximum(0, X @ p["W1"] + p["b1"])                 # (N, H)
        ...     s = h @ p["W2"] + p["b2"]                                # (N, C)
        ...     e = np.exp(s - s.max(axis=1, keepdims=True))
        ...     prob, n = e / e.sum(axis=1, keepdims=True), len(y)
        ...     ds = prob.copy()
        ...     ds[np.arange(n), y] -= 1
        ...     ds /= n
        ...     dh = (ds @ p["W2"].T) * (h > 0)
        ...     loss = -np.log(prob[np.arange(n), y]).mean()
        ...     return loss, {"W1": X.T @ dh, "b1": dh.sum(0), "W2": h.T @ ds, "b2": ds.sum(0)}
        >>> rng = np.random.default_rng(0)
        >>> params = {"W1": rng.standard_normal((4, 8)), "b1": np.zeros(8),
        ...           "W2": rng.standard_normal((8, 3)), "b2": np.zeros(3)}
        >>> torch_net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> X, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)
        >>> parity.compare_functions(loss_and_grads, torch_net, X, y, params).passed
        True
    """
    if not callable(loss_and_grads):
        raise TypeError(f"loss_and_grads: expected a function, got {type(loss_and_grads).__name__}")
    if not isinstance(torch_model, nn.Module):
        raise TypeError(f"torch_model: expected an nn.Module, got {type(torch_model).__name__}")
    _check_loss(loss, reduction)
    inputs.torch_module(torch_model)
    inputs.finite_state(torch_model.state_dict(), "the torch model's")
    reg = inputs.number(reg, "reg", 0)
    if mapping is not None and not isinstance(mapping, Mapping):
        raise TypeError(f"mapping: expected a dict your name -> torch state_dict key, got "
                        f"{type(mapping).__name__}")
    if transposed is not None and not isinstance(transposed, bool):
        raise TypeError(f"transposed: expected True, False or None, got {transposed!r}")
    dtype = "float64" if dtype is None else dtype
    check_dtype(dtype)
    o = function_twins.Options(loss, conventions.penalty_from(penalty, reg), reduction, mapping,
                               transposed, examples, dtype, running_var,
                               check_seed(seed, "seed"))
    o.check()
    params = _user_params(params)
    if examples == "columns":
        X = np.asarray(X).T if np.ndim(X) == 2 else X
    X, y = inputs.batch(X, y, loss)
    X = X.astype(dtype, copy=False)
    inputs.labels_fit(y, loss, _torch_dry_run(copy.deepcopy(torch_model).to(_TORCH[dtype]), X))
    f = function_twins.compare(loss_and_grads, torch_model, X, y, params, o, name)
    return TwinsReport(f.comparison, f.localization, f.notes, f.names, f.hints)


def _user_params(params) -> dict[str, np.ndarray]:
    """Float64 copies of the user's parameters (float32 upcasts exactly)."""
    if not isinstance(params, Mapping) or not params:
        raise TypeError(f"params: expected a non-empty dict name -> array, got "
                        f"{type(params).__name__}")
    out = {}
    for k, v in params.items():
        a = inputs.array(v, f"params[{k!r}]")
        if a.dtype.kind != "f":
            raise TypeError(f"params[{k!r}]: expected a float array, got {a.dtype}")
        out[str(k)] = np.array(a, dtype=np.float64)
    return out
