"""Same seed → bit-identical training histories, on each side and through the CLI.

Everything random is drawn from the spec's seeded streams (data, init, batch order, NumPy
dropout masks) or from torch's generator seeded inside ``torch.random.fork_rng`` by
``parity.catalogue.train.run``; thread count is fixed by ``parity.runtime`` (1 in the tests,
recorded in ``RunResult.threads``). On CPU the torch ops used here (addmm, ReLU/Sigmoid, dropout,
BatchNorm, LayerNorm, the losses, SGD/Adam single-tensor paths) are deterministic for a fixed
thread count without ``torch.use_deterministic_algorithms(True)`` — these tests run without it.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from parity import transfer
from parity.catalogue import train, zoo
from parity.twins import IMPLS

ROOT = Path(__file__).resolve().parents[1]

# (model, epochs): full batch; dropout; shuffled minibatches; BatchNorm + dropout +
# minibatches + Adam; early stopping (validation loss drives the loop)
CASES = [("cs231n-2layer", 20), ("digits-dropout", 3), ("digits-minibatch", 2),
         ("spiral003", 2), ("spiral004-early-stopping", 5)]


def _state(model):
    if isinstance(model, torch.nn.Module):
        return transfer.torch_state(model)
    return model.state_dict()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name, epochs", CASES, ids=[c[0] for c in CASES])
def test_same_seed_same_history_bit_for_bit(name, epochs, impl):
    spec = zoo.get(name)
    a, ma = train.run(spec, impl, seed=3, epochs=epochs)
    b, mb = train.run(spec, impl, seed=3, epochs=epochs)
    assert len(a.loss) == epochs
    assert a.loss == b.loss and a.val_loss == b.val_loss
    assert (a.train_accuracy, a.test_accuracy, a.steps) == (b.train_accuracy, b.test_accuracy,
                                                            b.steps)
    sa, sb = _state(ma), _state(mb)
    assert all(sa[k].tobytes() == sb[k].tobytes() for k in sa)
    assert isinstance(a.threads, int) and a.threads >= 1


@pytest.mark.parametrize("impl", IMPLS)
def test_another_seed_gives_another_history(impl):
    """The equality above is not vacuous: the seed reaches data, init, order and masks."""
    spec = zoo.get("digits-dropout")
    a, _ = train.run(spec, impl, seed=3, epochs=2)
    b, _ = train.run(spec, impl, seed=4, epochs=2)
    assert a.loss != b.loss


def test_dropout_masks_are_seeded_not_global():
    """Global RNG state must not leak in: reseeding numpy/torch globally changes nothing, and
    run() leaves torch's global generator where it was (it forks it)."""
    spec = zoo.get("digits-dropout")
    np_state, t_state = np.random.get_state(), torch.random.get_rng_state()
    try:
        np.random.seed(123)
        torch.manual_seed(123)
        a, _ = train.run(spec, "torch", seed=3, epochs=2)
        np.random.seed(999)
        torch.manual_seed(999)
        b, _ = train.run(spec, "torch", seed=3, epochs=2)
        assert a.loss == b.loss
        before = torch.random.get_rng_state()
        train.run(spec, "torch", seed=3, epochs=1)
        assert torch.equal(torch.random.get_rng_state(), before)
    finally:
        np.random.set_state(np_state)
        torch.random.set_rng_state(t_state)


def test_cli_main_twice_gives_identical_json_except_seconds(capsys):
    """In-process twin of the subprocess test below (fast suite)."""
    from parity.cli import main
    argv = ["train", "cs231n-2layer", "--impl", "both", "--json", "--seed", "3",
            "--epochs", "300", "--curve"]
    runs = []
    for _ in range(2):
        assert main(argv) == 0
        runs.append(json.loads(capsys.readouterr().out))
    for ra, rb in zip(*runs):
        assert isinstance(ra["threads"], int) and ra["threads"] >= 1
        ra.pop("seconds"), rb.pop("seconds")
        assert ra == rb and len(ra["loss"]) == 300


def _cli_json():
    argv = [sys.executable, "-m", "parity", "train", "cs231n-2layer", "--impl", "both",
            "--json", "--seed", "3", "--epochs", "300"]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.slow  # two fresh interpreters importing torch: ~6 s each, ~17 s side by side
def test_cli_train_twice_gives_identical_json_except_seconds():
    procs = [_cli_json(), _cli_json()]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(json.loads(out))
    a, b = outs
    assert [r["impl"] for r in a] == ["numpy", "torch"]
    for ra, rb in zip(a, b):
        assert "threads" in ra and isinstance(ra["threads"], int) and ra["threads"] >= 1
        assert ra.pop("seconds") >= 0 and rb.pop("seconds") >= 0
        assert ra == rb
        assert (ra["seed"], ra["epochs"], ra["steps"]) == (3, 300, 300)
