"""The pytest plugin as a user meets it: a throw-away project (``pytester``) whose tests use
the ``twins`` fixture that installing nn-parity registers (entry point ``pytest11``). Its
correct net passes; its net with a planted backward bug — the ReLU at layer 2 passes the
upstream gradient through without its mask — fails, and the failure names layer 2 and the
parameter gradients upstream of it.

The project runs in a subprocess, as a user's own ``pytest`` would: in-process, pytester
drops the modules a run imported, and torch cannot import ``torch._dynamo`` twice in one
process (its operator library registers once)."""

pytest_plugins = ["pytester"]

USER_TESTS = '''
import numpy as np
import torch
from torch import nn

from parity import reference as R


class MasklessReLU(R.ReLU):
    """forward is ReLU; backward forgets the mask: dx = dout (the bug)."""

    def backward(self, dout):
        return dout.copy()


def nets(relu):
    torch.manual_seed(0)
    torch_net = nn.Sequential(nn.Linear(4, 16), nn.LayerNorm(16), nn.ReLU(),
                              nn.Linear(16, 3)).double()
    numpy_net = R.Sequential(R.Linear(4, 16), R.LayerNorm(16), relu, R.Linear(16, 3))
    return numpy_net, torch_net


def batch():
    rng = np.random.default_rng(1)
    return rng.standard_normal((12, 4)), rng.integers(0, 3, 12)


def test_correct_port(twins):
    numpy_net, torch_net = nets(R.ReLU())
    twins.assert_close(numpy_net, torch_net, *batch(), loss="cross_entropy", weights="torch")


def test_relu_without_its_mask(twins):
    numpy_net, torch_net = nets(MasklessReLU())
    twins.assert_close(numpy_net, torch_net, *batch(), loss="cross_entropy", weights="torch")
'''


def test_correct_net_passes_broken_one_fails_naming_layer_2_and_its_gradients(pytester):
    pytester.makepyfile(test_user_port=USER_TESTS)
    # hypothesis' and xdist's plugins are not needed by the project: ~1 s less to start
    outcome = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist",
                                            "-p", "no:hypothesispytest")
    out = outcome.stdout.str()
    outcome.assert_outcomes(passed=1, failed=1)
    assert "FAILED test_user_port.py::test_relu_without_its_mask" in out, out
    assert "the twins disagree" in out
    assert ("first disagreeing layer, backward order: layer 2 (MasklessReLU) input gradient"
            in out), out
    assert "parameter gradients that disagree: 1.weight, 1.bias, 0.weight, 0.bias" in out, out
    assert "first disagreeing layer, forward order" not in out, "its forward pass is correct"
    assert "np.float64(" not in out


def test_the_plugin_is_registered_by_the_entry_point(pytestconfig):
    """Found through ``pytest11`` (pyproject.toml), not through a conftest of ours."""
    plugin = pytestconfig.pluginmanager.get_plugin("nn_parity")
    assert plugin is not None and plugin.__name__ == "parity.pytest_plugin"


DIRECT_TESTS = USER_TESTS.split("def test_correct_port")[0] + '''
import parity


def test_direct_call():
    numpy_net, torch_net = nets(MasklessReLU())
    parity.assert_twins_close(numpy_net, torch_net, *batch(), loss="cross_entropy",
                              weights="torch")


def test_direct_functions(twins):
    numpy_net, torch_net = nets(R.ReLU())
    X, y = batch()
    params = {k: v.detach().numpy().copy() for k, v in torch_net.named_parameters()}

    def wrong(p, X, y):
        return 0.0, {k: np.zeros_like(v) for k, v in p.items()}
    twins.assert_functions_close(wrong, torch_net, X, y, params)
'''


def test_a_failure_shows_the_test_and_the_report_not_the_librarys_source(pytester):
    """Issue 20: ``assert_twins_close`` called directly (and ``compare_functions`` through
    the fixture) fails with the test's own line and the report: no frame of parity's own
    source, no dump of the arguments (``X = array(...)``) above the table."""
    pytester.makepyfile(test_direct=DIRECT_TESTS)
    outcome = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist",
                                            "-p", "no:hypothesispytest")
    out = outcome.stdout.str()
    outcome.assert_outcomes(failed=2)
    assert "the twins disagree" in out and "the functions disagree with torch" in out, out
    for leaked in ("def assert_twins_close", "def run(", "def compare_functions",
                   "result = compare_models", "numpy_model = ", "X = array(", "parity/api.py"):
        assert leaked not in out, f"{leaked!r} shown:\n{out}"


README_TWINS_TEST = '''
import numpy as np
import torch
from torch import nn

import parity
import layerspec
import reference
import torch_impl


def test_port(twins):
    torch.manual_seed(0)
    torch_net = nn.Sequential(nn.Linear(4, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 3))
    numpy_net = parity.from_torch(torch_net)   # or the NumPy model you wrote
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 4)).astype(np.float32), rng.integers(0, 3, 8)
    twins.assert_close(numpy_net, torch_net, X, y, loss="cross_entropy")


def test_my_modules_are_mine():
    assert (reference.OWNER, layerspec.OWNER, torch_impl.OWNER) == ("user",) * 3
'''


def test_a_project_with_its_own_reference_py_keeps_both(pytester):
    """Issue 24: a user's ``reference.py``, ``layerspec.py`` and ``torch_impl.py`` beside the
    tests (common names for "my reference implementation") neither break the plugin nor are
    shadowed by ours: the README's ``twins`` example passes, and the user's modules are theirs.
    With the old top-level names this failed with ``ImportError: cannot import name 'layers'
    from 'reference'`` inside parity/convert.py."""
    for name in ("reference", "layerspec", "torch_impl"):
        pytester.makepyfile(**{name: 'OWNER = "user"\n'})
    pytester.makepyfile(test_port=README_TWINS_TEST)
    outcome = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist",
                                            "-p", "no:hypothesispytest")
    outcome.assert_outcomes(passed=2)
