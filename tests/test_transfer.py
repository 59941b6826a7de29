"""Weight transfer between the twins is an exact bit copy, both ways, for every model."""

import numpy as np
import pytest
import torch

from parity import transfer
from parity.catalogue import zoo

MODELS = list(zoo.CATALOGUE)
DTYPES = ("float64", "float32")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", MODELS)
def test_numpy_torch_numpy_round_trip_is_bit_exact(name, dtype):
    spec = zoo.get(name)
    np_model = spec.build_numpy(seed=3, dtype=dtype)
    before = np_model.state_dict()
    t_model = spec.build_torch(dtype)
    transfer.numpy_to_torch(np_model, t_model)
    back = spec.build_numpy(seed=99, dtype=dtype)          # different weights to overwrite
    transfer.torch_to_numpy(t_model, back)
    after = back.state_dict()
    assert list(after) == list(before) == list(t_model.state_dict())
    for k in before:
        assert after[k].dtype == before[k].dtype, k
        assert after[k].shape == before[k].shape, k
        assert np.array_equal(after[k], before[k]), k
        assert after[k].tobytes() == before[k].tobytes(), k   # bits, incl. the sign of zero


@pytest.mark.parametrize("name", MODELS)
def test_torch_numpy_torch_round_trip_is_bit_exact(name):
    spec = zoo.get(name)
    t_model = spec.build_torch("float64", torch_seed=5)       # torch's own default init
    before = transfer.torch_state(t_model)
    np_model = spec.build_numpy(seed=0)
    transfer.torch_to_numpy(t_model, np_model)
    t2 = spec.build_torch("float64", torch_seed=6)
    transfer.numpy_to_torch(np_model, t2)
    after = transfer.torch_state(t2)
    for k in before:
        assert after[k].tobytes() == before[k].tobytes(), k


def test_linear_weight_is_transposed_into_torch_layout():
    spec = zoo.get("cs231n-2layer")
    np_model = spec.build_numpy(seed=0)
    t_model = spec.build_torch()
    transfer.numpy_to_torch(np_model, t_model)
    W = np_model.parameters()["0.weight"]
    assert W.shape == (2, 100) and t_model[0].weight.shape == (100, 2)
    assert np.array_equal(t_model[0].weight.detach().numpy(), W.T)
    x = np.random.default_rng(0).standard_normal((7, 2))
    with torch.no_grad():
        out_t = t_model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np_model.predict(x), out_t, rtol=1e-13, atol=1e-15)


def test_dtype_mismatch_is_refused_not_cast():
    spec = zoo.get("cs231n-2layer")
    with pytest.raises(ValueError, match=r"0\.weight expected torch.float32 .* got torch.float64"):
        transfer.numpy_to_torch(spec.build_numpy(0, "float64"), spec.build_torch("float32"))


def test_key_mismatch_names_the_keys():
    spec = zoo.get("cs231n-2layer")
    t_model = spec.build_torch()
    state = transfer.torch_state(t_model)
    state["9.weight"] = state.pop("2.weight")
    with pytest.raises(ValueError,
                       match=r"missing keys \['2.weight'\].*unexpected keys \['9.weight'\]"):
        transfer.load_torch(t_model, state)


def test_failed_load_changes_nothing():
    spec = zoo.get("cs231n-2layer")
    np_model = spec.build_numpy(0)
    before = np_model.state_dict()
    bad = dict(before)
    bad["2.bias"] = np.zeros(4)
    with pytest.raises(ValueError, match=r"2\.bias expected float64 \(3,\), got float64 \(4,\)"):
        np_model.load_state_dict(bad)
    for k, v in np_model.state_dict().items():
        assert np.array_equal(v, before[k])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, axes", [((300, 257), (1, 0)), ((6, 5, 48, 50), (2, 3, 0, 1))])
def test_a_large_layout_change_is_the_transpose_bit_for_bit(dtype, shape, axes):
    """Arrays of ``distance.CHUNK`` elements and more are transposed by torch's tiled copy:
    every bit equals NumPy's transpose (a NaN's payload, −0.0, subnormals included), both
    ways, and the source is not written; a read-only array takes NumPy's path alike."""
    from parity.distance import CHUNK
    from parity.kinds import Layout
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape).astype(dtype)
    assert a.size >= CHUNK
    bits = a.view(np.uint32 if dtype == "float32" else np.uint64)
    one = bits.dtype.type(1)
    bits.flat[:3] = [bits.dtype.type(0x7FC00123 if dtype == "float32" else 0x7FF8000000000123),
                     one << bits.dtype.type(8 * a.itemsize - 1), one]   # NaN, −0.0, a denormal
    kept = a.copy()
    lay = Layout(axes)
    t = lay.to_torch(a)
    want = np.ascontiguousarray(np.transpose(a, axes))
    assert t.flags.c_contiguous and t.tobytes() == want.tobytes()
    assert lay.to_numpy(t).tobytes() == a.tobytes() and a.tobytes() == kept.tobytes()
    a.flags.writeable = False
    assert lay.to_torch(a).tobytes() == want.tobytes()
