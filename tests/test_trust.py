"""The hostile-input table: one parametrized test per promise, each attack run through the
three doors a user has — the API (``compare_models``/``compare_functions``), the pytest
plugin's ``twins`` fixture and ``nn-parity check file.py:function``.

The promises (issue "A verdict you can trust on any input"):
1. no false pass: a NaN/Inf/complex/empty input is bad input; NaN/Inf in the evidence fails;
2. the caller's data is never touched (in-place first modules included);
3. user code cannot fake success (``sys.exit``, ``SystemExit``, ``KeyboardInterrupt``);
4. every module option is compared; frozen parameters stay frozen; tied ones are refused;
5. bad input is exit 2 with one line naming it — exit 3 is for nn-parity's own bugs only.

An attack is a snippet of user code defining ``make() -> dict`` (the ``check`` contract of
``parity.usercode``); each door runs the same snippet, so a door cannot drift from the others.
"""

from __future__ import annotations

import re
import sys
import textwrap

import numpy as np
import pytest
import torch

import parity
from parity.pytest_plugin import TwinsChecker

PRELUDE = '''
import copy
import sys
import numpy as np
import torch
from torch import nn
import parity
from parity import reference as R

MADE = []      # (what make() handed over, a deep copy of it): nothing may be touched


def net(*mods, dtype=torch.float64):
    torch.manual_seed(0)
    return nn.Sequential(*mods).to(dtype)


def models(*mods, loss="cross_entropy", n=6, features=4, classes=3, **extra):
    t = net(*mods)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, features)) + 0.2
    y = (rng.integers(0, classes, n) if loss == "cross_entropy"
         else rng.integers(0, 2, n).astype(float))
    d = {"numpy_model": parity.from_torch(t), "torch_model": t, "X": X, "y": y, "loss": loss}
    d.update(extra)
    return d


def mlp(**extra):
    return models(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3), **extra)


def functions(**extra):
    t = net(nn.Linear(4, 3))
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)

    def loss_and_grads(p, X, y):
        s = X @ p["W"] + p["b"]
        e = np.exp(s - s.max(1, keepdims=True))
        pr = e / e.sum(1, keepdims=True)
        d = pr.copy()
        d[np.arange(len(y)), y] -= 1
        d /= len(y)
        return -np.log(pr[np.arange(len(y)), y]).mean(), {"W": X.T @ d, "b": d.sum(0)}

    d = {"loss_and_grads": loss_and_grads, "torch_model": t, "X": X, "y": y,
         "params": {"W": t[0].weight.detach().numpy().T.copy(), "b": np.zeros(3)}}
    d.update(extra)
    return d


def make():
    d = attack()
    MADE.append((d, copy.deepcopy(d)))
    return d
'''

# (id, body of make(), outcome, pattern of the one line / the report). outcome: "bad" (exit 2,
# ValueError/TypeError), "fail" (exit 1, passed False), "pass" (exit 0, passed True).
ATTACKS = [
    # -- 1. non-finite, complex, empty: never an agreement --------------------------------------
    ("inf-in-X", "d = mlp(); d['X'][0, 1] = np.inf; return d", "bad", r"X: 1 non-finite"),
    ("nan-in-X", "d = mlp(); d['X'][:, 0] = np.nan; return d", "bad", r"X: 6 non-finite"),
    ("nan-in-y", "d = mlp(loss='bce', n=6); d['y'][2] = np.nan; return d", "bad",
     r"y: 1 non-finite"),
    ("nan-numpy-weight", "d = mlp(); d['numpy_model'].layers[0].params['weight'][0, 0] = "
     "np.nan; return d", "bad", r"NumPy model's 0.weight: 1 non-finite"),
    ("inf-torch-weight", "d = mlp()\n    with torch.no_grad(): d['torch_model'][2].bias[1] = "
     "float('inf')\n    return d", "bad", r"torch model's 2.bias: 1 non-finite"),
    ("lr-nan", "return mlp(optimizer={'kind': 'sgd', 'lr': float('nan')})", "bad",
     r"optimizer lr must be a finite number"),
    ("lr-inf", "return mlp(optimizer={'kind': 'adam', 'lr': float('inf')})", "bad",
     r"optimizer lr must be a finite number"),
    ("betas-nan", "return mlp(optimizer={'kind': 'adam', 'betas': (0.9, float('nan'))})",
     "bad", r"optimizer betas must be a finite number"),
    ("empty-batch", "d = mlp(); d['X'], d['y'] = d['X'][:0], d['y'][:0]; return d", "bad",
     r"X: an empty batch"),
    ("complex-X", "d = mlp(); d['X'] = d['X'] + 0j; return d", "bad", r"X: complex"),
    ("overflow-to-nan", "d = mlp()\n    d['numpy_model'].layers[0].params['weight'][:] = 1e200"
     "\n    d['numpy_model'].layers[2].params['weight'][:] = 1e200\n    "
     "d['numpy_model'].layers[1] = R.ReLU(); d['torch_model'][1] = nn.ReLU()\n    return d",
     "fail", r"NaN or Inf first appeared at step 1: layer 2 \(Linear\) output"),
    ("huge-lr-overflows-at-step-2", "return models(nn.Linear(4, 8), nn.ReLU(), "
     "nn.Linear(8, 3), optimizer={'kind': 'sgd', 'lr': 1e305}, steps=3)", "fail",
     r"NaN or Inf first appeared at step 2: layer \d \(Linear\) output"),
    ("functions-nan-params", "d = functions(); d['params']['W'][0, 0] = np.nan; return d",
     "bad", r"params\['W'\]: 1 non-finite"),
    ("functions-nan-gradient", "d = functions(); f = d['loss_and_grads']\n"
     "    def nan_grads(p, X, y):\n        L, g = f(p, X, y)\n        g['b'] = g['b'] * np.nan"
     "\n        return L, g\n    d['loss_and_grads'] = nan_grads\n    return d", "fail",
     r"non-finite values: NumPy 3"),
    ("functions-nan-loss", "d = functions(); f = d['loss_and_grads']\n"
     "    d['loss_and_grads'] = lambda p, X, y: (float('nan'), f(p, X, y)[1])\n    return d",
     "fail", r"loss: non-finite values: NumPy 1"),
    ("functions-complex-grads", "d = functions(); f = d['loss_and_grads']\n"
     "    def cplx(p, X, y):\n        L, g = f(p, X, y)\n        g['W'] = g['W'] + 0j"
     "\n        return L, g\n    d['loss_and_grads'] = cplx\n    return d", "bad",
     r"grads\['W'\]: complex"),
    ("functions-empty-batch", "d = functions(); d['X'], d['y'] = d['X'][:0], d['y'][:0]; "
     "return d", "bad", r"X: an empty batch"),
    # -- 2. the caller's data: in-place first modules (the snapshot is checked for every row)
    ("inplace-relu-first", "return models(nn.ReLU(inplace=True), nn.Linear(4, 3))", "pass",
     r"passed"),
    ("inplace-dropout-first", "return models(nn.Dropout(0.5, inplace=True), nn.Linear(4, 3),"
     " steps=2)", "pass", r"passed"),
    # ELU is not idempotent: a function handed torch's ELU(X) in place of X computes ELU(ELU(X))
    ("inplace-elu-first-functions", "d = functions()\n    d['torch_model'] = "
     "nn.Sequential(nn.ELU(inplace=True), d['torch_model'][0])\n    f = d['loss_and_grads']"
     "\n    elu = lambda X: np.where(X > 0, X, np.expm1(np.minimum(X, 0)))"
     "\n    d['loss_and_grads'] = lambda p, X, y: f(p, elu(X), y)\n    return d",
     "pass", r"passed"),
    # -- 3. user code cannot fake success --------------------------------------------------------
    ("sys-exit-0-in-forward", "class Exit(R.ReLU):\n        def forward(self, x, training=True):"
     "\n            sys.exit(0)\n    d = mlp(); d['numpy_model'].layers[1] = Exit()\n"
     "    d['torch_model'][1] = nn.ReLU()\n    return d", "bad", r"sys\.exit\(0\)"),
    ("sys-exit-0-in-loss-and-grads", "d = functions()\n    def f(p, X, y):\n"
     "        sys.exit(0)\n    d['loss_and_grads'] = f\n    return d", "bad", r"sys\.exit\(0\)"),
    ("system-exit-message-in-loss-and-grads", "d = functions()\n    def f(p, X, y):\n"
     "        raise SystemExit('done')\n    d['loss_and_grads'] = f\n    return d", "bad",
     r"sys\.exit\('done'\)"),
    # -- 4. options, frozen, tied ---------------------------------------------------------------
    ("dropout-p-differs", "d = models(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3))\n"
     "    d['torch_model'][1].p = 1.0\n    return d", "bad",
     r"layer 1 \(Dropout\): p 0\.5 \(NumPy\) vs 1\.0 \(torch\)"),
    ("batchnorm-eps-differs", "d = models(nn.Linear(4, 8), nn.BatchNorm1d(8, eps=1e-3), "
     "nn.Linear(8, 3))\n    d['numpy_model'].layers[1].eps = 1e-5\n    return d", "bad",
     r"layer 1 \(BatchNorm1d\): eps 1e-05 \(NumPy\) vs 0\.001 \(torch\)"),
    ("batchnorm-momentum-differs", "d = models(nn.Linear(4, 8), nn.BatchNorm1d(8, "
     "momentum=None), nn.Linear(8, 3))\n    d['numpy_model'].layers[1].momentum = 0.1\n"
     "    return d", "bad", r"momentum 0\.1 \(NumPy\) vs None \(torch\)"),
    ("batchnorm-without-running-stats", "d = models(nn.Linear(4, 8), nn.BatchNorm1d(8), "
     "nn.Linear(8, 3))\n    d['torch_model'][1].track_running_stats = False\n    return d",
     "bad", r"track_running_stats True \(NumPy\) vs False \(torch\)"),
    ("layernorm-eps-differs", "d = models(nn.Linear(4, 8), nn.LayerNorm(8, eps=1e-6), "
     "nn.Linear(8, 3))\n    d['numpy_model'].layers[1].eps = 1e-5\n    return d", "bad",
     r"layer 1 \(LayerNorm\): eps"),
    ("frozen-first-weight", "d = mlp(optimizer='adam', steps=3)\n"
     "    d['torch_model'][0].weight.requires_grad_(False)\n    return d", "pass",
     r"frozen in torch \(requires_grad=False\): 0\.weight"),
    ("frozen-functions", "d = functions(); d['torch_model'][0].bias.requires_grad_(False); "
     "return d", "pass", r"frozen in torch \(requires_grad=False\): 0\.bias"),
    ("tied-weights", "lin = nn.Linear(4, 4)\n    d = models(lin, nn.Tanh(), nn.Linear(4, 4), "
     "classes=4)\n    d['torch_model'][2].weight = d['torch_model'][0].weight\n    return d",
     "bad", r"0\.weight and 2\.weight are one tied"),
    # -- 5. bad input named, exit 2 ------------------------------------------------------------
    ("label-out-of-range", "d = mlp(); d['y'][0] = 3; return d", "bad",
     r"y: class labels must be < 3"),
    ("negative-label", "d = mlp(); d['y'][0] = -1; return d", "bad",
     r"y: class labels must be >= 0"),
    ("fractional-label", "d = mlp(); d['y'] = d['y'] + 0.5; return d", "bad",
     r"y: class labels must be integers"),
    ("wrong-feature-count", "d = mlp(); d['X'] = np.ones((6, 5)); return d", "bad",
     r"X \(6, 5\): the torch model cannot run on it"),
    # any (N, ...) batch is an input (images are (N, C, H, W)); whether the model takes its
    # rank is the dry run's to say, as for a wrong feature count
    ("wrong-rank", "d = mlp(); d['X'] = np.ones((6, 4, 1)); return d", "bad",
     r"X \(6, 4, 1\): the torch model cannot run on it"),
    ("rank-1", "d = mlp(); d['X'] = np.ones(6); return d", "bad", r"X: expected a batch"),
    ("y-wrong-length", "d = mlp(); d['y'] = d['y'][:5]; return d", "bad",
     r"y: expected 6 class labels"),
    ("bce-targets-wrong-shape", "d = models(nn.Linear(4, 1), nn.Sigmoid(), loss='bce')\n"
     "    d['y'] = np.zeros((6, 2)); return d", "bad", r"y: expected 6 targets"),
    ("bce-soft-targets", "d = models(nn.Linear(4, 1), loss='bce_with_logits')\n"
     "    d['y'] = np.full(6, 0.3); return d", "bad", r"targets must be 0 or 1"),
    ("meta-device", "d = mlp(); d['torch_model'] = d['torch_model'].to('meta'); return d",
     "bad", r"on the meta device"),
    ("batchnorm-batch-of-one", "d = models(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3),"
     " n=1); return d", "bad", r"X \(1, 4\): the torch model cannot run on it"),
    ("mapping-as-a-list", "return functions(mapping=['W', 'b'])", "bad",
     r"mapping: expected a dict"),
    ("reg-nan", "return functions(reg=float('nan'))", "bad", r"reg must be a finite number"),
    ("steps-as-text", "return mlp(steps='3')", "bad", r"steps.* must be an int, got str"),
    ("steps-as-bool", "return mlp(steps=True)", "bad", r"steps.* must be an int, got bool"),
    ("steps-huge", "return mlp(steps=10**9)", "bad", r"steps.* must be <= 1e\+06"),
]


def _source(body: str) -> str:
    return PRELUDE + "\n\ndef attack():\n    " + body + "\n"


def _make(body: str) -> tuple[dict, dict]:
    ns: dict = {}
    exec(compile(_source(body), "<attack>", "exec"), ns)
    return ns["make"](), ns


def _snapshot(d: dict) -> dict:
    """Bytes of every array and every model tensor the caller handed in."""
    out = {}
    for k, v in d.items():
        if isinstance(v, np.ndarray):
            out[k] = (v.dtype, v.shape, v.tobytes())
        elif isinstance(v, torch.nn.Module):
            out[k] = {n: t.detach().clone() for n, t in v.state_dict().items()
                      if not t.is_meta}
            out[k + ".grad"] = [p.grad is None for p in v.parameters()]
        elif hasattr(v, "state_dict"):
            out[k] = {n: a.tobytes() for n, a in v.state_dict().items()}
        elif isinstance(v, dict):
            out[k] = {n: np.asarray(a).tobytes() for n, a in v.items()}
    return out


def _same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, dict):
            if x.keys() != y.keys() or any(
                    not (torch.equal(x[n], y[n]) if isinstance(x[n], torch.Tensor)
                         else x[n] == y[n]) for n in x):
                return False
        elif x != y:
            return False
    return True


def _api(d: dict):
    if "loss_and_grads" in d:
        return parity.compare_functions(**d)
    return parity.compare_models(**d)


def _plugin(d: dict):
    checker = TwinsChecker()
    if "loss_and_grads" in d:
        opts = {k: v for k, v in d.items()
                if k not in ("loss_and_grads", "torch_model", "X", "y", "params")}
        return checker.assert_functions_close(d["loss_and_grads"], d["torch_model"], d["X"],
                                              d["y"], d["params"], **opts)
    opts = {k: v for k, v in d.items() if k not in ("numpy_model", "torch_model", "X", "y")}
    return checker.assert_close(d["numpy_model"], d["torch_model"], d["X"], d["y"], **opts)


IDS = [a[0] for a in ATTACKS]


@pytest.mark.parametrize("door", ["api", "plugin"])
@pytest.mark.parametrize("name, body, outcome, pattern", ATTACKS, ids=IDS)
def test_library_doors_keep_every_promise(door, name, body, outcome, pattern):
    """The API and the plugin: bad input raises ValueError/TypeError naming it, a failure is
    a failed report (an AssertionError in the plugin), and the caller's arrays and models
    are byte for byte what they were."""
    d, _ = _make(body)
    before = _snapshot(d)
    run = _api if door == "api" else _plugin
    if outcome == "bad":
        with pytest.raises((ValueError, TypeError), match=pattern):
            run(d)
    elif outcome == "fail" and door == "plugin":
        with pytest.raises(AssertionError, match=pattern):
            run(d)
    else:
        report = run(d)
        text = report.report()
        assert report.passed == (outcome == "pass"), text
        assert re.search(pattern, text), text
    assert _same(before, _snapshot(d)), f"{name}: the caller's data changed"


@pytest.mark.parametrize("name, body, outcome, pattern", ATTACKS, ids=IDS)
def test_check_command_keeps_every_promise(cli, capsys, tmp_path, name, body, outcome, pattern):
    """``nn-parity check file.py:make``: exit 2 with one line naming the input, 1 with the
    report for a failure, 0 only for twins that were compared and agreed; the data the
    user's function made is untouched."""
    path = tmp_path / "attack.py"
    path.write_text(_source(body))
    code = cli(["check", f"{path}:make"])
    out, err = capsys.readouterr()
    expected = {"bad": 2, "fail": 1, "pass": 0}[outcome]
    assert code == expected, f"{name}: exit {code}\n{out}{err}"
    if outcome == "bad":
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert re.search(pattern, err), err
    else:
        assert re.search(pattern, out), out
    module = next(m for m in list(sys.modules.values())
                  if getattr(m, "__file__", None) == str(path))
    (d, kept), = module.MADE
    assert _same(_snapshot(kept), _snapshot(d)), f"{name}: the user's data changed"


USER_CODE_EXITS = [
    ("exit-0-at-import", "sys.exit(0)\n", "def make():\n    return {}\n",
     r"importing it called sys\.exit\(0\)"),
    ("exit-0-in-function", "", "def make():\n    sys.exit(0)\n", r"called sys\.exit\(0\)"),
    ("system-exit-message", "", "def make():\n    raise SystemExit('bye')\n",
     r"called sys\.exit\('bye'\)"),
    ("keyboard-interrupt-by-code", "", "def make():\n    raise KeyboardInterrupt\n",
     r"KeyboardInterrupt raised by the code under check"),
]


@pytest.mark.parametrize("name, top, fn, pattern", USER_CODE_EXITS,
                         ids=[u[0] for u in USER_CODE_EXITS])
def test_user_code_that_exits_is_exit_2_and_one_line(cli, capsys, tmp_path, name, top, fn,
                                                     pattern):
    """``sys.exit(0)`` anywhere in user code never reads as 'every check passed'."""
    path = tmp_path / "exits.py"
    path.write_text("import sys\n" + top + fn)
    code = cli(["check", f"{path}:make"])
    out, err = capsys.readouterr()
    assert code == 2, f"{name}: exit {code}\n{out}{err}"
    assert err.count("\n") == 1 and re.search(pattern, err), err


def test_a_real_sigint_is_still_an_interrupt(cli, capsys, tmp_path):
    """The KeyboardInterrupt of a real Ctrl-C (a signal) keeps exit 130."""
    path = tmp_path / "sigint.py"
    path.write_text("import os, signal\n\ndef make():\n    os.kill(os.getpid(), "
                    "signal.SIGINT)\n    return {}\n")
    assert cli(["check", f"{path}:make"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_the_seed_is_range_checked_by_the_api():
    d, _ = _make("return mlp()")
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\)"):
        parity.compare_models(**d, seed=2**70)


def test_a_non_finite_value_in_evidence_is_never_an_agreement():
    """The judge itself: NaN against NaN, Inf against Inf fail, naming both sides."""
    from parity.judge import Pair, judge
    for v in (np.nan, np.inf, -np.inf):
        a = np.array([1.0, v])
        c = judge([Pair("step 1 grad 0.weight", "grad", "grad", 1, a, a.copy())], "float64")[0]
        assert not c.passed and c.rule == "finite", c
        assert "NumPy 1 (first" in c.detail and "torch 1 (first" in c.detail, c.detail


def test_to_torch_of_a_float16_model_is_one_type_error():
    from parity import reference as R
    m = R.Sequential(R.Linear(2, 2))
    m.layers[0].params = {k: v.astype(np.float16) for k, v in m.layers[0].params.items()}
    with pytest.raises(TypeError, match=r"to_torch: parameters must be float32 or float64"):
        parity.to_torch(m)


def test_prelude_is_valid_python():
    compile(textwrap.dedent(PRELUDE), "<prelude>", "exec")
