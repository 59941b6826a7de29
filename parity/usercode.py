"""``nn-parity check path/to/file.py:function``: check the user's own twins from the CLI.

The contract: ``function`` takes no arguments and returns a dict, either

- ``{"numpy_model", "torch_model", "X", "y", "loss"}`` and optionally ``"optimizer"``,
  ``"steps"``, ``"weights"`` → ``parity.compare_models`` (``torch_model`` an
  ``nn.Sequential`` or a module whose forward is a chain of layers: ``parity.chain``); or
- ``{"loss_and_grads", "torch_model", "X", "y", "params"}`` and optionally ``"loss"``,
  ``"reg"``, ``"penalty"``, ``"reduction"``, ``"mapping"``, ``"transposed"``, ``"examples"``,
  ``"running_var"`` → ``parity.compare_functions``.

``--dtype`` (default float64) casts copies of both models (for functions: the parameters,
the batch and the torch copy; functions run on the CPU), ``--seed`` seeds torch's dropout
masks, ``--steps`` overrides ``"steps"`` (default 1).
Every mistake — no such file, not Python, an import that raises, no such function, a return
value of the wrong kind, a user function that raises or calls ``sys.exit`` — is a
``ValueError``/``TypeError`` naming it: the CLI prints it as one line and exits 2, never 0.
The returned ``"steps"`` is held to ``--steps``'s range and type.

The file's folder is first on ``sys.path`` while the file is imported *and* while the
function and the check run (``importable``), so code that imports a sibling module when it
runs finds it; afterwards ``sys.path`` is as it was and the sibling modules are forgotten (the
next file's ``helpers.py`` is its own). ``loaded`` is that for any command
(``nn-parity export`` and ``import-check`` take the same targets).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import types
from collections.abc import Callable, Iterator

from parity import api, inputs
from parity.fileio import read_regular

SOURCE_LIMIT = 16 << 20   # a Python file larger than 16 MiB is not a model definition
MODELS_KEYS = {"numpy_model", "torch_model", "X", "y", "loss"}
MODELS_OPTIONAL = {"optimizer", "steps", "weights"}
FUNCTIONS_KEYS = {"loss_and_grads", "torch_model", "X", "y", "params"}
FUNCTIONS_OPTIONAL = {"loss", "reg", "mapping", "transposed", "penalty", "reduction", "examples",
                      "running_var"}


def is_target(text: str) -> bool:
    """``path/file.py:function`` (or a bare ``.py`` path, to be told what is missing); no
    catalogue name contains ``:`` or ends in ``.py``."""
    return ":" in text or text.endswith(".py")


def split_target(text: str) -> tuple[str, str]:
    path, sep, name = text.rpartition(":")
    if not sep or not path or not name:
        raise ValueError(f"{text!r}: expected path/to/file.py:function")
    if not name.isidentifier():
        raise ValueError(f"{text!r}: {name!r} is not a function name")
    return path, name


@contextlib.contextmanager
def importable(path: str) -> Iterator[None]:
    """The folder of ``path`` first on ``sys.path`` for the duration; then ``sys.path`` as
    before and, unless the folder was importable already, the modules imported from it
    removed from ``sys.modules``."""
    folder = os.path.dirname(os.path.abspath(path))
    known = folder in {os.path.abspath(p or os.curdir) for p in sys.path}
    before = set(sys.modules)
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):    # user code may have removed it itself
            sys.path.remove(folder)
        for name in () if known else set(sys.modules) - before:
            if _imported_from(folder, sys.modules.get(name)):
                del sys.modules[name]


def _imported_from(folder: str, module) -> bool:
    """``module`` is ``folder/top.py`` or lives in the package ``folder/top/``."""
    file = getattr(module, "__file__", None)
    if not file or module.__name__.startswith("nn_parity_user_"):
        return False
    top = os.path.join(folder, module.__name__.split(".")[0])
    file = os.path.abspath(file)
    return file == top + ".py" or file.startswith(top + os.sep)


@contextlib.contextmanager
def loaded(target: str) -> Iterator[dict]:
    """What the function of ``target`` (``path/file.py:function``) returns, checked against
    the contract (module docstring), its folder importable until the block ends."""
    path, name = split_target(target)
    with importable(path):
        yield returned(target, _function(load_module(path), path, name))


def load_module(path: str) -> types.ModuleType:
    """Execute the regular file ``path`` as a fresh module (inside ``importable`` for its
    siblings); any failure becomes a one-line ``ValueError`` naming the file."""
    try:
        source = read_regular(path, SOURCE_LIMIT, "for a Python file")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot read it: {e.strerror or e}") from None
    try:
        code = compile(source, path, "exec")
    except (SyntaxError, ValueError) as e:
        line = getattr(e, "lineno", None)
        raise ValueError(f"{path}: not valid Python"
                         f"{f' (line {line})' if line else ''}: {getattr(e, 'msg', e)}") from None
    name = f"nn_parity_user_{abs(hash(os.path.abspath(path)))}"
    module = types.ModuleType(name)
    module.__file__ = os.path.abspath(path)
    sys.modules[name] = module           # dataclasses and pickling look their module up
    try:
        exec(code, module.__dict__)
    except SystemExit as e:
        raise ValueError(f"{path}: importing it called sys.exit({e.code!r})") from None
    except Exception as e:  # noqa: BLE001 — the user's code: reported, not a crash of ours
        raise ValueError(f"{path}: importing it raised {type(e).__name__}: "
                         f"{inputs.first_line(e)}") from e
    return module


def _function(module: types.ModuleType, path: str, name: str) -> Callable:
    fn = getattr(module, name, None)
    if fn is None:
        own = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                     and getattr(v, "__module__", None) == module.__name__)
        raise ValueError(f"{path}: no function {name!r}; functions defined there: "
                         f"{', '.join(own) or 'none'}")
    if not callable(fn):
        raise TypeError(f"{path}:{name} is a {type(fn).__name__}, not a function")
    return fn


def _wrap(fn: Callable, target: str) -> Callable:
    """The user's ``loss_and_grads``, its exceptions reported as a ``ValueError`` naming it."""
    @functools.wraps(fn)        # its signature stays visible: whether it takes masks=
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SystemExit as e:
            raise ValueError(f"{target}: loss_and_grads called sys.exit({e.code!r})") from None
        except Exception as e:  # noqa: BLE001 — the user's code
            raise ValueError(f"{target}: loss_and_grads raised {type(e).__name__}: "
                             f"{inputs.first_line(e)}") from e
    return call


def returned(target: str, fn: Callable) -> dict:
    """``fn()``, checked against the contract (module docstring)."""
    try:
        got = fn()
    except SystemExit as e:
        raise ValueError(f"{target} called sys.exit({e.code!r})") from None
    except Exception as e:  # noqa: BLE001 — the user's code
        raise ValueError(f"{target} raised {type(e).__name__}: {inputs.first_line(e)}") from e
    if not isinstance(got, dict):
        raise TypeError(f"{target} returned {type(got).__name__}; expected a dict with keys "
                        f"{sorted(MODELS_KEYS)} or {sorted(FUNCTIONS_KEYS)}")
    required, optional = ((FUNCTIONS_KEYS, FUNCTIONS_OPTIONAL) if "loss_and_grads" in got
                          else (MODELS_KEYS, MODELS_OPTIONAL))
    missing, extra = sorted(required - set(got)), sorted(set(got) - required - optional)
    if missing or extra:
        raise ValueError(f"{target} returned a dict missing {missing} with unexpected "
                         f"{extra}; accepted keys: {sorted(required | optional)}")
    return got


def check(target: str, dtype: str = "float64", seed: int = 0,
          steps: int | None = None, device: str = "cpu") -> api.TwinsReport:
    """Load ``target`` (``path/file.py:function``), call the function, run the comparison
    (the torch twin on ``device``; plain functions run on the CPU)."""
    with loaded(target) as got:
        return _compare(target, got, dtype, seed, steps, device)


def _compare(target: str, got: dict, dtype: str, seed: int, steps: int | None,
             device: str) -> api.TwinsReport:
    if "loss_and_grads" in got:
        if device != "cpu":
            raise ValueError(f"{target}: functions are compared on the CPU only, got "
                             f"--device {device}")
        options = {k: got[k] for k in FUNCTIONS_OPTIONAL if k in got}
        return api.compare_functions(_wrap(got["loss_and_grads"], target), got["torch_model"],
                                     got["X"], got["y"], got["params"], name=target,
                                     dtype=dtype, seed=seed, **options)
    options = {k: got[k] for k in ("optimizer", "weights") if k in got}
    if steps is None:
        steps = int(inputs.number(got.get("steps", 1), f'{target}: "steps"', *inputs.STEPS,
                                  integer=True))
    return api.compare_models(got["numpy_model"], got["torch_model"], got["X"], got["y"],
                              loss=got["loss"], steps=steps, dtype=dtype, seed=seed,
                              name=target, device=device, **options)
