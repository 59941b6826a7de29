"""``compare_functions``' machinery: a learner's plain-NumPy ``loss_and_grads`` against a torch
model at the same parameters, one training forward and backward.

The torch side runs module by module (``parity.localize.torch_layers``: every layer's output,
the dropout masks it drew, every parameter gradient, the running statistics after). The user's
function is called on copies, with torch's dropout masks when the model has Dropout, and may
return, besides ``(loss, grads)``, a dict with per-layer ``outputs`` and the ``buffers`` it
updated. Everything is judged by the one rule of ``parity.judge``; below float64 (and in
float64 when the table fails) against the float64 evaluation of the same step from the same
state, with its rounding spread, as ``parity.compare`` judges models — when the torch model is
an ``nn.Sequential`` of known kinds (``parity.convert``). Conventions (penalty, reduction,
parameter shapes, one example per column) are ``parity.conventions``'.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from parity import conventions, convert, inputs, kinds, localize, precise, transfer
from parity.compare import Comparison
from parity.conventions import Penalty
from parity.judge import Check, Pair, judge_lazily
from parity.tolerances import SAMPLES

TORCH = {"float32": torch.float32, "float64": torch.float64}
EXTRAS = ("outputs", "buffers")


@dataclass
class Options:
    """What ``compare_functions`` was told: ``reduction`` ``"mean"`` | ``"sum"``, the
    ``penalty``, ``examples`` ``"rows"`` (``X: (N, D)``) | ``"columns"`` (``X: (D, N)``, one
    example per column: yours gets ``X.T``, masks transposed, outputs compared transposed),
    ``running_var`` ``"unbiased"`` (torch's) | ``"biased"`` (cs231n's: the batch term of your
    running variance is the biased variance)."""

    loss: str = "cross_entropy"
    penalty: Penalty = field(default_factory=Penalty)
    reduction: str = "mean"
    mapping: Mapping[str, str] | None = None
    transposed: bool | None = None
    examples: str = "rows"
    dtype: str = "float64"
    running_var: str = "unbiased"
    seed: int = 0

    def check(self) -> None:
        """``examples`` and ``running_var`` (``reduction`` and ``loss``: ``api._check_loss``,
        which every comparison runs)."""
        for name, allowed in (("examples", ("rows", "columns")),
                              ("running_var", ("unbiased", "biased"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: one of {allowed}, got {getattr(self, name)!r}")


@dataclass
class Found:
    """What one comparison found, for ``parity.api.TwinsReport``."""

    comparison: Comparison
    localization: localize.Localization
    notes: list[str]
    names: dict[str, str]
    hints: list[str]


# ---- pairing your names with torch's ---------------------------------------------------------

def split_mapping(mapping, params: dict, shapes: dict):
    """``mapping`` split into the parameters' part and the buffers' part (entries naming
    none of your params and no torch parameter); ``(None, None)`` without a mapping."""
    if mapping is None:
        return None, None
    buffers = {n: k for n, k in mapping.items() if n not in params and k not in shapes}
    return {n: k for n, k in mapping.items() if n not in buffers}, buffers


def match_names(params: dict, shapes: dict, mapping, transposed) -> dict[str, tuple[str, str]]:
    """Your name → ``(state_dict key, shape)`` (``parity.conventions.SHAPES``): by ``mapping``
    or, in order, the first free torch parameter yours can be (its shape, its transpose, a
    row or column of a bias). Every torch parameter needs a counterpart. A 4-D weight
    (cs231n's conv ``W1: (F, C, HH, WW)``) is torch's Conv2d layout itself."""
    if mapping is not None:
        bad = sorted(set(mapping) - set(params)) + sorted(set(mapping.values()) - set(shapes))
        if bad or len(set(mapping.values())) != len(mapping):
            raise ValueError(f"mapping: unknown or repeated names {bad or sorted(mapping)}; "
                             f"your params {sorted(params)}, torch's {list(shapes)}")
        keys = {n: mapping[n] for n in params if n in mapping}
    else:
        keys, taken = {}, set()
        for n, a in params.items():
            fits = [k for k, s in shapes.items()
                    if k not in taken and conventions.shape_of(a.shape, s)]
            if not fits:
                raise ValueError(f"params[{n!r}] {a.shape}: no torch parameter left with this "
                                 f"shape, its transpose or (bias) a row or column of it "
                                 f"(torch: {shapes}); pass mapping=")
            keys[n] = fits[0]
            taken.add(fits[0])
    unmatched = [n for n in params if n not in keys]
    missing = [k for k in shapes if k not in keys.values()]
    if unmatched or missing:
        raise ValueError(f"params and torch parameters must pair one to one: yours without a "
                         f"partner {unmatched}, torch's without one {missing}")
    return _shapes(params, shapes, keys, transposed)


def _shapes(params, shapes, keys, transposed) -> dict[str, tuple[str, str]]:
    """Each parameter's shape convention; a square weight follows the other weights' layout,
    or ``transposed`` when given."""
    out, square = {}, []
    for n, k in keys.items():
        ways = conventions.shape_of(params[n].shape, shapes[k])
        if not ways:
            raise ValueError(f"params[{n!r}] {params[n].shape} cannot be torch's {k} "
                             f"{shapes[k]}")
        if "same" in ways and "transposed" not in ways and params[n].ndim == 2 \
                and params[n].shape == params[n].shape[::-1]:
            square.append(n)
        else:
            out[n] = (k, ways[0])
    seen = {s for n, (_, s) in out.items() if s in ("same", "transposed") and params[n].ndim == 2}
    for n in square:
        if transposed is None and len(seen) != 1:
            raise ValueError(f"params[{n!r}] {params[n].shape} is square: its layout cannot be "
                             f"told from its shape; pass transposed=True (yours is (in, out), "
                             f"x @ W) or transposed=False")
        flip = transposed if transposed is not None else next(iter(seen)) == "transposed"
        out[n] = (keys[n], "transposed" if flip else "same")
    return {n: out[n] for n in keys}


def mapping_notes(params, matched) -> list[str]:
    """One line pairing the names, one per shape convention that was applied."""
    pairs = ", ".join(f"{n} → {k}" for n, (k, _) in matched.items())
    notes = [f"your names → torch's state_dict keys: {pairs}"]
    flipped = [f"{n} {params[n].shape}" for n, (_, s) in matched.items() if s == "transposed"]
    if flipped:
        notes.append(f"transposed layout detected: your {', '.join(flipped)} "
                     f"{'is' if len(flipped) == 1 else 'are'} (in, out) (x @ W); torch's "
                     f"Linear weights are (out, in), compared transposed")
    shaped = [f"{n} {params[n].shape}" for n, (_, s) in matched.items() if s in ("row", "column")]
    if shaped:
        notes.append(f"biases as rows/columns: your {', '.join(shaped)} compared as torch's "
                     f"(n,)")
    return notes


# ---- the torch side --------------------------------------------------------------------------

def torch_side(t_model: nn.Module, o: Options, X: np.ndarray, y, state: dict,
               pen_keys: list[str]) -> dict:
    """torch's loss, gradients, layer outputs, masks and buffers at ``state`` (``t_model`` a
    private copy): ``{"loss", "grad", "output", "masks", "buffers", "terms"}``."""
    params = dict(t_model.named_parameters())
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(torch.from_numpy(state[k]))
    kind = kinds.loss_kind(o.loss)
    module = kind.build_torch(o.reduction)
    targets = kind.torch_targets(y, TORCH[o.dtype])
    got: dict = {}

    def loss_fn(out, t):
        L = module(out, t)
        if o.penalty.active:
            L = L + o.penalty.torch_term([params[k] for k in pen_keys])
        got["loss"] = L.item()
        got["terms"] = int(np.prod(t.shape)) if o.loss != "cross_entropy" else int(t.shape[0])
        return L

    if isinstance(t_model, nn.Sequential):
        layers, masks = localize.torch_layers(t_model, loss_fn, X, targets, o.seed)
    else:
        t_model.train()
        loss_fn(t_model(torch.tensor(X)), targets).backward()
        layers, masks = {"output": {}, "grad": {k: p.grad.detach().numpy().copy()
                                                for k, p in params.items()
                                                if p.grad is not None}}, {}
    got["grad"] = {k: layers["grad"].get(k, np.zeros(tuple(p.shape))) for k, p in params.items()}
    got["output"], got["masks"] = layers["output"], masks
    got["buffers"] = {k: b.detach().cpu().numpy().copy() for k, b in t_model.named_buffers()}
    return got


def user_masks(masks: dict, examples: str) -> list[np.ndarray]:
    """torch's keep-masks in forward order, one per Dropout, in your example layout."""
    out = [masks[i][0] for i in sorted(masks) if masks[i]]
    return [m.T.copy() for m in out] if examples == "columns" else out


def takes_masks(fn: Callable) -> bool:
    """Whether ``fn`` accepts a ``masks`` keyword (by name or ``**kwargs``)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return any(p.name == "masks" or p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


# ---- the user's side -------------------------------------------------------------------------

def call_user(fn: Callable, params: dict, X, y, masks: list | None) -> tuple[float, dict, dict]:
    """``fn(params, X, y[, masks=])`` on copies; its ``(loss, grads[, extras])`` checked: a
    number, a gradient of each parameter's shape, extras a dict of ``outputs``/``buffers``."""
    args = ({k: v.copy() for k, v in params.items()}, X.copy(), np.array(y, copy=True))
    got = fn(*args) if masks is None else fn(*args, masks=[m.copy() for m in masks])
    if not isinstance(got, tuple | list) or len(got) not in (2, 3):
        raise TypeError(f"loss_and_grads must return (loss, grads) or (loss, grads, extras), "
                        f"got {type(got).__name__}")
    loss, grads = got[0], got[1]
    extras = got[2] if len(got) == 3 else {}
    if np.iscomplexobj(loss):
        raise TypeError(f"loss_and_grads: loss must be a real number, got {loss!r}")
    try:
        loss = float(loss)
    except (TypeError, ValueError):
        raise TypeError(f"loss_and_grads: loss must be a number, got {type(loss).__name__}") \
            from None
    if not isinstance(grads, Mapping):
        raise TypeError(f"loss_and_grads: grads must be a dict, got {type(grads).__name__}")
    missing, extra = sorted(set(params) - set(grads)), sorted(set(grads) - set(params))
    if missing or extra:
        raise ValueError(f"loss_and_grads: grads keys differ from params: missing {missing}, "
                         f"unexpected {extra}")
    out = {k: inputs.array(grads[k], f"loss_and_grads: grads[{k!r}]", finite=False)
           .astype(np.float64) for k in params}
    for k, g in out.items():
        if g.shape != params[k].shape:
            raise ValueError(f"loss_and_grads: grads[{k!r}] has shape {g.shape}, params[{k!r}] "
                             f"{params[k].shape}")
    return loss, out, _extras(extras)


def _extras(extras) -> dict:
    if not isinstance(extras, Mapping) or set(extras) - set(EXTRAS):
        raise TypeError(f"loss_and_grads: the third value must be a dict with keys from "
                        f"{EXTRAS}, got {extras if isinstance(extras, Mapping) else type(extras)}")
    out = {}
    for name in EXTRAS:
        d = extras.get(name, {})
        if not isinstance(d, Mapping):
            raise TypeError(f"loss_and_grads: extras[{name!r}] must be a dict, got "
                            f"{type(d).__name__}")
        out[name] = {k: inputs.array(v, f"loss_and_grads: {name}[{k!r}]", finite=False)
                     .astype(np.float64) for k, v in d.items()}
    return out


# ---- comparing -------------------------------------------------------------------------------

def load_state(t_model: nn.Module, state: dict) -> None:
    """Your parameters (torch shapes) into the torch copy, exactly."""
    with torch.no_grad():
        for k, p in t_model.named_parameters():
            p.copy_(torch.from_numpy(state[k]))


def match_buffers(mine: dict, theirs: dict, mapping) -> dict[str, str]:
    """Your buffer name → torch buffer key: by ``mapping`` or, in order, the first free float
    buffer of the same size (``running_mean`` before ``running_var``, as torch lists them)."""
    free = [k for k, v in theirs.items() if v.dtype.kind == "f"]
    out: dict[str, str] = {}
    for n, a in mine.items():
        key = (mapping or {}).get(n) or next((k for k in free if theirs[k].size == a.size
                                              and k not in out.values()), None)
        if key is None or key not in theirs:
            raise ValueError(f"buffers[{n!r}] {a.shape}: no torch buffer for it (torch: "
                             f"{ {k: tuple(v.shape) for k, v in theirs.items()} }); pass "
                             f"mapping={{{n!r}: '<key>'}}")
        out[n] = key
    return out


def biased_running_var(after: np.ndarray, before: np.ndarray, momentum: float, n: int):
    """torch's running variance with its batch term rescaled by ``(N−1)/N``: what a running
    variance built from the biased batch variance (cs231n's) holds after the same step."""
    kept = (1 - momentum) * before
    return kept + (after - kept) * (n - 1) / n


def _momentum(t_model: nn.Module, key: str, tracked: int) -> float:
    m = getattr(t_model.get_submodule(key.rsplit(".", 1)[0]), "momentum", None)
    return 1.0 / tracked if m is None else float(m)


def layer_of(key: str) -> int | None:
    head = key.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def float_reference(t_model: nn.Module, o: Options, X, y, masks: dict, state: dict,
                    pen_keys: list[str], scale: float) -> tuple | None:
    """``(start, run)`` for ``parity.precise``'s float64 evaluation of this step from the same
    state (``precise.exact(start, run)``) and its spread σ under ``o.dtype``'s rounding
    (``precise.sigma``), in torch shapes: ``{"loss", "grad", "output", "buffer"}``; ``None``
    when the torch model is not a Sequential of known kinds."""
    if not isinstance(t_model, nn.Sequential):
        return None
    try:
        start = precise.upcast(convert.from_torch(t_model))[0]
    except (TypeError, ValueError):
        return None
    loss_type = type(kinds.loss_kind(o.loss).numpy())
    state64 = {k: np.asarray(v, dtype=np.float64) for k, v in state.items()}

    def run(m, perturb):
        r = precise.forward_backward(m, loss_type(), X, y, masks, perturb, layers=True)
        grads = {k: g * scale for k, g in transfer.to_torch_layout(r["grads"], t_model).items()}
        L = r["loss"] * scale
        if o.penalty.active:
            value, pg = o.penalty.numpy_term([state64[k] for k in pen_keys])
            L += float(perturb(np.float64(value)))
            for k, g in zip(pen_keys, pg):
                grads[k] = grads[k] + perturb(g)
        return {"loss": L, "grad": grads, "output": r["output"], "buffer": r["buffers"]}

    return start, run


def compare(fn: Callable, torch_model: nn.Module, X: np.ndarray, y, params: dict, o: Options,
            name: str) -> Found:
    """Judge ``fn`` against ``torch_model`` at ``params`` on the batch ``X: (N, D)`` (rows;
    yours gets ``X.T`` when ``o.examples == "columns"``), checked by the caller."""
    t_model = copy.deepcopy(torch_model).to(TORCH[o.dtype])
    frozen = [k for k, p in t_model.named_parameters() if not p.requires_grad]
    t_model.requires_grad_(True)     # your function returns every gradient: torch computes all
    shapes = {k: tuple(p.shape) for k, p in t_model.named_parameters()}
    param_map, buffer_map = split_mapping(o.mapping, params, shapes)
    matched = match_names(params, shapes, param_map, o.transposed)
    params = {n: a.astype(o.dtype) for n, a in params.items()}
    state = {key: np.ascontiguousarray(conventions.to_torch(params[n], s))
             for n, (key, s) in matched.items()}
    load_state(t_model, state)
    pen_keys = conventions.penalized(kinds.penalized_keys(t_model), list(shapes),
                                     o.penalty.biases)
    start = copy.deepcopy(t_model)
    before = {k: b.detach().cpu().numpy().copy() for k, b in t_model.named_buffers()}
    theirs = torch_side(t_model, o, X, y, state, pen_keys)
    masks = None
    if any(kinds.drops_units(m) for m in t_model.modules()):
        if not isinstance(t_model, nn.Sequential):
            raise ValueError("the torch model has Dropout but is not an nn.Sequential: its "
                             "masks cannot be recorded layer by layer to hand to your function")
        if not takes_masks(fn):
            raise ValueError("the torch model has Dropout: loss_and_grads must accept masks= "
                             "(torch's keep-masks, one per Dropout in forward order) to drop "
                             "the same units")
        masks = user_masks(theirs["masks"], o.examples)
    L_u, g_u, extras = call_user(fn, params, X.T if o.examples == "columns" else X, y, masks)
    names = {key: n for n, (key, _) in matched.items()}
    mine = {key: conventions.to_torch(g_u[n], s) for n, (key, s) in matched.items()}
    if buffer_map is not None and set(buffer_map) - set(extras["buffers"]):
        raise ValueError(f"mapping: {sorted(set(buffer_map) - set(extras['buffers']))} are "
                         f"neither your params nor buffers your function returned")
    pairs, where = _pairs(L_u, mine, extras, theirs, names, before, t_model, o, len(y),
                          buffer_map)
    checks = _judged(pairs, where, start, theirs, o, X, y, state, pen_keys, before, t_model)
    result = Comparison(name, o.dtype, o.seed, 1, [L_u], [theirs["loss"]], checks, arrays={
        "weights": state, "batch": {"X": X, "y": np.asarray(y)},
        "grads_numpy": mine, "grads_torch": theirs["grad"]})
    loc = locate(pairs, checks, where, t_model)
    found_hints = [] if result.passed else _hints(L_u, theirs, mine, state, t_model, pairs,
                                                  checks, where, before, o, len(y))
    notes = _notes(params, matched, frozen, pen_keys, o, masks, where, result.passed)
    return Found(result, loc, notes, names, found_hints)


def _judged(pairs, where, start, theirs, o, X, y, state, pen_keys, before, t_model) -> list:
    """The checks, as ``parity.compare`` judges (``judge_lazily``): by the table, and only
    for the pairs the table cannot decide, the float64 evaluation of the step (below
    float64) and then, where ``FACTOR`` alone does not decide, its spread σ. Each is computed
    at most once; the float32 rule asks for a Sequential of known kinds only when needed."""
    scale = theirs["terms"] if o.reduction == "sum" else 1.0
    made: dict = {}
    where_of = {id(p): w for p, w in zip(pairs, where)}

    def evidence(some: list, sigma: bool) -> None:
        if "parts" not in made:
            made["parts"] = float_reference(start, o, X, y, theirs["masks"], state, pen_keys,
                                            scale)
        if made["parts"] is None:
            if o.dtype == "float64":
                return
            raise ValueError(f"dtype {o.dtype}: the float32 rule needs the float64 evaluation "
                             f"of the torch model, an nn.Sequential of kinds "
                             f"{convert.supported()}")
        m0, run = made["parts"]
        if "exact" not in made:
            made["exact"] = precise.exact(m0, run)
        if sigma and "sigma" not in made:
            made["sigma"] = precise.sigma(m0, run, made["exact"], SAMPLES, o.seed, o.dtype)
        _attach(some, [where_of[id(p)] for p in some], made["exact"],
                made["sigma"] if sigma else None, o, before, t_model, len(y))
    return judge_lazily(pairs, o.dtype, evidence)


def _pairs(L_u, mine, extras, theirs, names, before, t_model, o, n,
           buffer_map) -> tuple[list, list]:
    """The compared quantities and, for each, ``(group, key)`` of its float64 evaluation."""
    pairs = [Pair("step 1 loss", "loss", "loss", 1, np.asarray(L_u), np.asarray(theirs["loss"]))]
    where: list[tuple] = [("loss", "")]
    for k in theirs["grad"]:
        pairs.append(Pair(f"step 1 grad {k} (your {names[k]})", "grad", "grad", 1, mine[k],
                          theirs["grad"][k]))
        where.append(("grad", k))
    for k, a in extras["outputs"].items():
        i = int(k) if str(k).isdigit() else -1
        if i not in theirs["output"]:
            raise ValueError(f"loss_and_grads: outputs[{k!r}]: expected a torch layer index, "
                             f"one of {sorted(theirs['output'])}")
        kind = type(t_model[i]).__name__
        a = a.T if o.examples == "columns" else a
        pairs.append(Pair(f"step 1 layer {i} ({kind}) output (your outputs[{k!r}])", "output",
                          "output", 1, a, theirs["output"][i]))
        where.append(("output", i))
    bm = match_buffers(extras["buffers"], theirs["buffers"], buffer_map)
    for nm, key in bm.items():
        t = _torch_buffer(theirs["buffers"][key], key, before, t_model, o, n)
        a = extras["buffers"][nm]
        pairs.append(Pair(f"step 1 buffer {key} (your {nm})", "buffer",
                          f"buffer.{key.rsplit('.', 1)[-1]}", 1,
                          a.reshape(t.shape) if a.size == t.size else a, t))
        where.append(("buffer", key))
    return pairs, where


def _torch_buffer(value, key, before, t_model, o, n):
    """torch's buffer after the step, in the convention you asked for (``running_var``)."""
    if o.running_var == "biased" and key.endswith("running_var"):
        tracked = int(before.get(key.rsplit(".", 1)[0] + ".num_batches_tracked", 0)) + 1
        return biased_running_var(value, before[key], _momentum(t_model, key, tracked), n)
    return value


def _attach(pairs, where, exact, sigma, o, before, t_model, n) -> None:
    """Each pair's float64 evaluation (below float64) and, with ``sigma``, its spread σ."""
    for p, (group, key) in zip(pairs, where):
        r = exact[group] if group == "loss" else exact[group][key]
        if group == "buffer":
            r = _torch_buffer(np.asarray(r), key, before, t_model, o, n)
        if o.dtype != "float64":
            p.precise = np.asarray(r)
        if sigma is not None:
            p.noise = float(sigma[group] if group == "loss" else sigma[group][key])


def _hints(L_u, theirs, mine, state, t_model, pairs, checks, where, before, o, n) -> list[str]:
    keys = kinds.penalized_keys(t_model)
    with_biases = conventions.penalized(keys, list(state), True)
    weights = {k: np.asarray(state[k], dtype=np.float64) for k in keys}
    biases = {k: np.asarray(state[k], dtype=np.float64) for k in with_biases if k not in keys}
    out = conventions.hints(L_u, theirs["loss"], mine, theirs["grad"], weights, biases,
                            theirs["terms"], o.penalty, o.reduction)
    rest_agrees = all(c.passed for c, (g, _) in zip(checks, where) if g != "buffer")
    for p, c, (group, key) in zip(pairs, checks, where):
        if rest_agrees and group == "buffer" and key.endswith("running_var") and not c.passed:
            flip = "biased" if o.running_var == "unbiased" else "unbiased"
            o2 = Options(**{**o.__dict__, "running_var": flip})
            alt = _torch_buffer(theirs["buffers"][key], key, before, t_model, o2, n)
            if np.allclose(p.mine, alt, rtol=1e-6, atol=0):
                out.append(f"your {key} matches torch's with the {flip} batch variance in its "
                           f"update (torch stores the unbiased one, N/(N−1) × the biased); "
                           f"pass running_var={flip!r}")
    return out


def _notes(params, matched, frozen, pen_keys, o, masks, where, passed) -> list[str]:
    notes = mapping_notes(params, matched)
    if frozen:
        notes.append(f"frozen in torch (requires_grad=False): {', '.join(frozen)} — your "
                     f"function returns its gradient, so torch's is computed and compared too")
    if o.penalty.active:
        notes.append(o.penalty.describe(pen_keys))
    notes.append(f"torch's loss: {kinds.loss_kind(o.loss).torch.__name__}"
                 f"(reduction={o.reduction!r}) (loss={o.loss!r})")
    if masks is not None:
        notes.append(f"torch's dropout keep-masks handed to your function (masks=, {len(masks)}"
                     f" in forward order{', transposed' if o.examples == 'columns' else ''})")
    if o.examples == "columns":
        notes.append("one example per column: your function got X.T, your outputs were "
                     "compared transposed")
    if o.running_var == "biased":
        notes.append("running_var compared with its batch term as the biased variance "
                     "(torch's rescaled by (N−1)/N)")
    if not passed and not any(g == "output" for g, _ in where):
        notes.append("no layer outputs returned: a forward bug cannot be placed at its layer "
                     "(return (loss, grads, {'outputs': {layer index: array}}))")
    return notes


# ---- where the difference is -----------------------------------------------------------------

def _kind_at(t_model: nn.Module, i: int | None) -> str:
    """The class name of layer ``i``; the model's own for ``None`` or ``-1`` (a model that is
    one layer, whose keys carry no layer index)."""
    if i is None or i < 0:
        return type(t_model).__name__
    return type(t_model.get_submodule(str(i))).__name__


def _place(t_model: nn.Module, i: int) -> str:
    """``layer 2 (ReLU)``, or ``the model (Linear)`` for a one-layer model (``i = -1``)."""
    kind = _kind_at(t_model, i)
    return f"layer {i} ({kind})" if i >= 0 else f"the model ({kind})"


def locate(pairs: list[Pair], checks: list[Check], where: list, t_model: nn.Module):
    """The first layer output that disagrees (forward order) when you returned outputs;
    else, for disagreeing parameter gradients, the first in backward order and the places
    that finding is consistent with (``Localization.consistent``)."""
    scope = ("every parameter gradient" +
             (" and layer output you returned" if any(g == "output" for g, _ in where) else ""))
    loc = localize.Localization(checks=checks, scope=scope)
    failed = [(p, c, w) for p, c, w in zip(pairs, checks, where) if not c.passed]
    outs = sorted(((w[1], p, c) for p, c, w in failed if w[0] == "output"), key=lambda t: t[0])
    if outs:
        i, p, c = outs[0]
        loc.forward = _finding(i, _kind_at(t_model, i), p.label.split(") ", 1)[1], p, c)
    grads = sorted(((_layer_or(w[1]), p, c, w[1]) for p, c, w in failed
                    if w[0] == "grad"), key=lambda t: -t[0])
    if grads:
        i, p, c, key = grads[0]
        loc.backward = _finding(i, _kind_at(t_model, layer_of(key)),
                                p.label.split(" ", 2)[2], p, c)
        loc.affected = [p.label.split("grad ", 1)[1] for _, p, _, _ in grads]
        if loc.forward is None:
            loss_failed = any(w[0] == "loss" for _, _, w in failed)
            loc.consistent = consistent_with(i, {w[1] for _, _, w in failed if w[0] == "grad"},
                                             [w[1] for w in where if w[0] == "grad"], t_model,
                                             loss_failed)
    return loc


def _layer_or(key: str) -> int:
    """The layer index of a state_dict key; -1 for a parameter outside any numbered layer."""
    i = layer_of(key)
    return -1 if i is None else i


def _finding(i, kind, what, p: Pair, c: Check) -> localize.LayerFinding:
    return localize.LayerFinding(i, kind, what, c.max_abs, c.max_rel,
                                 tuple(np.shape(p.mine)), tuple(np.shape(p.theirs)), c.rule)


def consistent_with(i: int, failed: set[str], keys: list[str], t_model: nn.Module,
                    loss_failed: bool) -> list[str]:
    """Where a difference first seen in layer ``i``'s parameter gradients can come from, when
    only parameter gradients were compared: layer ``i``'s own parameter gradient; the backward
    of each parameter-free layer above it; the input gradient of the next layer above whose
    parameter gradients agree (or the loss gradient). Part of layer ``i``'s gradients agreeing
    points at the disagreeing one alone; a disagreeing loss points at the forward pass."""
    mine = [k for k in keys if _layer_or(k) == i]
    if any(k not in failed for k in mine):
        wrong = ", ".join(k for k in mine if k in failed)
        return [f"{_place(t_model, i)} parameter gradient {wrong} alone (its "
                f"other gradients agree, so the gradient reaching it is right)"]
    above = sorted({_layer_or(k) for k in keys if _layer_or(k) > i})
    j = above[0] if above else None
    top = j if j is not None else (len(t_model) if isinstance(t_model, nn.Sequential) else i + 1)
    out = [f"{_place(t_model, i)} parameter gradients"]
    out += [f"layer {m} ({_kind_at(t_model, m)}) backward" for m in range(i + 1, top)]
    out.append(f"layer {j} ({_kind_at(t_model, j)}) input gradient" if j is not None
               else "the loss gradient")
    if loss_failed:
        out.insert(0, "a forward difference (the loss differs too: return the layer outputs to "
                      "place it)")
    return out
