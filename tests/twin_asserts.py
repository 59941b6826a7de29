"""One assertion for a NumPy array against its torch twin, shared by the layer and loss tests:
shape, then dtype, then values under the tolerance table (``parity.tolerances``)."""

import numpy as np
import torch

from parity.tolerances import tolerance


def assert_same(label, mine, theirs, dtype, quantity):
    theirs = theirs.detach()
    assert tuple(mine.shape) == tuple(theirs.shape), f"{label}: shape"
    expected = np.dtype(dtype) if theirs.is_floating_point() else theirs.numpy().dtype
    assert mine.dtype == expected, f"{label}: dtype {mine.dtype}, expected {expected}"
    rtol, atol = tolerance(dtype, quantity)
    got = torch.from_numpy(np.array(mine, copy=True))
    if dtype != "float64" and theirs.is_floating_point() and theirs.numel():
        # the float32 table's atol is relative to the tensor's own scale (parity.judge): an
        # absolute 1e-5 passed a tensor smaller than it blind; capped at 1, never looser
        own = max(float(got.abs().max()), float(theirs.abs().max()))
        atol *= min(1.0, own)
    torch.testing.assert_close(got, theirs, rtol=rtol, atol=atol, msg=lambda m: f"{label}: {m}")
