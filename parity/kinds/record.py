"""What one layer kind is to nn-parity: a record that generic code looks up.

A ``LayerKind`` ties the three faces of a kind — its ``layerspec`` description, its NumPy
class (``reference.layers``), its stock torch module — and holds what every checker needs to
know about it: building either twin from the description, converting a torch module into the
NumPy layer and back (options included), which arrays are laid out differently between the
twins (``layouts``, applied by ``parity.transfer`` to weights and optimizer state alike), its
float32 rounding model (read by ``parity.precise``), its finite-difference hazards (read by
``parity.finite_diff``) and the example instances the generic tests draw. The defaults fit a
stateless elementwise layer whose options are its constructor arguments on both sides; a kind
overrides only what differs. torch's ``ModuleInfo`` is the model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from parity import layerspec as S
from parity.distance import contiguous
from parity.reference import layers as L


class Unsupported(ValueError):
    """A torch module (or NumPy layer) of a known kind whose configuration has no twin, e.g.
    ``Linear(bias=False)``: ``what`` names it, ``why`` says what is missing."""

    def __init__(self, what: str, why: str = "") -> None:
        super().__init__(f"{what} is not supported{f' ({why})' if why else ''}")
        self.what, self.why = what, why


@dataclass(frozen=True)
class Layout:
    """How a NumPy array is laid out against its torch twin. ``axes``: the permutation that
    turns one into the other (its own inverse when it is a transpose); ``None`` is the
    identity. ``note`` explains it in a failure message."""

    axes: tuple[int, ...] | None = None
    note: str = ""

    def applies(self, a) -> bool:
        """Only arrays shaped like the parameter move (a scalar ``step`` counter does not)."""
        return self.axes is not None and np.ndim(a) == len(self.axes)

    def to_torch(self, a: np.ndarray) -> np.ndarray:
        return contiguous(np.transpose(a, self.axes)) if self.applies(a) else a

    def to_numpy(self, a: np.ndarray) -> np.ndarray:
        if not self.applies(a):
            return a
        assert self.axes is not None
        return contiguous(np.transpose(a, np.argsort(self.axes)))

    def torch_view(self, a: np.ndarray) -> np.ndarray:
        """``a`` seen in torch layout without a copy (a transposed view, for a reader that
        is done before ``a`` changes: ``parity.judge`` copies it once, a tensor at a time)."""
        return np.transpose(a, self.axes) if self.applies(a) else a

    def numpy_shape(self, torch_shape: tuple) -> tuple:
        if self.axes is None or len(torch_shape) != len(self.axes):
            return tuple(torch_shape)
        return tuple(torch_shape[i] for i in np.argsort(self.axes))


SAME = Layout()


@dataclass(frozen=True)
class SizeOf:
    """``x.size(dim)`` of the input of the call it stands in (``x.view(x.size(0), -1)``):
    how a traced forward (``parity.chain``) hands a shape taken from the chain's own value
    to ``LayerKind.from_call``."""

    dim: int


REQUIRED = object()     # an option of ``LayerKind.functions`` without a default
HARMLESS_OPTIONS = ("inplace", "_stacklevel")   # change no value of a call in a chain


@dataclass(frozen=True)
class Example:
    """One instance the generic tests build: a description and the batch shape it takes."""

    spec: S.LayerSpec
    input_shape: tuple[int, ...]


def spec_fields(item: S.LayerSpec) -> dict:
    """A description's fields by name (``{"p": 0.5}``): the constructor arguments of both
    twins for a kind whose names follow torch's."""
    return {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}  # type: ignore[arg-type]


class LayerKind:
    """The record of one layer kind; subclasses set the class attributes and override the
    methods that differ from a stateless elementwise layer."""

    spec: ClassVar[type]                  # the layerspec description
    numpy: ClassVar[type]                 # the reference.layers class
    torch: ClassVar[type]                 # the torch.nn module class
    layouts: ClassVar[dict[str, Layout]] = {}   # parameter/buffer name → Layout (SAME if absent)
    penalized: ClassVar[tuple[str, ...]] = ()   # what an L2 "on weights only" decays (cs231n's W)
    feature_bias: ClassVar[str | None] = None   # the parameter adding a constant per output feature
    cancels_feature_constant: ClassVar[bool] = False   # training forward removes one from its input
    draws_masks: ClassVar[bool] = False   # random in training: takes masks (``queue_masks``)
    normalizes: ClassVar[bool] = False    # divides by its input's spread along ``layer.axis``
    min_batch: ClassVar[int] = 1          # rows a training forward needs
    running_state: ClassVar[bool] = False  # training updates buffers the next step reads
    examples: ClassVar[tuple[Example, ...]] = ()
    # the torch functions (``F.relu``) and Tensor method names (``"relu"``) this kind stands
    # for in a traced forward → their options after the input, in order, with defaults
    functions: ClassVar[dict] = {}

    @property
    def name(self) -> str:
        return self.spec.__name__

    # ---- building and converting
    def build_numpy(self, item, *, dtype: np.dtype, init: str, rng: np.random.Generator,
                    dropout_rng: np.random.Generator | None) -> L.Layer:
        """The NumPy layer of ``item`` (its parameters initialized from ``rng``)."""
        return self.numpy(**spec_fields(item))

    def build_torch(self, item, dtype):
        """The torch module of ``item`` (torch's own init; parity overwrites it)."""
        return self.torch(**spec_fields(item))

    def from_torch(self, module, dtype: np.dtype, rng: np.random.Generator | None) -> L.Layer:
        """The NumPy layer twinned with ``module`` (parameters still at their defaults;
        ``parity.transfer`` copies them). ``Unsupported`` for a configuration without twin."""
        return self.numpy(**{f.name: getattr(module, f.name)
                             for f in dataclasses.fields(self.spec)})

    def to_torch(self, layer: L.Layer, dtype):
        """The torch module twinned with ``layer`` (weights copied afterwards)."""
        return self.torch(**layer.options())

    def from_call(self, options: dict, training: bool):
        """The stock module computing what a call of one of ``functions`` with ``options``
        (by name, defaults filled) computes, in a forward traced in training mode
        ``training``: the description's fields are the module's options; ``inplace`` changes
        no value; any other option must be ``None``. ``Unsupported`` otherwise."""
        fields = {f.name for f in dataclasses.fields(self.spec)}
        for k, v in options.items():
            if k not in fields and k not in HARMLESS_OPTIONS and v is not None:
                raise Unsupported(f"{k}={v!r}", f"{self.name} takes no such option")
        try:
            item = self.spec(**{k: v for k, v in options.items() if k in fields})
        except (TypeError, ValueError) as e:
            raise Unsupported(", ".join(f"{k}={v!r}" for k, v in options.items()
                                        if k in fields), str(e)) from None
        return self.torch(**spec_fields(item))

    # ---- float32 rounding model (parity.precise): error bounds in units of the roundoff
    def forward_amplitude(self, layer: L.Layer, x, out):
        """The error bound of the output: one relative rounding, ``|out|``."""
        return np.abs(out)

    def backward_amplitude(self, layer: L.Layer, x, d, dx):
        """The error bound of the input gradient: one relative rounding, ``|dx|``."""
        return np.abs(dx)

    def gradient_amplitudes(self, layer: L.Layer, x, d) -> dict:
        """The error bound of each parameter gradient: ``|g|``."""
        return {k: np.abs(g) for k, g in layer.grads.items()}

    def buffer_amplitudes(self, layer: L.Layer, x) -> dict:
        """The error bound of each float buffer a training forward on ``x`` left, by name;
        a buffer not named gets one relative rounding, ``|v|``."""
        return {}

    def shared_forward(self, layer: L.Layer, x, out, perturb):
        """Errors shared along an axis (a reduction's), added to the perturbed output."""
        return out

    def rounded_backward(self, layer: L.Layer, x, d, perturb):
        """``layer.backward(d)`` as a float32 kernel runs it (default: exactly)."""
        return layer.backward(d)

    def shared_backward(self, layer: L.Layer, x, d, dx, perturb):
        """Errors shared along an axis in the input gradient."""
        return dx

    def output_range(self, layer) -> tuple[float, float] | None:
        """The values its float32 kernel can return (``(0, 1)`` for Sigmoid), or ``None``:
        a perturbed output is clipped to it (1 + u is no value a Sigmoid returns)."""
        return None

    def replay_keep_mask(self, module, x):
        """For a kind that ``draws_masks``: the keep-mask (a boolean tensor, the NumPy layer's
        ``mask_shape``) that ``module``'s training forward on ``x`` drew, replayed from the
        CPU RNG state it started from (``parity.masks``)."""
        raise TypeError(f"{self.name} draws no masks")

    # ---- finite-difference hazards (parity.finite_diff)
    def kinks(self, layer: L.Layer) -> tuple[float, ...]:
        """Inputs where the first derivative jumps: a central difference straddling one
        measures the mean of two slopes, so the checker keeps inputs away from them."""
        return ()

    def has_kinks(self, layer: L.Layer) -> bool:
        """Whether the derivative jumps anywhere (at ``kinks``, or where inputs tie)."""
        return bool(self.kinks(layer))

    def kink_distance(self, layer: L.Layer, x: np.ndarray,
                      ties_counted: bool = False) -> np.ndarray:
        """Per entry of the input ``x``, how far it may move before the derivative jumps:
        ``|x − k|`` to the nearest of ``kinks`` (``inf`` without kinks). ``ties_counted``: the
        caller verifies ``kink_sides`` at every evaluation, so a kind whose exact ties that
        count decides (``kink_ties``) may leave them out."""
        points = self.kinks(layer)
        if not points:
            return np.full(np.shape(x), np.inf)
        return np.min([np.abs(x - k) for k in points], axis=0)

    def kink_ties(self, layer: L.Layer, x: np.ndarray) -> np.ndarray | None:
        """Where ``x`` ties exactly at a kink that a change of ``kink_sides`` reveals once a
        step parts it (a max pooling window's shared maximum): a bool array of
        ``kink_sides``' shape, rows on axis 0; ``None`` for a kind without such ties."""
        return None

    def kink_sides(self, layer: L.Layer, x: np.ndarray) -> np.ndarray:
        """Which side of each kink ``x`` is on (``x > k``, stacked): a change between two
        evaluations means a finite difference crossed one."""
        return np.stack([x > k for k in self.kinks(layer)])

    def smallest_variance(self, layer: L.Layer, x: np.ndarray) -> float:
        """For a kind that ``normalizes``: the smallest variance it divides ``x`` by."""
        return float(x.var(axis=layer.axis).min())  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"<kind {self.name}>"
