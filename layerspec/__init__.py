"""The layer vocabulary: what a network is made of, as plain frozen data.

``(Linear(2, 100), ReLU(), Linear(100, 3))`` describes a network once; each item's layer-kind
record (``parity.kinds``) turns it into a NumPy layer and a stock ``torch.nn`` module, and the
catalogue (``parity.catalogue.spec.ModelSpec``) counts and summarizes it — never by comparing
strings.

Why a package of its own: ``reference/`` must not import torch or parity, and ``torch_impl/``
must not import reference or parity (``tests/test_layering.py``). Placed in ``reference/`` the
vocabulary would be out of reach of ``torch_impl``; placed in ``torch_impl/`` or ``parity/``, out
of reach of ``reference``. Duck typing (each builder reading attributes) would leave no single
place that says which layers exist. So it sits below both, importing nothing but the standard
library — no NumPy, no torch — and the layering test holds it to that.

Each description validates its arguments on construction (``TypeError`` for a wrong type,
``ValueError`` for an out-of-range value, both naming the layer), knows its parameter count
``num_parameters()`` (as the built twins count their trainable parameters) and its one-line
``summary`` (``Linear(2,100)``, ``BN(128)``), which ``ModelSpec.layer_summary`` joins with ``→``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

__all__ = ["LayerSpec", "Linear", "ReLU", "Sigmoid", "Tanh", "Dropout", "BatchNorm1d",
           "LayerNorm", "VOCABULARY", "check_layers", "adjacent", "GELU", "LeakyReLU", "ELU",
           "SiLU", "Softplus", "Softmax", "LogSoftmax", "Identity", "Flatten", "Conv2d",
           "MaxPool2d", "AvgPool2d", "BatchNorm2d", "Dropout2d"]


def _size(owner: str, name: str, value) -> int:
    """A width: a Python/NumPy integer (not bool) ≥ 1, returned as ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{owner}: {name} must be >= 1, got {value}")
    return int(value)


def _real(owner: str, name: str, value) -> float:
    """A finite Python/NumPy real (not bool), returned as ``float``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, "
                        f"got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be finite, got {value}")
    return float(value)


def _int(owner: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


def _g(v: float) -> str:
    return f"{v:g}"



class LayerSpec:
    """Base of the vocabulary: a layer without parameters unless a subclass says otherwise."""

    __slots__ = ()

    def num_parameters(self) -> int:
        """Trainable scalars of the built layer (0 for activations and dropout)."""
        return 0

    @property
    def summary(self) -> str:
        """One line, e.g. ``ReLU``: the class name unless a subclass shortens it."""
        return type(self).__name__


@dataclass(frozen=True)
class Linear(LayerSpec):
    """``y = x W + b``, ``x: (N, in_features)`` → ``(N, out_features)``;
    ``in·out + out`` parameters."""

    in_features: int
    out_features: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_features", _size("Linear", "in_features", self.in_features))
        object.__setattr__(self, "out_features",
                           _size("Linear", "out_features", self.out_features))

    def num_parameters(self) -> int:
        return self.in_features * self.out_features + self.out_features

    @property
    def summary(self) -> str:
        return f"Linear({self.in_features},{self.out_features})"


@dataclass(frozen=True)
class ReLU(LayerSpec):
    """``max(x, 0)`` elementwise."""


@dataclass(frozen=True)
class Sigmoid(LayerSpec):
    """``1 / (1 + exp(−x))`` elementwise."""


@dataclass(frozen=True)
class Tanh(LayerSpec):
    """``tanh(x)`` elementwise."""


@dataclass(frozen=True)
class Dropout(LayerSpec):
    """Inverted dropout: in training ``x · mask / (1 − p)`` with ``P(mask = 0) = p``, identity
    in eval; ``p`` in ``[0, 1)`` (``p = 1`` would divide by zero)."""

    p: float

    def __post_init__(self) -> None:
        p = self.p
        if isinstance(p, bool) or not isinstance(p, numbers.Real):
            raise TypeError(f"Dropout: p must be a real number, got {type(p).__name__} {p!r}")
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        object.__setattr__(self, "p", float(p))

    @property
    def summary(self) -> str:
        return f"Dropout({self.p})"


@dataclass(frozen=True)
class BatchNorm1d(LayerSpec):
    """Batch normalization of ``x: (N, num_features)`` over the batch, with an affine
    ``γ, β`` (``2·num_features`` parameters) and running statistics (buffers, not counted)."""

    num_features: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_features",
                           _size("BatchNorm1d", "num_features", self.num_features))

    def num_parameters(self) -> int:
        return 2 * self.num_features

    @property
    def summary(self) -> str:
        return f"BN({self.num_features})"


@dataclass(frozen=True)
class LayerNorm(LayerSpec):
    """Layer normalization of ``x: (N, D)`` over its ``D = normalized_shape`` features, with an
    affine ``γ, β`` (``2·D`` parameters)."""

    normalized_shape: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "normalized_shape",
                           _size("LayerNorm", "normalized_shape", self.normalized_shape))

    def num_parameters(self) -> int:
        return 2 * self.normalized_shape

    @property
    def summary(self) -> str:
        return f"LN({self.normalized_shape})"


@dataclass(frozen=True)
class GELU(LayerSpec):
    """``x·Φ(x)`` elementwise (``approximate="none"``, Φ the normal CDF) or its tanh form
    ``x/2·(1 + tanh(√(2/π)(x + 0.044715x³)))`` (``approximate="tanh"``)."""

    approximate: str = "none"

    def __post_init__(self) -> None:
        if not isinstance(self.approximate, str):
            raise TypeError(f"GELU: approximate must be a str, "
                            f"got {type(self.approximate).__name__} {self.approximate!r}")
        if self.approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', "
                             f"got {self.approximate!r}")

    @property
    def summary(self) -> str:
        return "GELU" if self.approximate == "none" else "GELU(tanh)"


@dataclass(frozen=True)
class LeakyReLU(LayerSpec):
    """``x`` for ``x > 0``, ``negative_slope·x`` otherwise. Any finite slope is accepted, as
    torch accepts it (a negative one gives a non-monotone unit; 1 the identity)."""

    negative_slope: float = 0.01

    def __post_init__(self) -> None:
        object.__setattr__(self, "negative_slope",
                           _real("LeakyReLU", "negative_slope", self.negative_slope))

    @property
    def summary(self) -> str:
        return f"LeakyReLU({_g(self.negative_slope)})"


@dataclass(frozen=True)
class ELU(LayerSpec):
    """``x`` for ``x > 0``, ``alpha·(eˣ − 1)`` otherwise; ``alpha ≥ 0`` (torch accepts a
    negative alpha, which makes the unit non-monotone; nobody means it)."""

    alpha: float = 1.0

    def __post_init__(self) -> None:
        a = _real("ELU", "alpha", self.alpha)
        if a < 0:
            raise ValueError(f"ELU: alpha must be >= 0, got {a}")
        object.__setattr__(self, "alpha", a)

    @property
    def summary(self) -> str:
        return "ELU" if self.alpha == 1.0 else f"ELU({_g(self.alpha)})"


@dataclass(frozen=True)
class SiLU(LayerSpec):
    """``x·σ(x) = x / (1 + e^{−x})`` elementwise (swish with β = 1)."""


@dataclass(frozen=True)
class Softplus(LayerSpec):
    """``log(1 + e^{βx}) / β``, and ``x`` itself where ``βx > threshold`` (torch's rule: the
    two branches differ by ``log(1 + e^{−threshold})/β`` there — 2e-9 at the defaults, 3.4e-3
    at ``beta=2, threshold=5``). ``beta > 0``; ``threshold`` any finite real."""

    beta: float = 1.0
    threshold: float = 20.0

    def __post_init__(self) -> None:
        b = _real("Softplus", "beta", self.beta)
        if b <= 0:
            raise ValueError(f"Softplus: beta must be > 0, got {b}")
        object.__setattr__(self, "beta", b)
        object.__setattr__(self, "threshold",
                           _real("Softplus", "threshold", self.threshold))

    @property
    def summary(self) -> str:
        if (self.beta, self.threshold) == (1.0, 20.0):
            return "Softplus"
        return f"Softplus({_g(self.beta)},{_g(self.threshold)})"


def _softmax_dim(owner: str, dim) -> int:
    """``dim`` of a softmax over the features of a 2-D batch ``(N, D)``: 1 or −1. torch's
    default ``dim=None`` (a deprecated implicit choice that warns on every call, and picks 0
    for 1-D or 3-D inputs) is not offered: the description says which axis it normalizes."""
    if dim is None:
        raise TypeError(f"{owner}: dim is required (1 or -1); torch's implicit dim=None "
                        f"is deprecated")
    d = _int(owner, "dim", dim)
    if d not in (1, -1):
        raise ValueError(f"{owner}: dim must be 1 or -1 for a batch of shape (N, D), got {d}")
    return d


@dataclass(frozen=True)
class Softmax(LayerSpec):
    """``e^{x_i} / Σ_j e^{x_j}`` over the features of each row of ``x: (N, D)``; ``dim`` 1 or
    −1 (the same axis for a 2-D batch)."""

    dim: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "dim", _softmax_dim("Softmax", self.dim))

    @property
    def summary(self) -> str:
        return f"Softmax({self.dim})"


@dataclass(frozen=True)
class LogSoftmax(LayerSpec):
    """``x_i − log Σ_j e^{x_j}`` over the features of each row of ``x: (N, D)``; ``dim`` 1 or
    −1."""

    dim: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "dim", _softmax_dim("LogSoftmax", self.dim))

    @property
    def summary(self) -> str:
        return f"LogSoftmax({self.dim})"


@dataclass(frozen=True)
class Identity(LayerSpec):
    """``x`` unchanged, of any shape (torch's ``nn.Identity`` ignores its arguments; so does
    this description by having none)."""


@dataclass(frozen=True)
class Flatten(LayerSpec):
    """``(N, d₁, …, d_k) → (N, d₁·…·d_k)``: every axis but the batch axis into one, so what
    follows sees ``(N, D)``. Only torch's defaults ``start_dim=1, end_dim=-1`` are accepted:
    ``start_dim=0`` would merge the batch into the features, and an ``end_dim`` short of the
    last axis leaves an input of more than two axes to layers that take ``(N, D)``."""

    start_dim: int = 1
    end_dim: int = -1

    def __post_init__(self) -> None:
        s = _int("Flatten", "start_dim", self.start_dim)
        e = _int("Flatten", "end_dim", self.end_dim)
        if s != 1:
            raise ValueError(f"Flatten: start_dim must be 1 (keep the batch axis), got {s}")
        if e != -1:
            raise ValueError(f"Flatten: end_dim must be -1 (output (N, D)), got {e}")
        object.__setattr__(self, "start_dim", s)
        object.__setattr__(self, "end_dim", e)


def _pair(owner: str, name: str, value, low: int) -> tuple[int, int]:
    """An image size or step: an int or a pair ``(h, w)`` of ints ≥ ``low`` (as torch's
    ``_pair`` takes them), returned as a pair of ``int``."""
    items = tuple(value) if isinstance(value, tuple | list) else (value, value)
    if len(items) != 2:
        raise ValueError(f"{owner}: {name} must be an int or a pair (h, w), got {value!r}")
    out = tuple(_int(owner, name, v) for v in items)
    if min(out) < low:
        raise ValueError(f"{owner}: {name} must be >= {low}, got {value!r}")
    return out[0], out[1]


def _hw(pair) -> str:
    """``3`` for ``(3, 3)``, ``3x2`` for ``(3, 2)``."""
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


@dataclass(frozen=True)
class Conv2d(LayerSpec):
    """Cross-correlation of ``x: (N, C, H, W)`` with ``F = out_channels`` kernels
    ``W: (F, C, KH, KW)`` (torch's layout on both sides) plus a bias ``(F,)`` when ``bias``:
    ``out[n, f] = b[f] + Σ_c x_pad[n, c] ⋆ W[f, c]`` sampled every ``stride`` with taps
    ``dilation`` apart; ``OH = ⌊(H + 2p − d·(KH − 1) − 1)/s⌋ + 1``. Sizes are an int or an
    ``(h, w)`` pair (kept as a pair); zero padding, ``groups=1``."""

    in_channels: int
    out_channels: int
    kernel_size: int | tuple[int, int]
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    dilation: int | tuple[int, int] = 1
    bias: bool = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "in_channels", _size("Conv2d", "in_channels", self.in_channels))
        set_(self, "out_channels", _size("Conv2d", "out_channels", self.out_channels))
        set_(self, "kernel_size", _pair("Conv2d", "kernel_size", self.kernel_size, 1))
        set_(self, "stride", _pair("Conv2d", "stride", self.stride, 1))
        set_(self, "padding", _pair("Conv2d", "padding", self.padding, 0))
        set_(self, "dilation", _pair("Conv2d", "dilation", self.dilation, 1))
        if not isinstance(self.bias, bool):
            raise TypeError(f"Conv2d: bias must be a bool, got {type(self.bias).__name__}")

    def num_parameters(self) -> int:
        kh, kw = self.kernel_size  # type: ignore[misc]
        return self.out_channels * (self.in_channels * kh * kw + int(self.bias))

    @property
    def summary(self) -> str:
        extra = "".join(f",{k[0]}{_hw(v)}" for k, v, d in (
            ("stride", self.stride, (1, 1)), ("padding", self.padding, (0, 0)),
            ("dilation", self.dilation, (1, 1))) if v != d)
        return (f"Conv({self.in_channels}→{self.out_channels},{_hw(self.kernel_size)}"
                f"{extra}{'' if self.bias else ',nobias'})")


def _pool(owner: str, spec) -> None:
    """Validate a pooling description: kernel ≥ 1, stride ≥ 1 (``None`` → the kernel, torch's
    default), padding ≥ 0 and at most half the kernel (torch's rule: every window must hold
    an input element)."""
    set_ = object.__setattr__
    k = _pair(owner, "kernel_size", spec.kernel_size, 1)
    set_(spec, "kernel_size", k)
    set_(spec, "stride", k if spec.stride is None else _pair(owner, "stride", spec.stride, 1))
    p = _pair(owner, "padding", spec.padding, 0)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"{owner}: padding must be at most half the kernel size, "
                         f"got padding {p} for kernel {k}")
    set_(spec, "padding", p)


def _pool_summary(name: str, spec) -> str:
    s = f"{name}({_hw(spec.kernel_size)}"
    if spec.stride != spec.kernel_size:
        s += f",s{_hw(spec.stride)}"
    return s + (f",p{_hw(spec.padding)})" if spec.padding != (0, 0) else ")")


@dataclass(frozen=True)
class MaxPool2d(LayerSpec):
    """The maximum of each ``kernel_size`` window of ``x: (N, C, H, W)``, windows ``stride``
    apart (default: the kernel size) over the input padded by ``padding`` with −∞; the
    gradient goes to the first maximum of a window in row-major order (torch's rule for
    ties). Sizes are an int or an ``(h, w)`` pair (kept as a pair)."""

    kernel_size: int | tuple[int, int]
    stride: int | tuple[int, int] | None = None
    padding: int | tuple[int, int] = 0

    def __post_init__(self) -> None:
        _pool("MaxPool2d", self)

    @property
    def summary(self) -> str:
        return _pool_summary("MaxPool", self)


@dataclass(frozen=True)
class AvgPool2d(LayerSpec):
    """The mean of each ``kernel_size`` window of ``x: (N, C, H, W)`` padded with zeros,
    always divided by ``KH·KW`` (torch's defaults ``count_include_pad=True``,
    ``ceil_mode=False``, the only ones offered). Sizes are an int or an ``(h, w)`` pair."""

    kernel_size: int | tuple[int, int]
    stride: int | tuple[int, int] | None = None
    padding: int | tuple[int, int] = 0

    def __post_init__(self) -> None:
        _pool("AvgPool2d", self)

    @property
    def summary(self) -> str:
        return _pool_summary("AvgPool", self)


@dataclass(frozen=True)
class BatchNorm2d(LayerSpec):
    """Spatial batch normalization of ``x: (N, C, H, W)``: statistics of each channel over
    ``N, H, W``, an affine ``γ, β`` (``2·num_features`` parameters) and running statistics."""

    num_features: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_features",
                           _size("BatchNorm2d", "num_features", self.num_features))

    def num_parameters(self) -> int:
        return 2 * self.num_features

    @property
    def summary(self) -> str:
        return f"BN2d({self.num_features})"


@dataclass(frozen=True)
class Dropout2d(LayerSpec):
    """Channel dropout of ``x: (N, C, H, W)``: in training each whole channel ``x[n, c]`` is
    zeroed with probability ``p`` and the rest scaled by ``1/(1 − p)``; identity in eval."""

    p: float = 0.5

    def __post_init__(self) -> None:
        p = _real("Dropout2d", "p", self.p)
        if not 0 <= p < 1:
            raise ValueError(f"Dropout2d: p must be in [0, 1), got {p}")
        object.__setattr__(self, "p", p)

    @property
    def summary(self) -> str:
        return f"Dropout2d({self.p})"


# Every description type, in the order the docs list them; tests check that this is all the
# subclasses of LayerSpec and that both builders build each one.
VOCABULARY: tuple[type[LayerSpec], ...] = (Linear, ReLU, Sigmoid, Tanh, Dropout, BatchNorm1d,
                                           LayerNorm, GELU, LeakyReLU, ELU, SiLU, Softplus,
                                           Softmax, LogSoftmax, Identity, Flatten, Conv2d,
                                           MaxPool2d, AvgPool2d, BatchNorm2d, Dropout2d)


def check_layers(layers) -> tuple[LayerSpec, ...]:
    """``layers`` as a tuple of descriptions; ``TypeError`` naming the first item (by index)
    that is not one — e.g. an old-style ``("linear", 2, 3)`` tuple."""
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
        raise TypeError(f"layers must be a sequence of layer descriptions, "
                        f"got {type(layers).__name__}")
    out = tuple(layers)
    for i, item in enumerate(out):
        if not isinstance(item, LayerSpec):
            known = ", ".join(t.__name__ for t in VOCABULARY)
            raise TypeError(f"layer {i}: {item!r} is not a layer description "
                            f"(one of {known} from layerspec)")
    return out


def adjacent(layers, first: type[LayerSpec], second: type[LayerSpec]) -> list[int]:
    """Indices ``i`` with ``layers[i]`` a ``first`` directly followed by a ``second``, e.g. the
    Linear layers that feed a BatchNorm: ``adjacent(layers, Linear, BatchNorm1d)``."""
    return [i for i in range(len(layers) - 1)
            if isinstance(layers[i], first) and isinstance(layers[i + 1], second)]
