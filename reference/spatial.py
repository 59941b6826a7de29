"""Image layers of the NumPy reference: Conv2d, MaxPool2d, AvgPool2d, BatchNorm2d, Dropout2d.

Layout: NCHW, as torch. A batch is ``x: (N, C, H, W)``; a convolution's kernels are
``W: (F, C, KH, KW)`` (torch's own layout, so nothing is transposed between the twins) and
its bias ``b: (F,)``. Sizes are ``(h, w)`` pairs. An output side is
``O = ⌊(H + 2p − d·(K − 1) − 1)/s⌋ + 1`` (stride s, padding p, dilation d).

Vectorized: ``windows`` views the padded input as ``(N, C, OH, OW, KH, KW)`` (``as_strided``,
no copy) and the sums are ``tensordot``s over it; a backward that scatters into overlapping
windows loops over the ``KH·KW`` kernel taps, never over pixels.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided
from parity.reference.layers import BatchNorm1d, Dropout, Layer, _as_dtype, _check_float

__all__ = ["Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm2d", "Dropout2d", "conv2d",
           "conv2d_input_grad", "conv2d_weight_grad", "avg_pool2d", "output_size",
           "windows", "scatter_windows"]

Pair = tuple[int, int]


def _pair(v) -> Pair:
    t = tuple(v) if isinstance(v, tuple | list) else (v, v)
    return int(t[0]), int(t[1])


def output_size(size: Pair, kernel: Pair, stride: Pair, padding: Pair,
                dilation: Pair = (1, 1)) -> Pair:
    """``(OH, OW)``: ``⌊(H + 2p − d·(K − 1) − 1)/s⌋ + 1`` per side."""
    return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1  # type: ignore[return-value]
                 for n, k, s, p, d in zip(size, kernel, stride, padding, dilation))


def pad(x: np.ndarray, padding: Pair, value: float = 0.0) -> np.ndarray:
    """``x: (N, C, H, W)`` with ``padding`` rows/columns of ``value`` on each side."""
    ph, pw = padding
    if ph == pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def windows(xp: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair = (1, 1)) -> np.ndarray:
    """Read-only view ``(N, C, OH, OW, KH, KW)`` of a padded ``xp: (N, C, Hp, Wp)``:
    ``[n, c, i, j, a, b] = xp[n, c, i·sh + a·dh, j·sw + b·dw]``."""
    n, c, hp, wp = xp.shape
    oh, ow = output_size((hp, wp), kernel, stride, (0, 0), dilation)
    s0, s1, s2, s3 = xp.strides
    return as_strided(xp, (n, c, oh, ow, *kernel),
                      (s0, s1, s2 * stride[0], s3 * stride[1], s2 * dilation[0], s3 * dilation[1]),
                      writeable=False)


def scatter_windows(cols: np.ndarray, padded: tuple, stride: Pair,
                    dilation: Pair = (1, 1)) -> np.ndarray:
    """The adjoint of ``windows``: ``cols: (N, C, OH, OW, KH, KW)`` summed into a zero
    ``(N, C, Hp, Wp)`` where each entry was read from (overlapping windows add up); one
    strided add per kernel tap ``(a, b)``."""
    n, c, oh, ow, kh, kw = cols.shape
    out = np.zeros(padded, cols.dtype)
    (sh, sw), (dh, dw) = stride, dilation
    for a in range(kh):
        for b in range(kw):
            out[:, :, a * dh:a * dh + sh * (oh - 1) + 1:sh,
                b * dw:b * dw + sw * (ow - 1) + 1:sw] += cols[:, :, :, :, a, b]
    return out


def conv2d(x: np.ndarray, w: np.ndarray, stride: Pair = (1, 1), padding: Pair = (0, 0),
           dilation: Pair = (1, 1)) -> np.ndarray:
    """``out[n, f, i, j] = Σ_{c,a,b} x_pad[n, c, i·sh + a·dh, j·sw + b·dw] · w[f, c, a, b]``;
    ``x: (N, C, H, W)``, ``w: (F, C, KH, KW)`` → ``(N, F, OH, OW)`` (no bias)."""
    cols = windows(pad(x, padding), w.shape[2:], stride, dilation)
    return np.tensordot(cols, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)


def conv2d_weight_grad(x: np.ndarray, dout: np.ndarray, kernel: Pair, stride: Pair = (1, 1),
                       padding: Pair = (0, 0), dilation: Pair = (1, 1)) -> np.ndarray:
    """``dW[f, c, a, b] = Σ_{n,i,j} dout[n, f, i, j] · x_pad[n, c, i·sh + a·dh, j·sw + b·dw]``
    (``dW = Σ dout ⋆ x``): ``(F, C, KH, KW)``."""
    cols = windows(pad(x, padding), kernel, stride, dilation)
    return np.tensordot(dout, cols, axes=([0, 2, 3], [0, 2, 3]))


def conv2d_input_grad(dout: np.ndarray, w: np.ndarray, input_size: Pair, stride: Pair = (1, 1),
                      padding: Pair = (0, 0), dilation: Pair = (1, 1)) -> np.ndarray:
    """``dx = dout_s ⋆ rot180(W)``: a full correlation of ``dout`` (its entries spread
    ``stride`` apart, zero-padded by the dilated kernel's extent minus one) with every kernel
    rotated by 180° and its ``F``/``C`` axes swapped, then the input's padding cut off.
    ``dout: (N, F, OH, OW)``, ``w: (F, C, KH, KW)`` → ``(N, C, H, W)``."""
    n, f, oh, ow = dout.shape
    (kh, kw), (sh, sw), (dh, dw) = w.shape[2:], stride, dilation
    hp, wp = input_size[0] + 2 * padding[0], input_size[1] + 2 * padding[1]
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1           # the dilated kernel's extent
    spread = np.zeros((n, f, eh - 1 + (oh - 1) * sh + 1 + (hp - (oh - 1) * sh - 1),
                       ew - 1 + (ow - 1) * sw + 1 + (wp - (ow - 1) * sw - 1)), dout.dtype)
    spread[:, :, eh - 1:eh - 1 + (oh - 1) * sh + 1:sh,
           ew - 1:ew - 1 + (ow - 1) * sw + 1:sw] = dout
    flipped = w[:, :, ::-1, ::-1]
    cols = windows(spread, (kh, kw), (1, 1), dilation)         # (N, F, Hp, Wp, KH, KW)
    dxp = np.tensordot(cols, flipped, axes=([1, 4, 5], [0, 2, 3])).transpose(0, 3, 1, 2)
    return dxp[:, :, padding[0]:padding[0] + input_size[0], padding[1]:padding[1] + input_size[1]]


def avg_pool2d(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair) -> np.ndarray:
    """``out[n, c, i, j] = (1/(KH·KW)) · Σ_{a,b} x_pad[n, c, i·sh + a, j·sw + b]`` (zero
    padding counted in the divisor): ``(N, C, OH, OW)``."""
    total = windows(pad(x, padding), kernel, stride).sum(axis=(4, 5))
    return total / x.dtype.type(kernel[0] * kernel[1])


def _check_image(layer: Layer, x, channels: int | None, dtype=None) -> None:
    """``x: (N, C, H, W)`` float32/float64, ``C = channels`` when given."""
    _check_float(layer, x)
    if x.ndim != 4:
        raise ValueError(f"{layer.name}: expected input of shape (N, C, H, W), got shape "
                         f"{x.shape}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{layer.name}: expected {channels} channels, got shape {x.shape}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{layer.name}: expected input dtype {dtype}, got {x.dtype}")


def _check_fits(layer: Layer, x, kernel: Pair, stride: Pair, padding: Pair,
                dilation: Pair) -> Pair:
    """The output size; ``ValueError`` when the padded input is smaller than the kernel."""
    out = output_size(x.shape[2:], kernel, stride, padding, dilation)
    if min(out) < 1:
        raise ValueError(f"{layer.name}: input {x.shape} too small for kernel {kernel} with "
                         f"padding {padding}, dilation {dilation}")
    return out


class Conv2d(Layer):
    """``out = conv2d(x, W) + b`` (``conv2d`` above): ``x: (N, C, H, W)``,
    ``W: (F, C, KH, KW)``, ``b: (F,)`` (absent with ``bias=False``) → ``(N, F, OH, OW)``;
    saves ``x``.

    Backward: ``dW = Σ dout ⋆ x`` (over ``N, OH, OW``), ``db = Σ_{n,i,j} dout``,
    ``dx = dout_s ⋆ rot180(W)`` (the full correlation of the stride-spread upstream with the
    180°-rotated kernels, padding cut off). Weights start at zero; initializers fill them.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, bias: bool = True, dtype=np.float64) -> None:
        super().__init__()
        dt = _as_dtype(dtype)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding, self.dilation = _pair(padding), _pair(dilation)
        self.bias = bool(bias)
        if min(self.in_channels, self.out_channels, *self.kernel_size, *self.stride,
               *self.dilation) < 1 or min(self.padding) < 0:
            raise ValueError(f"Conv2d: sizes must be >= 1 and padding >= 0, got {self!r}")
        self.params = {"weight": np.zeros((out_channels, in_channels, *self.kernel_size), dt)}
        if self.bias:
            self.params["bias"] = np.zeros(out_channels, dt)

    def geometry(self) -> tuple[Pair, Pair, Pair]:
        """``(stride, padding, dilation)``, the arguments of ``conv2d`` and its gradients."""
        return self.stride, self.padding, self.dilation

    def forward(self, x, training=True):
        W = self.params["weight"]
        _check_image(self, x, self.in_channels, W.dtype)
        _check_fits(self, x, self.kernel_size, *self.geometry())
        self.saved = {"x": x}
        out = conv2d(x, W, *self.geometry())
        return out + self.params["bias"][:, None, None] if self.bias else out

    def backward(self, dout):
        self.backward_params(dout)
        x = self.saved["x"]
        return conv2d_input_grad(dout, self.params["weight"], x.shape[2:], *self.geometry())

    def backward_params(self, dout):
        """``dW = Σ dout ⋆ x``, ``db = Σ_{n,i,j} dout``, without the input gradient."""
        x = self.saved["x"]
        oh, ow = output_size(x.shape[2:], self.kernel_size, *self.geometry())
        self._check_dout(dout, (x.shape[0], self.out_channels, oh, ow))
        self.grads = {"weight": conv2d_weight_grad(x, dout, self.kernel_size, *self.geometry())}
        if self.bias:
            self.grads["bias"] = dout.sum(axis=(0, 2, 3))

    def options(self) -> dict:
        """Geometry by torch's names (a bias shows as a parameter, as torch's ``bias``)."""
        return {"kernel_size": self.kernel_size, "stride": self.stride,
                "padding": self.padding, "dilation": self.dilation}

    def __repr__(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size="
                f"{self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, bias={self.bias})")


class _Pool(Layer):
    """Shared by the pooling layers: window geometry and options."""

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = self.kernel_size if stride is None else _pair(stride)
        self.padding = _pair(padding)
        k, p = self.kernel_size, self.padding
        if min(*k, *self.stride) < 1 or min(p) < 0 or p[0] > k[0] // 2 or p[1] > k[1] // 2:
            raise ValueError(f"{self.name}: kernel and stride must be >= 1 and padding in "
                             f"[0, kernel/2], got {self!r}")

    def _windows(self, x, fill: float) -> np.ndarray:
        _check_image(self, x, None)
        _check_fits(self, x, self.kernel_size, self.stride, self.padding, (1, 1))
        return windows(pad(x, self.padding, fill), self.kernel_size, self.stride)

    def _padded_shape(self, shape) -> tuple:
        n, c, h, w = shape
        return n, c, h + 2 * self.padding[0], w + 2 * self.padding[1]

    def _unpad(self, dxp, shape):
        (ph, pw), (h, w) = self.padding, shape[2:]
        return dxp[:, :, ph:ph + h, pw:pw + w]

    def options(self) -> dict:
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}

    def __repr__(self):
        return (f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding})")


class MaxPool2d(_Pool):
    """``out[n, c, i, j] = max`` of the window ``(i, j)`` of ``x: (N, C, H, W)`` padded with
    −∞ → ``(N, C, OH, OW)``. Saves ``input_shape`` and ``argmax`` (``(N, C, OH, OW)``, the
    flat index ``a·KW + b`` of each window's maximum).

    Backward: ``dx[n, c, y, x] = Σ dout[n, c, i, j]`` over the windows whose maximum is at
    ``(y, x)`` (overlapping windows add up); of tied maxima the first in row-major order
    takes it (torch's kernel scans the window and replaces only on ``>``), so ``np.argmax``.
    """

    def forward(self, x, training=True):
        cols = self._windows(x, -np.inf)
        n, c, oh, ow, kh, kw = cols.shape
        flat = cols.reshape(n, c, oh, ow, kh * kw)
        argmax = flat.argmax(axis=-1)
        self.saved = {"input_shape": x.shape, "argmax": argmax}
        return np.take_along_axis(flat, argmax[..., None], axis=-1)[..., 0]

    def backward(self, dout):
        shape, argmax = self.saved["input_shape"], self.saved["argmax"]
        self._check_dout(dout, argmax.shape)
        kh, kw = self.kernel_size
        onehot = argmax[..., None] == np.arange(kh * kw)
        cols = (onehot * dout[..., None]).reshape(*argmax.shape, kh, kw)
        return self._unpad(scatter_windows(cols, self._padded_shape(shape), self.stride), shape)


class AvgPool2d(_Pool):
    """``out[n, c, i, j] = (1/(KH·KW)) · Σ`` of the window ``(i, j)`` of ``x: (N, C, H, W)``
    padded with zeros (the padding counts in the divisor: torch's ``count_include_pad=True``)
    → ``(N, C, OH, OW)``; saves ``input_shape``.

    Backward: every input of a window receives ``dout/(KH·KW)`` (``dx = scatter(dout/K)``,
    overlapping windows add up)."""

    def forward(self, x, training=True):
        _check_image(self, x, None)
        _check_fits(self, x, self.kernel_size, self.stride, self.padding, (1, 1))
        self.saved = {"input_shape": x.shape}
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def backward(self, dout):
        shape = self.saved["input_shape"]
        kh, kw = self.kernel_size
        self._check_dout(dout, (*shape[:2], *output_size(shape[2:], self.kernel_size,
                                                           self.stride, self.padding)))
        share = dout / dout.dtype.type(kh * kw)
        cols = np.broadcast_to(share[..., None, None], (*share.shape, kh, kw))
        return self._unpad(scatter_windows(cols, self._padded_shape(shape), self.stride), shape)


def _channels_last(x: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` → ``(N·H·W, C)``: one row per pixel, one column per channel, each
    column contiguous (Fortran order). NumPy sums a contiguous axis pairwise and any other
    one row by row: over m = 92 000 float32 entries the batch mean then errs by 1e-7
    instead of 1e-5 (``(x.transpose(0, 2, 3, 1).reshape(-1, C))`` — a third of torch's
    bound for a sum of m terms, where torch's own kernel is 1000× closer)."""
    return x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1).T


def _channels_first(rows: np.ndarray, shape: tuple) -> np.ndarray:
    """The inverse of ``_channels_last`` for an input of ``shape``."""
    n, c, h, w = shape
    return rows.T.reshape(c, n, h, w).transpose(1, 0, 2, 3)


class BatchNorm2d(BatchNorm1d):
    """Spatial batch normalization of ``x: (N, C, H, W)``, as ``torch.nn.BatchNorm2d``: each
    channel's statistics over ``N, H, W`` — exactly ``BatchNorm1d`` on the ``(N·H·W, C)``
    rows of ``x`` (``m = N·H·W`` entries per channel; the running variance's unbiased factor
    is ``m/(m − 1)``). Its math and backward are ``Normalization``'s on those rows; ``saved``
    holds them in row form (``xhat: (N·H·W, C)``, ``istd: (1, C)``).
    """

    def forward(self, x, training=True):
        _check_image(self, x, self.num_features, self.dtype)
        return _channels_first(super().forward(_channels_last(x), training), x.shape)

    def backward(self, dout):
        n, c, h, w = dout.shape if dout.ndim == 4 else (0, 0, 0, 0)
        rows = self.saved["xhat"].shape[0]
        if dout.ndim != 4 or n * h * w != rows or c != self.num_features:
            raise ValueError(f"{self.name}: upstream gradient shape {dout.shape} does not fit "
                             f"the forward's {rows} rows of {self.num_features} channels")
        return _channels_first(super().backward(_channels_last(dout)), dout.shape)

    def __repr__(self):
        return f"BatchNorm2d({self.num_features})"


class Dropout2d(Dropout):
    """Channel dropout of ``x: (N, C, H, W)``, as ``torch.nn.Dropout2d``: train
    ``out = x · (keep · s)`` with one ``keep ~ Bernoulli(1 − p)`` per channel, shape
    ``(N, C, 1, 1)``, broadcast over ``H, W``; ``s = 1/(1 − p)`` formed as ``Dropout.scale``;
    eval the identity. ``dx = dout · (keep · s)``. Saves ``scale`` (``(N, C, 1, 1)``); queued
    and drawn masks are ``(N, C, 1, 1)``.
    """

    def _check_batch(self, x) -> None:
        _check_image(self, x, None)

    def mask_shape(self, shape: tuple) -> tuple:
        """One keep decision per channel: ``(N, C, 1, 1)``."""
        return (*shape[:2], 1, 1)

    def backward(self, dout):
        if "scale" not in self.saved:
            return dout
        scale = self.saved["scale"]
        if dout.ndim != 4 or dout.shape[:2] != scale.shape[:2]:
            raise ValueError(f"{self.name}: upstream gradient shape {dout.shape}, expected "
                             f"(N, C, H, W) with (N, C) = {scale.shape[:2]}")
        return dout * scale

    def __repr__(self):
        return f"Dropout2d(p={self.p})"
