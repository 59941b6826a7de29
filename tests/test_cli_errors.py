"""One error format for every command (parity.cli.error_line): bad input is one line,
``nn-parity <command>: error: <what>``, exit 2, whichever layer noticed it (argparse, the
range checks, a library ValueError, an OSError, a command's own check). A bare ``nn-parity``
prints the usage with the list of commands and exits 2. Cost: ~2 s (in process; the
commands are refused before any work).
"""

from __future__ import annotations

import re

import pytest

from parity import cli

# command → (a bad argument line, what the message must name); one per command, each taking a
# different path to the refusal.
BAD = {
    "list": (["list", "--bogus"], r"unrecognized arguments: --bogus"),                # argparse
    "check": (["check", "no-such-model"], r"unknown model 'no-such-model'"),         # ValueError
    "train": (["train", "cs231n-2layer", "--epochs", "0"], r"--epochs must be >= 1"),  # range
    "diverge": (["diverge", "cs231n-2layer", "--dtype", "float16"],
                r"argument --dtype: invalid choice: 'float16'"),
    "bench": (["bench", "--threads", "0"], r"--threads must be >= 1, got 0"),
    "drift": (["drift"], r"give exactly one of --out DIR or --combine DIR"),          # UsageError
    "study": (["study", "--jobs", "0"], r"--jobs must be >= 1, got 0"),
    "selftest": (["selftest", "--seed", "1"], r"unrecognized arguments: --seed 1"),
    "export": (["export", "xor-relu", "--impl", "numpy", "--out", "w.txt"],
               r"--out .*must end in one of"),
    "import-check": (["import-check", "xor-relu", "/no/such/file.npz"],
                     r"/no/such/file\.npz"),                                          # OSError
    "bayes": (["bayes", "no-such-generator"], r"argument GENERATOR: invalid choice"),
    "claims": (["claims", "--seed", "-1"], r"--seed must be in \[0, 2\*\*64\), got -1"),
}


def test_every_command_has_a_bad_input_case():
    assert set(BAD) == set(cli.subcommands(cli.build_parser())), "add the new command to BAD"


@pytest.mark.parametrize("command", sorted(BAD))
def test_bad_input_is_one_line_in_one_format(capsys, tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    argv, what = BAD[command]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 2, f"nn-parity {command}: exit {code}, stderr {err!r}"
    assert out == "" and err.count("\n") == 1, f"nn-parity {command}: {err!r}"
    assert re.fullmatch(rf"nn-parity {command}: error: .*{what}.*\n", err), err
    assert list(tmp_path.iterdir()) == [], "nothing is written"


def test_a_bad_global_option_names_nn_parity_alone(capsys):
    assert cli.main(["--threads", "x", "list"]) == 2
    err = capsys.readouterr().err
    assert err == "nn-parity: error: argument --threads: invalid int value: 'x'\n", err


@pytest.mark.parametrize("argv", [[], ["--threads", "2"]], ids=["bare", "options-only"])
def test_no_command_prints_the_usage_and_the_commands_and_exits_2(capsys, argv):
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: nn-parity ")
    for name in cli.subcommands(cli.build_parser()):
        assert re.search(rf"^    {re.escape(name)} ", err, re.M), f"{name} missing: {err}"


@pytest.mark.parametrize("what, expected", [
    ("bad value", "nn-parity check: error: bad value"),
    ("nn-parity check: bad value", "nn-parity check: error: bad value"),   # not prefixed twice
    ("first line\nsecond line", "nn-parity check: error: first line"),
])
def test_error_line(what, expected):
    assert cli.error_line("nn-parity check", what) == expected
