"""One-step parity of every catalogue model, in both dtypes, through ``parity.compare``."""

import math
import os
import types

import numpy as np
import pytest

from parity.catalogue import zoo
from parity.catalogue.checks import compare, first_batch
from parity.tolerances import TOLERANCES

MODELS = list(zoo.CATALOGUE)
EVIDENCE = os.environ.get("NN_PARITY_EVIDENCE", "parity-evidence")


def assert_parity(result):
    """Fail with the mine-vs-torch table, after saving the evidence for inspection."""
    if not result.passed:
        where = os.path.join(EVIDENCE, f"{result.model}-{result.dtype}-seed{result.seed}")
        result.save(where)
        pytest.fail(f"{result.report()}\nevidence saved to {where}", pytrace=False)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("seed", [0, 1])
def test_one_step_parity(name, dtype, seed):
    result = compare(zoo.get(name), dtype, seed)
    kinds = {c.quantity for c in result.checks}
    assert {"loss", "grad", "param", "output"} <= kinds
    n_params = len(dict(zoo.get(name).build_torch().named_parameters()))
    assert sum(c.quantity == "grad" for c in result.checks) == n_params * result.steps
    assert_parity(result)


@pytest.mark.parametrize("name", MODELS)
def test_float64_relative_diffs_within_1e10(name):
    q = compare(zoo.get(name), "float64", 0).by_quantity()
    for quantity, v in q.items():
        assert v["max_rel"] <= 1e-10, (quantity, v)


@pytest.mark.parametrize("name", [m for m in MODELS if zoo.get(m).loss == "cross_entropy"
                                  and zoo.get(m).init == "normal0.01"])
def test_initial_loss_is_ln_k_on_both_sides(name):
    """Small initial weights give scores s ≈ 0, so the loss is ln K (1.0986 for K = 3) up to
    |L − ln K| ≤ 2·max|s| (log-softmax moves by at most 2‖s‖∞ away from s = 0)."""
    spec = zoo.get(name)
    X, y = first_batch(spec, 0)
    bound = 2 * np.abs(spec.build_numpy(0).predict(X)).max()
    result = compare(spec, "float64", 0)
    k = spec.layers[-1].out_features
    assert abs(result.loss_numpy[0] - math.log(k)) <= bound
    assert abs(result.loss_torch[0] - math.log(k)) <= bound
    if k == 3:
        assert result.loss_numpy[0] == pytest.approx(1.0986, abs=0.01)


def test_a_wrong_gradient_is_caught_and_evidence_saved(tmp_path):
    """The comparison can fail: flip one gradient's sign in the NumPy twin."""
    spec = zoo.get("cs231n-2layer")
    np_model = spec.build_numpy(0)
    layer = np_model.layers[2]

    def flipped(self, dout):
        dx = type(self).backward(self, dout)
        self.grads["weight"] = -self.grads["weight"]
        return dx

    # bound to the layer, so the copies compare takes (parity.precise) carry the bug too
    layer.backward = types.MethodType(flipped, layer)
    result = compare(spec, "float64", 0, np_model=np_model)
    assert not result.passed
    labels = {c.label for c in result.failures()}
    assert "step 1 grad 2.weight" in labels and "step 1 grad 0.weight" not in labels
    result.save(str(tmp_path))
    for name in ("weights", "batch", "grads_numpy", "grads_torch", "params_after_numpy",
                 "params_after_torch"):
        with np.load(tmp_path / f"{name}.npz", allow_pickle=False) as f:
            assert len(f.files) > 0
    with np.load(tmp_path / "grads_numpy.npz") as a, np.load(tmp_path / "grads_torch.npz") as b:
        assert a["2.weight"].shape == (3, 100)                 # torch layout
        np.testing.assert_allclose(a["2.weight"], -b["2.weight"], rtol=1e-12)


def test_tolerance_table_is_tighter_than_torch_defaults_in_float64():
    for quantity, (rtol, atol) in TOLERANCES["float64"].items():
        assert rtol <= 1e-7 and atol <= 1e-7, quantity


def test_first_batch_is_the_whole_training_set_for_full_batch_models():
    spec = zoo.get("cs231n-2layer")
    X, y = first_batch(spec, 0)
    assert X.shape == (300, 2) and np.array_equal(np.bincount(y), [100, 100, 100])


@pytest.mark.parametrize("name", MODELS)
def test_lockstep_trajectories_stay_within_the_stated_float64_bound(name):
    """Multi-step: K steps of the recipe in lockstep (parity.diverge) stay within
    TRAJECTORY["float64"] in parameters and loss."""
    from parity.catalogue.checks import diverge
    from parity.tolerances import TRAJECTORY
    k, bound = TRAJECTORY["float64"]
    r = diverge(zoo.get(name), k, "float64", seed=0)
    assert len(r.param_rel) == k
    assert max(r.param_rel) <= bound, (r.worst_param[int(np.argmax(r.param_rel))],
                                       max(r.param_rel))
    assert max(r.loss_rel) <= bound
