"""Real optimizer code from public repositories against torch.optim (``compare_optimizers``).

Three sources, one file each under tests/realcode/ (``SOURCES``): a student's cs231n
``optim.py`` (``update(w, dw, config)``), the NNFS book's chapter-10 optimizer objects
(``pre_update_params``/``update_params(layer)``/``post_update_params``) and numpy-ml's
optimizer classes (``opt(param, grad, name)``, state in ``opt.cache``). Each file is the
code as written below a header naming repository, path, commit and licence; its sha256 is
checked. The files are not committed here (third-party code stays out of this repository's
commits): a source whose file is absent is skipped, saying what to put where.

A case is a source, an optimizer in it, torch's twin with the same hyperparameters, and
the verdict expected: ``correct`` (passes), ``bug`` (the code as written is wrong: the first
step it differs at is named) or ``planted`` (one edit, ``PLANT``, written as such slips are
written: fails at the named step, with the named hint when a convention explains it).
Glue — the lines beyond the source a case needs — is the loader of its source
(``load_*``) plus the lines of its entry in ``CASES``.
"""

import ast
import hashlib
import importlib.metadata
import pathlib
import sys
import types
import warnings

import numpy as np
import pytest

from parity.optimizer_check import compare_optimizers
from parity.update_rules import cs231n_rule, layer_rule, plain_rule

HERE = pathlib.Path(__file__).resolve().parent / "realcode"
MARK = "# ---- code as written below this line ----\n"
SOURCES = {   # file -> (repository, path, commit, licence, sha256 of the code as written)
    "cs231n_fortileizhang_optim.py": (
        "FortiLeiZhang/cs231n", "code/cs231n/assignment2/cs231n/optim.py",
        "a27508b03c490b95fa2506117b762ddd2f035a23", "none stated (all rights reserved)",
        "6e7ce178b6e95f748225b3741ba8e7f297d2e2f853a196089aa10a3ea768031e"),
    "nnfs_book_ch10.py": (
        "Sentdex/nnfs_book", "Chapter_10/Ch10_Final.py",
        "9cf2fc482985d5bc68c736a49aa0624b6ab13fb1", "MIT",
        "dfbc73d8f8fec17f9a95d0e0011ad6774984b134c63ac51942f7bf1dc72fb80b"),
    "numpy_ml_optimizers.py": (
        "ddbourgin/numpy-ml", "numpy_ml/neural_nets/optimizers/optimizers.py",
        "b0359af5285fbf9699d64fd5ec059493228af03e", "GPL-3.0",
        "f6b667f9351916e0e8e41b7aaebca733e650327ed37b211b785d42103f6e8049"),
}


# Sources a package index also ships, file for file (the same sha256): found in the installed
# distribution when tests/realcode lacks them. `make test` installs numpy-ml 0.1.2 for this
# (without its dependencies: the package's __init__ no longer imports on Python ≥ 3.10, so
# only the one file is read, never imported as a package).
INSTALLED = {"numpy_ml_optimizers.py": ("numpy-ml",
                                         "numpy_ml/neural_nets/optimizers/optimizers.py")}


def _installed(name: str) -> pathlib.Path | None:
    if name not in INSTALLED:
        return None
    dist, file = INSTALLED[name]
    try:
        path = pathlib.Path(str(importlib.metadata.distribution(dist).locate_file(file)))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def code_of(name: str, plant: tuple[str, str] | None = None) -> str:
    """The code as written (its sha256 checked), with the planted edit ``(old, new)``."""
    path = HERE / name
    repo, src, commit, licence, digest = SOURCES[name]
    if path.is_file():
        code = path.read_text().split(MARK, 1)[-1]
    elif (installed := _installed(name)) is not None:
        code = installed.read_text()
    else:
        also = (f"; or pip install --no-deps {INSTALLED[name][0]} (constraints.txt)"
                if name in INSTALLED else "")
        pytest.skip(f"tests/realcode/{name} absent: {repo} {src} at {commit} ({licence}) "
                    f"below a header ending {MARK.strip()!r}{also}")
    assert hashlib.sha256(code.encode()).hexdigest() == digest, f"{name}: not as written"
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
