"""``parity.from_torch`` / ``parity.to_torch``: the same model in the other framework, every
parameter and buffer bit for bit, for every catalogue model; anything else refused by name."""

import numpy as np
import pytest
import torch
from torch import nn

from parity import convert, transfer
from parity import reference as R
from parity.catalogue import zoo

MODELS = list(zoo.CATALOGUE)


def _bits(state: dict) -> dict:
    return {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in state.items()}


def _trained_buffers(module: nn.Sequential, dtype: torch.dtype, shape: tuple) -> None:
    """One training forward of a batch of samples of ``shape`` so BatchNorm's running
    statistics and counter are not defaults."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(1)
        module.train()
        module(torch.randn(5, *shape, dtype=dtype))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", MODELS)
def test_torch_numpy_torch_round_trip_is_bit_exact(name, dtype):
    """from_torch then to_torch gives back the same modules, options and state, bit for bit
    (torch's own init; BatchNorm buffers after one training forward)."""
    original = zoo.get(name).build_torch(dtype, torch_seed=7)
    _trained_buffers(original, original[0].weight.dtype, zoo.get(name).input_shape())
    back = convert.to_torch(convert.from_torch(original))
    assert [type(m) for m in back] == [type(m) for m in original], name
    assert repr(back) == repr(original), f"{name}: module options differ"
    assert _bits(transfer.torch_state(back)) == _bits(transfer.torch_state(original)), name


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", MODELS)
def test_numpy_torch_numpy_round_trip_is_bit_exact(name, dtype):
    model = zoo.get(name).build_numpy(seed=3, dtype=dtype)
    back = convert.from_torch(convert.to_torch(model))
    assert [type(m) for m in back.layers] == [type(m) for m in model.layers], name
    assert _bits(back.state_dict()) == _bits(model.state_dict()), name


def test_options_carry_over():
    """eps, momentum (also None: the cumulative average), affine flags and dropout p."""
    module = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, eps=1e-3, momentum=None),
                           nn.Dropout(0.25), nn.LayerNorm(4, eps=1e-6, elementwise_affine=False),
                           nn.BatchNorm1d(4, affine=False)).double()
    model = convert.from_torch(module)
    bn, drop, ln, bn2 = model.layers[1:]
    assert (bn.eps, bn.momentum, drop.p, ln.eps, ln.affine, bn2.affine) == \
        (1e-3, None, 0.25, 1e-6, False, False)
    assert repr(convert.to_torch(model)) == repr(module)


def test_linear_weight_is_transposed_and_the_forward_agrees():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    model = convert.from_torch(module)
    assert model.parameters()["0.weight"].shape == (3, 5)
    x = np.random.default_rng(0).standard_normal((4, 3))
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-13, atol=0,
                               err_msg="eval output of from_torch(module) vs module")


@pytest.mark.parametrize("module, named", [
    (nn.PReLU(), "PReLU"),
    (nn.Linear(4, 4, bias=False), r"Linear\(bias=False\)"),
    (nn.Sequential(nn.ReLU()), "Sequential"),
    (nn.LayerNorm((2, 2)), r"LayerNorm\(2, 2\)"),
    (nn.BatchNorm1d(4, track_running_stats=False), r"BatchNorm1d\(track_running_stats=False\)"),
], ids=["prelu", "linear-no-bias", "nested", "layernorm-2d", "batchnorm-no-stats"])
def test_unsupported_module_is_refused_with_the_supported_list(module, named):
    with pytest.raises(ValueError, match=rf"layer 1: {named}.* not supported") as e:
        convert.from_torch(nn.Sequential(nn.Linear(2, 4), module))
    assert "supported modules: Linear, ReLU, Sigmoid, Tanh, Dropout, BatchNorm1d" in str(e.value)


def test_a_layer_of_your_own_is_refused_by_to_torch():
    class _Swish(R.layers.Layer):    # "_": not a public layer (tests/test_finite_differences)
        def forward(self, x, training=True):
            return x / (1 + np.exp(-x))

    with pytest.raises(ValueError, match=r"layer 1: _Swish is not supported; supported modules"):
        convert.to_torch(R.Sequential(R.Linear(2, 2), _Swish()))


def test_wrong_containers_are_type_errors():
    with pytest.raises(TypeError, match="from_torch: expected an nn.Sequential or a module "
                                        "whose forward is a chain of layers, got Linear"):
        convert.from_torch(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="to_torch: expected a reference.Sequential, got"):
        convert.to_torch(nn.Sequential(nn.Linear(2, 2)))


def test_mixed_dtypes_are_refused():
    module = nn.Sequential(nn.Linear(2, 2).double(), nn.Linear(2, 2).float())
    with pytest.raises(TypeError, match="must all be float32 or all float64"):
        convert.from_torch(module)


def test_public_names():
    import parity
    assert parity.from_torch is convert.from_torch and parity.to_torch is convert.to_torch
