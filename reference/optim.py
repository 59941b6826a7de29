"""Optimizers of the NumPy reference, written in torch's exact operation order.

An optimizer updates a model's parameter arrays *in place*. ``params`` is either a dict
``name -> array`` (one group) or a list of groups ``{"params": {name: array}, **overrides}``
(per-group ``lr``, ``weight_decay``, …), as torch's param groups. ``step(grads)`` takes the
gradients by the same names. State is kept per name, with torch's keys
(``momentum_buffer``; ``step``, ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``; ``square_avg``,
``grad_avg``; ``sum``).
"""

from __future__ import annotations

import numpy as np


class Optimizer:
    defaults: dict = {}

    def __init__(self, params, **defaults) -> None:
        unknown = set(defaults) - set(self.defaults)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown options {sorted(unknown)}")
        base = {**self.defaults, **defaults}
        groups = [{"params": params}] if isinstance(params, dict) else list(params)
        self.param_groups: list[dict] = []
        seen: set[str] = set()
        for gi, g in enumerate(groups):
            if not isinstance(g, dict) or not isinstance(g.get("params"), dict):
                raise TypeError(f"{type(self).__name__}: group {gi} needs a 'params' dict")
            extra = set(g) - set(base) - {"params"}
            if extra:
                raise TypeError(
                    f"{type(self).__name__}: group {gi} unknown options {sorted(extra)}")
            dup = seen & set(g["params"])
            if dup:
                raise ValueError(f"{type(self).__name__}: parameters in two groups: {sorted(dup)}")
            seen |= set(g["params"])
            group = {**base, **g}
            self._validate(group)
            self.param_groups.append(group)
        self.state: dict[str, dict] = {}

    def _validate(self, group: dict) -> None:
        if group["lr"] < 0:
            raise ValueError(f"{type(self).__name__}: invalid lr {group['lr']}")
        if group.get("weight_decay", 0) < 0:
            raise ValueError(f"{type(self).__name__}: invalid weight_decay {group['weight_decay']}")

    def step(self, grads: dict[str, np.ndarray]) -> None:
        for group in self.param_groups:
            for name, p in group["params"].items():
                if name not in grads:
                    raise KeyError(f"{type(self).__name__}.step: no gradient for {name}")
                g = grads[name]
                if g.shape != p.shape or g.dtype != p.dtype:
                    raise ValueError(
                        f"{type(self).__name__}.step: gradient {name} is {g.dtype} {g.shape}, "
                        f"parameter is {p.dtype} {p.shape}"
                    )
                self._update(name, p, g, group, self.state.setdefault(name, {}))

    def _update(self, name, p, g, group, state) -> None:  # pragma: no cover
        raise NotImplementedError


class SGD(Optimizer):
    """torch.optim.SGD::

        g ← g + wd·θ
        b ← g                    (first step: a copy, no dampening)
        b ← μ·b + (1 − τ)·g      (later steps)
        g ← g + μ·b  if nesterov else b
        θ ← θ − lr·g
    """

    defaults = {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
                "nesterov": False}

    def _validate(self, group):
        super()._validate(group)
        if group["momentum"] < 0:
            raise ValueError(f"SGD: invalid momentum {group['momentum']}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: nesterov momentum requires a momentum and zero dampening")

    def _update(self, name, p, g, group, state):
        wd, mu = group["weight_decay"], group["momentum"]
        if wd != 0:
            g = g + wd * p
        if mu != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= mu
                buf += (1 - group["dampening"]) * g
            g = g + mu * buf if group["nesterov"] else buf
        p -= group["lr"] * g


class Adam(Optimizer):
    """torch.optim.Adam (single-tensor path); ``decoupled=True`` is AdamW::

        θ ← θ·(1 − lr·wd)          (AdamW)      |  g ← g + wd·θ   (Adam's L2)
        m ← m + (1 − β1)·(g − m)   (torch's lerp; = β1·m + (1 − β1)·g)
        v ← β2·v + (1 − β2)·g²
        v̂max ← max(v̂max, v)       (amsgrad, on the raw v)
        denom = sqrt(v) / sqrt(1 − β2^t) + eps
        θ ← θ − (lr / (1 − β1^t)) · m / denom

    Bias corrections are Python floats (double) in both dtypes, as in torch.
    """

    defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                "amsgrad": False}
    decoupled = False

    def _validate(self, group):
        super()._validate(group)
        b1, b2 = group["betas"]
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"{type(self).__name__}: invalid betas {group['betas']}")
        if group["eps"] < 0:
            raise ValueError(f"{type(self).__name__}: invalid eps {group['eps']}")

    def _update(self, name, p, g, group, state):
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        b1, b2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        if wd != 0:
            if self.decoupled:
                p *= 1 - lr * wd
            else:
                g = g + wd * p
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1 - b1) * (g - m)
        v *= b2
        v += (1 - b2) * g * g  # torch's addcmul order: (value·g)·g
        if group["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        step_size = lr / (1 - b1**t)
        denom = np.sqrt(v) / (1 - b2**t) ** 0.5 + eps  # torch: bias_correction2**0.5
        p -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW; default ``weight_decay=1e-2``)."""

    defaults = {**Adam.defaults, "weight_decay": 1e-2}
    decoupled = True


class RMSprop(Optimizer):
    """torch.optim.RMSprop (single-tensor path)::

        g ← g + wd·θ
        s ← α·s + (1 − α)·g²                       (square_avg)
        ḡ ← ḡ + (1 − α)·(g − ḡ);  s̃ = s − ḡ²       (centered: grad_avg, torch's lerp)
        d = sqrt(s̃) + eps                         (eps outside the square root)
        b ← μ·b + g / d;  θ ← θ − lr·b            (momentum > 0; b starts at 0)
        θ ← θ − lr·g / d                          (otherwise)
    """

    defaults = {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0,
                "centered": False}

    def _validate(self, group):
        super()._validate(group)
        for k in ("alpha", "eps", "momentum"):
            if group[k] < 0:
                raise ValueError(f"RMSprop: invalid {k} {group[k]}")

    def _update(self, name, p, g, group, state):
        alpha, eps, mu = group["alpha"], group["eps"], group["momentum"]
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(p)
            if mu > 0:
                state["momentum_buffer"] = np.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(p)
        state["step"] += 1
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p
        s = state["square_avg"]
        s *= alpha
        s += (1 - alpha) * g * g          # torch's addcmul order: (value·g)·g
        if group["centered"]:
            ga = state["grad_avg"]
            ga += (1 - alpha) * (g - ga)
            avg = np.sqrt(s - ga * ga)
        else:
            avg = np.sqrt(s)
        avg += eps
        if mu > 0:
            buf = state["momentum_buffer"]
            buf *= mu
            buf += g / avg
            p -= group["lr"] * buf
        else:
            p -= group["lr"] * (g / avg)


class Adagrad(Optimizer):
    """torch.optim.Adagrad (single-tensor path, dense gradients)::

        g ← g + wd·θ
        lr_t = lr / (1 + (t − 1)·lr_decay)
        s ← s + g²                                (sum; starts at initial_accumulator_value)
        θ ← θ − lr_t · g / (sqrt(s) + eps)
    """

    defaults = {"lr": 1e-2, "lr_decay": 0.0, "weight_decay": 0.0,
                "initial_accumulator_value": 0.0, "eps": 1e-10}

    def _validate(self, group):
        super()._validate(group)
        for k in ("lr_decay", "initial_accumulator_value", "eps"):
            if group[k] < 0:
                raise ValueError(f"Adagrad: invalid {k} {group[k]}")

    def _update(self, name, p, g, group, state):
        if not state:
            state["step"] = 0
            state["sum"] = np.full_like(p, group["initial_accumulator_value"])
        state["step"] += 1
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        s = state["sum"]
        s += g * g
        p -= clr * (g / (np.sqrt(s) + group["eps"]))
