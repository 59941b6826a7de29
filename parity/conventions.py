"""Conventions a learner's plain-NumPy code may follow where torch follows another, for
``compare_functions``: the penalty added to the loss, how each parameter is shaped, and the
one-line hints that say when a failure matches a convention difference.

- Penalty (``Penalty``): L2 as ``λ/2·ΣW²`` (cs231n, Nielsen with ``λ = λ_N/n``; gradient
  ``λW``) or ``λ·ΣW²`` (the nnfs book; gradient ``2λW``), L1 as ``μ·Σ|W|`` (gradient
  ``μ·sign W``), on the Linear weights, or on the weights and the biases of the same layers.
- Shapes (``Shape``): a weight ``(in, out)`` (``x @ W``) or torch's ``(out, in)``; a bias
  ``(n,)``, a row ``(1, n)`` or a column ``(n, 1)``: each is paired with its torch parameter
  and compared in torch's shape.
- Hints (``hints``): the loss is ``N`` times torch's (a sum where torch takes the mean), the
  gradients differ by ``k·W`` (a penalty torch was not told about, or told in the other
  form), every gradient differs by one factor (2, ``N``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

FORMS = {"half": 0.5, "full": 1.0}      # L2 as λ/2·ΣW² or λ·ΣW²
SHAPES = ("same", "transposed", "row", "column")


@dataclass(frozen=True)
class Penalty:
    """``l2·c·ΣW² + l1·Σ|W|`` over the Linear weights (and, with ``biases``, their biases),
    ``c = 1/2`` (``form="half"``) or ``1`` (``"full"``)."""

    l2: float = 0.0
    form: str = "half"
    l1: float = 0.0
    biases: bool = False

    @property
    def active(self) -> bool:
        return bool(self.l2 or self.l1)

    def torch_term(self, params: list[torch.Tensor]) -> torch.Tensor:
        """The penalty of ``params`` as a torch scalar (differentiable)."""
        total = params[0].new_zeros(())
        for p in params:
            total = total + FORMS[self.form] * self.l2 * (p * p).sum() + self.l1 * p.abs().sum()
        return total

    def numpy_term(self, params: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
        """The penalty of ``params`` in float64 and its gradient for each of them."""
        value = sum(FORMS[self.form] * self.l2 * float(np.sum(p * p)) + self.l1 *
                    float(np.sum(np.abs(p))) for p in params)
        grads = [2 * FORMS[self.form] * self.l2 * p + self.l1 * np.sign(p) for p in params]
        return float(value), grads

    def describe(self, keys: list[str]) -> str:
        parts = []
        if self.l2:
            parts.append(f"{'0.5·' if self.form == 'half' else ''}{self.l2:g}·Σ‖W‖²")
        if self.l1:
            parts.append(f"{self.l1:g}·Σ|W|")
        return f"torch's loss includes {' + '.join(parts)} over {', '.join(keys)}"


def penalty_from(penalty, reg: float) -> Penalty:
    """``penalty=`` (``None``, a ``Penalty`` or a dict with ``l2``, ``form``, ``l1``,
    ``biases``) and the older ``reg=`` (cs231n's ``0.5·reg·ΣW²``); both at once is an error."""
    if penalty is None:
        return Penalty(l2=reg)
    if reg:
        raise ValueError("pass either reg= (cs231n's 0.5·reg·ΣW²) or penalty=, not both")
    if isinstance(penalty, Penalty):
        p = penalty
    elif isinstance(penalty, Mapping):
        extra = sorted(set(penalty) - {"l2", "form", "l1", "biases"})
        if extra:
            raise ValueError(f"penalty: unknown keys {extra}; accepted l2, form, l1, biases")
        p = Penalty(**dict(penalty))
    else:
        raise TypeError(f"penalty: expected a dict (l2, form, l1, biases) or a Penalty, got "
                        f"{type(penalty).__name__}")
    if p.form not in FORMS:
        raise ValueError(f"penalty form: 'half' (λ/2·ΣW²) or 'full' (λ·ΣW²), got {p.form!r}")
    for name in ("l2", "l1"):
        v = getattr(p, name)
        if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v) or v < 0:
            raise ValueError(f"penalty {name}: expected a finite number >= 0, got {v!r}")
    if not isinstance(p.biases, bool):
        raise TypeError(f"penalty biases: expected True or False, got {p.biases!r}")
    return p


def penalized(weight_keys: list[str], names: list[str], biases: bool) -> list[str]:
    """The state_dict keys the penalty covers: the Linear weights and, with ``biases``, every
    other parameter of the same modules (their biases)."""
    if not biases:
        return list(weight_keys)
    owners = {k.rsplit(".", 1)[0] for k in weight_keys}
    return [k for k in names if k in weight_keys or k.rsplit(".", 1)[0] in owners]


# ---- shapes ------------------------------------------------------------------------------------

def shape_of(mine: tuple, theirs: tuple) -> list[str]:
    """The ways ``mine`` can be torch's ``theirs``: ``same``, ``transposed`` (2-D), ``row``
    (``(1, n)`` for ``(n,)``), ``column`` (``(n, 1)`` for ``(n,)``)."""
    out = []
    if mine == theirs:
        out.append("same")
    if len(mine) == 2 and len(theirs) == 2 and mine == theirs[::-1] and mine != theirs:
        out.append("transposed")
    if len(theirs) == 1 and mine == (1, theirs[0]):
        out.append("row")
    if len(theirs) == 1 and mine == (theirs[0], 1):
        out.append("column")
    return out


def to_torch(a: np.ndarray, shape: str) -> np.ndarray:
    """Your array in torch's shape."""
    if shape == "transposed":
        return np.ascontiguousarray(a.T)
    if shape in ("row", "column"):
        return a.reshape(-1)
    return a


def to_yours(a: np.ndarray, shape: str) -> np.ndarray:
    """A torch-shaped array in your shape."""
    if shape == "transposed":
        return np.ascontiguousarray(a.T)
    if shape == "row":
        return a.reshape(1, -1)
    if shape == "column":
        return a.reshape(-1, 1)
    return a


# ---- hints -------------------------------------------------------------------------------------

def _ratio(a: float, b: float) -> float | None:
    return a / b if b != 0 and np.isfinite(a / b) else None


def _near(x: float | None, target: float, rel: float = 1e-6) -> bool:
    return x is not None and abs(x - target) <= rel * abs(target)


def _common_factor(mine: dict, theirs: dict) -> float | None:
    """``c`` with ``mine[k] ≈ c·theirs[k]`` for every nonzero gradient, or None."""
    num = sum(float(np.sum(mine[k] * theirs[k])) for k in theirs)
    den = sum(float(np.sum(theirs[k] * theirs[k])) for k in theirs)
    if den == 0:
        return None
    c = num / den
    resid = max(float(np.max(np.abs(mine[k] - c * theirs[k]), initial=0.0)) for k in theirs)
    scale = max(float(np.max(np.abs(mine[k]), initial=0.0)) for k in theirs)
    return c if resid <= 1e-6 * scale else None


def _fit(diff: dict, arrays: dict, signs: bool) -> tuple[float, float] | None:
    """``(a, b)`` with ``diff[k] ≈ a·θ_k + b·sign(θ_k)`` for every ``θ_k`` in ``arrays`` (least
    squares; ``b = 0`` without ``signs``), or None when the residual is not rounding-small."""
    basis = [lambda t: t] + ([np.sign] if signs else [])
    cols = [[f(arrays[k]).ravel() for k in arrays] for f in basis]
    A = np.array([[sum(float(u @ v) for u, v in zip(ci, cj)) for cj in cols] for ci in cols])
    rhs = np.array([sum(float(u @ diff[k].ravel()) for u, k in zip(ci, arrays)) for ci in cols])
    if not np.all(np.isfinite(A)) or abs(np.linalg.det(A)) < 1e-300 or not rhs.any():
        return None
    coef = np.linalg.solve(A, rhs)
    fitted = {k: sum(c * f(arrays[k]) for c, f in zip(coef, basis)) for k in arrays}
    resid = max(float(np.max(np.abs(diff[k] - fitted[k]), initial=0.0)) for k in arrays)
    scale = max(float(np.max(np.abs(diff[k]), initial=0.0)) for k in arrays)
    if scale == 0 or resid > 1e-6 * scale:
        return None
    return float(coef[0]), float(coef[1]) if signs else 0.0


def _penalty_hint(grads_mine: dict, grads_torch: dict, weights: dict, biases: dict,
                  penalty: Penalty) -> str | None:
    """The line for gradients that differ by ``a·θ`` (an L2 term) or ``a·θ + b·sign θ`` (L2
    and L1) on the weights, or on the weights and biases."""
    both = {**weights, **biases}
    for arrays, signs in ((both, False), (weights, False), (both, True), (weights, True)):
        if not arrays:
            continue
        diff = {k: grads_mine[k] - grads_torch[k] for k in arrays}
        fit = _fit(diff, arrays, signs)
        if fit is None:
            continue
        a, b = fit
        where = "weights and biases" if arrays is both and biases else "weights"
        if not signs and where == "weights":
            return _weight_hint(a, penalty)
        return _generic_hint(a, b, signs, where, penalty)
    return None


def _generic_hint(a: float, b: float, signs: bool, where: str, penalty: Penalty) -> str:
    """``a·θ (+ b·sign θ)`` over ``where``, said with the ``penalty=`` that would match it."""
    told = " (beyond the penalty you stated)" if penalty.active else ""
    term = f"{a:.6g}·θ" + (f" + {b:.6g}·sign(θ)" if signs else "")
    kind = "an L2 and L1 penalty" if signs else "an L2 penalty"
    opts = f"'l2': {a:.6g}" + (f", 'l1': {b:.6g}" if signs else "") + \
        (", 'biases': True" if where != "weights" else "")
    return (f"your gradients exceed torch's by exactly {term} on the {where}{told}: {kind} "
            f"torch was not told of; pass penalty={{{opts}}} (L2 as λ/2·ΣW², or 'form': "
            f"'full' with l2 {a / 2:.6g})")


def hints(loss_mine: float, loss_torch: float, grads_mine: dict, grads_torch: dict,
          weights: dict, biases: dict, n_terms: int, penalty: Penalty,
          reduction: str) -> list[str]:
    """One line per convention difference the failure matches (empty when none):
    ``weights`` the Linear weights and ``biases`` their biases by state_dict key (torch
    shape), ``n_terms`` the count torch's mean divides by (N for cross-entropy)."""
    out = []
    r = _ratio(loss_mine, loss_torch)
    c = _common_factor(grads_mine, grads_torch)
    if reduction == "mean" and _near(r, n_terms) and n_terms > 1:
        out.append(f"your loss is exactly {n_terms} × torch's (the batch size): you sum over "
                   f"the batch where torch takes the mean; pass reduction='sum'")
    elif reduction == "sum" and _near(r, 1 / n_terms) and n_terms > 1:
        out.append(f"your loss is exactly 1/{n_terms} of torch's: you take the mean where "
                   f"you said reduction='sum'; pass reduction='mean'")
    elif c is not None and not _near(c, 1.0):
        for f, why in ((2.0, "a factor 2 (λ·ΣW² vs λ/2·ΣW², or a missing 1/2)"),
                       (0.5, "a factor 1/2 (λ/2·ΣW² vs λ·ΣW², or an extra 1/2)"),
                       (float(n_terms), f"the batch size {n_terms} (a sum over the batch "
                                        f"where torch takes the mean)")):
            if _near(c, f):
                out.append(f"every gradient of yours is {c:.6g} × torch's: {why}")
                break
    line = _penalty_hint(grads_mine, grads_torch, weights, biases, penalty)
    return out + ([line] if line else [])


def _weight_hint(k: float, penalty: Penalty) -> str:
    """The line for weight gradients that differ by ``k·W``."""
    lam = penalty.l2
    if lam and penalty.form == "half" and _near(k, lam):
        return (f"your weight gradients exceed torch's by exactly {k:.6g}·W = λ·W: your L2 "
                f"is λ·ΣW² (gradient 2λW); pass penalty={{'l2': {lam:g}, 'form': 'full'}}")
    if lam and penalty.form == "full" and _near(k, -lam):
        return (f"your weight gradients fall short of torch's by exactly λ·W: your L2 is "
                f"λ/2·ΣW² (gradient λW); pass penalty={{'l2': {lam:g}, 'form': 'half'}}")
    if lam and _near(k, -2 * FORMS[penalty.form] * lam):
        return ("your weight gradients lack the penalty's gradient exactly "
                f"({-k:.6g}·W): your grads leave out the L2 term your loss was told to have")
    sign = "exceed" if k > 0 else "fall short of"
    return (f"your weight gradients {sign} torch's by exactly {abs(k):.6g}·W: an L2 penalty "
            f"torch was not told of; pass penalty={{'l2': {k + lam * 2 * FORMS[penalty.form]:.6g}"
            f"}} (λ/2·ΣW², gradient λW) or the matching 'full' form")
