"""Dropout against torch bit for bit: the same masks (``parity.masks``) and the scale formed
as torch's CPU kernel forms it (``reference.layers.Dropout.scale``)."""

import numpy as np
import pytest
import torch
from parity.reference.layers import Dropout

import parity
from parity import layerspec as S
from parity.catalogue import zoo
from parity.masks import DropoutMaskRecorder

# the issue's p, every dropout p of the catalogue (spiral003's 0.15 is one where the two
# ways of forming 1/(1 − p) in float32 differ), and more p where they differ (0.45, 0.87)
CATALOGUE_P = sorted({item.p for s in zoo.CATALOGUE.values() for item in s.layers
                      if isinstance(item, S.Dropout)})
P = sorted({0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.45, 0.87, *CATALOGUE_P})
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _torch_dropout(p: float, x: np.ndarray, g: np.ndarray, seed: int):
    """torch ``nn.Dropout(p)`` in training mode: (output, dL/dx for upstream g, keep-mask)."""
    layer = torch.nn.Sequential(torch.nn.Dropout(p)).train()
    rec = DropoutMaskRecorder(layer)
    x_t = torch.from_numpy(x).requires_grad_()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = layer(x_t)
    out.backward(torch.from_numpy(g))
    rec.remove()
    (mask,) = rec.take()[0]
    return out.detach().numpy(), x_t.grad.numpy(), mask


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", P)
def test_dropout_matches_torch_bit_for_bit_with_shared_masks(p, dtype):
    rng = np.random.default_rng(int(p * 1000))
    x = rng.standard_normal((64, 128)).astype(dtype)
    g = rng.standard_normal((64, 128)).astype(dtype)
    out_t, dx_t, mask = _torch_dropout(p, x, g, seed=int(p * 1000))
    d = Dropout(p)
    d.queue_masks([mask])
    out_n = d.forward(x, training=True)
    dx_n = d.backward(g)
    assert out_n.dtype == x.dtype and dx_n.dtype == x.dtype
    assert 0 < mask.sum() < mask.size, f"p={p}: degenerate mask"
    bad = np.flatnonzero(out_n != out_t)
    assert bad.size == 0, (f"Dropout(p={p}) {dtype} output: {bad.size} elements differ, e.g. "
                           f"numpy {out_n.flat[bad[0]]!r} torch {out_t.flat[bad[0]]!r}")
    assert np.array_equal(dx_n, dx_t), f"Dropout(p={p}) {dtype} input gradient"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", P)
def test_dropout_scale_is_torchs_kept_value(p, dtype):
    """The value torch gives a kept unit of 1 is ``Dropout.scale``: ``dtype(1) / dtype(1 − p)``
    (aten Dropout.cpp ``_dropout_impl``: ``noise.div_(1 − p)`` in the tensor's dtype)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        y = torch.nn.functional.dropout(torch.ones(4096, dtype=DTYPES[dtype]), p, True).numpy()
    kept = np.unique(y[y != 0])
    assert kept.size == 1, kept
    assert kept[0] == Dropout(p).scale(dtype), (p, dtype, kept[0], Dropout(p).scale(dtype))


# ---- several steps through compare_models: a new mask every step ---------------------------

class _StaleMaskDropout(Dropout):
    """A NumPy dropout that keeps the first mask it was handed and applies it at every later
    step (torch draws a new one each step)."""

    def forward(self, x, training=True):
        if training and self._queued:
            first = getattr(self, "_first_mask", None)
            self._first_mask = first if first is not None else self._queued[0]
            self._queued[0] = self._first_mask
        return super().forward(x, training)


def _dropout_pair(dtype, dropout=Dropout):
    """``Linear(6, 24) → ReLU → Dropout(0.5) → Linear(24, 3)`` on both sides (the NumPy
    Dropout replaceable by a planted bug), torch's weights on both, a batch of 16."""
    torch.manual_seed(9)
    t = torch.nn.Sequential(torch.nn.Linear(6, 24), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                            torch.nn.Linear(24, 3)).to(DTYPES[dtype])
    n = parity.from_torch(t)
    n.layers[2] = dropout(0.5)
    rng = np.random.default_rng(10)
    return n, t, rng.standard_normal((16, 6)).astype(dtype), rng.integers(0, 3, 16)


@pytest.mark.parametrize("dtype", DTYPES)
def test_three_adam_steps_with_dropout_pass_and_draw_a_new_mask_each_step(dtype):
    n, t, X, y = _dropout_pair(dtype)
    masks = []
    real_queue = Dropout.queue_masks

    def queue(self, m):
        masks.extend(np.asarray(k, dtype=bool).copy() for k in m)
        real_queue(self, m)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Dropout, "queue_masks", queue)
        r = parity.compare_models(n, t, X, y, loss="cross_entropy", optimizer="adam", steps=3,
                                  seed=4)
    assert r.passed, r.report()
    assert r.comparison.steps == 3 and len(r.comparison.loss_numpy) == 3
    assert {c.label.split()[1] for c in r.checks if c.label.startswith("step")} == {
        "1", "2", "3"}
    # every mask torch drew reached NumPy (localization, the steps, and in float32 each float64
    # evaluation of a step gets that step's): three different ones, one per step
    assert all(0 < m.sum() < m.size for m in masks)
    assert len({m.tobytes() for m in masks}) >= 3


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_dropout_that_reuses_step_1s_mask_fails_from_step_2(dtype):
    n, t, X, y = _dropout_pair(dtype, _StaleMaskDropout)
    r = parity.compare_models(n, t, X, y, loss="cross_entropy", optimizer="adam", steps=3,
                              seed=4)
    failed_steps = {int(c.label.split()[1]) for c in r.failures() if c.label.startswith("step")}
    assert not r.passed and min(failed_steps) == 2, r.report()
    assert "step 2 loss" in {c.label for c in r.failures()}, r.report()
