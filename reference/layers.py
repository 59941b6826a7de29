"""Layers of the NumPy reference, each a forward and a hand-derived backward.

Layout: a batch is ``x: (N, D)``; ``Linear.weight`` is ``(in, out)`` (cs231n's ``x @ W``),
the transpose of torch's ``(out, in)``. Only ``parity/transfer.py`` transposes.

Contract of every layer:
  ``forward(x, training)`` keeps what ``backward`` needs in ``saved`` and returns the output;
  ``backward(dout)`` returns ``dx`` and fills ``grads`` (same keys and shapes as ``params``);
  it never mutates ``dout``.
  ``params`` (trainable) and ``buffers`` are dicts keyed like torch (``weight``, ``bias``,
  ``running_mean``, ``running_var``, ``num_batches_tracked``);
  ``saved`` is the declared state checkers read (``parity.precise``, ``parity.finite_diff``):
  each class names its entries in its docstring.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Layer", "Linear", "ReLU", "Sigmoid", "Tanh", "Dropout", "Normalization",
           "BatchNorm1d", "LayerNorm", "GELU", "LeakyReLU", "ELU", "SiLU", "Softplus", "Softmax",
           "LogSoftmax", "Identity", "Flatten"]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _as_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _finite(owner: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: {name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be finite, got {value}")
    return float(value)



class Layer:
    """Base: no parameters, no buffers.

    ``saved``: what the last ``forward`` kept for ``backward``, by name (``{"x": x}`` for
    Linear, ``{"out": out}`` for an activation, ``{"mode", "xhat", "istd"}`` for a norm
    layer). Checkers read it; ``parity.precise`` replaces entries with rounded copies before
    calling ``backward`` to model what a float32 kernel stored. ``dtype``: the float dtype a
    layer with state computes in (``None`` for a stateless layer: it follows its input).
    """

    dtype: np.dtype | None = None

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.saved: dict = {}
        self.name = type(self).__name__

    def to_dtype(self, dtype) -> None:
        """Cast parameters and float buffers to ``dtype`` in place (exact when widening)."""
        dt = _as_dtype(dtype)
        self.params = {k: v.astype(dt) for k, v in self.params.items()}
        self.buffers = {k: v.astype(dt) if v.dtype.kind == "f" else v
                        for k, v in self.buffers.items()}
        if self.dtype is not None:
            self.dtype = dt

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def backward_params(self, dout: np.ndarray) -> None:
        """Fill ``grads`` only, for a layer whose input gradient nobody reads (the first layer
        of a training step, as torch skips inputs without ``requires_grad``). Default: the full
        ``backward``; a layer overrides it when the input gradient is real work."""
        self.backward(dout)

    def _check_input(self, x: np.ndarray, features: int | None, dtype: np.dtype | None) -> None:
        """``x: (N, features)``; without ``features`` (an elementwise layer) any ``(N, …)``."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self.name}: input must be a numpy array, got {type(x).__name__}")
        if x.ndim != 2 and (features is not None or x.ndim < 2):
            shape = "(N, D)" if features is not None else "(N, D) or (N, d1, ...)"
            raise ValueError(f"{self.name}: expected input of shape {shape}, got shape {x.shape}")
        if features is not None and x.shape[1] != features:
            raise ValueError(
                f"{self.name}: expected input with {features} features, got shape {x.shape}"
            )
        if dtype is not None and x.dtype != dtype:
            raise TypeError(f"{self.name}: expected input dtype {dtype}, got {x.dtype}")

    def _check_dout(self, dout: np.ndarray, shape: tuple) -> None:
        if dout.shape != shape:
            raise ValueError(f"{self.name}: upstream gradient shape {dout.shape}, expected {shape}")

    def options(self) -> dict:
        """The layer's hyper-parameters by torch's names (``{"p": 0.5}`` for Dropout): what a
        twin must share beyond its weights. Default: none."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Linear(Layer):
    """``out = x @ W + b``; ``x: (N, in)``, ``W: (in, out)``, ``b: (out,)``; saves ``x``.

    Backward: ``dW = x.T @ dout``, ``db = Σ_n dout``, ``dx = dout @ W.T``.
    Weights start at zero; initializers (``reference.init``) fill them.
    """

    def __init__(self, in_features: int, out_features: int, dtype=np.float64) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Linear: sizes must be >= 1, got ({in_features}, {out_features})")
        dt = _as_dtype(dtype)
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.params = {
            "weight": np.zeros((in_features, out_features), dt),
            "bias": np.zeros(out_features, dt),
        }

    def forward(self, x, training=True):
        W, b = self.params["weight"], self.params["bias"]
        self._check_input(x, self.in_features, W.dtype)
        self.saved = {"x": x}
        return x @ W + b

    def backward(self, dout):
        self.backward_params(dout)
        return dout @ self.params["weight"].T

    def backward_params(self, dout):
        """``dW = x.T @ dout``, ``db = Σ_n dout``, without the ``(N, in)`` matmul for ``dx``."""
        x = self.saved["x"]
        self._check_dout(dout, (x.shape[0], self.out_features))
        self.grads = {"weight": x.T @ dout, "bias": dout.sum(axis=0)}

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features})"


class ReLU(Layer):
    """``out = max(0, x)``; ``dx = dout · [x > 0]`` (the gradient at 0 is 0, as in torch);
    saves ``out``."""

    def forward(self, x, training=True):
        self._check_input(x, None, None)
        out = np.maximum(x, 0)
        self.saved = {"out": out}
        return out

    def backward(self, dout):
        out = self.saved["out"]
        self._check_dout(dout, out.shape)
        return np.where(out > 0, dout, 0).astype(dout.dtype, copy=False)


class Sigmoid(Layer):
    """``σ(x) = 1 / (1 + e^{−x})``, evaluated without overflow; ``dx = dout · σ(1 − σ)``;
    saves ``out``."""

    def forward(self, x, training=True):
        self._check_input(x, None, None)
        out = sigmoid(x)
        self.saved = {"out": out}
        return out

    def backward(self, dout):
        s = self.saved["out"]
        self._check_dout(dout, s.shape)
        return dout * (1 - s) * s


class Tanh(Layer):
    """``out = tanh x``; ``dx = dout · (1 − out²)``; saves ``out``."""

    def forward(self, x, training=True):
        self._check_input(x, None, None)
        out = np.tanh(x)
        self.saved = {"out": out}
        return out

    def backward(self, dout):
        out = self.saved["out"]
        self._check_dout(dout, out.shape)
        return dout * (1 - out * out)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, overflow-free: ``e^{min(x,0)} / (1 + e^{−|x|})``."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


class Dropout(Layer):
    """Inverted dropout: train ``out = x · (keep · s)`` with ``keep ~ Bernoulli(1 − p)`` and
    ``s = 1/(1 − p)`` formed as torch forms it (``scale``); eval is the identity.
    ``dx = dout · (keep · s)``. Saves ``scale`` (``keep · s``, training only); the keep-mask
    of the last training forward is ``last_mask``.

    Masks come from ``rng`` (a ``numpy.random.Generator``) unless masks were queued with
    ``queue_masks`` — parity hands in torch's masks so both sides drop the same units.
    """

    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = float(p)
        self.rng = rng
        self._queued: list[np.ndarray] = []

    def queue_masks(self, masks) -> None:
        """Use these boolean keep-masks (one per training forward call) before drawing."""
        self._queued.extend(np.asarray(m, dtype=bool) for m in masks)

    @property
    def queued(self) -> int:
        """How many queued masks no forward has used yet."""
        return len(self._queued)

    def mask_shape(self, shape: tuple) -> tuple:
        """The shape of one keep-mask for an input of ``shape``: one decision per unit."""
        return shape

    def _check_batch(self, x) -> None:
        self._check_input(x, None, None)

    def forward(self, x, training=True):
        self._check_batch(x)
        if not training or self.p == 0.0:
            self.saved = {}
            return x
        shape = self.mask_shape(x.shape)
        if self._queued:
            keep = self._queued.pop(0)
            if keep.shape != shape:
                raise ValueError(f"{self.name}: queued mask shape {keep.shape}, expected "
                                 f"{shape} for input {x.shape}")
        else:
            if self.rng is None:
                raise ValueError(f"{self.name}: training needs an rng (numpy Generator) or "
                                 f"queued masks")
            keep = self.rng.random(shape) >= self.p
        self.last_mask = keep
        self.saved = {"scale": keep.astype(x.dtype) * self.scale(x.dtype)}
        return x * self.saved["scale"]

    def scale(self, dtype) -> np.floating:
        """The factor on kept units, ``1/(1 − p)`` formed as torch's CPU path forms it.

        torch 2.x, aten/src/ATen/native/Dropout.cpp, ``_dropout_impl`` (what ``at::dropout``
        runs on CPU: ``is_fused_kernel_acceptable`` is false there): ``noise =
        empty_like(x).bernoulli_(1 − p); noise.div_(1 − p); return x.mul(noise)``. The
        double ``1 − p`` is a wrapped scalar cast to x's dtype, and the CPU ``div_true_kernel``
        divides in that dtype (only half/bfloat16 take the reciprocal path). So the scale is
        ``dtype(1) / dtype(1 − p)`` — one IEEE division in the dtype — not
        ``dtype(1/(1 − p))`` rounded from double: in float32 they differ by one ulp at
        p = 0.15 (1.1764705 vs 1.1764706). Output and backward are one multiply by it.
        """
        dt = np.dtype(dtype).type
        return dt(1.0) / dt(1.0 - self.p)

    def backward(self, dout):
        if "scale" not in self.saved:
            return dout
        scale = self.saved["scale"]
        self._check_dout(dout, scale.shape)
        return dout * scale

    def options(self) -> dict:
        return {"p": self.p}

    def __repr__(self):
        return f"Dropout(p={self.p})"


class Normalization(Layer):
    """Shared math of BatchNorm1d (over the batch, axis 0) and LayerNorm (over features, axis 1).

    ``x̂ = (x − μ) / sqrt(σ² + eps)`` with the biased variance, ``out = γ x̂ + β``.
    Saves ``mode`` (``"batch"``: normalized by its input's statistics; ``"fixed"``: by running
    ones, eval-mode BatchNorm), ``xhat`` (x̂) and ``istd`` (1/sqrt(σ² + eps), keepdims).
    Backward over the normalized axis with ``M`` entries and ``g = dout · γ``:
    ``dx = (1/M) · istd · (M g − Σ g − x̂ Σ(g x̂))``, ``dγ = Σ_n dout x̂``, ``dβ = Σ_n dout``.
    """

    axis = 0

    def __init__(self, num_features: int, eps: float, affine: bool, dtype) -> None:
        super().__init__()
        dt = _as_dtype(dtype)
        self.num_features, self.eps, self.affine = int(num_features), float(eps), affine
        if affine:
            self.params = {"weight": np.ones(num_features, dt), "bias": np.zeros(num_features, dt)}
        self.dtype = dt

    def options(self) -> dict:
        return {"eps": self.eps, "affine": self.affine}

    def _affine(self, xhat):
        if not self.affine:
            return xhat
        return xhat * self.params["weight"] + self.params["bias"]

    def _normalize(self, x):
        ax = self.axis
        mu = x.mean(axis=ax, keepdims=True)
        var = x.var(axis=ax, keepdims=True)
        istd = 1 / np.sqrt(var + self.eps)
        xhat = (x - mu) * istd
        self.saved = {"mode": "batch", "xhat": xhat, "istd": istd}
        return xhat, mu, var

    def backward(self, dout):
        kind, xhat, istd = self.saved["mode"], self.saved["xhat"], self.saved["istd"]
        self._check_dout(dout, xhat.shape)
        g = dout * self.params["weight"] if self.affine else dout
        if self.affine:
            self.grads = {"weight": (dout * xhat).sum(axis=0), "bias": dout.sum(axis=0)}
        if kind == "fixed":  # eval-mode BatchNorm: an affine map of x
            return g * istd
        ax, m = self.axis, xhat.shape[self.axis]
        sg = g.sum(axis=ax, keepdims=True)
        sgx = (g * xhat).sum(axis=ax, keepdims=True)
        return (istd / m) * (m * g - sg - xhat * sgx)


class BatchNorm1d(Normalization):
    """Batch normalization over ``x: (N, C)``, as ``torch.nn.BatchNorm1d``.

    Train: normalize with the batch mean and *biased* variance; then
    ``running_mean ← (1 − m)·running_mean + m·μ`` and
    ``running_var ← (1 − m)·running_var + m·σ²·N/(N − 1)`` (the *unbiased* variance);
    ``momentum=None`` uses the cumulative average ``m = 1/num_batches_tracked``.
    Eval: normalize with the running statistics.
    """

    axis = 0

    def __init__(self, num_features, eps=1e-5, momentum: float | None = 0.1, affine=True,
                 dtype=np.float64):
        super().__init__(num_features, eps, affine, dtype)
        self.momentum = momentum
        dt = self.dtype
        self.buffers = {
            "running_mean": np.zeros(num_features, dt),
            "running_var": np.ones(num_features, dt),
            "num_batches_tracked": np.zeros((), np.int64),
        }

    def options(self) -> dict:
        return {**super().options(), "momentum": self.momentum, "track_running_stats": True}

    def forward(self, x, training=True):
        self._check_input(x, self.num_features, self.dtype)
        if not training:
            rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
            istd = 1 / np.sqrt(rv + self.eps)
            xhat = (x - rm) * istd
            self.saved = {"mode": "fixed", "xhat": xhat, "istd": istd}
            return self._affine(xhat)
        n = x.shape[0]
        if n < 2:
            raise ValueError(
                f"BatchNorm1d: expected more than 1 value per channel when training, "
                f"got input of shape {x.shape}"
            )
        xhat, mu, var = self._normalize(x)
        b = self.buffers
        b["num_batches_tracked"] = b["num_batches_tracked"] + 1
        m = 1.0 / float(b["num_batches_tracked"]) if self.momentum is None else self.momentum
        unbiased = var[0] * (n / (n - 1))
        b["running_mean"] = ((1 - m) * b["running_mean"] + m * mu[0]).astype(self.dtype)
        b["running_var"] = ((1 - m) * b["running_var"] + m * unbiased).astype(self.dtype)
        return self._affine(xhat)

    def __repr__(self):
        return f"BatchNorm1d({self.num_features})"


class LayerNorm(Normalization):
    """Layer normalization over the features of ``x: (N, D)`` (biased variance, same in train
    and eval), as ``torch.nn.LayerNorm(D)``."""

    axis = 1

    def __init__(self, normalized_shape: int, eps=1e-5, elementwise_affine=True,
                 dtype=np.float64):
        super().__init__(normalized_shape, eps, elementwise_affine, dtype)

    def options(self) -> dict:
        return {"eps": self.eps, "elementwise_affine": self.affine}

    def forward(self, x, training=True):
        self._check_input(x, self.num_features, self.dtype)
        xhat, _, _ = self._normalize(x)
        return self._affine(xhat)

    def __repr__(self):
        return f"LayerNorm({self.num_features})"


def _check_float(layer: Layer, x) -> None:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{layer.name}: input must be a numpy array, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{layer.name}: input dtype must be float32 or float64, got {x.dtype}")


def _check_2d(layer: Layer, x) -> np.dtype:
    """``x: (N, …)`` float32/float64 (an elementwise layer's input; a softmax checks for
    ``(N, D)`` itself); returns its dtype's scalar type."""
    layer._check_input(x, None, None)
    _check_float(layer, x)
    return x.dtype.type


# <math.h> constants as glibc spells them (Python parses each to the nearest double)
M_SQRT2 = 1.41421356237309504880


M_SQRT1_2 = 0.70710678118654752440


M_2_SQRTPI = 1.12837916709551257390


GELU_TANH_BETA = M_SQRT2 * M_2_SQRTPI * 0.5    # √(2/π), as torch's kGeluBeta (double)


GELU_TANH_KAPPA = 0.044715


GELU_PDF_BETA = M_2_SQRTPI * M_SQRT1_2 * 0.5    # 1/√(2π), GeluBackward's kBeta (double)


def erf(z: np.ndarray) -> np.ndarray:
    """The error function elementwise, in ``z``'s dtype. NumPy has none; the standard
    library's ``math.erf`` is within 1 ulp in float64 (measured against mpmath: ≤ 1.0 ulp,
    as torch's float64 ``Sleef_erfd8_u10``). A float32 ``z`` is exact in float64, so rounding
    that result once gives float32 erf within 0.5 ulp — more accurate than the polynomial
    torch's vectorized float32 GELU uses (``rounding.py``)."""
    flat = np.fromiter(map(math.erf, z.ravel().tolist()), dtype=np.float64, count=z.size)
    return flat.reshape(z.shape).astype(z.dtype, copy=False)


class GELU(Layer):
    """``out = x·Φ(x)``, ``x: (N, D)`` → ``(N, D)``; saves ``x``.

    ``approximate="none"``: ``out = (x/2)·(1 + erf(x/√2))``;
    ``dx = dout ⊙ (Φ(x) + x·φ(x))`` with ``Φ = (1 + erf(x/√2))/2``, ``φ = e^{−x²/2}/√(2π)``.
    ``approximate="tanh"``: ``t = tanh(√(2/π)·(x + 0.044715x³))``, ``out = (x/2)·(1 + t)``;
    ``dx = dout ⊙ ((1 + t)/2 + (x/2)·(1 − t²)·√(2/π)·(1 + 3·0.044715x²))``.
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x, training=True):
        t = _check_2d(self, x)
        self.saved = {"x": x}
        half, one = t(0.5), t(1)
        if self.approximate == "none":
            return x * half * (one + erf(x * t(M_SQRT1_2)))
        inner = t(GELU_TANH_BETA) * (x + t(GELU_TANH_KAPPA) * (x * x * x))
        return half * x * (one + np.tanh(inner))

    def backward(self, dout):
        x = self.saved["x"]
        self._check_dout(dout, x.shape)
        t = x.dtype.type
        half, one = t(0.5), t(1)
        if self.approximate == "none":
            cdf = half * (one + erf(x * t(M_SQRT1_2)))
            pdf = t(GELU_PDF_BETA) * np.exp(x * x * t(-0.5))
            return dout * (cdf + x * pdf)
        beta, kappa = t(GELU_TANH_BETA), t(GELU_TANH_KAPPA)
        x_sq = x * x
        th = np.tanh(beta * (x + kappa * (x_sq * x)))
        left_derivative = half * (one + th)
        inner_derivative = beta * (one + t(3) * kappa * x_sq)
        right_derivative = half * x * (one - th * th) * inner_derivative
        return dout * (left_derivative + right_derivative)

    def options(self) -> dict:
        return {"approximate": self.approximate}

    def __repr__(self):
        return f"GELU(approximate={self.approximate!r})"


class LeakyReLU(Layer):
    """``out = x`` where ``x > 0``, ``negative_slope·x`` elsewhere; ``x: (N, D)``; saves ``x``.
    ``dx = dout`` where ``x > 0``, ``negative_slope·dout`` elsewhere — at ``x = 0`` the
    slope, as torch's ``leaky_relu_backward`` (``x > 0 ? d : d·slope``)."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = _finite("LeakyReLU", "negative_slope", negative_slope)

    def forward(self, x, training=True):
        t = _check_2d(self, x)
        self.saved = {"x": x}
        return np.where(x > 0, x, x * t(self.negative_slope))

    def backward(self, dout):
        x = self.saved["x"]
        self._check_dout(dout, x.shape)
        return np.where(x > 0, dout, dout * x.dtype.type(self.negative_slope))

    def options(self) -> dict:
        return {"negative_slope": self.negative_slope}

    def __repr__(self):
        return f"LeakyReLU(negative_slope={self.negative_slope})"


class ELU(Layer):
    """``out = x`` where ``x ≥ 0``, ``alpha·expm1(x)`` where ``x < 0``; ``x: (N, D)``; saves
    ``x``. ``dx = dout`` where ``x > 0``, ``(dout·alpha)·eˣ`` where ``x ≤ 0`` — at ``x = 0``
    ``alpha``, as torch's ``elu_backward`` (``is_result=false``: it reads the input)."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = _finite("ELU", "alpha", alpha)

    def forward(self, x, training=True):
        t = _check_2d(self, x)
        self.saved = {"x": x}
        return np.where(x >= 0, x, np.expm1(np.minimum(x, 0)) * t(self.alpha))

    def backward(self, dout):
        x = self.saved["x"]
        self._check_dout(dout, x.shape)
        alpha = x.dtype.type(self.alpha)
        return np.where(x > 0, dout, dout * alpha * np.exp(np.minimum(x, 0)))

    def options(self) -> dict:
        return {"alpha": self.alpha}

    def __repr__(self):
        return f"ELU(alpha={self.alpha})"


class SiLU(Layer):
    """``out = x / (1 + e^{−x})``, ``x: (N, D)``; saves ``x``.
    ``dx = (dout·σ)·(1 + x·(1 − σ))`` with ``σ = 1/(1 + e^{−x})``. Where ``e^{−x}``
    overflows (``x < −88.7`` in float32, ``−709.8`` in float64) the result is ``−0`` and
    ``dx = 0``, as torch's kernel returns."""

    def forward(self, x, training=True):
        t = _check_2d(self, x)
        self.saved = {"x": x}
        with np.errstate(over="ignore"):
            return x / (t(1) + np.exp(-x))

    def backward(self, dout):
        x = self.saved["x"]
        self._check_dout(dout, x.shape)
        one = x.dtype.type(1)
        with np.errstate(over="ignore"):
            s = one / (one + np.exp(-x))
        return dout * s * (one + x * (one - s))


class Softplus(Layer):
    """``out = log1p(e^{βx})/β`` where ``βx ≤ threshold``, ``x`` where ``βx > threshold``;
    ``x: (N, D)``; saves ``x``. ``dx = (dout·z)/(z + 1)`` with ``z = e^{βx}`` (``dout·σ(βx)``)
    where ``βx ≤ threshold``, ``dout`` beyond. ``β`` and ``threshold`` are cast to the dtype
    and ``βx`` is the rounded product, as torch compares it."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = _finite("Softplus", "beta", beta)
        if self.beta <= 0:
            raise ValueError(f"Softplus: beta must be > 0, got {beta}")
        self.threshold = _finite("Softplus", "threshold", threshold)

    def _scaled(self, x):
        t = x.dtype.type
        bx = x * t(self.beta)
        return bx, bx > t(self.threshold)

    def forward(self, x, training=True):
        _check_2d(self, x)
        self.saved = {"x": x}
        bx, above = self._scaled(x)
        with np.errstate(over="ignore"):   # e^{βx} overflows only where x itself is returned
            soft = np.log1p(np.exp(bx)) / x.dtype.type(self.beta)
        return np.where(above, x, soft)

    def backward(self, dout):
        x = self.saved["x"]
        self._check_dout(dout, x.shape)
        bx, above = self._scaled(x)
        with np.errstate(over="ignore", invalid="ignore"):   # inf/inf only where above
            z = np.exp(bx)
            soft = dout * z / (z + x.dtype.type(1))
        return np.where(above, dout, soft)

    def options(self) -> dict:
        return {"beta": self.beta, "threshold": self.threshold}

    def __repr__(self):
        return f"Softplus(beta={self.beta}, threshold={self.threshold})"


class _RowSoftmax(Layer):
    """Shared by Softmax and LogSoftmax: ``dim`` 1 or −1, the feature axis of ``(N, D)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"{self.name}: dim must be an int (1 or -1), got {dim!r}")
        if dim not in (1, -1):
            raise ValueError(f"{self.name}: dim must be 1 or -1 for (N, D), got {dim}")
        self.dim = int(dim)

    def _check_rows(self, x):
        """``x: (N, D)``: ``dim`` 1 and −1 are one axis only there."""
        t = _check_2d(self, x)
        if x.ndim != 2:
            raise ValueError(f"{self.name}: expected input of shape (N, D), got shape {x.shape}")
        return t

    def options(self) -> dict:
        return {"dim": self.dim}

    def __repr__(self):
        return f"{type(self).__name__}(dim={self.dim})"


class Softmax(_RowSoftmax):
    """Row softmax of ``x: (N, D)`` → ``(N, D)``; saves ``out`` (= s).
    ``e = exp(x − max_j x_j)``, ``s = e · (1/Σ_j e_j)`` (torch multiplies by the reciprocal);
    ``dx = s ⊙ (dout − Σ_j dout_j s_j)``."""

    def forward(self, x, training=True):
        t = self._check_rows(x)
        e = np.exp(x - x.max(axis=1, keepdims=True))
        out = e * (t(1) / e.sum(axis=1, keepdims=True))
        self.saved = {"out": out}
        return out

    def backward(self, dout):
        s = self.saved["out"]
        self._check_dout(dout, s.shape)
        return (dout - (dout * s).sum(axis=1, keepdims=True)) * s


class LogSoftmax(_RowSoftmax):
    """Row log-softmax of ``x: (N, D)`` → ``(N, D)``; saves ``out``.
    ``out = (x − m) − log Σ_j e^{x_j − m}`` with ``m = max_j x_j`` (torch subtracts in this
    order; ``x − (m + log Σ)`` loses the small differences of large logits);
    ``dx = dout − exp(out)·Σ_j dout_j``."""

    def forward(self, x, training=True):
        self._check_rows(x)
        shifted = x - x.max(axis=1, keepdims=True)
        out = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.saved = {"out": out}
        return out

    def backward(self, dout):
        out = self.saved["out"]
        self._check_dout(dout, out.shape)
        return dout - np.exp(out) * dout.sum(axis=1, keepdims=True)


class Identity(Layer):
    """``out = x``, ``dx = dout``: the arrays themselves, as torch's ``nn.Identity`` returns
    its input. Any shape (not only ``(N, D)``): it may stand anywhere a layer may — between
    image layers too — and has no features to check; saves nothing."""

    def forward(self, x, training=True):
        _check_float(self, x)
        self.saved = {}
        return x

    def backward(self, dout):
        return dout


class Flatten(Layer):
    """``x: (N, d₁, …, d_k)`` (k ≥ 1) → ``(N, d₁·…·d_k)``, a reshape (C order, as torch's
    contiguous ``view``); ``dx = dout`` reshaped back; saves ``input_shape``. Takes any
    number of axes ≥ 2 — that is its purpose (``(N, C, H, W)`` → ``(N, C·H·W)``), so it
    checks the batch axis and dtype itself instead of ``_check_input``'s ``(N, D)``."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        if (start_dim, end_dim) != (1, -1):
            raise ValueError(f"Flatten: only start_dim=1, end_dim=-1 are supported, "
                             f"got start_dim={start_dim}, end_dim={end_dim}")
        self.start_dim, self.end_dim = 1, -1

    def forward(self, x, training=True):
        _check_float(self, x)
        if x.ndim < 2:
            raise ValueError(f"Flatten: expected input of shape (N, d1, ...), got shape {x.shape}")
        self.saved = {"input_shape": x.shape}
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        shape = self.saved["input_shape"]
        self._check_dout(dout, (shape[0], int(np.prod(shape[1:], dtype=np.int64))))
        return dout.reshape(shape)

    def options(self) -> dict:
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}

    def __repr__(self):
        return f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim})"
