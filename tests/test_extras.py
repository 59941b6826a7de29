"""What ``pip install nn-parity`` (no extras) must run, and the one line that names the extra
when a command needs one (parity/extras.py, pyproject's optional-dependencies).

The core is exercised in a subprocess where every optional package is blocked
(``sys.modules[name] = None`` makes its import fail as if it were not installed): the API, the
``twins`` fixture, ``nn-parity check``/``export``/``import-check``; then ``study``, a
.safetensors export and a digits model must each say which extra to install, exit 2, and
write nothing. Cost: one subprocess, ~6 s. The real wheel in a fresh venv is the slow test at
the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from parity import extras

ROOT = Path(__file__).resolve().parents[1]
DIST_TO_IMPORT = {extras.DISTRIBUTION.get(m, m): m for m in extras.MODULE_EXTRA}
OPTIONAL = sorted(extras.MODULE_EXTRA)


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def test_pyproject_extras_are_the_table_of_parity_extras():
    """Each extra of parity.extras.EXTRAS lists the same packages in pyproject.toml, and the
    core dependencies are numpy, torch and threadpoolctl only."""
    project = _pyproject()
    core = sorted(d.split(">")[0].split("=")[0].split("<")[0] for d in project["dependencies"])
    assert core == ["numpy", "threadpoolctl", "torch"], core
    optional = project["optional-dependencies"]
    for extra, modules in extras.EXTRAS.items():
        got = sorted(DIST_TO_IMPORT[d] for d in optional[extra])
        assert got == sorted(modules), f"extra {extra!r}: pyproject {got} vs parity.extras"
    assert optional["all"] == [f"nn-parity[{','.join(sorted(extras.EXTRAS))}]"]
    assert "nn-parity[all]" in optional["test"]
    assert set(extras.MODULE_EXTRA.values()) <= set(extras.EXTRAS)
    for command, (extra, modules) in extras.COMMAND_EXTRA.items():
        assert set(modules) <= set(extras.EXTRAS[extra]), command


# Runs in a child where the optional packages cannot be imported; prints "ok <step>" per step.
CORE_SCRIPT = r'''
import os, sys
BLOCKED = [name for name in sys.argv[2].split(",") if name]
for name in BLOCKED:
    sys.modules[name] = None            # `import name` now raises ModuleNotFoundError
tmp = sys.argv[1]
os.chdir(tmp)

import numpy as np, torch
from torch import nn
import parity
from parity import reference as R
from parity.cli import main

torch.manual_seed(0)
torch_net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).double()
numpy_net = R.Sequential(R.Linear(4, 8), R.ReLU(), R.Linear(8, 3))
rng = np.random.default_rng(0)
X, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)
r = parity.compare_models(numpy_net, torch_net, X, y, loss="cross_entropy",
                          optimizer="adam", steps=2, weights="torch")
assert r.passed, r.report()
parity.assert_twins_close(parity.from_torch(torch_net), torch_net, X, y, loss="cross_entropy")
assert isinstance(parity.to_torch(numpy_net), nn.Sequential)
print("ok api", flush=True)

with open("test_port.py", "w") as f:
    f.write("import numpy as np, torch\nfrom torch import nn\nfrom parity import reference as R\n"
            "def test_port(twins):\n"
            "    torch.manual_seed(0)\n"
            "    t = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2)).double()\n"
            "    n = R.Sequential(R.Linear(4, 5), R.Tanh(), R.Linear(5, 2))\n"
            "    rng = np.random.default_rng(1)\n"
            "    twins.assert_close(n, t, rng.standard_normal((8, 4)), rng.integers(0, 2, 8),\n"
            "                       loss='cross_entropy', weights='torch')\n")
import pytest
assert pytest.main(["-q", "-p", "no:cacheprovider", "test_port.py"]) == 0
print("ok fixture", flush=True)

assert main(["check", "cs231n-2layer"]) == 0
assert main(["export", "xor-relu", "--impl", "numpy", "--out", "x.npz", "--epochs", "2"]) == 0
assert main(["import-check", "xor-relu", "x.npz"]) == 0
assert main(["train", "xor-relu", "--epochs", "2"]) == 0     # no bar by default without tqdm
print("ok cli", flush=True)

for argv in (["study", "--quick", "--out", "rep"],
             ["export", "xor-relu", "--impl", "torch", "--out", "x.safetensors"],
             ["check", "digits-2layer"],
             ["train", "xor-relu", "--epochs", "2", "--progress"]):
    print("argv", " ".join(argv), "code", main(argv), flush=True)
assert not os.path.exists("rep") and not os.path.exists("x.safetensors")
leaked = [m for m in BLOCKED if sys.modules.get(m) is not None]
assert not leaked, leaked
print("ok done", flush=True)
'''


def test_the_core_runs_without_any_extra_and_each_missing_extra_is_named(tmp_path):
    """API, fixture, check/export/import-check/train with every optional package blocked; then
    one line ``nn-parity <command>: error: needs the 'X' extra ...`` and exit 2 for study
    (before any work), a .safetensors export (before training), a digits model and a progress
    bar asked for."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "NN_PARITY_THREADS": "1"}
    p = subprocess.run([sys.executable, "-c", CORE_SCRIPT, str(tmp_path), ",".join(OPTIONAL)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for step in ("api", "fixture", "cli", "done"):
        assert f"ok {step}\n" in p.stdout, (step, p.stdout[-2000:])
    codes = [line for line in p.stdout.splitlines() if line.startswith("argv ")]
    assert codes == ["argv study --quick --out rep code 2",
                     "argv export xor-relu --impl torch --out x.safetensors code 2",
                     "argv check digits-2layer code 2",
                     "argv train xor-relu --epochs 2 --progress code 2"], codes
    err = [line for line in p.stderr.splitlines() if "extra" in line]
    assert err == [
        "nn-parity study: error: needs the 'study' extra (matplotlib is not installed): "
        "pip install 'nn-parity[study]'",
        "nn-parity export: error: needs the 'safetensors' extra (safetensors is not "
        "installed): pip install 'nn-parity[safetensors]'",
        "nn-parity check: error: needs the 'datasets' extra (scikit-learn is not installed): "
        "pip install 'nn-parity[datasets]'",
        "nn-parity train: error: needs the 'study' extra (tqdm is not installed): "
        "pip install 'nn-parity[study]'"], p.stderr[-3000:]


def test_an_import_error_names_the_extra_only_for_an_optional_package():
    """A missing package of an extra (or a submodule of one) names the extra; an ImportError
    of anything else (a broken installation) does not become 'install the extra'."""
    assert extras.missing_extra(ModuleNotFoundError(name="kiwisolver")) is None
    assert extras.missing_extra(ModuleNotFoundError(name="sklearn.datasets")).extra == "datasets"
    assert extras.missing_extra(ModuleNotFoundError(name="scipy")).extra == "study"


# ---- the real thing: the wheel in a fresh venv (slow: ~2-3 min, needs torch on local disk) ----

INSTALLED_SCRIPT = textwrap.dedent('''
    import parity, parity.reference, parity.kinds, parity.layerspec, parity.torch_impl
    assert "site-packages" in parity.__file__, parity.__file__
    assert parity.__version__ == "{version}", parity.__version__
    print("ok installed", parity.__file__)
''')


@pytest.mark.slow
def test_the_wheel_installs_without_extras_and_runs_the_core(tmp_path):
    """Build the wheel, install it with no extra into a new venv (torch from constraints.txt
    first), and run the core script there, outside the repository."""
    py311 = subprocess.run(["bash", "-c", "command -v python3.11"], capture_output=True,
                           text=True).stdout.strip()
    if not py311:
        pytest.skip("python3.11 is not on PATH: the venv is made with it")
    run = dict(capture_output=True, text=True, timeout=900, check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path / "dist"), str(ROOT)], **run)
    wheel = next((tmp_path / "dist").glob("nn_parity-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([py311, "-m", "venv", str(venv)], **run)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run(pip + ["-c", str(ROOT / "constraints.txt"), "torch==2.13.0"], **run)
    subprocess.run(pip + [str(wheel), "pytest"], **run)    # pytest: the user's test runner
    py = str(venv / "bin" / "python")
    work = tmp_path / "work"
    work.mkdir()
    version = _pyproject()["version"]
    out = subprocess.run([py, "-c", INSTALLED_SCRIPT.format(version=version)], cwd=work, **run)
    assert "ok installed" in out.stdout
    missing = subprocess.run([py, "-c", "import importlib.util as u, sys; print([m for m in "
                              "sys.argv[1:] if u.find_spec(m)])", *OPTIONAL], cwd=work, **run)
    assert missing.stdout.strip() == "[]", f"installed without an extra: {missing.stdout}"
    core = subprocess.run([py, "-c", CORE_SCRIPT, str(work), ""], capture_output=True,
                          text=True, timeout=600, cwd=work)
    assert core.returncode == 0, core.stdout[-3000:] + core.stderr[-3000:]
    assert "ok done" in core.stdout
