"""Self-test of the harness: inject realistic bugs into the NumPy side and show that the parity
checks catch each one (mutation testing of ``parity.compare``).

A *mutant* is one bug a person would plausibly write — a negated gradient, a bias gradient
averaged instead of summed, Adam's eps inside the square root, a transfer that forgets the
transpose. It is injected **at run time**: the affected method or function of ``reference.*``
(or ``parity.transfer``, or the NumPy half of ``parity.catalogue.spec.ModelSpec``) is replaced
inside a context manager that restores every original on exit, even when a check raises. No
file is changed.

Most mutants are *source mutations*: the original function's source is read with ``inspect``,
one or two exact substrings are replaced (``"dout.sum(axis=0)"`` → ``"dout.mean(axis=0)"``),
and the result is compiled against the original module's globals. The rest of the function is
the current code, so a mutant tests exactly one bug; if the reference changes so that the
substring is no longer there, the mutant reports a *selftest error* (not a catch) naming the
missing text. A few structural bugs (transpose decided by shape) are written out by hand.

Each mutant runs one real check of the harness (float64, seed 0) on the catalogue model (or
a variant named here) whose checks exercise the bug, sometimes with a prepared input (logits
scaled up so ``exp`` overflows; two steps so zero-initialized biases become non-zero):

- ``one_step``: the ordinary one-step comparison ``parity.catalogue.checks.compare`` (loss,
  penalty, gradients, parameters, buffers, optimizer state, eval output, in that order);
- ``trainer_lockstep``: the real training loops, ``parity.catalogue.train.run`` numpy vs torch —
  step count, every epoch's loss and the final parameters within the float64 trajectory bound
  (bugs in ``reference.training.fit`` that one optimizer step on a given batch cannot see);
- ``init_statistics``: each Linear weight as drawn by ``reference.init`` against torch's own
  initializer (the comparisons start both twins from the NumPy weights, so an initializer
  bug is invisible to them).

It is *caught* when the check fails — ``caught_by`` lists the first failing labels — or when
the NumPy side raises an error a user would see (``ValueError``, ``TypeError``,
``FloatingPointError``: what the CLI reports). Any other exception is a selftest error and
counts as *not* caught. The *clean* run is the same check, same setup, unmodified code: it
must pass, or a "catch" would mean nothing.

``run_selftest() -> SelftestReport``; ``register(subparsers)`` adds ``nn-parity selftest``.
"""

from __future__ import annotations
import __future__

import argparse
import dataclasses
import inspect
import linecache
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from parity import kinds, transfer
from parity import layerspec as S
from parity.catalogue import train, zoo
from parity.catalogue.checks import compare, first_batch
from parity.catalogue.spec import ModelSpec
from parity.distance import normwise_rel
from parity.fileio import json_text
from parity.reference import init as initializers
from parity.reference import layers, losses, optim, spatial, training
from parity.tolerances import TRAJECTORY
from parity.twins import OptimSpec, cancelled_keys

# Exceptions a user of the NumPy side would see as a clear failure (the CLI reports exactly
# these as an error line or "diverged"). Anything else raised under a mutant is a bug in the
# self-test itself and does not count as a catch.
USER_VISIBLE_ERRORS = (ValueError, TypeError, FloatingPointError)

Patch = tuple  # (owner: class or module, attribute: str, replacement)
_MISSING = object()


# ---------------------------------------------------------------- injecting and restoring

@contextmanager
def injected(patches: Iterable[Patch]) -> Iterator[None]:
    """Set ``owner.attribute = replacement`` for each patch; on exit (normal or by an
    exception) restore exactly what was there: the original object if the owner defined the
    attribute itself, else delete the override so inheritance applies again."""
    saved = []
    try:
        for owner, attr, new in patches:
            if not hasattr(owner, attr):
                raise AttributeError(f"selftest: {_name(owner)} has no attribute {attr!r}")
            saved.append((owner, attr, vars(owner).get(attr, _MISSING)))
            setattr(owner, attr, new)
        yield
    finally:
        for owner, attr, old in reversed(saved):
            if old is _MISSING:
                delattr(owner, attr)
            else:
                setattr(owner, attr, old)


def _name(owner) -> str:
    return getattr(owner, "__qualname__", getattr(owner, "__name__", repr(owner)))


def mutate_source(func: Callable, edits: list[tuple[str, str]], tag: str) -> Callable:
    """``func`` recompiled from its own source with each ``(old, new)`` substring replaced.

    Every ``old`` must occur exactly once in the dedented source (a method body is indented
    by 4 spaces after dedenting; a multi-line ``new`` must use that indentation). The copy
    runs against ``func``'s module globals, so it sees the live module; it is registered in
    ``linecache`` so tracebacks show the mutated lines."""
    if func.__code__.co_freevars:
        raise TypeError(f"selftest: cannot mutate {func.__qualname__}: it is a closure")
    src = textwrap.dedent(inspect.getsource(func))
    for old, new in edits:
        n = src.count(old)
        if n != 1:
            raise LookupError(
                f"selftest mutant {tag}: expected {old!r} exactly once in "
                f"{func.__module__}.{func.__qualname__}, found it {n} times — the reference "
                f"changed; update the mutant")
        src = src.replace(old, new)
    filename = f"<mutant {tag}: {func.__module__}.{func.__qualname__}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    code = compile(src, filename, "exec", flags=__future__.annotations.compiler_flag,
                   dont_inherit=True)
    namespace: dict = {}
    # globals: the live module (names resolve at call time); the def lands in namespace
    exec(code, func.__globals__, namespace)  # noqa: S102 - compiling the mutant is the point
    new = namespace[func.__name__]
    new.__qualname__, new.__module__ = func.__qualname__, func.__module__
    new.__mutant__ = tag
    return new


def _edit(owner, attr: str, edits: list[tuple[str, str]], tag: str,
          source_owner=None) -> Patch:
    """A patch replacing ``owner.attr`` by its source mutation (the function is looked up on
    ``source_owner``, default ``owner``: e.g. LayerNorm's inherited ``_normalize``)."""
    func = getattr(source_owner or owner, attr)
    return (owner, attr, mutate_source(func, edits, tag))


# ---------------------------------------------------------------- setups (compare kwargs)

def default_setup(spec: ModelSpec, dtype: str, seed: int) -> dict:
    """compare's defaults: the recipe's first batch, the model's initial weights."""
    return {}


def two_steps(spec: ModelSpec, dtype: str, seed: int) -> dict:
    """Two steps on the first batch: zero-initialized biases are non-zero from step 2 on, so
    a bug that scales the bias (weight decay on biases) can show."""
    return {"steps": 2}


def _kind(layer) -> kinds.LayerKind:
    kind = kinds.of_layer(layer)
    assert kind is not None, f"selftest: {layer!r} has no layer kind"
    return kind


def _weighted(layer) -> bool:
    """A layer with an initialized weight (its kind's ``penalized``: a Linear, a Conv2d)."""
    return bool(_kind(layer).penalized)


def _scaled_last_linear(spec: ModelSpec, dtype: str, seed: int, target: float) -> dict:
    np_model = spec.build_numpy(seed, dtype)
    X, y = first_batch(spec, seed)
    X = np.asarray(X, dtype=np.dtype(dtype))
    k = max(i for i, layer in enumerate(np_model.layers) if _weighted(layer))
    h = X
    for layer in np_model.layers[: k + 1]:  # up to the last Linear: the logits
        h = layer.forward(h, training=False)
    factor = target / float(np.abs(h).max())
    np_model.layers[k].params["weight"][...] *= factor
    np_model.layers[k].params["bias"][...] *= factor
    return {"np_model": np_model, "batch": (X, y)}


def large_logits(spec: ModelSpec, dtype: str, seed: int) -> dict:
    """The model's initial weights with the last Linear (weight and bias) scaled so that
    max|logit| = 1000 on the first batch: e^1000 overflows float64 (limit ~709.78). The
    torch twin gets the same weights (compare transfers from ``np_model``)."""
    return _scaled_last_linear(spec, dtype, seed, 1000.0)


def saturated_sigmoid(spec: ModelSpec, dtype: str, seed: int) -> dict:
    """Last Linear scaled so max|logit| = 1000: the output sigmoid returns exactly 0.0 or 1.0
    for many points (1/(1 + e^−a) rounds to 1 for a > ~37), some of them confidently wrong,
    where BCE's log(1 − p) = log 0 needs torch's clamp at −100."""
    return _scaled_last_linear(spec, dtype, seed, 1000.0)


def one_epoch(spec: ModelSpec, dtype: str, seed: int) -> dict:
    """One epoch of the recipe's trainer (``trainer_lockstep``)."""
    return {"epochs": 1}


# ---------------------------------------------------------------- the checks that catch them
# A check runs on one model and returns its failures as (label, distance): |numpy − torch| of
# the failing quantity, or the statistic's distance from its reference; [] means it passed.

def one_step(spec: ModelSpec, dtype: str, seed: int, **kwargs) -> list[tuple[str, float]]:
    """``parity.catalogue.checks.compare`` (its failing checks, in its order)."""
    return [(c.label, c.max_abs) for c in compare(spec, dtype, seed, **kwargs).failures()]


def trainer_lockstep(spec: ModelSpec, dtype: str, seed: int,
                     epochs: int = 1) -> list[tuple[str, float]]:
    """``parity.catalogue.train.run`` numpy vs torch (``reference.training.fit`` vs
    ``torch_impl.fit``) for ``epochs`` epochs, from the same weights and batch order: the step
    counts must be equal, and each epoch's loss (relative) and every final parameter
    (normwise relative, except ``parity.twins.cancelled_keys``) within ``TRAJECTORY[dtype]``,
    the bound stated for up to K lockstep steps. The model must have no dropout (each trainer
    draws its own masks)."""
    k, bound = TRAJECTORY[dtype]
    if any(_kind(layer).draws_masks for layer in spec.build_numpy(seed, dtype).layers):
        raise RuntimeError(f"selftest: trainer_lockstep cannot judge {spec.name}: dropout "
                           "masks are each trainer's own draw")
    a, np_model = train.run(spec, "numpy", seed, dtype, epochs)
    b, t_model = train.run(spec, "torch", seed, dtype, epochs)
    if b.steps > k:
        raise RuntimeError(f"selftest: trainer_lockstep on {spec.name} ran {b.steps} steps; "
                           f"the bound is stated for <= {k}")
    out = []
    if a.steps != b.steps:
        out.append((f"trainer steps after {epochs} epoch(s)", float(abs(a.steps - b.steps))))
    for e, (ln, lt) in enumerate(zip(a.loss, b.loss)):
        if not abs(ln - lt) <= bound * abs(lt):
            out.append((f"trainer epoch {e + 1} loss", abs(ln - lt)))
    mine = transfer.to_torch_layout(np_model.state_dict(), t_model)
    theirs = transfer.torch_state(t_model)
    skip, params = cancelled_keys(np_model), dict(t_model.named_parameters())
    for key, t in theirs.items():
        if key not in skip and t.dtype.kind == "f" and not normwise_rel(mine[key], t) <= bound:
            kind = "param" if key in params else "buffer"
            out.append((f"trainer {kind} {key} after {epochs} epoch(s)",
                        float(np.abs(mine[key] - t).max())))
    return out


def _torch_init(kind: str) -> Callable:
    """torch's own initializer for a ``reference.init`` kind, on a (out, in) tensor."""
    nn_init = torch.nn.init
    return {"he": lambda t, g: nn_init.kaiming_normal_(t, nonlinearity="relu", generator=g),
            "uniform_torch": lambda t, g: nn_init.kaiming_uniform_(t, a=5 ** 0.5, generator=g),
            "normal0.01": lambda t, g: nn_init.normal_(t, 0.0, 0.01, generator=g),
            "normal0.5": lambda t, g: nn_init.normal_(t, 0.0, 0.5, generator=g)}[kind]


def init_statistics(spec: ModelSpec, dtype: str, seed: int) -> list[tuple[str, float]]:
    """Each Linear or Conv2d weight of ``spec.build_numpy(seed)`` against torch's initializer
    for ``spec.init`` (``kaiming_normal_(nonlinearity="relu")`` — std √(2/fan_in), fan_in from
    torch's layout, ``in`` of ``(out, in)``, ``C·KH·KW`` of ``(F, C, KH, KW)`` — for "he";
    nn.Linear's ``kaiming_uniform_(a=√5)``; ``normal_``) drawn on a tensor of its torch
    shape (the record's layout applied). Statistic: ratio r of the two root-mean-squares.
    For n = in·out i.i.d. draws of mean 0, log rms has sd 1/√(2n) (normal; less for uniform),
    so log r has sd ≤ 1/√n: the check fails when |r − 1| > 6/√n (a false alarm ~1e-9). The
    distance reported is |r − 1|."""
    model = spec.build_numpy(seed, dtype)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i, layer in enumerate(model.layers):
        if not _weighted(layer):
            continue
        w = _kind(layer).layouts.get("weight", kinds.SAME).to_torch(layer.params["weight"])
        t = torch.empty(w.shape, dtype=torch.float64)
        _torch_init(spec.init)(t, gen)
        r = float(np.sqrt(np.mean(w.astype(np.float64) ** 2))
                  / np.sqrt(np.mean(t.numpy() ** 2)))
        if not abs(r - 1) <= 6 / np.sqrt(w.size):
            out.append((f"init std {i}.weight", abs(r - 1)))
    return out


# ---------------------------------------------------------------- the catalogue of bugs

@dataclass(frozen=True)
class Mutant:
    """One realistic bug. ``apply()`` returns the patches ``(owner, attribute, replacement)``
    that inject it; ``target_model`` is a catalogue name or a ModelSpec (a variant);
    ``check(spec, dtype, seed, **setup(spec, dtype, seed))`` is the check that must catch it
    (``one_step``, ``trainer_lockstep``, ``init_statistics``)."""

    name: str
    description: str
    target_model: str | ModelSpec
    apply: Callable[[], list]
    setup: Callable[[ModelSpec, str, int], dict] = default_setup
    check: Callable[..., list] = one_step

    def spec(self) -> ModelSpec:
        m = self.target_model
        return m if isinstance(m, ModelSpec) else zoo.get(m)

    @property
    def model(self) -> str:
        return self.spec().name


# Catalogue models have no SGD dampening; this variant of digits-momentum adds it (0.3) so the
# first-step rule (no dampening on the first step) is exercised. It exists only here.
# dampening 0.3: τ ≠ 1 − τ, so a bug that swaps them shows.
DIGITS_MOMENTUM_DAMPENING = dataclasses.replace(
    zoo.get("digits-momentum"), name="digits-momentum+dampening",
    summary="selftest variant of digits-momentum: SGD momentum 0.9 with dampening 0.3",
    optimizer=OptimSpec("sgd", lr=0.01, options={"momentum": 0.9, "dampening": 0.3}))


# Variants for options no catalogue model uses (they exist only here), and spiral003 without
# its dropout so the two trainers can run in lockstep (each trainer draws its own masks).
DIGITS_NESTEROV = dataclasses.replace(
    zoo.get("digits-momentum"), name="digits-momentum+nesterov",
    summary="selftest variant of digits-momentum: SGD momentum 0.9, nesterov",
    optimizer=OptimSpec("sgd", lr=0.01, options={"momentum": 0.9, "nesterov": True}))
DIGITS_MOMENTUM_WD = dataclasses.replace(
    zoo.get("digits-momentum"), name="digits-momentum+weight-decay",
    summary="selftest variant of digits-momentum: SGD momentum 0.9, weight_decay 1e-2",
    optimizer=OptimSpec("sgd", lr=0.01, options={"momentum": 0.9}, weight_decay=1e-2))
SPIRAL004_AMSGRAD = dataclasses.replace(
    zoo.get("spiral004"), name="spiral004+amsgrad",
    summary="selftest variant of spiral004: Adam lr 0.01 with amsgrad",
    optimizer=OptimSpec("adam", lr=0.01, options={"amsgrad": True}))
SPIRAL003_NO_DROPOUT = dataclasses.replace(
    zoo.get("spiral003"), name="spiral003-no-dropout",
    summary="selftest variant of spiral003 without its Dropout layers (BatchNorm + Adam)",
    layers=tuple(item for item in zoo.get("spiral003").layers
                 if not kinds.of_spec(item).draws_masks))


def _fit_edit(edits: list[tuple[str, str]], tag: str) -> list[Patch]:
    """A source mutation of ``reference.training.fit``, wherever it is called from: the
    module attribute and ``parity.catalogue.train``'s own binding (``np_fit``)."""
    new = mutate_source(training.fit, edits, tag)
    return [(training, "fit", new), (train, "np_fit", new)]


def _initializer_edit(kind: str, func: str, edits: list[tuple[str, str]],
                      tag: str) -> list[Patch]:
    """A source mutation of initializer ``reference.init.<func>``, also in the
    ``INITIALIZERS`` table the Linear record reads at build time (entry ``kind``)."""
    new = mutate_source(getattr(initializers, func), edits, tag)
    table = {**initializers.INITIALIZERS, kind: new}
    return [(initializers, func, new), (initializers, "INITIALIZERS", table)]


# No catalogue model is convolutional yet: this one exists only here, for the image layers'
# mutants — two convolutions (the second's input gradient feeds the first), pooling of both
# kinds, BatchNorm2d and Dropout2d, on 8×8 digits (``digit_images``).
CONVNET_DIGITS = dataclasses.replace(
    zoo.get("digits-2layer"), name="selftest-convnet",
    summary="selftest model: conv-ReLU-maxpool-conv-BN2d-ReLU-avgpool-Dropout2d-linear on 8x8 "
            "digits",
    layers=(S.Conv2d(1, 4, 3, padding=1), S.ReLU(), S.MaxPool2d(2),
            S.Conv2d(4, 6, 3, padding=1), S.BatchNorm2d(6), S.ReLU(), S.AvgPool2d(2),
            S.Dropout2d(0.2), S.Flatten(), S.Linear(6 * 2 * 2, 10)),
    init="uniform_torch", optimizer=OptimSpec("adam", lr=1e-3), batch_size=None)


def digit_images(spec: ModelSpec, dtype: str, seed: int) -> dict:
    """The first 32 of sklearn's digits as ``(32, 1, 8, 8)`` images with pixels in [0, 1]
    (0..16 / 16, cs231n's scaling): the blank background is exactly 0, so a convolution
    returns its bias there, and a max-pooling window over it holds four equal maxima."""
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    return {"batch": ((X[:32] / 16.0).reshape(32, 1, 8, 8).astype(dtype), y[:32])}


def _transpose_by_shape(np_model, torch_model) -> None:
    """Bug: "transpose when the shapes disagree" instead of "transpose every Linear weight"
    — right for every non-square weight, silently wrong for a square one."""
    own = torch_model.state_dict()
    state = {k: (v.T if v.shape != tuple(own[k].shape) else v)
             for k, v in np_model.state_dict().items()}
    transfer.load_torch(torch_model, state)


def _mutants() -> list[Mutant]:
    """Every mutant, in the order the selftest reports them."""
    groups = (_gradient_mutants, _update_and_transfer_mutants, _reduction_and_norm_mutants,
              _backward_and_decay_mutants, _optimizer_option_mutants, _trainer_and_init_mutants,
              _spatial_mutants)
    return [m for group in groups for m in group()]


def _gradient_mutants() -> list[Mutant]:
    """One-step mutants: Linear gradients, softmax, BatchNorm buffers, weight decay."""
    L, Lo = layers, losses  # noqa: E741 - short aliases keep the table readable
    return [
        Mutant(
            "linear-weight-grad-sign",
            "Linear.backward negates the weight gradient: dW = −xᵀ·dout",
            "cs231n-2layer",
            lambda: [_edit(L.Linear, "backward_params",
                           [('"weight": x.T @ dout', '"weight": -(x.T @ dout)')],
                           "linear-weight-grad-sign")]),
        Mutant(
            "linear-bias-grad-mean",
            "Linear.backward averages the bias gradient over the batch: db = mean_n dout "
            "(should be the sum; the loss already divides by N)",
            "digits-2layer",
            lambda: [_edit(L.Linear, "backward_params",
                           [('"bias": dout.sum(axis=0)', '"bias": dout.mean(axis=0)')],
                           "linear-bias-grad-mean")]),
        Mutant(
            "softmax-no-max-shift",
            "CrossEntropyLoss without the max shift: log Σ exp(s) on raw logits overflows "
            "(checked with logits scaled to |s| ≤ 1000)",
            "cs231n-linear",
            lambda: [_edit(Lo.CrossEntropyLoss, "forward",
                           [("shifted = scores - scores.max(axis=1, keepdims=True)",
                             "shifted = scores")],
                           "softmax-no-max-shift")],
            setup=large_logits),
        Mutant(
            "batchnorm-biased-running-var",
            "BatchNorm1d updates running_var with the biased batch variance (ddof=0) instead "
            "of the unbiased one",
            "spiral003",
            lambda: [_edit(L.BatchNorm1d, "forward",
                           [("unbiased = var[0] * (n / (n - 1))", "unbiased = var[0]")],
                           "batchnorm-biased-running-var")]),
        Mutant(
            "weight-decay-on-biases",
            "cs231n's L2 applied to every parameter: the NumPy optimizer gets one group with "
            "weight_decay on biases too (ModelSpec.numpy_optimizer; weights only is right). "
            "Biases start at 0, so it shows from step 2",
            "cs231n-2layer",
            lambda: [_edit(ModelSpec, "numpy_optimizer",
                           [("for ks, wd in self.param_groups(list(params))]",
                             "for ks, wd in [(list(params), self.optimizer.weight_decay)]]")],
                           "weight-decay-on-biases")],
            setup=two_steps),
    ]


def _update_and_transfer_mutants() -> list[Mutant]:
    """One-step mutants: dropout scale, Adam, SGD dampening, the weight transfer."""
    L, O = layers, optim  # noqa: E741 - short aliases keep the table readable
    return [
        Mutant(
            "dropout-no-rescale",
            "Dropout keeps units without the 1/(1 − p) scale (out = x·mask)",
            "digits-dropout",
            lambda: [_edit(L.Dropout, "forward",
                           [('self.saved = {"scale": keep.astype(x.dtype) * self.scale(x.dtype)}',
                             'self.saved = {"scale": keep.astype(x.dtype)}')],
                           "dropout-no-rescale")]),
        Mutant(
            "adam-eps-inside-sqrt",
            "Adam's eps inside the square root: denom = sqrt(v̂ + eps) instead of sqrt(v̂) + eps",
            "spiral004",
            lambda: [_edit(O.Adam, "_update",
                           [("denom = np.sqrt(v) / (1 - b2**t) ** 0.5 + eps",
                             "denom = np.sqrt(v / (1 - b2**t) + eps)")],
                           "adam-eps-inside-sqrt")]),
        Mutant(
            "adam-no-bias-correction",
            "Adam without bias correction: θ −= lr·m / (sqrt(v) + eps)",
            "spiral004-corrected",
            lambda: [_edit(O.Adam, "_update",
                           [("step_size = lr / (1 - b1**t)", "step_size = lr"),
                            ("denom = np.sqrt(v) / (1 - b2**t) ** 0.5 + eps",
                             "denom = np.sqrt(v) + eps")],
                           "adam-no-bias-correction")]),
        Mutant(
            "sgd-dampening-on-first-step",
            "SGD momentum dampens the first step too: b₁ = (1 − τ)·g instead of b₁ = g "
            "(variant digits-momentum+dampening: momentum 0.9, dampening 0.3 — no catalogue "
            "model uses dampening)",
            DIGITS_MOMENTUM_DAMPENING,
            lambda: [_edit(O.SGD, "_update",
                           [('buf = state["momentum_buffer"] = g.copy()',
                             'buf = state["momentum_buffer"] = (1 - group["dampening"]) * g')],
                           "sgd-dampening-on-first-step")]),
        Mutant(
            "transfer-transpose-by-shape",
            "parity.transfer.numpy_to_torch transposes a weight only when its shape differs "
            "from torch's: the square 128→128 Linear (layer 4) is copied as W, not Wᵀ",
            "spiral003",
            lambda: [(transfer, "numpy_to_torch", _transpose_by_shape)]),
        Mutant(
            "transfer-no-transpose",
            "parity.transfer.numpy_to_torch copies W instead of Wᵀ for every Linear (no layout "
            "conversion): the (2, 128) weight meets torch's (128, 2)",
            "spiral003",
            lambda: [_edit(transfer, "numpy_to_torch",
                           [(("load_torch(torch_model, to_torch_layout(np_model.state_dict(), "
                              "torch_model))"),
                             "load_torch(torch_model, np_model.state_dict())")],
                           "transfer-no-transpose")]),
        Mutant(
            "transfer-reshape-not-transpose",
            "the Linear weight's layout (parity.kinds.Layout) converts with a reshape to "
            "(out, in) instead of a transpose: shapes fit, values are scrambled",
            "digits-3layer",
            lambda: [_edit(kinds.Layout, "to_torch",
                           [("np.transpose(a, self.axes)",
                             "a.reshape([a.shape[i] for i in self.axes])")],
                           "transfer-reshape-not-transpose")]),
    ]


def _reduction_and_norm_mutants() -> list[Mutant]:
    """One-step mutants: loss reduction, the ReLU kink, LayerNorm variance."""
    L, Lo = layers, losses  # noqa: E741 - short aliases keep the table readable
    return [
        Mutant(
            "cross-entropy-sum-reduction",
            "CrossEntropyLoss reduces with the sum over the batch instead of the mean "
            "(loss Σ, gradient without 1/N)",
            "digits-minibatch",
            lambda: [_edit(Lo.CrossEntropyLoss, "forward",
                           [("return self.reduce(-log_p[np.arange(n), y])",
                             "return float(-log_p[np.arange(n), y].sum())")],
                           "cross-entropy-sum-reduction"),
                     _edit(Lo.CrossEntropyLoss, "backward",
                           [("return self.scaled(d, n)", "return d")],
                           "cross-entropy-sum-reduction")]),
        Mutant(
            "relu-grad-at-zero",
            "ReLU.backward passes the gradient where the input is exactly 0 (mask x ≥ 0; torch "
            "uses x > 0). XOR's input (0, 0) with biases initialized to 0 makes every hidden "
            "pre-activation exactly 0 for that row",
            "xor-relu",
            lambda: [_edit(L.ReLU, "forward",
                           [('self.saved = {"out": out}', 'self.saved = {"out": out, "x": x}')],
                           "relu-grad-at-zero"),
                     _edit(L.ReLU, "backward",
                           [("np.where(out > 0, dout, 0)",
                             'np.where(self.saved["x"] >= 0, dout, 0)')],
                           "relu-grad-at-zero")]),
        Mutant(
            "layernorm-unbiased-var",
            "LayerNorm normalizes with the unbiased variance (ddof=1); torch uses the biased one",
            "spiral003-layernorm",
            lambda: [_edit(L.LayerNorm, "_normalize",
                           [("var = x.var(axis=ax, keepdims=True)",
                             "var = x.var(axis=ax, ddof=1, keepdims=True)")],
                           "layernorm-unbiased-var", source_owner=L.Normalization)]),
    ]


def _backward_and_decay_mutants() -> list[Mutant]:
    """One-step mutants: BatchNorm backward, BCE clamp, sigmoid backward, AdamW decay."""
    L, Lo, O = layers, losses, optim  # noqa: E741 - short aliases keep the table readable
    return [
        Mutant(
            "batchnorm-backward-no-variance-path",
            "BatchNorm1d.backward drops the variance path: dx = istd/M·(M·g − Σg), without "
            "− x̂·Σ(g·x̂)",
            "spiral003",
            lambda: [_edit(L.BatchNorm1d, "backward",
                           [("return (istd / m) * (m * g - sg - xhat * sgx)",
                             "return (istd / m) * (m * g - sg)")],
                           "batchnorm-backward-no-variance-path",
                           source_owner=L.Normalization)]),
        Mutant(
            "bce-no-clamp",
            "BCELoss without torch's clamp of the logs at −100: a saturated wrong prediction "
            "(p = 1.0 for y = 0) gives an infinite loss (checked with logits scaled to ±1000)",
            "spiral004-numpy-challenge",
            lambda: [_edit(Lo.BCELoss, "forward",
                           [("log_p = np.maximum(np.log(p), -100)", "log_p = np.log(p)"),
                            ("log_1mp = np.maximum(np.log1p(-p), -100)",
                             "log_1mp = np.log1p(-p)")],
                           "bce-no-clamp")],
            setup=saturated_sigmoid),
        Mutant(
            "sigmoid-backward-on-preactivation",
            "Sigmoid.backward evaluates σ'(·) = s(1 − s) on the pre-activation x instead of "
            "the output s = σ(x)",
            "xor-sigmoid",
            lambda: [_edit(L.Sigmoid, "forward",
                           [('self.saved = {"out": out}', 'self.saved = {"out": out, "x": x}')],
                           "sigmoid-backward-on-preactivation"),
                     _edit(L.Sigmoid, "backward",
                           [('s = self.saved["out"]', 's = self.saved["x"]')],
                           "sigmoid-backward-on-preactivation")]),
        Mutant(
            "adamw-decay-after-step",
            "AdamW decays the weights after the Adam step, θ ← (θ − step)·(1 − lr·wd), instead "
            "of before it",
            "spiral003-adamw",
            lambda: [_edit(O.Adam, "_update",
                           [("p *= 1 - lr * wd", "pass  # decay moved after the step"),
                            ("p -= step_size * (m / denom)",
                             ("p -= step_size * (m / denom)\n"
                              "    if wd != 0 and self.decoupled:\n"
                              "        p *= 1 - lr * wd"))],
                           "adamw-decay-after-step")]),
    ]


def _optimizer_option_mutants() -> list[Mutant]:
    """Optimizer options: nesterov, weight decay order, amsgrad …"""
    O = optim  # noqa: E741 - short aliases keep the table readable
    return [
        Mutant(
            "sgd-nesterov-uses-buffer",
            "SGD with nesterov steps along the buffer, g ← b, instead of g ← g + μ·b "
            "(variant digits-momentum+nesterov: no catalogue model uses nesterov)",
            DIGITS_NESTEROV,
            lambda: [_edit(O.SGD, "_update",
                           [('g = g + mu * buf if group["nesterov"] else buf', "g = buf")],
                           "sgd-nesterov-uses-buffer")]),
        Mutant(
            "sgd-weight-decay-after-momentum",
            "SGD adds weight decay after momentum: b is built from the raw gradient and "
            "θ −= lr·(b + wd·θ), instead of g ← g + wd·θ before b (variant "
            "digits-momentum+weight-decay: no catalogue model has both)",
            DIGITS_MOMENTUM_WD,
            lambda: [_edit(O.SGD, "_update",
                           [("if wd != 0:\n        g = g + wd * p\n    if mu != 0:",
                             "if mu != 0:"),
                            ('p -= group["lr"] * g',
                             'if wd != 0:\n        g = g + wd * p\n    p -= group["lr"] * g')],
                           "sgd-weight-decay-after-momentum")]),
        Mutant(
            "adam-amsgrad-max-of-corrected-v",
            "AMSGrad takes the running max of the bias-corrected v̂ = v/(1 − β2^t) (the old "
            "docs' form) instead of the raw v, then divides by its sqrt (variant "
            "spiral004+amsgrad)",
            SPIRAL004_AMSGRAD,
            lambda: [_edit(O.Adam, "_update",
                           [('np.maximum(state["max_exp_avg_sq"], v, out=',
                             'np.maximum(state["max_exp_avg_sq"], v / (1 - b2**t), out='),
                            ('v = state["max_exp_avg_sq"]',
                             'v = state["max_exp_avg_sq"] * (1 - b2**t)')],
                           "adam-amsgrad-max-of-corrected-v")]),
        Mutant(
            "adam-amsgrad-max-not-kept",
            "AMSGrad computes max(v̂max, v) for the step but never stores it: v̂max stays 0 "
            "and the optimizer is plain Adam (variant spiral004+amsgrad)",
            SPIRAL004_AMSGRAD,
            lambda: [_edit(O.Adam, "_update",
                           [('np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])'
                             '\n        v = state["max_exp_avg_sq"]',
                             'v = np.maximum(state["max_exp_avg_sq"], v)')],
                           "adam-amsgrad-max-not-kept")]),
    ]


def _trainer_and_init_mutants() -> list[Mutant]:
    """The stable BCE-with-logits form, the trainer and the initializer."""
    Lo = losses
    return [
        Mutant(
            "bce-with-logits-log-sigmoid",
            "BCEWithLogitsLoss in the unstable form −[y·log σ(a) + (1 − y)·log(1 − σ(a))]: "
            "σ(a) rounds to 0 or 1 on saturated logits and a log gives −inf (checked with "
            "logits scaled to ±1000)",
            "spiral004",
            lambda: [_edit(Lo.BCEWithLogitsLoss, "forward",
                           [("return self.reduce(np.maximum(a, 0) - a * y + "
                             "np.log1p(np.exp(-np.abs(a))))",
                             "s = sigmoid(a)\n    return float(-(y * np.log(s) + "
                             "(1 - y) * np.log(1 - s)).mean())")],
                           "bce-with-logits-log-sigmoid")],
            setup=large_logits),
        Mutant(
            "fit-forward-in-eval-mode",
            "reference.training.fit runs the forward pass with training=False: BatchNorm "
            "normalizes with its running statistics (variant spiral003-no-dropout)",
            SPIRAL003_NO_DROPOUT,
            lambda: _fit_edit([("out = model.forward(Xb, training=True)",
                                "out = model.forward(Xb, training=False)")],
                              "fit-forward-in-eval-mode"),
            setup=one_epoch, check=trainer_lockstep),
        Mutant(
            "fit-drops-last-partial-batch",
            "reference.training.fit skips the last, partial minibatch of each epoch "
            "(1437 = 44·32 + 29 rows on digits-minibatch)",
            "digits-minibatch",
            lambda: _fit_edit([("for idx in epoch_batches(n, batch_size, order_rng):",
                                "for idx in epoch_batches(n, batch_size, order_rng):\n"
                                "            if idx is not None and len(idx) < batch_size:\n"
                                "                continue")],
                              "fit-drops-last-partial-batch"),
            setup=one_epoch, check=trainer_lockstep),
        Mutant(
            "he-init-fan-out",
            "He init scaled by fan_out, W ~ N(0, 2/fan_out), instead of fan_in "
            "(64→128→10: the first layer 0.71×, the second 3.6× torch's std)",
            "digits-2layer",
            lambda: _initializer_edit("he", "he_normal",
                                      [("np.sqrt(2.0 / fan_in)", "np.sqrt(2.0 / fan_out)")],
                                      "he-init-fan-out"),
            check=init_statistics),
    ]


def _spatial_mutants() -> list[Mutant]:
    """The image layers (``reference.spatial``) on ``CONVNET_DIGITS``."""
    P = spatial  # noqa: N806 - short alias keeps the table readable
    return [
        Mutant(
            "conv-kernel-not-rotated-in-backward",
            "Conv2d's input gradient correlates the upstream gradient with the kernel as it "
            "is, not rotated by 180° (dx = dout ⋆ W instead of dout ⋆ rot180(W))",
            CONVNET_DIGITS,
            lambda: [(P, "conv2d_input_grad", mutate_source(
                P.conv2d_input_grad, [("flipped = w[:, :, ::-1, ::-1]", "flipped = w")],
                "conv-kernel-not-rotated-in-backward"))],
            setup=digit_images),
        Mutant(
            "conv-padding-dropped-in-backward",
            "Conv2d's input gradient cuts the padded gradient at its corner instead of "
            "removing the padding from every side",
            CONVNET_DIGITS,
            lambda: [(P, "conv2d_input_grad", mutate_source(
                P.conv2d_input_grad,
                [("return dxp[:, :, padding[0]:padding[0] + input_size[0], "
                  "padding[1]:padding[1] + input_size[1]]",
                  "return dxp[:, :, :input_size[0], :input_size[1]]")],
                "conv-padding-dropped-in-backward"))],
            setup=digit_images),
        Mutant(
            "conv-bias-grad-mean",
            "Conv2d averages its bias gradient over the batch and the pixels: "
            "db = mean dout (should be the sum)",
            CONVNET_DIGITS,
            lambda: [_edit(P.Conv2d, "backward_params",
                           [('dout.sum(axis=(0, 2, 3))', 'dout.mean(axis=(0, 2, 3))')],
                           "conv-bias-grad-mean")],
            setup=digit_images),
        Mutant(
            "maxpool-grad-to-every-tied-max",
            "MaxPool2d sends a window's gradient to every entry equal to its maximum, not to "
            "the first (the blank background ties four equal maxima per window)",
            CONVNET_DIGITS,
            lambda: [_edit(P.MaxPool2d, "forward",
                           [('"argmax": argmax}', '"argmax": argmax, "flat": flat}')],
                           "maxpool-grad-to-every-tied-max"),
                     _edit(P.MaxPool2d, "backward",
                           [("onehot = argmax[..., None] == np.arange(kh * kw)",
                             'flat = self.saved["flat"]\n'
                             '    onehot = flat == flat.max(axis=-1, keepdims=True)')],
                           "maxpool-grad-to-every-tied-max")],
            setup=digit_images),
        Mutant(
            "batchnorm2d-reshape-mixes-channels",
            "BatchNorm2d reshapes NCHW to (N·H·W, C) without moving C last: each 'channel' "
            "column averages entries of every channel",
            CONVNET_DIGITS,
            lambda: [(P, "_channels_last", mutate_source(
                         P._channels_last,
                         [("x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1).T",
                           "x.reshape(-1, x.shape[1])")],
                         "batchnorm2d-reshape-mixes-channels")),
                     (P, "_channels_first", mutate_source(
                         P._channels_first,
                         [("rows.T.reshape(c, n, h, w).transpose(1, 0, 2, 3)",
                           "rows.reshape(n, c, h, w)")],
                         "batchnorm2d-reshape-mixes-channels"))],
            setup=digit_images),
        Mutant(
            "avgpool-backward-not-divided",
            "AvgPool2d's backward hands every input the window's whole gradient, dout, "
            "instead of dout/(KH·KW)",
            CONVNET_DIGITS,
            lambda: [_edit(P.AvgPool2d, "backward",
                           [("share = dout / dout.dtype.type(kh * kw)", "share = dout")],
                           "avgpool-backward-not-divided")],
            setup=digit_images),
    ]


MUTANTS: list[Mutant] = _mutants()
BY_NAME: dict[str, Mutant] = {m.name: m for m in MUTANTS}


# ---------------------------------------------------------------- running

@dataclass
class MutantResult:
    name: str
    description: str
    model: str
    setup: str
    check: str                # the check that ran: one_step | trainer_lockstep | init_statistics
    caught: bool
    caught_by: str            # first failing labels, "exception: …", or "" / "selftest error: …"
    seconds: float
    failures: list = field(default_factory=list)   # every failing check label
    first_max_abs: float | None = None             # distance of the first failing check
    error: str | None = None  # set when the self-test itself broke (not a catch)


@dataclass
class CleanResult:
    model: str
    setup: str
    check: str
    passed: bool
    failures: list
    seconds: float
    error: str | None = None


@dataclass
class SelftestReport:
    dtype: str
    seed: int
    mutants: list = field(default_factory=list)
    clean_runs: list = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """The unmodified code passes the same checks for every (model, setup) used."""
        return bool(self.clean_runs) and all(c.passed for c in self.clean_runs)

    @property
    def kill_rate(self) -> float:
        return sum(m.caught for m in self.mutants) / len(self.mutants) if self.mutants else 0.0

    @property
    def passed(self) -> bool:
        return self.clean and all(m.caught for m in self.mutants)

    def survivors(self) -> list[str]:
        return [m.name for m in self.mutants if not m.caught]

    def to_json(self) -> dict:
        return {"dtype": self.dtype, "seed": self.seed, "passed": self.passed,
                "clean": self.clean, "kill_rate": self.kill_rate,
                "survivors": self.survivors(),
                "clean_runs": [asdict(c) for c in self.clean_runs],
                "mutants": [_finite_json(asdict(m)) for m in self.mutants]}

    def table(self) -> str:
        rows = [(m.name, m.model, m.check, "yes" if m.caught else "NO", m.caught_by)
                for m in self.mutants]
        w = [max([len(h)] + [len(r[j]) for r in rows])
             for j, h in enumerate(("mutant", "model", "check"))]
        lines = [f"{'mutant':<{w[0]}}  {'model':<{w[1]}}  {'check':<{w[2]}}  caught  caught by",
                 f"{'-' * w[0]}  {'-' * w[1]}  {'-' * w[2]}  ------  ---------"]
        lines += [f"{a:<{w[0]}}  {b:<{w[1]}}  {c:<{w[2]}}  {d:<6}  {e}" for a, b, c, d, e in rows]
        lines.append("")
        for c in self.clean_runs:
            state = "passes" if c.passed else f"FAILS: {c.error or ', '.join(c.failures[:3])}"
            lines.append(f"clean  {c.model} [{c.check}, {c.setup}]: {state}")
        n = len(self.mutants)
        lines.append(f"kill rate {sum(m.caught for m in self.mutants)}/{n} = "
                     f"{self.kill_rate:.0%}; clean run {'passes' if self.clean else 'FAILS'} "
                     f"({self.dtype}, seed {self.seed})")
        return "\n".join(lines)


def _finite_json(row: dict) -> dict:
    """Strict JSON has no NaN/Infinity: a non-finite difference is written as a string."""
    v = row.get("first_max_abs")
    if v is not None and not np.isfinite(v):
        row["first_max_abs"] = str(v)
    return row


def _summarize(labels: list[str], shown: int = 2) -> str:
    more = len(labels) - shown
    return ", ".join(labels[:shown]) + (f" (+{more} more)" if more > 0 else "")


@contextmanager
def _quiet_numerics() -> Iterator[None]:
    """A mutant may overflow (e^1000) or take log 0: let it produce inf/nan for the checks to
    see, without RuntimeWarnings (or FloatingPointError under a global np.seterr)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def run_mutant(mutant: Mutant, dtype: str = "float64", seed: int = 0) -> MutantResult:
    """Inject ``mutant``, run its check on its model and setup, restore, and report."""
    t0 = time.perf_counter()
    spec = mutant.spec()
    res = MutantResult(mutant.name, mutant.description, spec.name, mutant.setup.__name__,
                       mutant.check.__name__, caught=False, caught_by="", seconds=0.0)
    try:
        patches = mutant.apply()
        kwargs = mutant.setup(spec, dtype, seed)   # prepared with the unmodified code
    except Exception as e:  # noqa: BLE001 - a stale mutant or broken setup: our own failure
        res.error = res.caught_by = f"selftest error: {type(e).__name__}: {e}"
        res.seconds = time.perf_counter() - t0
        return res
    try:
        with injected(patches), _quiet_numerics():
            fails = mutant.check(spec, dtype, seed, **kwargs)
    except USER_VISIBLE_ERRORS as e:
        res.caught, res.caught_by = True, f"exception: {type(e).__name__}: {e}"
    except Exception as e:  # noqa: BLE001 - not user-visible: a self-test bug, not a catch
        res.error = res.caught_by = f"selftest error: {type(e).__name__}: {e}"
    else:
        res.failures = [label for label, _ in fails]
        res.caught = bool(fails)
        res.caught_by = _summarize(res.failures) if fails else "(not caught)"
        res.first_max_abs = float(fails[0][1]) if fails else None
    res.seconds = time.perf_counter() - t0
    return res


def run_clean(spec: ModelSpec, setup: Callable, dtype: str = "float64", seed: int = 0,
              check: Callable = one_step) -> CleanResult:
    """The same check on the unmodified code: must pass."""
    t0 = time.perf_counter()
    names = (spec.name, setup.__name__, check.__name__)
    try:
        fails = check(spec, dtype, seed, **setup(spec, dtype, seed))
    except Exception as e:  # noqa: BLE001 - any exception fails the clean run, with its text
        return CleanResult(*names, False, [], time.perf_counter() - t0,
                           error=f"{type(e).__name__}: {e}")
    labels = [label for label, _ in fails]
    return CleanResult(*names, not labels, labels, time.perf_counter() - t0)


def run_selftest(mutants: Iterable[Mutant | str] | None = None, dtype: str = "float64",
                 seed: int = 0) -> SelftestReport:
    """Run every mutant (default: ``MUTANTS``; names are looked up in ``BY_NAME``) and the
    clean comparison for each distinct (model, setup) they use. The mutants are chosen for the
    exact tier (float64, tolerances ~1e-12); in float32 the smallest effects (AdamW's decay
    order, ~1e-7) sit inside the tolerance and would survive."""
    chosen = []
    for m in (MUTANTS if mutants is None else mutants):
        if isinstance(m, str):
            if m not in BY_NAME:
                raise ValueError(f"unknown mutant {m!r}; known: {', '.join(BY_NAME)}")
            m = BY_NAME[m]
        chosen.append(m)
    report = SelftestReport(dtype, seed)
    configs: dict[tuple[str, str, str], tuple[ModelSpec, Callable, Callable]] = {}
    for m in chosen:
        configs.setdefault((m.model, m.setup.__name__, m.check.__name__),
                           (m.spec(), m.setup, m.check))
    for spec, setup, check in configs.values():
        report.clean_runs.append(run_clean(spec, setup, dtype, seed, check))
    for m in chosen:
        report.mutants.append(run_mutant(m, dtype, seed))
    return report


# ---------------------------------------------------------------- CLI

HELP = "prove the parity checks catch real bugs: inject each known bug, check it is caught"
DESCRIPTION = (
    "Mutation test of the harness. Each of a catalogue of realistic bugs (a negated gradient, "
    "a bias gradient averaged instead of summed, softmax without the max shift, biased "
    "BatchNorm running variance, weight decay on biases, dropout without 1/(1-p), Adam's eps "
    "inside the sqrt, Adam without bias correction, SGD dampening on the first step, a "
    "missing transpose in the weight transfer, sum instead of mean in the loss, nesterov and "
    "amsgrad done wrong, BCE-with-logits as log(sigmoid), a trainer in eval mode or dropping "
    "the last batch, He init by fan_out, a convolution's kernel not rotated or its padding "
    "dropped in backward, max pooling's gradient sent to every tied maximum, BatchNorm2d "
    "mixing channels, ...) is injected into the NumPy side at run time "
    "(monkeypatched, restored afterwards; no file changes), and a real check runs on the "
    "model that exercises it: the one-step parity comparison (as in `nn-parity check`, "
    "float64), the two trainers in lockstep, or the initial weights against torch's "
    "initializer. Prints each mutant, its model, the check, whether it was caught and by "
    "which labels, and the kill rate. The unmodified code must pass the same checks. "
    "Exit 0 iff every mutant is caught and the clean runs pass, else 1.")


def cmd_selftest(args) -> int:
    report = run_selftest()
    if args.json:
        print(json_text(report.to_json(), indent=2))
    else:
        print(report.table())
    return 0 if report.passed else 1


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``selftest [--json]`` to the CLI's subparsers."""
    s = subparsers.add_parser("selftest", help=HELP, description=DESCRIPTION)
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_selftest)
    return s


def main(argv: list[str] | None = None) -> int:
    """``python -m parity.tools.selftest [--json]`` (the same as ``nn-parity selftest``)."""
    parser = argparse.ArgumentParser(prog="python -m parity.tools.selftest")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(["selftest", *(sys.argv[1:] if argv is None else argv)])
    from parity.runtime import configure_threads
    configure_threads(1)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
