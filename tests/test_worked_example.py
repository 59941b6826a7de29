"""Seed 004's worked XOR example as a golden test on both sides, to the printed digits.

W1 = [[5, 5], [5, 5]] (w_ji: neuron j, input i), b1 = [−2.5, −7.5], v = [10, −10], b = −5,
x = [1, 0], y = 1, sigmoid hidden and output, binary cross-entropy.
"""

import numpy as np
import pytest

from parity.audit import claims

PRINTED = {                      # quantity: (value as printed, decimals printed)
    "h": ([0.924, 0.076], 3),
    "z_out": ([3.48], 2),
    "y_hat": ([0.970], 3),
    "dL/dz_out": ([-0.030], 3),
    "dL/dv": ([-0.028, -0.002], 3),
    "dL/dh": ([-0.30, 0.30], 2),
    "dL/dz": ([-0.021, 0.021], 3),
    "dL/dw11": ([-0.021], 3),
    "dL/dw21": ([0.021], 3),
    "dL/dw12,dL/dw22": ([0.0, 0.0], 3),
}


@pytest.fixture(scope="module")
def worked():
    """Both sides' intermediate values, from the one implementation the claims audit uses."""
    return claims.measure_worked_example()


@pytest.mark.parametrize("side", ["numpy", "torch"])
@pytest.mark.parametrize("quantity", list(PRINTED))
def test_worked_example_to_the_printed_digits(worked, side, quantity):
    printed, decimals = PRINTED[quantity]
    got = np.round(np.asarray(worked[side][quantity], dtype=float), decimals)
    np.testing.assert_array_equal(got + 0.0, np.asarray(printed) + 0.0, err_msg=quantity)


def test_both_sides_agree_beyond_the_printed_digits(worked):
    for k in worked["numpy"]:
        np.testing.assert_allclose(worked["numpy"][k], worked["torch"][k], rtol=1e-14,
                                   atol=1e-16, err_msg=k)
