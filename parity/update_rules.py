"""The forms a hand-written update rule comes in, as ``UpdateRule``s ``compare_optimizers``
drives (``parity.optimizer_check``): ``plain_rule(fn)`` for ``fn(params, grads) -> params``,
``cs231n_rule(update, config)`` for cs231n's ``update(w, dw, config) -> (w, config)`` (one
config per parameter, as its Solver keeps), and ``layer_rule(optimizer)`` for optimizer
objects with ``pre_update_params()``, ``update_params(layer)``, ``post_update_params()``
that update ``layer.weights`` in place from ``layer.dweights`` (the NNFS book's form). Each
exposes the rule's state in its own names; the checker maps them to torch's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np


@dataclass
class UpdateRule:
    """A rule as the checker drives it: ``step(params, grads)`` returns the parameters after
    one step (new arrays, or the same ones updated in place); ``state()`` the state it keeps,
    ``{param: {entry: value}}`` in its own names."""

    step: Callable[[dict, dict], Mapping]
    state: Callable[[], dict] = field(default=lambda: {})
    form: str = "plain"


def plain_rule(fn: Callable[[dict, dict], Mapping | None],
               state: Callable[[], dict] | None = None) -> UpdateRule:
    """``fn(params, grads)`` returning the new ``{name: array}`` (``None``: updated in
    place); ``state()`` optionally returning ``{param: {entry: value}}``. ``params`` and
    ``grads`` are ``{name: array}`` of one shape per name.

    Example (SGD with momentum, its velocity as state; torch keeps it as
    ``momentum_buffer``)::

        >>> import numpy as np
        >>> import parity
        >>> velocity = {}
        >>> def momentum(params, grads):
        ...     for k in params:
        ...         velocity[k] = 0.9 * velocity.get(k, 0) + grads[k]
        ...     return {k: params[k] - 0.1 * velocity[k] for k in params}
        >>> def state():
        ...     return {k: {"momentum_buffer": v} for k, v in velocity.items()}
        >>> rule = parity.plain_rule(momentum, state)
        >>> params = {"w": np.ones((3, 2))}
        >>> parity.compare_optimizers(rule, "sgd", params,
        ...                           options={"lr": 0.1, "momentum": 0.9}).passed
        True
    """
    def step(params: dict, grads: dict) -> Mapping:
        out = fn(params, grads)
        return params if out is None else out
    return UpdateRule(step, state or (lambda: {}), "plain")


def cs231n_rule(update: Callable, config: Mapping | None = None) -> UpdateRule:
    """cs231n's ``update(w, dw, config) -> (next_w, config)``, one copy of ``config`` per
    parameter (its Solver's ``optim_configs``). State: the config's arrays and the integer
    counters the rule adds (``m``, ``v``, ``t``, ``cache``, ``velocity``); hyperparameters —
    floats, and whatever number ``config`` itself holds (``{"learning_rate": 1}``) — are not.
    ``w`` and ``dw`` are one parameter and its gradient, any shape.

    Example (cs231n's ``sgd_momentum``: velocity ``v = μv − lr·dw``, ``w + v``)::

        >>> import numpy as np
        >>> import parity
        >>> def sgd_momentum(w, dw, config):
        ...     config.setdefault("learning_rate", 1e-2)
        ...     config.setdefault("momentum", 0.9)
        ...     v = config.get("velocity", np.zeros_like(w))
        ...     config["velocity"] = config["momentum"] * v - config["learning_rate"] * dw
        ...     return w + config["velocity"], config
        >>> rule = parity.cs231n_rule(sgd_momentum)
        >>> parity.compare_optimizers(rule, "sgd", {"w": np.ones((3, 2))},
        ...                           options={"lr": 1e-2, "momentum": 0.9}).passed
        True
    """
    configs: dict[str, dict] = {}
    given = set(config or {})

    def step(params: dict, grads: dict) -> dict:
        out = {}
        for k, w in params.items():
            cfg = configs.setdefault(k, copy.deepcopy(dict(config or {})))
            result = update(w, grads[k], cfg)
            if not (isinstance(result, tuple) and len(result) == 2
                    and isinstance(result[1], Mapping)):
                raise TypeError(f"{k}: update(w, dw, config) must return (next_w, config), "
                                f"got {type(result).__name__}")
            out[k], configs[k] = result[0], dict(result[1])
        return out

    def state() -> dict:
        return {k: {e: v for e, v in cfg.items()
                    if isinstance(v, np.ndarray) or (_is_state(v) and e not in given)}
                for k, cfg in configs.items()}
    return UpdateRule(step, state, "cs231n")


def layer_rule(optimizer, attrs: Mapping[str, str] | None = None, grad_prefix: str = "d",
               counters: Sequence[str] = ("iterations",)) -> UpdateRule:
    """An optimizer object that updates layers in place: ``pre_update_params()``, then
    ``update_params(layer)`` per layer, then ``post_update_params()`` (each optional but
    ``update_params``). Parameter ``"0.weight"`` is ``layer_0.weights`` with gradient
    ``layer_0.dweights`` (``attrs`` maps ``weight``/``bias`` to the attribute names). State:
    the layer's ``weight_<entry>`` attributes for ``0.weight`` (``weight_momentums``,
    ``weight_cache``) and the optimizer's integer ``counters``. Parameters keep their
    shapes (``layer.weights`` ``(in, out)`` in the book; the names decide, not the shapes).

    Example (the NNFS book's plain SGD)::

        >>> import numpy as np
        >>> import parity
        >>> class SGD:
        ...     def __init__(self, learning_rate=0.1):
        ...         self.learning_rate = learning_rate
        ...     def update_params(self, layer):
        ...         layer.weights += -self.learning_rate * layer.dweights
        ...         layer.biases += -self.learning_rate * layer.dbiases
        >>> params = {"0.weight": np.ones((3, 2)), "0.bias": np.zeros(2)}
        >>> parity.compare_optimizers(parity.layer_rule(SGD()), "sgd", params,
        ...                           options={"lr": 0.1}).passed
        True
    """
    attrs = dict(attrs or {"weight": "weights", "bias": "biases"})
    layers: dict[str, SimpleNamespace] = {}
    keys: list[str] = []

    def split(k: str) -> tuple[str, str]:
        prefix, _, name = k.rpartition(".")
        if name not in attrs:
            raise ValueError(f"layer_rule: parameter {k!r} is not '<layer>.<name>' with name "
                             f"in {sorted(attrs)}")
        return prefix, name

    def step(params: dict, grads: dict) -> dict:
        keys[:] = list(params)
        for k in params:
            prefix, name = split(k)
            layer = layers.setdefault(prefix, SimpleNamespace())
            setattr(layer, attrs[name], params[k])
            setattr(layer, grad_prefix + attrs[name], grads[k])
        getattr(optimizer, "pre_update_params", lambda: None)()
        for layer in layers.values():
            optimizer.update_params(layer)
        getattr(optimizer, "post_update_params", lambda: None)()
        return {k: getattr(layers[split(k)[0]], attrs[split(k)[1]]) for k in params}

    def state() -> dict:
        shared = {c: getattr(optimizer, c) for c in counters if hasattr(optimizer, c)}
        out = {}
        for k in keys:
            prefix, name = split(k)
            own = {a[len(name) + 1:]: v for a, v in vars(layers[prefix]).items()
                   if a.startswith(name + "_")}
            out[k] = {**own, **shared}
        return out
    return UpdateRule(step, state, "layer")


def _is_state(v) -> bool:
    return isinstance(v, np.ndarray) or (isinstance(v, int | np.integer)
                                         and not isinstance(v, bool))
