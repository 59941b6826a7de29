"""Seed 004's worked XOR example as a golden test on both sides, to the printed digits.

W1 = [[5, 5], [5, 5]] (w_ji: neuron j, input i), b1 = [−2.5, −7.5], v = [10, −10], b = −5,
x = [1, 0], y = 1, sigmoid hidden and output, binary cross-entropy.
"""

import numpy as np
import pytest
import torch

from parity import transfer, zoo

PRINTED = {                      # quantity: (value as printed, decimals printed)
    "h": ([0.924, 0.076], 3),
    "z_out": ([3.48], 2),
    "y_hat": ([0.970], 3),
    "dL/dz_out": ([-0.030], 3),
    "dL/dv": ([-0.028, -0.002], 3),
    "dL/dh": ([-0.30, 0.30], 2),
    "dL/dz": ([-0.021, 0.021], 3),
    "dL/dw11,dL/dw21": ([-0.021, 0.021], 3),
    "dL/dw12,dL/dw22": ([0.0, 0.0], 3),
}


def _weights():
    """In the reference layout W is (in, out): W[i, j] = w_ji."""
    spec = zoo.get("xor-sigmoid")
    model = spec.build_numpy(0)
    model.load_state_dict({"0.weight": np.array([[5.0, 5.0], [5.0, 5.0]]),
                           "0.bias": np.array([-2.5, -7.5]),
                           "2.weight": np.array([[10.0], [-10.0]]),
                           "2.bias": np.array([-5.0])})
    return spec, model


def numpy_side():
    spec, m = _weights()
    x, y = np.array([[1.0, 0.0]]), np.array([1])
    h = m.layers[1].forward(m.layers[0].forward(x))
    z_out = m.layers[2].forward(h)
    y_hat = m.layers[3].forward(z_out)
    loss = spec.numpy_loss()
    loss.forward(y_hat, y)
    d_zout = m.layers[3].backward(loss.backward())
    d_h = m.layers[2].backward(d_zout)
    d_z = m.layers[1].backward(d_h)
    m.layers[0].backward(d_z)
    W1g = m.layers[0].grads["weight"]
    return {"h": h[0], "z_out": z_out[0], "y_hat": y_hat[0], "dL/dz_out": d_zout[0],
            "dL/dv": m.layers[2].grads["weight"][:, 0], "dL/dh": d_h[0], "dL/dz": d_z[0],
            "dL/dw11,dL/dw21": W1g[0, :], "dL/dw12,dL/dw22": W1g[1, :]}


def torch_side():
    spec, np_model = _weights()
    t = spec.build_torch()
    transfer.numpy_to_torch(np_model, t)
    x = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    z = t[0](x)
    h = t[1](z)
    z_out = t[2](h)
    y_hat = t[3](z_out)
    for v in (z, h, z_out):
        v.retain_grad()
    spec.torch_loss()(y_hat, torch.tensor([[1.0]], dtype=torch.float64)).backward()
    W1g = t[0].weight.grad            # torch layout (out, in): [j, i] = dL/dw_ji
    n = lambda v: v.detach().numpy().reshape(-1)   # noqa: E731
    return {"h": n(h), "z_out": n(z_out), "y_hat": n(y_hat), "dL/dz_out": n(z_out.grad),
            "dL/dv": n(t[2].weight.grad), "dL/dh": n(h.grad), "dL/dz": n(z.grad),
            "dL/dw11,dL/dw21": n(W1g[:, 0]), "dL/dw12,dL/dw22": n(W1g[:, 1])}


@pytest.mark.parametrize("side", [numpy_side, torch_side], ids=["numpy", "torch"])
@pytest.mark.parametrize("quantity", list(PRINTED))
def test_worked_example_to_the_printed_digits(side, quantity):
    printed, decimals = PRINTED[quantity]
    got = np.round(np.asarray(side()[quantity], dtype=float), decimals)
    np.testing.assert_array_equal(got + 0.0, np.asarray(printed) + 0.0, err_msg=quantity)


def test_both_sides_agree_beyond_the_printed_digits():
    a, b = numpy_side(), torch_side()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-14, atol=1e-16, err_msg=k)
