"""The command line: every command's JSON, its tables, help and examples, ``--threads``
before or after the command, ``--version``, and one-line errors with exit 2."""

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
from importlib import metadata

import numpy
import pytest
import torch

from parity.catalogue import zoo
from parity.cli import (
    EXAMPLES,
    LIST_COLUMNS,
    LIST_DETAILS,
    REGISTERED_ELSEWHERE,
    TOP_EXAMPLES,
    build_parser,
    main,
    subcommands,
)
from parity.dtypes import DTYPES


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json_names_every_model_with_its_source(capsys):
    """Each row names its source document by title first (``zoo.SOURCES``), then its file."""
    code, out, _ = run_cli(capsys, "list", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["name"] for r in rows] == list(zoo.CATALOGUE)
    for r in rows:
        src = zoo.source_of(zoo.get(r["name"]))
        assert r["source_title"] == src.title and r["source"].startswith(f"“{src.title}”")
        assert r["source_file"] == src.file and (src.file is None or src.file in r["source"])
        assert r["parameters"] > 0 and r["layers"]


def test_list_shows_each_source_by_its_document_title(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    for name, spec in zoo.CATALOGUE.items():
        block = out[out.index(f"\n{name} "):]
        line = next(x for x in block.splitlines() if x.strip().startswith("source:"))
        assert f"“{zoo.source_of(spec).title}”" in line, (name, line)
    assert "Neural Network from Scratch" in out and "source:  000_" not in out


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
    for line in TOP_EXAMPLES:
        assert f"  {line}\n" in out, f"nn-parity --help: example {line!r}"
        if line != "nn-parity --version":   # parsing that one prints and exits
            assert PARSER.parse_args(shlex.split(line)[1:]).func, f"example {line!r}"


# ── every subcommand: help, examples, --threads/--debug anywhere, --json, --dtype ───────────

PARSER = build_parser()
COMMANDS = subcommands(PARSER)
# The commands the CLI documents. Registered statically in build_parser (no import probing):
# a module that stops registering, or a new one, shows up here.
EXPECTED = ("list", "check", "train", "diverge", "bench", "drift", "study", "selftest",
            "export", "import-check", "bayes", "claims")


def _options(parser) -> dict:
    return {opt: a for a in parser._actions for opt in a.option_strings}


def _example_argv(cmd: str) -> list[str]:
    """The first example of ``cmd``'s help, as argv without the program name."""
    words = shlex.split(EXAMPLES[cmd][0])
    assert words[:2] == ["nn-parity", cmd], f"{cmd}: example {EXAMPLES[cmd][0]!r}"
    return words[1:]


def test_every_command_is_registered():
    assert tuple(COMMANDS) == EXPECTED
    assert set(EXAMPLES) == set(EXPECTED), "every command has examples, and only those"


@pytest.mark.parametrize("cmd", EXPECTED)
def test_help_has_a_description_and_examples(capsys, cmd):
    code, out, err = run_cli(capsys, cmd, "--help")
    description = COMMANDS[cmd].description
    assert code == 0 and err == "", f"{cmd} --help: exit {code}, stderr {err!r}"
    assert description and len(description) > 40, f"{cmd}: no description"
    assert " ".join(description.split()[:6]) in " ".join(out.split()), f"{cmd}: description"
    assert "examples:" in out, f"{cmd} --help: no examples"
    for line in EXAMPLES[cmd]:
        assert f"  {line}\n" in out, f"{cmd} --help: example {line!r} missing or rewrapped"


@pytest.mark.parametrize("cmd", EXPECTED)
def test_every_example_parses(cmd):
    for line in EXAMPLES[cmd]:
        words = shlex.split(line)
        assert words[:2] == ["nn-parity", cmd], f"{cmd}: example {line!r}"
        args = PARSER.parse_args(words[1:])
        assert args.command == cmd and callable(args.func), f"{cmd}: example {line!r}"


@pytest.mark.parametrize("cmd", EXPECTED)
def test_threads_and_debug_before_or_after_the_command(cmd):
    argv = _example_argv(cmd)
    before = PARSER.parse_args(["--threads", "1", *argv])
    after = PARSER.parse_args([*argv, "--threads", "1"])
    assert before.threads == after.threads == 1, f"{cmd}: --threads 1"
    # a value given before the command survives the subcommand's parser (no default there)
    assert PARSER.parse_args(["--threads", "3", *argv]).threads == 3, f"{cmd}: --threads 3 before"
    assert PARSER.parse_args([*argv, "--threads", "3"]).threads == 3, f"{cmd}: --threads 3 after"
    assert PARSER.parse_args(argv).threads == 1, f"{cmd}: --threads default"
    assert PARSER.parse_args([*argv, "--debug"]).debug, f"{cmd}: --debug after"
    assert not PARSER.parse_args(argv).debug, f"{cmd}: --debug default"


def test_threads_after_the_command_in_a_run(capsys):
    code, out, _ = run_cli(capsys, "list", "--json", "--threads", "1")
    assert code == 0 and json.loads(out)
    code, _, err = run_cli(capsys, "list", "--threads", "0")
    assert code == 2 and "--threads" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("cmd", EXPECTED)
def test_json_on_every_command(cmd):
    action = _options(COMMANDS[cmd]).get("--json")
    assert action is not None, f"{cmd}: no --json"
    assert PARSER.parse_args([*_example_argv(cmd), "--json"]).json is True, f"{cmd} --json"


@pytest.mark.parametrize("cmd", [c for c in EXPECTED if "--dtype" in _options(COMMANDS[c])])
def test_dtype_has_choices(capsys, cmd):
    assert _options(COMMANDS[cmd])["--dtype"].choices == DTYPES, f"{cmd} --dtype choices"
    code, _, err = run_cli(capsys, *_example_argv(cmd), "--dtype", "float16")
    assert code == 2 and "float16" in err and "float32" in err, f"{cmd} --dtype float16"
    assert len(err.strip().splitlines()) == 1, f"{cmd} --dtype float16: {err!r}"


def test_version(capsys):
    code, out, err = run_cli(capsys, "--version")
    assert code == 0 and err == ""
    assert out == (f"nn-parity {metadata.version('nn-parity')} (numpy {numpy.__version__}, "
                   f"torch {torch.__version__}, python {platform.python_version()})\n")
    assert re.fullmatch(r"nn-parity \d+\.\d+\.\d+\S* \(numpy \S+, torch \S+, python "
                        r"\d+\.\d+\.\d+\S*\)\n", out)


def test_list_table_is_aligned_and_says_what_the_json_says(capsys):
    _, table, _ = run_cli(capsys, "list")
    _, js, _ = run_cli(capsys, "list", "--json")
    rows = json.loads(js)
    lines = table.splitlines()
    header, body = lines[0], lines[1:]
    per_model = 1 + len(LIST_DETAILS)
    assert len(body) == per_model * len(rows)

    def cells(line):  # (start, end, text) of each cell; cells are 2+ spaces apart
        return [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+(?: \S+)*", line)]

    heads = cells(header)
    assert [h for _, _, h in heads] == [h for h, _, _ in LIST_COLUMNS]
    for i, row in enumerate(rows):
        line, details = body[per_model * i], body[per_model * i + 1:per_model * (i + 1)]
        got = cells(line)
        assert len(got) == len(LIST_COLUMNS), f"list: row {row['name']!r}: {line!r}"
        for (_, key, align), (h0, h1, _), (c0, c1, text) in zip(LIST_COLUMNS, heads, got):
            want = "full" if key == "batch_size" and row[key] is None else str(
                "-" if row[key] is None else row[key])
            assert text == want, f"list: {key} of {row['name']}: table {text!r}, json {want!r}"
            edge = (c0, h0) if align == "<" else (c1, h1)
            assert edge[0] == edge[1], f"list: column {key} of {row['name']} not aligned"
        for key, detail in zip(LIST_DETAILS, details):
            assert detail.split(None, 1) == [f"{key}:", str(row[key])], f"list: {key}"


def test_bayes_json_has_the_table_numbers(capsys):
    argv = ("bayes", "two_spirals_seed004", "--n-per-class", "10", "--samples", "1")
    code, table, _ = run_cli(capsys, *argv)
    assert code == 0
    code, out, _ = run_cli(capsys, *argv, "--json")
    est = json.loads(out)
    # 1 point asks for 1 call of 2 x 10 points; the estimator makes 10 calls at least
    assert code == 0 and est["generator"] == "two_spirals_seed004" and est["n_samples"] == 200
    assert est["options"]["n_per_class"] == 10
    assert f"{est['n_samples']} points" in table
    for key in ("mean", "stderr", "label_accuracy", "label_stderr", "min_log_loss"):
        assert f"{est[key]:.4f}" in table, f"bayes: {key} {est[key]} not in the table"
    assert f"z = {est['consistency_z']:+.2f}" in table and est["method"] in table


@pytest.mark.slow
def test_drift_record_and_combine_json(capsys, tmp_path):
    """~20 s wall (6 s CPU): every model, both twins, one epoch."""
    code, out, _ = run_cli(capsys, "drift", "--out", str(tmp_path), "--epochs", "1", "--json")
    rec = json.loads(out)
    assert code == 0 and os.path.isfile(rec["path"]) and rec["environment"] in rec["path"]
    code, out, _ = run_cli(capsys, "drift", "--combine", str(tmp_path), "--json")
    assert code == 0 and json.loads(out)


# ── your own code: a chain nn.Module, a sibling imported at run time, export/import-check ───

CHAIN_FILE = '''
import torch
import torch.nn.functional as F
from torch import nn

from parity import reference as R


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


class Residual(Net):
    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h + F.relu(h))


def twins():
    import {helpers}              # a sibling module, imported when the function runs
    torch.manual_seed(0)
    X, y = {helpers}.batch()
    return {{"numpy_model": R.Sequential(R.Linear(4, 8), R.ReLU(), R.Linear(8, 3)),
             "torch_model": Net().double(), "X": X, "y": y, "loss": "cross_entropy",
             "optimizer": "adam", "steps": 3, "weights": "torch"}}


def residual():
    pair = twins()
    pair["torch_model"] = Residual().double()
    return pair


def other():
    pair = twins()
    pair["numpy_model"] = R.Sequential(R.Linear(4, 3))
    pair["torch_model"] = nn.Sequential(nn.Linear(4, 3)).double()
    return pair
'''

HELPERS = '''
import numpy as np


def batch():
    rng = np.random.default_rng(0)
    return rng.standard_normal((10, 4)), rng.integers(0, 3, 10)
'''


@pytest.fixture
def chain_file(tmp_path, request):
    """``my_chain.py`` beside a helper module of a name no other test uses."""
    helpers = f"chain_helpers_{re.sub(r'[^a-z0-9]', '_', request.node.name.lower())}"
    (tmp_path / f"{helpers}.py").write_text(HELPERS)
    path = tmp_path / "my_chain.py"
    path.write_text(CHAIN_FILE.format(helpers=helpers))
    return str(path), helpers


def test_check_a_chain_module_whose_function_imports_a_sibling_when_it_runs(capsys,
                                                                            chain_file):
    """The folder is importable while the function runs, and not after (sys.path and
    sys.modules as before)."""
    path, helpers = chain_file
    folder = os.path.dirname(path)
    code, out, err = run_cli(capsys, "check", f"{path}:twins", "--dtype", "float32")
    assert code == 0, out + err
    assert "note: Net traced as a chain (torch.fx) of 3 layers: 0 fc1 (Linear), 1 relu = " \
           "F.relu (ReLU), 2 fc2 (Linear)" in out, out
    assert folder not in sys.path and helpers not in sys.modules


def test_a_branching_module_is_refused_in_one_line(capsys, chain_file):
    path, _ = chain_file
    code, out, err = run_cli(capsys, "check", f"{path}:residual")
    assert code == 2 and out == ""
    assert err == ("nn-parity check: error: Residual: node fc1 (call_module fc1) feeds 2 nodes "
                   "(relu, add); a chain passes each value to the next layer only\n")


@pytest.mark.parametrize("impl, suffix", [("torch", "pt"), ("numpy", "npz"),
                                          ("torch", "safetensors")])
def test_export_and_import_check_take_your_function(capsys, tmp_path, chain_file, impl,
                                                    suffix):
    """The model your function returns, saved as it is and loaded into both of your twins:
    their predictions on your X agree; the checkpoint is named ``my_chain.py:twins``."""
    path, helpers = chain_file
    out_file = str(tmp_path / f"mine.{suffix}")
    code, out, err = run_cli(capsys, "export", f"{path}:twins", "--impl", impl, "--out",
                             out_file, "--json")
    assert code == 0, err
    written = json.loads(out)
    assert written["model"] == "my_chain.py:twins" and written["format"] == suffix
    assert sorted(written["keys"]) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    code, out, err = run_cli(capsys, "import-check", f"{path}:twins", out_file, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["passed"] and result["samples"] == 10 and result["saved_from"] == impl
    code, out, _ = run_cli(capsys, "import-check", f"{path}:twins", out_file)
    assert code == 0 and "10 samples (the batch X your function returns)" in out, out
    assert helpers not in sys.modules


@pytest.mark.parametrize("argv, message", [
    (("export", "{file}:twins", "--impl", "torch", "--out", "{dir}/a.pt", "--epochs", "3"),
     "my_chain.py:twins: --epochs and --seed need a catalogue recipe"),
    (("import-check", "{file}:other", "{dir}/mine.pt"),
     "mine.pt: checkpoint of model 'my_chain.py:twins', not 'my_chain.py:other'"),
    (("import-check", "{file}:twins", "{dir}/mine.pt", "--seed", "1"),
     "my_chain.py:twins: --seed chooses a catalogue model's held-out data"),
    (("export", "{dir}/nothing.py:twins", "--impl", "torch", "--out", "{dir}/b.pt"),
     "nothing.py: no such file"),
], ids=["export-epochs", "import-other-model", "import-seed", "no-file"])
def test_export_and_import_check_refuse_in_one_line(capsys, tmp_path, chain_file, argv,
                                                    message):
    path, _ = chain_file
    assert run_cli(capsys, "export", f"{path}:twins", "--impl", "torch", "--out",
                   str(tmp_path / "mine.pt"))[0] == 0
    code, out, err = run_cli(capsys, *(a.format(file=path, dir=tmp_path) for a in argv))
    assert code == 2 and message in err and err.count("\n") == 1, err


# ── start-up: heavy modules only in the commands that use them ──────────────────────────────

HEAVY = ("torch", "matplotlib", "sklearn", "scipy", "parity.catalogue", "parity.study",
         "parity.audit.claims", "parity.tools.checkpoint", "parity.tools.selftest")


def _imported_by(code: str, *heavy: str) -> list[str]:
    """The modules of ``heavy`` that a fresh interpreter has imported after ``code``."""
    probe = (f"import sys\n{code}\n"
             f"print('imported:', *(m for m in {heavy!r} if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()[-1].split()[1:]


@pytest.mark.parametrize("argv", [[], ["--help"], ["check", "--help"], ["bayes", "--help"],
                                  ["selftest", "--help"]],
                         ids=["import", "help", "check-help", "bayes-help", "selftest-help"])
def test_the_cli_imports_nothing_heavy_before_a_command_runs(argv):
    """``import parity.cli`` and ``--help`` (top level or a command's) in a fresh process:
    neither torch nor matplotlib, scikit-learn, SciPy, the catalogue, the study or a module
    registering its own command (``REGISTERED_ELSEWHERE``); ``selftest --help`` imports
    its own module (which imports torch), and no other."""
    asked = {m for c, (m, _) in REGISTERED_ELSEWHERE.items() if c in argv}
    code = "import parity.cli" + (f"\nparity.cli.main({argv!r})" if argv else "")
    heavy = [m for m in HEAVY if m not in asked and not (asked & {"parity.tools.selftest"}
                                                         and m in ("torch", "parity.catalogue"))]
    assert _imported_by(code, *heavy) == [], f"nn-parity {' '.join(argv)}"


def test_checking_your_file_imports_neither_the_catalogue_nor_the_other_commands(chain_file):
    """(SciPy is imported: ``parity.runtime.configure_threads`` loads its BLAS to limit it.)"""
    path, _ = chain_file
    code = (f"import parity.cli\nassert parity.cli.main(['check', {path + ':twins'!r}]) == 0")
    heavy = [m for m in HEAVY if m not in ("torch", "scipy")]
    assert _imported_by(code, *heavy) == [], "nn-parity check file.py:function"


def test_the_help_line_of_a_lazy_command_is_its_modules_own():
    """The placeholder line ``nn-parity --help`` shows is the help the module registers,
    and a lazily built parser dispatches each command to its module's parser."""
    lazy = build_parser(lazy=True)
    for parser in (lazy, PARSER):
        lines = {a.dest: a.help for a in _subparsers(parser)._choices_actions}
        assert lines == {a.dest: a.help for a in _subparsers(PARSER)._choices_actions}
    for cmd, (module, line) in REGISTERED_ELSEWHERE.items():
        assert _subparsers(PARSER).choices[cmd].description, f"{cmd}: module's parser"
        helps = {a.dest: a.help for a in _subparsers(PARSER)._choices_actions}
        assert helps[cmd] == line, f"{cmd}: REGISTERED_ELSEWHERE's line vs {module}'s help"
        args = build_parser(lazy=True).parse_args(_example_argv(cmd))
        assert args.func.__module__ == module, f"{cmd}: dispatched to {args.func.__module__}"


def _subparsers(parser):
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def test_only_the_program_freezes_its_objects_for_a_quick_exit(monkeypatch, capsys):
    """``main()`` with the process's own command line freezes what is alive (the exit then
    skips torch's objects); ``main([...])`` called from Python — these tests — does not."""
    import gc
    frozen = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    assert main(["--help"]) == 0 and frozen == [], "main(argv): nothing frozen"
    monkeypatch.setattr(sys, "argv", ["nn-parity", "--help"])
    assert main() == 0 and frozen == [True], "main(): frozen once, at the end"
    capsys.readouterr()
