"""The command line: every command's JSON, its tables, and one-line errors with exit 2."""

import json
import os
import subprocess
import sys

import pytest

from parity import zoo
from parity.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json_names_every_model_with_its_source(capsys):
    code, out, _ = run_cli(capsys, "list", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["name"] for r in rows] == list(zoo.CATALOGUE)
    for r in rows:
        assert r["source"].endswith(".txt") and r["parameters"] > 0 and r["layers"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_check_json_passes(capsys, dtype):
    code, out, _ = run_cli(capsys, "check", "cs231n-2layer", "--dtype", dtype, "--json")
    res = json.loads(out)
    assert code == 0 and res["passed"]
    assert {"loss", "grad", "param"} <= set(res["quantities"])
    if dtype == "float64":
        assert all(q["max_rel"] <= 1e-10 for q in res["quantities"].values())


def test_check_save_writes_the_evidence(capsys, tmp_path):
    code, _, _ = run_cli(capsys, "check", "cs231n-2layer", "--save", str(tmp_path / "ev"))
    assert code == 0
    names = {p.name for p in (tmp_path / "ev").iterdir()}
    assert names == {"weights.npz", "batch.npz", "grads_numpy.npz", "grads_torch.npz",
                     "params_after_numpy.npz", "params_after_torch.npz", "summary.json",
                     ".nn-parity-output"}     # the marker: a rerun may replace this set
    assert os.listdir(tmp_path) == ["ev"]     # no temporary left beside it


def test_train_json_both_impls(capsys):
    code, out, _ = run_cli(capsys, "train", "cs231n-2layer", "--epochs", "50", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["impl"] for r in rows] == ["numpy", "torch"]
    for key in ("train_accuracy", "test_accuracy", "first_loss", "final_loss", "steps",
                "seconds", "threads"):
        assert key in rows[0]
    assert rows[0]["first_loss"] == pytest.approx(rows[1]["first_loss"], rel=1e-12)


def test_diverge_json(capsys):
    code, out, _ = run_cli(capsys, "diverge", "cs231n-2layer", "--steps", "20", "--json")
    r = json.loads(out)
    assert code == 0 and len(r["param_rel"]) == 20 and r["max_param_rel"] < 1e-9


@pytest.mark.parametrize("argv", [
    ["train", "NOPE"],
    ["check", "cs231n-2layer", "--dtype", "float16x"],
    ["check", "NOPE"],
    ["train", "cs231n-2layer", "--impl", "gpu"],
    ["diverge", "cs231n-2layer", "--steps", "0"],
], ids=["unknown-model", "bad-dtype", "check-unknown", "bad-impl", "zero-steps"])
def test_bad_input_is_one_line_and_exit_2(capsys, argv):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_input_from_a_real_process():
    p = subprocess.run([sys.executable, "-m", "parity", "check", "cs231n-2layer", "--dtype",
                        "float16x"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "float16x" in p.stderr and "Traceback" not in p.stderr


def test_help_explains(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("list", "check", "train", "diverge", "study"):
        assert cmd in out
