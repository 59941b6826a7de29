"""Conventions an update rule can follow instead of torch's, as NumPy rules, for hints.

When a user's optimizer disagrees with ``torch.optim`` (``parity.optimizer_check``), the
cause is often a known convention rather than a slip: Adam's step counter one ahead, eps
inside the square root, weight decay after momentum. Each convention here is torch's rule
(``reference.optim``'s operation order) with one change; the checker re-runs every
convention of the optimizer's kind on the user's gradients and names those that reproduce
the user's parameters. ``CONVENTIONS[kind]`` maps a convention to its one-line description;
``run(kind, convention, …)`` runs it (``None``: torch's own rule, which a test holds equal
to the reference).
"""

from __future__ import annotations

import numpy as np

COUNTER = "step counter one ahead"
EPS_INSIDE = "eps inside the square root"

CONVENTIONS: dict[str, dict[str, str]] = {
    "sgd": {
        "decay after momentum": "weight decay added after the momentum buffer "
                                "(θ ← θ − lr·(b + wd·θ)), not to the gradient before it",
        "dampened first step": "the first momentum step dampened (b = (1 − τ)·g, a buffer "
                               "starting at 0), not a copy of the gradient",
        "dampening swapped": "dampening applied as b ← μ·b + τ·g instead of (1 − τ)·g",
    },
    "adam": {
        COUNTER: "bias corrections at step k use k + 1 (the counter starts at 1 and is "
                 "incremented before use): start it at 0",
        EPS_INSIDE: "denom = sqrt(v̂ + eps) instead of sqrt(v̂) + eps",
        "eps before bias correction": "denom = (sqrt(v) + eps) / sqrt(1 − β2^t) (the Adam "
                                      "paper's efficient form, ε̂ = ε·sqrt(1 − β2^t)) instead "
                                      "of sqrt(v) / sqrt(1 − β2^t) + eps",
        "no bias correction": "m and v used without dividing by 1 − β^t",
        "decay decoupled/L2 swapped": "weight decay as AdamW's θ·(1 − lr·wd) where Adam adds "
                                      "wd·θ to the gradient, or the reverse",
    },
    "rmsprop": {
        EPS_INSIDE: "d = sqrt(s + eps) instead of sqrt(s) + eps",
        "alpha swapped": "s ← (1 − α)·s + α·g² instead of α·s + (1 − α)·g²",
        "centered toggled": "the centered variant (s − ḡ²) where torch's is not, or the "
                            "reverse",
    },
    "adagrad": {
        COUNTER: "lr decay at step k uses k where torch uses k − 1: lr/(1 + k·lr_decay)",
        EPS_INSIDE: "sqrt(s + eps) instead of sqrt(s) + eps",
        "initial accumulator ignored": "the sum starts at 0, not initial_accumulator_value",
    },
}
CONVENTIONS["adamw"] = {**CONVENTIONS["adam"],
                        "decay after the step": "AdamW's decay θ·(1 − lr·wd) applied after "
                                                "the Adam step instead of before it"}


def run(kind: str, convention: str | None, params: dict, grads: list[dict],
        options: dict) -> list[dict]:
    """Parameters after each step of ``kind``'s rule with ``convention`` (float64 copies;
    ``options`` complete, torch's names)."""
    rule = {"sgd": _sgd, "adam": _adam, "adamw": _adam, "rmsprop": _rmsprop,
            "adagrad": _adagrad}[kind]
    o = {**options, "decoupled": kind == "adamw"}
    p = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    state: dict[str, dict] = {k: {} for k in p}
    out = []
    for g in grads:
        for k in p:
            rule(p[k], np.asarray(g[k], dtype=np.float64), state[k], o, convention)
        out.append({k: v.copy() for k, v in p.items()})
    return out


def _sgd(p, g, st, o, c) -> None:
    lr, wd, mu, tau = o["lr"], o["weight_decay"], o["momentum"], o["dampening"]
    if wd != 0 and c != "decay after momentum":
        g = g + wd * p
    if mu != 0:
        damp = tau if c == "dampening swapped" else 1 - tau
        buf = st.get("momentum_buffer")
        if buf is None:
            buf = st["momentum_buffer"] = damp * g if c == "dampened first step" else g.copy()
        else:
            buf *= mu
            buf += damp * g
        g = g + mu * buf if o["nesterov"] else buf
    if wd != 0 and c == "decay after momentum":
        g = g + wd * p
    p -= lr * g


def _adam(p, g, st, o, c) -> None:
    lr, wd, eps, (b1, b2) = o["lr"], o["weight_decay"], o["eps"], o["betas"]
    if not st:
        st.update(step=0, exp_avg=np.zeros_like(p), exp_avg_sq=np.zeros_like(p),
                  max_exp_avg_sq=np.zeros_like(p))
    st["step"] += 1
    t = st["step"] + (c == COUNTER)
    decoupled = o["decoupled"] != (c == "decay decoupled/L2 swapped")
    if wd != 0 and decoupled and c != "decay after the step":
        p *= 1 - lr * wd
    elif wd != 0 and not decoupled:
        g = g + wd * p
    m, v = st["exp_avg"], st["exp_avg_sq"]
    m += (1 - b1) * (g - m)
    v *= b2
    v += (1 - b2) * g * g
    if o["amsgrad"]:
        np.maximum(st["max_exp_avg_sq"], v, out=st["max_exp_avg_sq"])
        v = st["max_exp_avg_sq"]
    bc1, bc2 = (1.0, 1.0) if c == "no bias correction" else (1 - b1**t, 1 - b2**t)
    if c == EPS_INSIDE:
        denom = np.sqrt(v / bc2 + eps)
    elif c == "eps before bias correction":
        denom = (np.sqrt(v) + eps) / bc2**0.5
    else:
        denom = np.sqrt(v) / bc2**0.5 + eps
    p -= lr / bc1 * (m / denom)
    if wd != 0 and decoupled and c == "decay after the step":
        p *= 1 - lr * wd


def _rmsprop(p, g, st, o, c) -> None:
    alpha, eps, mu = o["alpha"], o["eps"], o["momentum"]
    alpha = 1 - alpha if c == "alpha swapped" else alpha
    if not st:
        st.update(square_avg=np.zeros_like(p), grad_avg=np.zeros_like(p),
                  momentum_buffer=np.zeros_like(p))
    if o["weight_decay"] != 0:
        g = g + o["weight_decay"] * p
    s = st["square_avg"]
    s *= alpha
    s += (1 - alpha) * g * g
    if o["centered"] != (c == "centered toggled"):
        ga = st["grad_avg"]
        ga += (1 - alpha) * (g - ga)
        s = s - ga * ga
    avg = np.sqrt(s + eps) if c == EPS_INSIDE else np.sqrt(s) + eps
    if mu > 0:
        buf = st["momentum_buffer"]
        buf *= mu
        buf += g / avg
        p -= o["lr"] * buf
    else:
        p -= o["lr"] * (g / avg)


def _adagrad(p, g, st, o, c) -> None:
    if not st:
        start = 0.0 if c == "initial accumulator ignored" else o["initial_accumulator_value"]
        st.update(step=0, sum=np.full_like(p, start))
    st["step"] += 1
    if o["weight_decay"] != 0:
        g = g + o["weight_decay"] * p
    clr = o["lr"] / (1 + (st["step"] - 1 + (c == COUNTER)) * o["lr_decay"])
    s = st["sum"]
    s += g * g
    std = np.sqrt(s + o["eps"]) if c == EPS_INSIDE else np.sqrt(s) + o["eps"]
    p -= clr * (g / std)
