"""Real optimizer code from public repositories against torch.optim (``compare_optimizers``).

Three sources, one file each under tests/realcode/ (``realcode_sources.SOURCES``): a
student's cs231n ``optim.py`` (``update(w, dw, config)``), the NNFS book's chapter-10 optimizer
objects (``pre_update_params``/``update_params(layer)``/``post_update_params``) and numpy-ml's
optimizer classes (``opt(param, grad, name)``, state in ``opt.cache``). Each file is the
code as written below a header naming repository, path, commit and licence; its sha256 is
checked. The files are not committed here (third-party code stays out of this repository's
commits): a source whose file is absent is skipped, saying what to put where; numpy-ml's is
read from the installed numpy-ml when absent.

A case is a source, an optimizer in it, torch's twin with the same hyperparameters, and
the verdict expected: ``correct`` (passes), ``bug`` (the code as written is wrong: the first
step it differs at is named) or ``planted`` (one edit, ``PLANT``, written as such slips are
written: fails at the named step, with the named hint when a convention explains it).
Glue — the lines beyond the source a case needs — is the loader of its source
(``load_*``) plus the lines of its entry in ``CASES``.
"""

import ast
import sys
import types
import warnings

import numpy as np
import pytest
import realcode_sources

from parity.optimizer_check import compare_optimizers
from parity.update_rules import cs231n_rule, layer_rule, plain_rule


def code_of(name: str, plant: tuple[str, str] | None = None) -> str:
    """The code as written (``realcode_sources.code``), with the planted edit ``(old, new)``."""
    code = realcode_sources.code(name)
    if plant:
        assert code.count(plant[0]) == 1, f"{name}: the planted edit's anchor is not unique"
        code = code.replace(*plant)
    return code


def load_cs231n(plant=None) -> dict:
    ns: dict = {}
    exec(compile(code_of("cs231n_fortileizhang_optim.py", plant), "cs231n optim.py", "exec"), ns)
    return ns


def load_nnfs(plant=None) -> dict:
    """The chapter's ``Optimizer_*`` classes alone: the rest of the file trains a model."""
    tree = ast.parse(code_of("nnfs_book_ch10.py", plant))
    tree.body = [n for n in tree.body if isinstance(n, ast.ClassDef)
                 and n.name.startswith("Optimizer_")]
    ns: dict = {"np": np}
    exec(compile(tree, "nnfs Ch10_Final.py", "exec"), ns)
    return ns


def load_numpy_ml(plant=None) -> types.ModuleType:
    """The module inside a stand-in package whose ``initializers`` gives a constant lr."""
    pkg, init = types.ModuleType("realcode_npml"), types.ModuleType("realcode_npml.initializers")
    sub = types.ModuleType("realcode_npml.optimizers")   # its ``from ..initializers``
    pkg.__path__, sub.__path__ = [], []

    class SchedulerInitializer:
        def __init__(self, param, lr):
            self.lr = lr

        def __call__(self):
            return lambda step, cur_loss=None: self.lr
    init.SchedulerInitializer = SchedulerInitializer
    mod = types.ModuleType("realcode_npml.optimizers.optimizers")
    mod.__package__ = "realcode_npml.optimizers"
    sys.modules.update({"realcode_npml": pkg, "realcode_npml.initializers": init,
                        "realcode_npml.optimizers": sub})
    with warnings.catch_warnings():   # its docstrings' "\m" as written
        warnings.simplefilter("ignore", DeprecationWarning)
        code = compile(code_of("numpy_ml_optimizers.py", plant), "numpy-ml optimizers.py", "exec")
    exec(code, mod.__dict__)
    return mod


def numpy_ml_rule(opt, entry=None):
    """``opt(param, grad, name)`` per parameter; its cache per name is the state (a bare
    array: the state ``entry``)."""
    def step(p, g):
        return {k: opt(p[k], g[k], k) for k in p}
    return plain_rule(step, lambda: {k: (v if isinstance(v, dict) else {entry: v})
                                     for k, v in opt.cache.items()})


# numpy-ml's SGD caches its update, lr times torch's momentum buffer
UPDATE = {"update": ("momentum_buffer", lambda b, o: o["lr"] * b)}
MEAN_VAR = {"mean": "exp_avg", "var": "exp_avg_sq"}   # numpy-ml's Adam
# each planted edit (old, new): one slip, written as such slips are written
PLANT = {
    "t from 0": ("config.get('t', np.uint32(1))", "config.get('t', np.uint32(0))"),
    "mu dropped": ("mu * velocity -", "velocity -"),
    "rho swapped": ("self.rho * layer.weight_cache + \\\n            (1 - self.rho)",
                    "(1 - self.rho) * layer.weight_cache + \\\n            self.rho"),
    "momentum dropped": ("self.momentum * layer.weight_momentums -", "layer.weight_momentums -"),
    "t from 1": ('"t": 0,', '"t": 1,'),
    "eps in sqrt": ("/ (np.sqrt(C[param_name]) + eps)\n        self.cache = C\n        return "
                    "param - update\n\n\nclass RMSProp",
                    "/ (np.sqrt(C[param_name] + eps))\n        self.cache = C\n        return "
                    "param - update\n\n\nclass RMSProp"),
}

# (id, verdict, rule factory, torch optimizer, options, state_names, first failure, hint)
CASES = [
    ("cs231n-sgd_momentum", "correct",
     lambda: cs231n_rule(load_cs231n()["sgd_momentum"], {"learning_rate": 1e-2, "mu": 0.9}),
     "sgd", dict(lr=1e-2, momentum=0.9), None, None, None),
    ("cs231n-rmsprop", "correct",
     lambda: cs231n_rule(load_cs231n()["rmsprop"], {"learning_rate": 1e-2}),
     "rmsprop", dict(lr=1e-2), None, None, None),
    ("cs231n-adam", "bug",
     lambda: cs231n_rule(load_cs231n()["adam"], {"learning_rate": 1e-2}),
     "adam", dict(lr=1e-2), None, "step 1 param", "step counter one ahead"),
    ("cs231n-adam-t-from-0", "correct",
     lambda: cs231n_rule(load_cs231n(PLANT['t from 0'])["adam"], {"learning_rate": 1e-2}),
     "adam", dict(lr=1e-2), None, None, None),
    ("cs231n-sgd_momentum-mu-dropped", "planted",
     lambda: cs231n_rule(load_cs231n(PLANT['mu dropped'])["sgd_momentum"],
                         {"learning_rate": 1e-2, "mu": 0.9}),
     "sgd", dict(lr=1e-2, momentum=0.9), None, "step 2 param", None),
    ("nnfs-sgd-momentum", "correct",
     lambda: layer_rule(load_nnfs()["Optimizer_SGD"](learning_rate=0.1, momentum=0.9)),
     "sgd", dict(lr=0.1, momentum=0.9), None, None, None),
    ("nnfs-adagrad-decay", "correct",
     lambda: layer_rule(load_nnfs()["Optimizer_Adagrad"](learning_rate=0.1, decay=0.3)),
     "adagrad", dict(lr=0.1, lr_decay=0.3, eps=1e-7), None, None, None),
    ("nnfs-rmsprop", "correct",
     lambda: layer_rule(load_nnfs()["Optimizer_RMSprop"](learning_rate=0.01)),
     "rmsprop", dict(lr=0.01, alpha=0.9, eps=1e-7), None, None, None),
    ("nnfs-adam", "correct",
     lambda: layer_rule(load_nnfs()["Optimizer_Adam"](learning_rate=0.01)),
     "adam", dict(lr=0.01, eps=1e-7), None, None, None),
    ("nnfs-rmsprop-rho-swapped", "planted",
     lambda: layer_rule(load_nnfs(PLANT["rho swapped"])["Optimizer_RMSprop"](
         learning_rate=0.01)),
     "rmsprop", dict(lr=0.01, alpha=0.9, eps=1e-7), None, "step 1 param 0.weight", None),
    ("nnfs-sgd-momentum-dropped", "planted",
     lambda: layer_rule(load_nnfs(PLANT["momentum dropped"])["Optimizer_SGD"](
         learning_rate=0.1, momentum=0.9)),
     "sgd", dict(lr=0.1, momentum=0.9), None, "step 2 param 0.weight", None),
    ("numpy-ml-sgd-momentum", "correct",
     lambda: numpy_ml_rule(load_numpy_ml().SGD(lr=0.1, momentum=0.9), "update"),
     "sgd", dict(lr=0.1, momentum=0.9), UPDATE, None, None),
    ("numpy-ml-adagrad", "correct",
     lambda: numpy_ml_rule(load_numpy_ml().AdaGrad(lr=0.1), "cache"),
     "adagrad", dict(lr=0.1, eps=1e-7), None, None, None),
    ("numpy-ml-rmsprop", "correct",
     lambda: numpy_ml_rule(load_numpy_ml().RMSProp(lr=0.01), "cache"),
     "rmsprop", dict(lr=0.01, alpha=0.9, eps=1e-7), None, None, None),
    ("numpy-ml-adam", "correct",
     lambda: numpy_ml_rule(load_numpy_ml().Adam(lr=0.01)),
     "adam", dict(lr=0.01, eps=1e-7), MEAN_VAR, None, None),
    ("numpy-ml-adam-t-from-1", "planted",
     lambda: numpy_ml_rule(load_numpy_ml(PLANT["t from 1"]).Adam(lr=0.01)),
     "adam", dict(lr=0.01, eps=1e-7), MEAN_VAR, "step 1 param", "step counter one ahead"),
    ("numpy-ml-adagrad-eps-in-sqrt", "planted",
     lambda: numpy_ml_rule(load_numpy_ml(PLANT["eps in sqrt"]).AdaGrad(lr=0.1), "cache"),
     "adagrad", dict(lr=0.1, eps=1e-7), None, "step 1 param", "eps inside the square root"),
]


def params(dtype):
    rng = np.random.default_rng(0)
    shapes = {"0.weight": (6, 4), "0.bias": (4,), "1.weight": (4, 3), "1.bias": (3,)}
    return {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_real_code(case, dtype):
    name, verdict, make, kind, options, names, first, hint = case
    r = compare_optimizers(make(), kind, params(dtype), steps=6, options=options,
                           state_names=names)
    if verdict == "correct":
        assert r.passed, r.report()
        return
    assert not r.passed, f"{name}: the {verdict} difference was not seen"
    assert r.first.label.startswith(first), r.report()
    if hint:
        assert any(hint in h for h in r.hints), r.report()
