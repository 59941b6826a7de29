"""Row softmax kinds: Softmax and LogSoftmax over the features of ``x: (N, D)``. Their
backward reads the stored output, so its float32 error is part of the input gradient's bound;
the row sum is a reduction (``row_sum_error``)."""

from __future__ import annotations

import math

import numpy as np
import torch as th  # "torch" names the module class in a record
import torch.nn.functional as F
from torch import nn

from parity import layerspec as S
from parity.kinds.record import REQUIRED, Example, LayerKind
from parity.kinds.rounding import row_sum_error
from parity.reference import layers as L


class SoftmaxKind(LayerKind):
    spec, numpy, torch = S.Softmax, L.Softmax, nn.Softmax
    examples = (Example(S.Softmax(1), (6, 5)), Example(S.Softmax(-1), (4, 3)))
    functions = {F.softmax: {"dim": None, "_stacklevel": 3, "dtype": None},
                 th.softmax: {"dim": REQUIRED, "dtype": None},
                 "softmax": {"dim": REQUIRED, "dtype": None}}
    """``e = exp(x − m)``, ``s = e·(1/Σe)``. Range ``[0, 1]`` (e_max = 1 ≤ Σe)."""

    def _rel(self, x, s):
        """s's relative error: ``x − m`` rounded (u|x − m|, moving e relatively by as much),
        exp 2, the row sum ``ε_S``, the reciprocal and the product 2."""
        shift = np.abs(x - x.max(axis=1, keepdims=True))
        return shift + 4 + row_sum_error(shift + 2, s)

    def forward_amplitude(self, layer, x, out):
        return out * self._rel(x, out)


    def backward_amplitude(self, layer, x, d, dx, stored=True):
        """``dx = (d − Σ d·s)·s``: with stored s off by ``a = _rel`` (relative), each
        ``d_j s_j`` errs by ``(a_j + 1)`` and the row sum by ``√K·Σ|d s|`` more:
        ``E = Σ_j |d_j|s_j(a_j + 1 + √K)``; the difference cancels (d_i ≈ Σ d s for the
        dominant logit) and keeps E whole: ``s·E + (a + 2)|dx|``. ``stored=False``: a = 0."""
        s = layer.saved["out"]
        a = self._rel(x, s) if stored else np.zeros_like(s)
        big_e = (np.abs(d) * s * (a + 1 + math.sqrt(s.shape[1]))).sum(axis=1, keepdims=True)
        return s * big_e + (a + 2) * np.abs(dx)

    def output_range(self, layer):
        return (0.0, 1.0)


class LogSoftmaxKind(LayerKind):
    spec, numpy, torch = S.LogSoftmax, L.LogSoftmax, nn.LogSoftmax
    examples = (Example(S.LogSoftmax(1), (6, 5)), Example(S.LogSoftmax(-1), (4, 3)))
    functions = {F.log_softmax: {"dim": None, "_stacklevel": 3, "dtype": None},
                 th.log_softmax: {"dim": REQUIRED, "dtype": None},
                 "log_softmax": {"dim": REQUIRED, "dtype": None}}
    """``out = (x − m) − log Σ e^{x − m}``. Range ``(−∞, 0]``."""

    def forward_amplitude(self, layer, x, out):
        """``x − m`` u|x − m|; the row sum's relative error ``ε_S`` (each e off by
        ``|x − m| + 2``) is log's absolute error, plus log's own ``2L``; the subtraction
        ``|out|``: ``|x − m| + ε_S + 2L + |out|``. Near the max (out ≈ −L ≈ 0) this is
        ε_S absolutely — ``log Σ exp`` of a dominant logit is a small number known to u."""
        shift = x - x.max(axis=1, keepdims=True)
        s = np.exp(out)
        big_l = -(out - shift)          # log Σ e^{x − m} ≥ 0
        return np.abs(shift) + row_sum_error(np.abs(shift) + 2, s) + 2 * big_l + np.abs(out)


    def backward_amplitude(self, layer, x, d, dx, stored=True):
        """``dx = d − exp(out)·Σd``: exp of the stored out (off by A absolutely) errs by
        ``A + 2`` relative, the product 1 more, the row sum ``√K·Σ|d|``; the subtraction
        ``|dx|``: ``s·(|Σd|(A + 3) + √K·Σ|d|) + |dx|``. ``stored=False``: A = 0."""
        out = layer.saved["out"]
        s = np.exp(out)
        amp_out = self.forward_amplitude(layer, x, out) if stored else 0.0
        sum_d = d.sum(axis=1, keepdims=True)
        sum_abs = np.abs(d).sum(axis=1, keepdims=True)
        return s * (np.abs(sum_d) * (amp_out + 3) + math.sqrt(d.shape[1]) * sum_abs) \
            + np.abs(dx)

    def output_range(self, layer):
        return (-math.inf, 0.0)


KINDS: tuple = (SoftmaxKind(), LogSoftmaxKind())
