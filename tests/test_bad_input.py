"""Bad input, table-driven: the library raises ``TypeError``/``ValueError`` naming what is
wrong (asserted with a regex), the CLI turns it into exactly one stderr line and exit code 2,
nothing is left half-written, and a diverging run raises ``FloatingPointError`` naming the step
and the first non-finite layer on both sides.

Every row is an ordinary test of behaviour the library has: a gap found here is fixed in the
library (or reported), never parked behind an expected failure."""

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from parity.reference.datasets import load_csv
from parity.reference.training import fit as np_fit

from parity import torch_impl, transfer
from parity.catalogue import train, zoo
from parity.tools import checkpoint

ROOT = Path(__file__).resolve().parents[1]
SPEC = zoo.get("cs231n-2layer")          # 2 → 100 → 3, cross-entropy
DATA = SPEC.data(0)
X, Y = DATA.X_train, DATA.y_train        # (300, 2) float64, (300,) int64 in [0, 3)


def _with(a, idx, value):
    a = a.copy()
    a[idx] = value
    return a


def _fit(X, y, name="cs231n-2layer", dtype="float64"):
    """One epoch of ``reference.training.fit`` on a fresh twin of ``name``."""
    spec = zoo.get(name)
    m = spec.build_numpy(0, dtype)
    return np_fit(m, spec.numpy_loss(), spec.numpy_optimizer(m), X, y, epochs=1)


def _row(id_, fn, exc, pattern):
    return pytest.param(fn, exc, pattern, id=id_)


# ── the library ──────────────────────────────────────────────────────────────────────────────

LIBRARY = [
    # shapes
    _row("fit-X-3-features", lambda: _fit(np.ones((300, 3)), Y),
         ValueError, r"check_features: X has 3 features, expected 2"),
    _row("fit-X-1d", lambda: _fit(X[:, 0].copy(), Y),
         ValueError, r"X must be 2-D of shape \(N, D\), got 1-D array of shape \(300,\)"),
    _row("fit-X-3d", lambda: _fit(X[:, :, None], Y), ValueError, r"got 3-D array"),
    _row("fit-y-2d-column", lambda: _fit(X, Y[:, None]),
         ValueError, r"check_labels: y must be 1-D .*got 2-D array of shape \(300, 1\)"),
    _row("fit-y-length", lambda: _fit(X, Y[:-1]),
         ValueError, r"check_labels: y has 299 samples, expected 300"),
    _row("predict-3-features", lambda: SPEC.build_numpy(0).predict(np.ones((4, 3))),
         ValueError, r"Linear \(layer 0\): expected input with 2 features, got shape \(4, 3\)"),
    # dtypes
    _row("fit-X-int", lambda: _fit(X.astype(np.int64), Y),
         TypeError, r"Linear \(layer 0\): expected input dtype float64, got int64"),
    _row("fit-X-bool", lambda: _fit(X > 0, Y), TypeError, r"check_features: X .*got dtype bool"),
    _row("fit-X-object", lambda: _fit(X.astype(object), Y),
         TypeError, r"check_features: X .*got dtype object"),
    _row("fit-X-list", lambda: _fit(X.tolist(), Y),
         TypeError, r"X must be a numpy\.ndarray .*got builtins\.list"),
    _row("fit-X-float32-into-float64-model", lambda: _fit(X.astype(np.float32), Y),
         TypeError, r"Linear \(layer 0\): expected input dtype float64, got float32"),
    _row("fit-X-float64-into-float32-model", lambda: _fit(X, Y, dtype="float32"),
         TypeError, r"expected input dtype float32, got float64"),
    _row("fit-y-bool", lambda: _fit(X, Y > 0), TypeError, r"check_labels: y .*dtype bool"),
    _row("build-float16", lambda: SPEC.build_numpy(0, "float16"),
         ValueError, r"dtype must be one of \('float64', 'float32'\), got 'float16'"),
    # values
    _row("fit-label-out-of-range", lambda: _fit(X, _with(Y, 17, 3)),
         ValueError, r"y contains label 3 at index 17, expected labels in \[0, 3\)"),
    _row("fit-label-negative", lambda: _fit(X, _with(Y, 4, -1)),
         ValueError, r"y contains label -1 at index 4, expected labels in \[0, 3\)"),
    _row("fit-label-fractional", lambda: _fit(X, _with(Y.astype(float), 2, 0.5)),
         ValueError, r"non-integral value 0\.5 at index 2"),
    _row("fit-bce-target-2", lambda: _fit(np.eye(4, 2), np.array([0, 1, 2, 0]), "xor-sigmoid"),
         ValueError, r"check_binary_targets: y contains value 2 at index 2, expected 0 or 1"),
    _row("fit-X-nan", lambda: _fit(_with(X, (5, 1), np.nan), Y),
         ValueError, r"X contains NaN at row 5, column 1$"),
    _row("fit-X-inf", lambda: _fit(_with(X, (9, 0), -np.inf), Y),
         ValueError, r"X contains -Inf at row 9, column 0$"),
    _row("fit-empty", lambda: _fit(np.ones((0, 2)), np.ones(0, np.int64)),
         ValueError, r"X is empty, got shape \(0, 2\)"),
    # names and options
    _row("zoo-unknown-model", lambda: zoo.get("cs231n-3layer"),
         ValueError, r"unknown model 'cs231n-3layer'; known: cs231n-linear, cs231n-2layer"),
    _row("run-impl-gpu", lambda: train.run(SPEC, "gpu"),
         ValueError, r"impl must be one of \('numpy', 'torch'\), got 'gpu'"),
    _row("run-epochs-0", lambda: train.run(SPEC, "numpy", epochs=0),
         ValueError, r"epochs must be >= 1, got 0"),
    _row("run-dtype-float16", lambda: train.run(SPEC, "torch", dtype="float16"),
         ValueError, r"dtype must be one of .*got 'float16'"),
    # checkpoints: see the checkpoint rows below and the full table in test_checkpoint.py
]


@pytest.mark.parametrize("fn, exc, pattern", LIBRARY)
def test_library_rejects_bad_input(fn, exc, pattern):
    with pytest.raises(exc, match=pattern) as info:
        fn()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("saved, truncate, impl, pattern", [
    pytest.param("blog-2layer", False, "torch",
                 r"checkpoint of model 'blog-2layer', not 'cs231n-2layer'$", id="another-model"),
    pytest.param("cs231n-2layer", True, "numpy", r"truncated or damaged zip archive",
                 id="truncated"),
])
def test_library_rejects_bad_checkpoints(saved, truncate, impl, pattern, tmp_path):
    p = tmp_path / "m.npz"
    checkpoint.save_numpy(p, zoo.get(saved).build_numpy(0), saved)
    if truncate:
        p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(ValueError, match=pattern):
        checkpoint.load_any(p, SPEC, impl)


CSV_CASES = [
    # id, file content, message regex (after the file name)
    ("empty-file", "", r"empty file"),
    ("header-only", "x1,x2,y\n", r"header only, no data rows"),
    ("wrong-header", "a,b,c\n1.0,2.0,0\n", r"line 1: expected header 'x1,x2,y', got 'a,b,c'"),
    ("too-few-fields", "x1,x2,y\n1.0,2.0,0\n1.0,1\n", r"line 3: expected 3 fields, got 2"),
    ("not-a-number", "x1,x2,y\n1.0,abc,0\n", r"line 2: x2 = 'abc' is not a number"),
    ("nan-feature", "x1,x2,y\nnan,1.0,0\n", r"line 2: x1 = 'nan' is not finite"),
    ("negative-label", "x1,x2,y\n1.0,2.0,-1\n", r"line 2: y = '-1', expected an integer label"),
    ("fractional-label", "x1,x2,y\n1.0,2.0,1.5\n", r"line 2: y = '1\.5' is not an integer label"),
    ("not-utf8", b"x1,x2,y\n1.0,\xff,0\n", r"not valid UTF-8"),
]


@pytest.mark.parametrize("content, pattern", [pytest.param(*c[1:], id=c[0]) for c in CSV_CASES])
def test_load_csv_rejects_malformed_files(content, pattern, tmp_path):
    p = tmp_path / "spiral.csv"
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError, match=re.escape(str(p)) + r".*" + pattern):
        load_csv(p)


# parity.catalogue.train.run(data=...) feeds both twins: the same bad data gets the same clear
# error on both sides.
RUN_DATA = [
    # id, X_train, y_train, exception, regex
    ("X-3-features", np.ones((300, 3)), Y, ValueError, r"X has 3 features, expected 2"),
    ("X-1d", X[:, 0].copy(), Y, ValueError, r"X must be 2-D"),
    ("label-out-of-range", X, _with(Y, 17, 3), ValueError, r"label 3 at index 17"),
    ("label-negative", X, _with(Y, 4, -1), ValueError, r"label -1 at index 4"),
    ("X-nan", _with(X, (5, 1), np.nan), Y, ValueError, r"X contains NaN at row 5, column 1"),
    ("X-inf", _with(X, (9, 0), np.inf), Y, ValueError, r"X contains Inf at row 9, column 0"),
    ("empty", np.ones((0, 2)), np.ones(0, np.int64), ValueError, r"X is empty"),
    ("y-length", X, Y[:-1], ValueError, r"299.*300|300.*299"),
]


@pytest.mark.parametrize("impl", ["numpy", "torch"])
@pytest.mark.parametrize("X_train, y_train, exc, pattern",
                         [pytest.param(*c[1:], id=c[0]) for c in RUN_DATA])
def test_run_rejects_bad_data_on_both_sides(X_train, y_train, exc, pattern, impl):
    """parity.catalogue.train.run validates the data once, before either twin trains (without it
    torch raised a matmul RuntimeError, an IndexError for labels, or trained on NaN)."""
    data = dataclasses.replace(DATA, X_train=X_train, y_train=y_train)
    try:
        train.run(SPEC, impl, epochs=1, data=data)
    except exc as e:
        assert re.search(pattern, str(e)), str(e)
    except Exception as e:  # noqa: BLE001 — the wrong kind: fail with its message, not a traceback
        pytest.fail(f"{type(e).__name__}: {e}", pytrace=False)
    else:
        pytest.fail("no error raised", pytrace=False)


# ── non-finite values during training ───────────────────────────────────────────────────────

def _with_lr(spec, lr):
    return dataclasses.replace(spec, optimizer=dataclasses.replace(spec.optimizer, lr=lr))


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
@pytest.mark.parametrize("impl", ["numpy", "torch"])
def test_divergence_names_the_step_and_layer(impl):
    """lr 1e10 on cs231n-2layer: the logits overflow at step 19 (epoch 19) on both sides."""
    with pytest.raises(FloatingPointError,
                       match=r"^non-finite loss nan at step 19 \(epoch 19\); first non-finite: "
                             r"layer 2 \(Linear\) output$"):
        train.run(_with_lr(SPEC, 1e10), impl, epochs=40)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
@pytest.mark.parametrize("impl", ["numpy", "torch"])
def test_an_inf_weight_is_named_at_step_0(impl):
    m = SPEC.build_numpy(0)
    m.layers[2].params["weight"][7, 1] = np.inf
    pattern = r"at step 0 \(epoch 0\); first non-finite: layer 2 \(Linear\) parameter weight$"
    with pytest.raises(FloatingPointError, match=pattern):
        if impl == "numpy":
            np_fit(m, SPEC.numpy_loss(), SPEC.numpy_optimizer(m), X, Y, epochs=2)
        else:
            t = SPEC.build_torch()
            transfer.numpy_to_torch(m, t)
            torch_impl.fit(t, SPEC.torch_loss(), SPEC.torch_optimizer(t), torch.from_numpy(X),
                           torch.from_numpy(Y), epochs=2, batches=lambda: [None])


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
@pytest.mark.parametrize("impl", ["numpy", "torch"])
def test_overflow_in_the_loss_alone_says_loss(impl):
    """lr 1e6: weights reach ~1e155, every layer output is still finite, but the loss is inf
    (it stays inf with the cs231n penalty left out of the reported loss): nothing to blame
    but the loss, at the same step on both sides."""
    with pytest.raises(FloatingPointError,
                       match=r"^non-finite loss inf at step 37 \(epoch 37\); first non-finite: "
                             r"loss$"):
        train.run(_with_lr(SPEC, 1e6), impl, epochs=60)


# ── the CLI ─────────────────────────────────────────────────────────────────────────────────



def _regular_file(tmp_path) -> Path:
    f = tmp_path / "a-file"
    f.write_text("not a directory\n")
    return f


CLI = [
    # id, argv (TMP → tmp_path), stderr regex
    ("dtype-float16x", ["train", "cs231n-2layer", "--dtype", "float16x"],
     r"argument --dtype: invalid choice: 'float16x' \(choose from 'float64', 'float32'\)"),
    ("check-dtype-float16x", ["check", "cs231n-2layer", "--dtype", "float16x"],
     r"argument --dtype: invalid choice: 'float16x' \(choose from 'float64', 'float32'\)"),
    ("impl-gpu", ["train", "cs231n-2layer", "--impl", "gpu"],
     r"argument --impl: invalid choice: 'gpu'"),
    ("seed-abc", ["train", "cs231n-2layer", "--seed", "abc"],
     r"argument --seed: invalid int value: 'abc'"),
    ("epochs-0", ["train", "cs231n-2layer", "--epochs", "0"], r"epochs must be >= 1, got 0"),
    ("epochs-negative", ["train", "cs231n-2layer", "--impl", "torch", "--epochs", "-3"],
     r"epochs must be >= 1, got -3"),
    ("steps-negative", ["check", "cs231n-2layer", "--steps", "-1"],
     r"steps must be >= 1, got -1"),
    ("steps-0", ["check", "cs231n-2layer", "--steps", "0"], r"steps must be >= 1, got 0"),
    ("threads-0", ["--threads", "0", "list"], r"threads must be >= 1, got 0"),
    ("unknown-subcommand", ["frobnicate"], r"invalid choice: 'frobnicate'"),
    ("unknown-model-train", ["train", "cs231n-3layer"], r"unknown model 'cs231n-3layer'"),
    ("unknown-model-check", ["check", "nope"], r"unknown model 'nope'"),
    ("unknown-option", ["train", "cs231n-2layer", "--lr", "3"],
     r"unrecognized arguments: --lr 3"),
    ("save-under-a-file", ["check", "cs231n-2layer", "--save", "FILE/evidence"],
     r"cannot write --save .*a-file/evidence: .*a-file is not a directory"),
    ("export-out-under-a-file",
     ["export", "cs231n-2layer", "--impl", "numpy", "--out", "FILE/m.npz"],
     r"cannot write --out .*a-file/m\.npz: .*a-file is not a directory"),
    ("export-format-xyz", ["export", "cs231n-2layer", "--impl", "numpy", "--out", "TMP/m.npz",
                           "--format", "xyz"], r"argument --format: invalid choice: 'xyz'"),
    ("export-no-impl", ["export", "cs231n-2layer", "--out", "TMP/m.npz"],
     r"the following arguments are required: --impl"),
    ("import-check-missing-file", ["import-check", "cs231n-2layer", "TMP/none.npz"],
     r"No such file or directory"),
    ("import-check-text-file", ["import-check", "cs231n-2layer", "FILE"],
     r"a-file: not a checkpoint"),
]


@pytest.mark.parametrize("argv, pattern", [pytest.param(*c[1:], id=c[0]) for c in CLI])
def test_cli_bad_input_is_one_line_and_exit_2(cli, capsys, tmp_path, argv, pattern):
    f = _regular_file(tmp_path)
    argv = [a.replace("FILE", str(f)).replace("TMP", str(tmp_path)) for a in argv]
    code = cli(argv)
    out, err = capsys.readouterr()
    assert (code, out) == (2, ""), err
    assert err.endswith("\n") and err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(pattern, err), err
    assert sorted(os.listdir(tmp_path)) == ["a-file"]  # nothing written


@pytest.mark.parametrize("argv, pattern", [
    pytest.param(["train", "cs231n-2layer", "--seed", "abc"],
                 r"^nn-parity train: error: argument --seed: invalid int value: 'abc'\n$",
                 id="parse"),
    pytest.param(["train", "cs231n-3layer"],
                 r"^nn-parity train: error: unknown model 'cs231n-3layer'",
                 id="library-value-error", marks=pytest.mark.slow),  # imports torch: ~3-5 s
])
def test_cli_subprocess_exit_2_one_line(argv, pattern):
    p = subprocess.run([sys.executable, "-m", "parity", *argv], cwd=ROOT, capture_output=True,
                       text=True, timeout=120, check=False)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
    assert re.search(pattern, p.stderr), p.stderr


# ── nothing half-written ──────────────────────────────────────────────────────────────────

def _disk_full_on_call(monkeypatch, n):
    """``np.savez`` works n − 1 times, then writes half a file and fails (disk full)."""
    real, calls = np.savez, []

    def savez(f, *args, **kwargs):
        calls.append(1)
        if len(calls) < n:
            return real(f, *args, **kwargs)
        f.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", savez)


def test_failing_check_save_leaves_no_partial_set(cli, capsys, tmp_path, monkeypatch):
    """Disk full at the third file: the evidence is a set, swapped in whole or not at all."""
    _disk_full_on_call(monkeypatch, 3)
    ev = tmp_path / "ev"
    assert cli(["check", "cs231n-2layer", "--save", str(ev)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(r"cannot write --save .*ev: No space left",
                                                err), err
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("failure", ["disk-full", "replace-fails", "training-fails"])
def test_failing_export_leaves_no_file(cli, capsys, tmp_path, monkeypatch, failure):
    out = tmp_path / "m.npz"
    epochs = "2"
    if failure == "disk-full":
        _disk_full_on_call(monkeypatch, 1)
    elif failure == "replace-fails":
        def boom(src, dst):
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(os, "replace", boom)
    else:
        epochs = "0"
    code = cli(["export", "cs231n-2layer", "--impl", "numpy", "--out", str(out),
                "--epochs", epochs])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert os.listdir(tmp_path) == []
