"""``nn-parity`` (also ``python -m parity``): list, check, train and study the catalogue.

Every command prints a readable table, or JSON with ``--json`` (the same information);
``--help`` on every command gives a description and examples (:data:`EXAMPLES`);
``--threads`` and ``--debug`` go before or after the command; ``nn-parity --version`` prints
the versions of nn-parity, numpy, torch and python. Exit codes:

    0    done (and every check passed)
    1    a parity check or a target failed (or training diverged)
    2    bad input: one line on stderr naming the option or the file; nothing written.
         Also: no command at all (the usage and the list of commands, on stderr), and a
         command whose optional packages are not installed (the extra that brings them)
    3    internal error: one line; ``--debug`` shows the traceback
    130  interrupted (SIGINT)    143  terminated (SIGTERM)
         workers stopped, temporaries removed, one line on stderr
    141  stdout closed early (``| head``): quiet, like a tool killed by SIGPIPE

Every message of a non-zero exit is one line in one format (:func:`error_line`):
``nn-parity <command>: error: <what>`` (``internal error``, ``interrupted``, ``terminated``
in place of ``error`` for codes 3, 130, 143). Outputs (``--out``, ``--save``) never replace
what nn-parity did not write: see ``parity.fileio``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys

from parity import extras, fileio
from parity.dtypes import DTYPES

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_SIGINT, EXIT_SIGTERM, EXIT_SIGPIPE = 130, 143, 141

# Ranges of the integer options (``--seed`` and ``--threads``: parity.runtime). Beyond them a
# run would not finish or not fit in memory; saying so is better than trying.
INT_OPTIONS = {"steps": (1, 10**6), "epochs": (1, 10**6), "jobs": (1, 256),
               "samples": (1, 10**8), "n_per_class": (2, 10**5)}


class UsageError(Exception):
    """Bad input from the user: reported as one line (:func:`error_line`), exit code 2.
    ``prog``: the command it concerns, where the raiser knows it (argparse's parsers);
    otherwise the command being run."""

    def __init__(self, message: str, prog: str | None = None):
        super().__init__(message)
        self.prog = prog


def error_line(prog: str, what: object, kind: str = "error") -> str:
    """The one format of every message nn-parity ends with: ``nn-parity check: error: <what>``
    (``prog`` the command, ``kind`` "error" for exit 2, else "internal error", "training
    diverged", ...), the first line of ``what`` only. A ``what`` that already starts with
    ``prog:`` (as older raisers wrote it) is not prefixed twice."""
    text = str(what).strip()
    for prefix in (f"{prog}: ", "nn-parity: "):
        text = text.removeprefix(prefix)
    lines = text.splitlines()
    return f"{prog}: {kind}: {lines[0] if lines else type(what).__name__}"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like SIGINT's KeyboardInterrupt, so that every
    ``finally``/``except BaseException`` cleanup runs (workers, temporaries)."""


# Shown under every command's --help; tests/test_cli.py parses each line, so they stay valid.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "list": ("nn-parity list", "nn-parity list --json"),
    "check": ("nn-parity check cs231n-2layer",
              "nn-parity check spiral003 --dtype float32 --json",
              "nn-parity check digits-dropout --steps 3 --save evidence/",
              "nn-parity check my_net.py:twins --dtype float32"),
    "train": ("nn-parity train xor-relu --epochs 200",
              "nn-parity train cs231n-2layer --impl torch --dtype float32 --json --curve"),
    "diverge": ("nn-parity diverge cs231n-2layer --steps 2000",
                "nn-parity diverge spiral003 --dtype float32 --steps 500 --out curve.json"),
    "bench": ("nn-parity bench --quick", "nn-parity bench --threads 2 --json"),
    "drift": ("nn-parity drift --out drift/ --epochs 100",
              "nn-parity drift --combine drift/ --json"),
    "study": ("nn-parity study --quick --out /tmp/report",
              "nn-parity study --models cs231n-2layer spiral003 --jobs 2 --json",
              "nn-parity study --quick --executor dask --jobs 2 --seeds 0-3",
              "nn-parity study --models xor-relu --seeds 0-99 --executor dask://10.0.0.5:8786"),
    "selftest": ("nn-parity selftest", "nn-parity selftest --json"),
    "export": ("nn-parity export cs231n-2layer --impl numpy --out cs231n.npz",
               "nn-parity export spiral003 --impl torch --out spiral003.pt --epochs 50",
               "nn-parity export my_net.py:twins --impl torch --out my_net.safetensors"),
    "import-check": ("nn-parity import-check cs231n-2layer cs231n.npz",
                     "nn-parity import-check spiral003 spiral003.pt --json",
                     "nn-parity import-check my_net.py:twins my_net.safetensors"),
    "bayes": ("nn-parity bayes cs231n_spiral",
              "nn-parity bayes two_spirals_corrected --noise 0.1 --samples 100000 --json"),
    "claims": ("nn-parity claims --quick", "nn-parity claims --out claims.json --json"),
}

TOP_EXAMPLES = ("nn-parity list", "nn-parity check cs231n-2layer --json",
                "nn-parity study --quick --threads 2", "nn-parity --version")


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, except that indented lines (examples) are kept as written;
    every other line is wrapped as a paragraph of its own."""

    def _fill_text(self, text, width, indent):
        return "\n".join(indent + line if line.startswith("  ")
                         else super(_HelpFormatter, self)._fill_text(line, width, indent)
                         for line in text.splitlines())


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):  # one line, not argparse's usage block
        raise UsageError(message, prog=self.prog)


def version_line() -> str:
    """``nn-parity X.Y.Z (numpy A, torch B, python C)``: the versions actually imported."""
    import platform

    import numpy
    import torch

    import parity
    return (f"nn-parity {parity.__version__} (numpy {numpy.__version__}, "
            f"torch {torch.__version__}, python {platform.python_version()})")


class _VersionAction(argparse.Action):
    """``--version``: print :func:`version_line` to stdout and exit 0 (imports torch only
    when asked, unlike argparse's ``action="version"`` whose string is built up front)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="print the versions of nn-parity, numpy, torch and python, and exit"):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_line())
        parser.exit(0)


def _catalogue():
    from parity.catalogue import zoo
    return zoo


# The table's columns: (header, JSON key, alignment). Below each row: layers, summary, source
# (the document's title, then its seed file in shared/seeds/).
LIST_COLUMNS = (("MODEL", "name", "<"), ("PARAMS", "parameters", ">"), ("LOSS", "loss", "<"),
                ("OPTIMIZER", "optimizer", "<"), ("DATASET", "dataset", "<"),
                ("EPOCHS", "epochs", ">"), ("BATCH", "batch_size", ">"),
                ("TARGET", "target", "<"))
LIST_DETAILS = ("layers", "summary", "source")


def catalogue_rows() -> list[dict]:
    """One dict per catalogue model: every column of the table and every detail line."""
    zoo = _catalogue()
    return [{"name": m.name, "source": _source_line(src), "source_title": src.title,
             "source_file": src.file,
             "layers": m.layer_summary(),
             "parameters": m.num_parameters(), "loss": m.loss, "optimizer": m.optimizer.kind,
             "dataset": m.dataset, "epochs": m.epochs, "batch_size": m.batch_size,
             "target": str(m.target) if m.target else None, "summary": m.summary}
            for m, src in ((m, zoo.source_of(m)) for m in zoo.CATALOGUE.values())]


def _source_line(src) -> str:
    """``"Neural Network from Scratch" (seed document 002_….txt)``: the title leads."""
    where = f"seed document {src.file}" if src.file else src.about
    return f"“{src.title}” ({where})"


def _cell(row: dict, key: str) -> str:
    v = row[key]
    if v is None:
        return "full" if key == "batch_size" else "-"
    return str(v)


def render_list(rows: list[dict]) -> str:
    """Aligned columns (widths from the data, so a long name never shifts a column), then the
    layers, the summary and the source document, indented under the model's name."""
    widths = [max(len(h), *(len(_cell(r, k)) for r in rows)) for h, k, _ in LIST_COLUMNS]
    fmt = "  ".join(f"{{:{a}{w}}}" for (_, _, a), w in zip(LIST_COLUMNS, widths))
    lines = [fmt.format(*(h for h, _, _ in LIST_COLUMNS)).rstrip()]
    for r in rows:
        lines.append(fmt.format(*(_cell(r, k) for _, k, _ in LIST_COLUMNS)).rstrip())
        lines.extend(f"    {k + ':':<8} {r[k]}" for k in LIST_DETAILS)
    return "\n".join(lines)


def cmd_list(args) -> int:
    rows = catalogue_rows()
    print(fileio.json_text(rows, indent=2) if args.json else render_list(rows))
    return EXIT_OK


def _check_catalogue(spec, args, device):
    from parity.catalogue.checks import compare  # not imported to check your own file
    return compare(spec, args.dtype, args.seed, steps=args.steps, device=device)


def cmd_check(args) -> int:
    from parity import usercode
    from parity.runtime import check_device
    user = usercode.is_target(args.model)      # path/to/file.py:function (parity.usercode)
    spec = None if user else _catalogue().get(args.model)
    if args.save:
        fileio.check_dir_target(args.save, "--save")
    device = check_device(args.device)            # before any work: one line, exit 2
    result = (_check_catalogue(spec, args, device) if spec is not None
              else usercode.check(args.model, args.dtype, args.seed, args.steps, device))
    if args.save:
        try:
            fileio.write_dir_set(args.save, result.save, "check-evidence", "--save")
        except OSError as e:
            raise UsageError(f"cannot write --save {args.save}: {e.strerror or e}") from e
    if args.json:
        print(fileio.json_text(result.to_json(), indent=2))
    else:
        print(result.report())
        if args.save:
            print(f"  evidence written to {args.save}")
    return EXIT_OK if result.passed else EXIT_FAILED


def _progress(total: int, desc: str, enabled: bool):
    """A tqdm bar on stderr (only when stderr is a terminal, or forced) → ``on_epoch``."""
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm
    bar = tqdm(total=total, desc=desc, unit="epoch", file=sys.stderr, leave=False,
               mininterval=0.5)

    def on_epoch(epoch, loss):
        bar.update(1)
        if epoch % 50 == 0:
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    return on_epoch, bar.close


def cmd_train(args) -> int:
    from parity.catalogue.train import run
    from parity.twins import IMPLS
    spec = _catalogue().get(args.model)
    if args.seed is None:
        args.seed = spec.pinned_seed
    impls = IMPLS if args.impl == "both" else (args.impl,)
    # the bar comes with the 'study' extra (tqdm): by default only where it is installed
    show = (sys.stderr.isatty() and extras.installed("tqdm")) if args.progress is None \
        else args.progress
    results = []
    for impl in impls:
        on_epoch, close = _progress(args.epochs or spec.epochs, f"{spec.name} {impl}", show)
        try:
            res, _ = run(spec, impl, seed=args.seed, dtype=args.dtype, epochs=args.epochs,
                         on_epoch=on_epoch)
        finally:
            close()
        results.append(res)
    if args.json:
        print(fileio.json_text([r.to_json(with_curve=args.curve) for r in results], indent=2))
    else:
        print(f"{spec.name} [{args.dtype}, seed {args.seed}]  target: {spec.target or '-'}")
        print(f"  {'impl':<6} {'train acc':>9} {'held-out':>9} {'first loss':>11} "
              f"{'final loss':>11} {'steps':>7} {'seconds':>8}  target")
        for r in results:
            met = "-" if r.target_met is None else ("met" if r.target_met else "NOT met")
            print(f"  {r.impl:<6} {r.train_accuracy:>9.4f} {r.test_accuracy:>9.4f} "
                  f"{r.first_loss:>11.6f} {r.final_loss:>11.6f} {r.steps:>7} "
                  f"{r.seconds:>8.2f}  {met}")
    return EXIT_OK


def cmd_diverge(args) -> int:
    from parity.catalogue.checks import diverge
    spec = _catalogue().get(args.model)
    if args.out:
        fileio.check_file_target(args.out, "--out")
    r = diverge(spec, args.steps, args.dtype, args.seed)
    if args.out:
        try:
            fileio.atomic_write_bytes(args.out, fileio.json_text(r.to_json()).encode())
        except OSError as e:
            raise UsageError(f"cannot write --out {args.out}: {e.strerror or e}") from e
    if args.json:
        print(fileio.json_text(r.to_json()))
        return EXIT_OK
    print(f"{spec.name} [{args.dtype}, seed {args.seed}]: lockstep trajectories, "
          f"{args.steps} steps")
    print(f"  {'step':>6} {'max rel param diff':>19} {'rel loss diff':>14}  worst tensor")
    marks = sorted({1, 10, 100, 1000, args.steps} | set(range(500, args.steps + 1, 500)))
    for k in (m for m in marks if m <= args.steps):
        print(f"  {k:>6} {r.param_rel[k - 1]:>19.2e} {r.loss_rel[k - 1]:>14.2e}  "
              f"{r.worst_param[k - 1]}")
    print(f"  first step above 1e-6: {r.first_step_above(1e-6) or 'none'}")
    return EXIT_OK


def cmd_bench(args) -> int:
    from parity.tools import bench
    result = bench.run_bench(quick=args.quick, cost=True, large=args.large)
    print(fileio.json_text(result, indent=2) if args.json else bench.render(result))
    return EXIT_OK


def cmd_drift(args) -> int:
    from parity.tools import drift
    if (args.out is None) == (args.combine is None):
        raise UsageError("give exactly one of --out DIR or --combine DIR")
    if args.out is not None:
        fileio.check_record_dir(args.out, "--out")
        path = drift.record(args.out, epochs=args.epochs,
                            log=lambda m: print(m, file=sys.stderr))
        print(fileio.json_text({"environment": drift.env_name(), "path": path}) if args.json
              else f"recorded {drift.env_name()} → {path}")
        return EXIT_OK
    result = drift.combine(args.combine)
    for name in drift.TABLE_FILES:
        fileio.check_file_target(os.path.join(args.combine, name), "--combine")
    paths = drift.write_table(result, args.combine)
    print(fileio.json_text(result, indent=1) if args.json else drift.render(result))
    print(f"table written to {', '.join(paths)}", file=sys.stderr)
    return EXIT_OK


def cmd_study(args) -> int:
    from parity.study import report
    return report.main(args)


def _json_flag(s: argparse.ArgumentParser, what: str = "machine-readable output") -> None:
    s.add_argument("--json", action="store_true",
                   help=f"{what} (JSON on stdout, the same information as the table)")


def _model_arg(s: argparse.ArgumentParser, what: str = "catalogue name (see `nn-parity list`)"
               ) -> None:
    s.add_argument("model", metavar="MODEL", help=what)


def _dtype_arg(s: argparse.ArgumentParser, what: str = "float64 (exact tier) or float32 "
               "(practical tier); default float64") -> None:
    s.add_argument("--dtype", default="float64", choices=DTYPES, help=what)


def _add_list(sub) -> None:
    s = sub.add_parser("list", help="the catalogue: name, parameters, loss, optimizer, dataset, "
                                    "recipe, target, layers, source document",
                       description="Every model of the catalogue (parity/catalogue/zoo.py) as "
                       "a table: one row per model, then its layers, its summary and the "
                       "source document it comes from.")
    _json_flag(s, "a list of objects, one per model, keyed like the table's columns")
    s.set_defaults(func=cmd_list)


def _add_check(sub) -> None:
    s = sub.add_parser("check", help="one-step parity of a model: losses, every gradient, "
                                     "parameters after the update (and optimizer state)",
                       description="Load identical weights into both twins, run the first "
                       "training batch through both (each step from one state), and compare "
                       "everything by the rules of parity/tolerances.py: the tolerance table, "
                       "then float64's rounding rule or float32's precision rule against a "
                       "float64 evaluation of the step. Exit 1 when a check fails. "
                       "MODEL may also be your own code, path/to/file.py:function (README, "
                       "'Check your own model').")
    _model_arg(s, "catalogue name (see `nn-parity list`), or path/to/file.py:function "
                  "returning your twins and a batch")
    _dtype_arg(s)
    s.add_argument("--seed", type=int, default=0, help="seed for data and initial weights")
    s.add_argument("--steps", type=int, default=None,
                   help="steps on the batch (default: 3 for stateful optimizers/BatchNorm, "
                        "2 with weight decay, else 1)")
    s.add_argument("--device", default="cpu",
                   help="where the torch twin runs: cpu (default) or cuda[:N] (TF32 off; "
                        "refused in one line when CUDA is absent)")
    s.add_argument("--save", metavar="DIR", help="write weights.npz, batch.npz, grads_*.npz, "
                   "params_after_*.npz (torch state_dict keys, torch layout) and summary.json")
    _json_flag(s)
    s.set_defaults(func=cmd_check)


def _add_train(sub) -> None:
    s = sub.add_parser("train", help="train with the model's recipe: accuracies, losses, time",
                       description="Train MODEL with its recipe in NumPy, torch or both. Both "
                       "implementations start from the same NumPy-initialized weights and see "
                       "the same data and batch order.")
    _model_arg(s)
    s.add_argument("--impl", default="both", choices=("numpy", "torch", "both"),
                   help="which twin to train (default both)")
    s.add_argument("--seed", type=int, default=None,
                   help="seed for data, weights, batch order (default: the model's pinned seed)")
    _dtype_arg(s)
    s.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    s.add_argument("--curve", action="store_true", help="include the per-epoch loss in --json")
    s.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    _json_flag(s)
    s.set_defaults(func=cmd_train)


def _add_diverge(sub) -> None:
    s = sub.add_parser("diverge", help="how far the twins drift apart over T training steps",
                       description="Both twins train in lockstep from identical weights, each "
                       "on its own gradients, with shared batches and dropout masks; prints the "
                       "max relative parameter difference and relative loss difference per step.")
    _model_arg(s)
    s.add_argument("--steps", type=int, default=1000, help="optimizer steps (default 1000)")
    _dtype_arg(s)
    s.add_argument("--seed", type=int, default=0, help="seed for data and initial weights")
    s.add_argument("--out", metavar="FILE", help="also write the curve as JSON to FILE")
    _json_flag(s, "the whole curve, every step")
    s.set_defaults(func=cmd_diverge)


def _add_bench(sub) -> None:
    s = sub.add_parser("bench", help="speed ratios measured in one run: reference trainer vs "
                                     "a fused NumPy loop, torch_impl vs a raw torch loop, and "
                                     "NumPy vs torch per step across widths and on the "
                                     "catalogue's convnets",
                       description="In this process, on --threads threads: the reference "
                       "NumPy trainer against a hand-fused NumPy loop and torch_impl's trainer "
                       "against a raw torch loop on cs231n-2layer (target <= 1.10x each; timed "
                       "in alternating pairs, median ratio on the process CPU clock, wall-clock "
                       "ratios beside them), then the time per step of NumPy and torch across "
                       "hidden widths and batch sizes, and of the catalogue's convnets on "
                       "their recipes' batches (alternating pairs) with the NumPy step by "
                       "layer, and what one parity check costs against the step it checks "
                       "(an MLP of widths 32 to 2048, depth 4, batch 256, Adam, both dtypes): "
                       "check/floor ratios, peak memory per parameter byte, the largest "
                       "model checked in 60 s. See parity/tools/bench.py and check_cost.py.")
    s.add_argument("--quick", action="store_true", help="fewer steps and widths")
    s.add_argument("--large", action="store_true",
                   help="also check the 50 M-parameter MLP (width 5000) once in float32, in "
                        "a child process stopped after 300 s; not started when the sweep's "
                        "memory per parameter says it would not fit (minutes, GBs)")
    _json_flag(s)
    s.set_defaults(func=cmd_bench)


def _add_drift(sub) -> None:
    s = sub.add_parser("drift", help="record this environment's numbers, or tabulate the "
                                     "differences across numpy/torch versions",
                       description="--out DIR: train every model for --epochs epochs in both "
                       "twins and run the one-step parity checks; write "
                       "DIR/drift-py*-np*-torch*-cpu*-t*.json, named by the versions, torch's "
                       "CPU capability (ATEN_CPU_CAPABILITY) and the thread count. --combine "
                       "DIR: read those files and print/save the table of differences across "
                       "versions and CPUs (tox -m drift; the drift workflow).")
    s.add_argument("--out", metavar="DIR", help="record the current environment into DIR")
    s.add_argument("--combine", metavar="DIR", help="tabulate all records in DIR")
    s.add_argument("--epochs", type=int, default=100, help="epochs per model (default 100)")
    _json_flag(s, "the table (--combine) or the record written (--out)")
    s.set_defaults(func=cmd_drift)


def _add_study(sub) -> None:
    s = sub.add_parser("study", help="train the catalogue in both implementations and write "
                                     "a side-by-side report",
                       description="Train every model (or --models) with its recipe in NumPy "
                       "and in torch from the same initial weights, run the parity checks in "
                       "float64 and float32, the claims audit and the benchmark, and write "
                       "OUT/index.md and OUT/index.html with the plots (OUT/img/), "
                       "results.json and claims.json. Results do not depend on --jobs. OUT "
                       "is replaced only if nn-parity wrote it.")
    s.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                   help="subset of the catalogue (default: every model)")
    s.add_argument("--out", default="report", metavar="DIR",
                   help="report directory (default: report/)")
    s.add_argument("--seed", type=int, default=None,
                   help="seed for every model (default: each model's pinned seed)")
    s.add_argument("--seeds", metavar="SEEDS", default=None,
                   help="also train every model that has a target once per seed, both twins, "
                        "and report its success rate with a Wilson 95%% interval: a range "
                        "0-99 (both ends included), a list 0,3,7, or both (0-9,20)")
    s.add_argument("--quick", action="store_true", help="fewer epochs, for a first look")
    s.add_argument("--jobs", type=int, default=2,
                   help="worker processes for the trainings (default 2; results do not depend "
                        "on it); with --executor dask, the local cluster's workers")
    s.add_argument("--executor", default="local", metavar="WHERE",
                   help="where the jobs run: local (default: a process pool of --jobs "
                        "workers), dask (a local Dask cluster of --jobs processes, one thread "
                        "each) or dask://HOST:PORT (a running Dask scheduler's workers; start "
                        "them with --nthreads 1). Dask needs pip install 'nn-parity[dask]'. "
                        "Every job runs on one thread wherever it runs: the same numbers")
    s.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars on stderr (default: when stderr is a terminal)")
    _json_flag(s, "print results.json to stdout instead of the summary")
    s.set_defaults(func=cmd_study)


def _add_common(s: argparse.ArgumentParser, name: str) -> None:
    """What every subcommand accepts after its name too: ``--threads``, ``--debug`` (default
    SUPPRESS, so that the value given before the subcommand is not overwritten), ``--dtype``
    limited to :data:`DTYPES`, and the examples of :data:`EXAMPLES` as the help's epilog."""
    s.add_argument("--threads", type=int, default=argparse.SUPPRESS,
                   help="threads for torch and NumPy's BLAS (default 1; the same option as "
                        "before the command)")
    s.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="on an internal error (exit 3), print the whole traceback")
    for action in s._actions:   # one dtype vocabulary, whichever module registered the command
        if action.dest == "dtype" and action.choices is None:
            action.choices = DTYPES
    if s.epilog is None and name in EXAMPLES:
        s.epilog = "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[name])


def build_parser(lazy: bool = False) -> argparse.ArgumentParser:
    """The whole command line: every subcommand is registered here, statically. ``lazy``:
    the commands of :data:`REGISTERED_ELSEWHERE` are placeholders (their one-line help
    only) until argparse dispatches to one, which imports its module then (``main``)."""
    p = _Parser(prog="nn-parity", description=(
        "Hand-written NumPy networks and their PyTorch nn.Sequential twins: list the catalogue, "
        "check one-step parity, train either side, run the side-by-side study."),
        epilog="examples:\n" + "\n".join(f"  {line}" for line in TOP_EXAMPLES) +
               "\nexit codes: 0 done, 1 a check or target failed, 2 bad input, 3 internal "
               "error, 130/143 interrupted/terminated, 141 stdout closed early.")
    p.add_argument("--version", action=_VersionAction)
    p.add_argument("--threads", type=int, default=1,
                   help="threads for torch and NumPy's BLAS (default 1: fastest for these small "
                        "nets; recorded in results); also accepted after the command")
    p.add_argument("--debug", action="store_true",
                   help="on an internal error (exit 3), print the whole traceback")
    # Not required: a bare ``nn-parity`` prints the usage and the commands (``_run``).
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser,
                           action=_LazySubParsers)
    for add in (_add_list, _add_check, _add_train, _add_diverge, _add_bench, _add_drift,
                _add_study):
        add(sub)
    for name, (_, line) in REGISTERED_ELSEWHERE.items():
        sub.add_parser(name, help=line)        # a placeholder until the command is used
    for name, s in subcommands(p).items():
        _add_common(s, name)
    if not lazy:
        assert isinstance(sub, _LazySubParsers)
        for module in dict.fromkeys(m for m, _ in REGISTERED_ELSEWHERE.values()):
            sub.load(module)
    return p


# Commands whose module registers them (``module.register(subparsers)``): module, and the
# line ``nn-parity --help`` shows without importing it (tests/test_cli.py holds it equal to
# the module's own). These modules import torch, so ``--help``, ``list`` and ``check`` must
# not import them unless the command is theirs.
REGISTERED_ELSEWHERE: dict[str, tuple[str, str]] = {
    "selftest": ("parity.tools.selftest",
                 "prove the parity checks catch real bugs: inject each known bug, check it is "
                 "caught"),
    "export": ("parity.tools.checkpoint",
               "train one twin with the model's recipe and save a checkpoint"),
    "import-check": ("parity.tools.checkpoint",
                     "load a checkpoint into both twins and compare their predictions"),
    "bayes": ("parity.audit.bayes",
              "Bayes ceiling (best possible accuracy) of a spiral generator, with standard "
              "error"),
    "claims": ("parity.audit.claims",
               "audit every numeric claim of the source documents on both twins, with Bayes "
               "ceilings"),
}


class _LazySubParsers(argparse._SubParsersAction):
    """argparse's subcommands, where a command of :data:`REGISTERED_ELSEWHERE` is a
    placeholder until it is dispatched to: then its module is imported and registers it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loaded: set[str] = set()     # modules whose commands are registered

    def load(self, module_name: str) -> None:
        """Let ``module_name`` register its commands into their placeholders' slots (the
        order of ``--help`` is kept), with the options every command takes."""
        import importlib
        scratch = argparse._SubParsersAction([], self._prog_prefix, self._parser_class)
        importlib.import_module(module_name).register(scratch)
        helps = {a.dest: a.help for a in scratch._choices_actions}
        for name, parser in scratch._name_parser_map.items():
            self._name_parser_map[name] = parser
            _add_common(parser, name)
        for a in self._choices_actions:
            a.help = helps.get(a.dest, a.help)
        self.loaded.update(REGISTERED_ELSEWHERE[n][0] for n in scratch._name_parser_map)

    def __call__(self, parser, namespace, values, option_string=None):
        entry = REGISTERED_ELSEWHERE.get(values[0])
        if entry is not None and entry[0] not in self.loaded:
            self.load(entry[0])
        super().__call__(parser, namespace, values, option_string)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """name → parser of every subcommand of ``parser`` (aliases left out)."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found: dict[str, argparse.ArgumentParser] = {}
    for name, s in action.choices.items():
        if all(s is not other for other in found.values()):
            found[name] = s
    return found


def check_numbers(args) -> None:
    """Every integer option in range, named in the message (``--seed`` must fit torch's
    uint64 and NumPy's SeedSequence unchanged; no silent truncation)."""
    from parity.runtime import check_seed, check_threads
    try:
        check_threads(args.threads, "--threads")
        if getattr(args, "seed", None) is not None:
            check_seed(args.seed, "--seed")
    except ValueError as e:
        raise UsageError(str(e)) from None
    for name, (lo, hi) in INT_OPTIONS.items():
        v = getattr(args, name, None)
        if v is not None and not lo <= v <= hi:
            opt = "--" + name.replace("_", "-")
            raise UsageError(f"{opt} must be >= {lo}, got {v}" if v < lo else
                             f"{opt} must be <= {hi}, got {v}")


_SIGNALLED: list[int] = []   # signals received: a KeyboardInterrupt without one was raised by code


def _on_signal(signum, frame):
    """First SIGINT/SIGTERM: ignore further ones (the cleanup must finish), then raise."""
    _SIGNALLED.append(signum)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextlib.contextmanager
def _signals():
    """SIGINT and SIGTERM become exceptions in the main thread for the duration."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in saved:
        signal.signal(s, _on_signal)
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def _stdout_gone() -> int:
    """stdout's reader went away (``| head``): point fd 1 at /dev/null so that the flush at
    exit does not fail again (Python docs, "Note on SIGPIPE"), and exit quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # pytest's capture: no real fd
        pass
    return EXIT_SIGPIPE


def _parse(argv: list[str] | None):
    """The parsed arguments, or the exit code of ``--help``/``--version`` (argparse exits)
    and of a bare ``nn-parity`` (the usage and the commands on stderr, exit 2: no command
    given is an incomplete command line, and a script must not read it as success)."""
    parser = build_parser(lazy=True)
    try:
        args, unknown = parser.parse_known_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
    if unknown:   # parse_args would name the top parser; the command is the one to name
        raise UsageError(f"unrecognized arguments: {' '.join(unknown)}",
                         prog=f"nn-parity {args.command}" if args.command else "nn-parity")
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return args


def _say(prog: str, what: object, kind: str = "error") -> None:
    print(error_line(prog, what, kind), file=sys.stderr)


def _run(argv: list[str] | None, debug: bool, prog: list[str]) -> int:
    """Run one command; ``prog[0]`` names it in messages once parsed (``nn-parity check``)."""
    try:
        args = _parse(argv)
        if isinstance(args, int):
            return args
        prog[0] = f"nn-parity {args.command}"
        check_numbers(args)
        if args.command in extras.COMMAND_EXTRA:   # before any work starts
            extras.require(*extras.COMMAND_EXTRA[args.command])
        from parity.runtime import configure_threads
        configure_threads(args.threads)
        code = args.func(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _stdout_gone()
    except UsageError as e:
        _say(e.prog or prog[0], e)
        return EXIT_USAGE
    except ImportError as e:
        missing = extras.missing_extra(e)
        if missing is None:        # not an optional package: a broken installation
            return _internal(prog[0], e, debug)
        _say(prog[0], missing)
        return EXIT_USAGE
    except (ValueError, TypeError, OSError) as e:
        _say(prog[0], e)
        return EXIT_USAGE
    except FloatingPointError as e:
        _say(prog[0], e, "training diverged")
        return EXIT_FAILED
    except Terminated:
        print(f"{prog[0]}: terminated", file=sys.stderr)
        return EXIT_SIGTERM
    except KeyboardInterrupt:
        if not _SIGNALLED:    # raised by code (the user's), not by a Ctrl-C
            _say(prog[0], "KeyboardInterrupt raised by the code under check, with no signal; "
                          "nothing was compared")
            return EXIT_USAGE
        print(f"{prog[0]}: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except SystemExit as e:  # after parsing: only code under check calls sys.exit
        _say(prog[0], f"the code under check called sys.exit({e.code!r}); nothing was "
                      f"compared")
        return EXIT_USAGE
    except Exception as e:  # noqa: BLE001 — the last resort: one line, not a traceback
        return _internal(prog[0], e, debug)


def _internal(prog: str, e: BaseException, debug: bool) -> int:
    if debug:
        import traceback
        traceback.print_exc()
    _say(prog, f"{type(e).__name__}: {_line(e)} (run again with --debug for the traceback)",
         "internal error")
    return EXIT_INTERNAL


def _line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (see the module docstring). ``argv=None`` (the
    program's own command line: ``nn-parity``, ``python -m parity``) also freezes the objects
    alive at the end (:func:`gc.freeze`), so that the interpreter's exit does not traverse
    the millions that torch's imports made: ≈ 0.5 s of CPU on every command that imported
    torch._dynamo (any ``torch.optim`` optimizer does); the exit handlers run as before."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    _SIGNALLED.clear()
    try:
        with _signals():
            try:
                return _run(argv, debug, ["nn-parity"])
            except KeyboardInterrupt as e:   # a signal in the except clauses above
                return EXIT_SIGTERM if isinstance(e, Terminated) else EXIT_SIGINT
    finally:
        if argv is None:
            import gc
            gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
