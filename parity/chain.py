"""A custom ``nn.Module`` whose forward is a chain of layers, as the ``nn.Sequential`` that
computes it.

The checks pair a NumPy ``reference.Sequential`` with a torch ``nn.Sequential`` layer by
layer, but the most common torch model is a module holding ``fc1`` and ``fc2`` that calls
``F.relu`` in its forward. ``torch.fx`` traces that forward into a graph. When the graph is a
chain — one input, every node taking the previous node's value and nothing else, every value
used once, the last one returned — each node is one layer: a ``call_module`` node is the
submodule itself (the same ``Parameter`` objects, so an optimizer over ``model.parameters()``
steps them), a torch function or Tensor method is the stock module of the kind whose record
lists it (``LayerKind.functions``, built by ``LayerKind.from_call``). The forward is traced in
training and in eval mode, so ``F.dropout(x, p)`` whose ``training`` does not follow the
module is refused, not mistaken for ``nn.Dropout``. Anything else — a residual add, a value
used twice, ``torch.cat``, an in-place ``+=``, a forward ``torch.fx`` cannot trace — is a
``NotAChain`` (a ``ValueError``) in one line naming the node and why.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from parity import inputs, kinds
from parity.runtime import seed_torch

__all__ = ["Chain", "NotAChain", "of", "trace"]


class NotAChain(ValueError):
    """A module whose forward is no chain of supported layers (one line, naming the node)."""


@dataclass
class Chain:
    """``module``'s forward as ``sequential``: layer ``i`` is ``names[i]`` of the module (a
    submodule's path, ``fc1``, or a traced call, ``relu = F.relu``)."""

    module: nn.Module
    sequential: nn.Sequential
    names: list[str]

    @property
    def title(self) -> str:
        return type(self.module).__name__

    def keys(self) -> dict[str, str]:
        """The Sequential's ``state_dict`` key → the module's (``0.weight`` → ``fc1.weight``)."""
        return {f"{i}.{k}": f"{self.names[i]}.{k}"
                for i, layer in enumerate(self.sequential) for k in layer.state_dict()}

    def describe(self) -> str:
        """``0 fc1 (Linear), 1 relu = F.relu (ReLU), 2 fc2 (Linear)``."""
        return ", ".join(f"{i} {n} ({type(m).__name__})"
                         for i, (n, m) in enumerate(zip(self.names, self.sequential)))

    def verify(self, X: np.ndarray) -> None:
        """The module's own forward and the Sequential compute the same output on ``X``, bit
        for bit, in training mode (the same RNG state: the same dropout draws) and in eval
        mode — the trace is checked, not trusted. Runs on CPU copies."""
        module, seq = copy.deepcopy((self.module, self.sequential))   # one copy of each layer
        module.to("cpu")          # moves seq's layers too: they are module's own
        floats = [t.dtype for t in module.state_dict().values() if t.is_floating_point()]
        x = torch.tensor(X, dtype=floats[0] if floats else torch.float64)
        for training in (True, False):
            outs = []
            for m, who in ((module, f"{self.title}.forward"), (seq, "its chain")):
                m.train(training)
                try:
                    with torch.random.fork_rng(devices=[]), torch.no_grad():
                        seed_torch(0)
                        outs.append(m(x.clone()))
                except Exception as e:  # noqa: BLE001 — the user's forward, reported as input
                    raise NotAChain(f"X {X.shape}: {who} cannot run on it: "
                                    f"{type(e).__name__}: {inputs.first_line(e)}") from None
            if outs[0].shape != outs[1].shape or not torch.equal(*outs):
                raise NotAChain(f"{self.title}: the chain traced from its forward "
                                f"({self.describe()}) computes another output in "
                                f"{'training' if training else 'eval'} mode; refusing it")

    def annotate(self, report):
        """``report`` (a ``TwinsReport`` of the Sequential) in the module's names: a note
        listing the layers, ``names`` (key → yours), every label holding a key followed by
        ``(your fc1.weight)``, each localized layer by its name."""
        keys = self.keys()
        report.notes = [_yours(n, keys) for n in report.notes]
        report.notes.insert(0, f"{self.title} traced as a chain (torch.fx) of "
                               f"{len(self.names)} layers: {self.describe()}; parameters "
                               f"compared as the Sequential's keys: "
                               f"{', '.join(f'{k} = your {v}' for k, v in keys.items())}")
        report.names.update(keys)
        for c in report.comparison.checks:
            c.label = _yours(c.label, keys)
        loc = report.localization
        loc.affected = [_yours(a, keys) for a in loc.affected]
        for f in (loc.forward, loc.backward):
            if f is not None and isinstance(f.index, int) and f.index < len(self.names):
                f.kind = f"{f.kind} {self.names[f.index]}"
                f.what = _yours(f.what, keys)
        return report


def _yours(text: str, keys: dict[str, str]) -> str:
    """Each key in ``text`` followed by ``(your fc1.weight)``."""
    if not keys:
        return text
    pattern = "|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True))
    return re.sub(rf"(?<![\w.])({pattern})(?!\w)",
                  lambda m: f"{m.group(1)} (your {keys[m.group(1)]})", text)


# ---- tracing -----------------------------------------------------------------------------------

def of(module) -> Chain | None:
    """``trace(module)`` for a module of the user's own; ``None`` for an ``nn.Sequential``, a
    single layer of a known kind (or a subclass of one) and anything that is no module: the
    caller's own checks apply to those."""
    if (not isinstance(module, nn.Module) or isinstance(module, nn.Sequential)
            or kinds.of_module(module, exact=False) is not None):
        return None
    return trace(module)


def trace(module: nn.Module) -> Chain:
    """``module``'s forward as a ``Chain``, traced in training and in eval mode (its modes
    are restored); ``NotAChain`` naming the first node that breaks the chain."""
    modes = {m: m.training for m in module.modules()}
    try:
        train = _layers(module, training=True)
        evals = _layers(module, training=False)
    finally:
        for m, mode in modes.items():
            m.training = mode
    _same_in_both_modes(module, train, evals)
    _all_state_used(module, train)
    return Chain(module, nn.Sequential(*(m for _, m in train)), [n for n, _ in train])


def _same_in_both_modes(module, train: list, evals: list) -> None:
    """Both traces run the same layers, dropout aside (``if self.training: F.dropout(…)``)."""
    def steady(layers):
        return [(n, type(m).__name__, m.extra_repr()) for n, m in layers
                if not getattr(kinds.of_module(m), "draws_masks", False)]
    a, b = steady(train), steady(evals)
    if a != b:
        first = next((i for i, (u, v) in enumerate(zip(a, b)) if u != v), min(len(a), len(b)))
        raise NotAChain(f"{type(module).__name__}: its forward runs other layers in eval mode "
                        f"than in training mode (from layer {first}: "
                        f"{a[first][0] if first < len(a) else 'none'} vs "
                        f"{b[first][0] if first < len(b) else 'none'}); a chain runs the same")


def _all_state_used(module: nn.Module, layers: list) -> None:
    """Every parameter and buffer of ``module`` belongs to a layer of the chain."""
    held = {id(t) for _, m in layers for t in m.state_dict(keep_vars=True).values()}
    unused = [k for k, t in module.state_dict(keep_vars=True).items() if id(t) not in held]
    if unused:
        raise NotAChain(f"{type(module).__name__}: {', '.join(unused[:4])}"
                        f"{' …' if len(unused) > 4 else ''} belong to no layer its forward "
                        f"runs; the twins could not compare them")


def _fx_trace(module: nn.Module) -> fx.GraphModule:
    try:
        return fx.symbolic_trace(module)
    except Exception as e:  # noqa: BLE001 — the user's forward, reported as input
        raise NotAChain(f"{type(module).__name__}.forward cannot be traced by torch.fx "
                        f"({type(e).__name__}: {inputs.first_line(e)}); a chain of layers "
                        f"has no control flow that depends on the data") from None


def _layers(module: nn.Module, training: bool) -> list[tuple[str, nn.Module]]:
    """(name, layer) for each node of the forward traced in mode ``training``."""
    module.train(training)
    nodes = list(_fx_trace(module).graph.nodes)
    title = type(module).__name__
    # an argument with a default that forward never reads (``mask=None``) is no input
    first = [n for n in nodes if n.op == "placeholder" and (n.users or not n.args)]
    if len(first) != 1:
        raise NotAChain(f"{title}.forward takes {len(first)} inputs "
                        f"({', '.join(n.name for n in first)}); a chain takes one")
    current = first[0]
    out: list[tuple[str, nn.Module]] = []
    called: set[str] = set()
    for node in nodes:
        if node.op == "placeholder" or _size_query(node, current):
            continue
        if node.op == "output":
            if node.args[0] is not current:
                raise NotAChain(f"{title}: {_describe(node)} returns {node.args[0]!r}, not the "
                                f"value of its last layer {current.name}")
            return out
        uses = [u for u in current.users if not _size_query(u, current)]
        if uses != [node]:
            raise NotAChain(f"{title}: {_describe(current)} feeds {len(uses)} nodes "
                            f"({', '.join(u.name for u in uses)}); a chain passes each value "
                            f"to the next layer only")
        out.append(_layer(module, node, current, training, called))
        current = node
    raise NotAChain(f"{title}: its traced graph has no output")


def _layer(module, node: fx.Node, current: fx.Node, training: bool,
           called: set) -> tuple[str, nn.Module]:
    """The layer of one node whose input is ``current``."""
    where = f"{type(module).__name__}: {_describe(node)}"
    if node.op == "call_module":
        sub = module.get_submodule(node.target)
        if node.target in called:
            raise NotAChain(f"{where} calls {node.target} a second time; each layer of a chain "
                            f"runs once (its weights would be shared)")
        called.add(node.target)
        if kinds.of_module(sub) is None:
            raise NotAChain(f"{where}: {type(sub).__name__} has no layer kind; supported "
                            f"modules: {', '.join(k.name for k in kinds.KINDS)}")
        _takes_only(where, node, current)
        return str(node.target), sub
    if node.op in ("call_function", "call_method"):
        kind = kinds.of_function(node.target)
        if kind is None:
            named = ", ".join(_target_name(f) for f in kinds.functions() if callable(f))
            raise NotAChain(f"{where}: no layer kind stands for {_target(node)}; supported "
                            f"calls: {named} (and their Tensor methods)")
        _takes_only(where, node, current)
        try:
            layer = kind.from_call(_bind(kind.functions[node.target],
                                         _shapes(node.args[1:], current), node.kwargs),
                                   training)
        except kinds.Unsupported as e:
            raise NotAChain(f"{where}: {e}") from None
        return f"{node.name} = {_target(node)}", layer
    raise NotAChain(f"{where}: reads {node.target} directly; only submodules of a known kind "
                    f"may hold parameters and buffers")


def _takes_only(where: str, node: fx.Node, current: fx.Node) -> None:
    """``node``'s first argument is ``current`` and no other argument is a traced value."""
    values: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), values.append)
    values = [v for v in values if not _size_query(v, current)]
    if not node.args or node.args[0] is not current or values != [current]:
        raise NotAChain(f"{where} takes {', '.join(v.name for v in values)}; a layer of a "
                        f"chain takes the previous layer's output ({current.name}) only")


def _size_query(node: fx.Node, current: fx.Node) -> bool:
    """``current.size(d)`` used by one node: a shape handed to the next layer's call."""
    return (node.op == "call_method" and node.target == "size" and len(node.args) == 2
            and node.args[0] is current and isinstance(node.args[1], int)
            and not node.kwargs and len(node.users) == 1)


def _shapes(value, current: fx.Node):
    """``value`` with each ``current.size(d)`` in it replaced by ``SizeOf(d)``."""
    if isinstance(value, tuple | list):
        return type(value)(_shapes(v, current) for v in value)
    if isinstance(value, fx.Node) and _size_query(value, current):
        dim = value.args[1]
        assert isinstance(dim, int)
        return kinds.SizeOf(dim)
    return value


def _bind(signature: dict, args: tuple, kwargs: dict) -> dict:
    """A call's options by name, defaults filled (``signature``: ``LayerKind.functions``)."""
    names = list(signature)
    options = dict(signature)
    if names and names[0].startswith("*"):
        options[names[0]] = tuple(args)
    elif len(args) > len(names):
        raise kinds.Unsupported(f"{len(args)} arguments after the input",
                                f"it takes {', '.join(names) or 'none'}")
    else:
        options.update(zip(names, args))
    for k, v in kwargs.items():
        if k not in signature:
            raise kinds.Unsupported(f"option {k}={v!r}", f"it takes {', '.join(names)}")
        options[k] = v
    missing = [k for k, v in options.items() if v is kinds.REQUIRED]
    if missing:
        raise kinds.Unsupported(f"a call without {', '.join(missing)}")
    return options


def _target_name(target) -> str:
    """``F.relu``, ``torch.cat``, ``operator.add`` or ``Tensor.view``."""
    if isinstance(target, str):
        return f"Tensor.{target}"
    name = getattr(target, "__name__", repr(target))
    for prefix, space in (("F", F), ("torch", torch)):
        if getattr(space, name, None) is target:
            return f"{prefix}.{name}"
    return f"{getattr(target, '__module__', None) or '?'}.{name}".lstrip("_")


def _target(node: fx.Node) -> str:
    return _target_name(node.target)


def _describe(node: fx.Node) -> str:
    """``node add (call_function operator.add)``."""
    what = _target(node) if node.op in ("call_function", "call_method") else node.target
    return f"node {node.name} ({node.op} {what})"
