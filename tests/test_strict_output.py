"""Strict output, bounded input, concurrent writers (issue 23, items 6 and 7).

Every JSON document nn-parity writes or prints is strict JSON (RFC 8259): a non-finite number
is the string "NaN", "Infinity" or "-Infinity" (``parity.fileio.json_text``), never a bare
``NaN`` token that strict parsers refuse. JSON readers (checkpoint metadata, drift records)
refuse numbers no float64 holds — a 5000-digit integer, ``1e400``, ``NaN`` — with one line
naming the file and the field. Two runs writing the same report directory at one instant
leave one run's whole set and nothing else.
"""

import json
import os
import random
import re
import shutil
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
import torch

from parity import fileio, transfer
from parity.catalogue import zoo
from parity.tools import checkpoint as C

GOOD = "cs231n-2layer"
NAN, INF = float("nan"), float("inf")


# ── helpers ──────────────────────────────────────────────────────────────────────────────────

def _refuse(token):
    raise AssertionError(f"non-strict JSON token {token}")


def strict(text: str):
    """Parse as a strict parser does: a NaN/Infinity/-Infinity token fails the test."""
    return json.loads(text, parse_constant=_refuse)


def one_line_exit_2(capsys, code, pattern):
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(pattern, err), err
    return err


# ── json_text itself ─────────────────────────────────────────────────────────────────────────

def test_json_text_names_every_non_finite_number_and_keeps_the_rest():
    obj = {"a": NAN, "b": [INF, -INF, (1, 2.5)], "c": {"d": np.float32("nan"),
           "e": np.array([1.5, -np.inf]), "f": np.int64(3), "g": np.bool_(True)},
           INF: None, "h": "NaN", "i": -0.0}
    doc = strict(fileio.json_text(obj, indent=1))
    assert doc == {"a": "NaN", "b": ["Infinity", "-Infinity", [1, 2.5]],
                   "c": {"d": "NaN", "e": [1.5, "-Infinity"], "f": 3, "g": True},
                   "Infinity": None, "h": "NaN", "i": -0.0}
    finite = {"x": [1, 2.5, -0.0, 1e-300, None, True], "y": {"z": "s"}}
    for indent in (None, 1, 2):
        assert fileio.json_text(finite, indent=indent) == json.dumps(finite, indent=indent)


def test_json_text_guard_raises_on_a_missed_path(monkeypatch):
    """allow_nan=False is the last guard: a non-finite number the walk lets through raises
    instead of being written as a bare NaN token."""
    monkeypatch.setattr(fileio, "_strict", lambda obj, default: obj)
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        fileio.json_text({"a": NAN})


# ── every --json and every file, with non-finite numbers in it ──────────────────────────────

OVERFLOW_FILE = '''
import numpy as np
import torch
from torch import nn

import parity


def overflow():
    """Both twins overflow to inf and inf - inf = NaN: the losses are NaN."""
    net = nn.Sequential(nn.Linear(3, 2)).double()
    with torch.no_grad():
        net[0].weight.fill_(1e200)
    X = np.full((8, 3), 1e200)
    X[::2] *= -1
    return {"numpy_model": parity.from_torch(net), "torch_model": net, "X": X,
            "y": np.arange(8) % 2, "loss": "cross_entropy", "steps": 1}
'''


def test_check_json_and_summary_json_of_nan_losses_are_strict(cli, capsys, tmp_path):
    user = tmp_path / "overflow.py"
    user.write_text(OVERFLOW_FILE)
    save = tmp_path / "evidence"
    with np.errstate(all="ignore"):
        code = cli(["check", f"{user}:overflow", "--json", "--save", str(save)])
    out = capsys.readouterr().out
    assert code in (0, 1)
    printed, summary = strict(out), strict((save / "summary.json").read_text())
    assert printed["loss_numpy"] == ["NaN"] and printed["loss_torch"] == ["NaN"]
    assert summary["loss_numpy"] == ["NaN"]
    assert strict((save / fileio.MARKER).read_text())["kind"] == "check-evidence"


def test_catalogue_check_save_summary_json_is_strict(tmp_path):
    """``Comparison.save`` (what ``check MODEL --save`` writes) with a NaN loss in it."""
    from parity.compare import Comparison
    c = Comparison("xor-relu", "float64", 0, 1, loss_numpy=[NAN], loss_torch=[-INF])
    c.save(str(tmp_path))
    doc = strict((tmp_path / "summary.json").read_text())
    assert doc["loss_numpy"] == ["NaN"] and doc["loss_torch"] == ["-Infinity"]


def test_import_check_json_of_overflowing_predictions_is_strict(cli, capsys, tmp_path):
    """Finite weights of 1e200 overflow both twins' outputs: the difference is NaN."""
    t_model = zoo.get(GOOD).build_torch("float64")
    with torch.no_grad():
        for p in t_model.parameters():
            p.fill_(1e200)
    path = tmp_path / "huge.npz"
    C.save(path, t_model, GOOD)
    with np.errstate(all="ignore"):
        code = cli(["import-check", GOOD, str(path), "--json"])
    doc = strict(capsys.readouterr().out)
    assert doc["max_abs_diff"] == "NaN" and code == 1


@pytest.mark.parametrize("big", [1.7e308, 10**308], ids=["float", "int"])
def test_drift_combine_of_an_overflowing_spread_is_strict(cli, capsys, tmp_path, big):
    """Two finite records ~3.4e308 apart: the spread overflows the float range (an integer
    spread that large once reached the table as an int no float holds: exit 3)."""
    for env, v in (("py3.11-a", big), ("py3.11-b", -big)):
        (tmp_path / f"drift-{env}.json").write_text(json.dumps(
            {"env": env, "epochs": 3, "models": {"xor-relu": {"numpy_loss": v}}}))
    assert cli(["drift", "--combine", str(tmp_path), "--json"]) == 0
    printed = strict(capsys.readouterr().out)
    table = strict((tmp_path / "drift-table.json").read_text())
    assert printed == table and table["rows"][0]["max_diff"] == "Infinity"


def _result(**fields):
    """An object with ``to_json()`` (any arguments) returning ``fields``."""
    return types.SimpleNamespace(to_json=lambda *a, **k: dict(fields), passed=True, **fields)


NASTY = {"nan": NAN, "inf": INF, "ninf": -INF, "np": np.float64("nan"),
         "arr": np.array([1.0, np.inf])}
EXPECTED = {"nan": "NaN", "inf": "Infinity", "ninf": "-Infinity", "np": "NaN",
            "arr": [1.0, "Infinity"]}


def _patch_list(mp):
    import parity.cli
    mp.setattr(parity.cli, "catalogue_rows", lambda: [dict(NASTY)])


def _patch_train(mp):
    import parity.catalogue.train
    mp.setattr(parity.catalogue.train, "run", lambda *a, **k: (_result(**NASTY), None))


def _patch_diverge(mp):
    import parity.catalogue.checks
    mp.setattr(parity.catalogue.checks, "diverge", lambda *a, **k: _result(**NASTY))


def _patch_bench(mp):
    from parity.tools import bench
    mp.setattr(bench, "run_bench", lambda *a, **k: dict(NASTY))


def _patch_selftest(mp):
    from parity.tools import selftest
    mp.setattr(selftest, "run_selftest", lambda *a, **k: _result(**NASTY))


def _patch_claims(mp):
    from parity.audit import claims
    mp.setattr(claims, "run_audit", lambda *a, **k: [dict(NASTY)])


def _patch_bayes(mp):
    from parity.audit import bayes
    mp.setattr(bayes, "bayes_ceiling", lambda *a, **k: _result(**NASTY))


def _patch_study(mp):
    from parity.study import report
    mp.setattr(report, "study", lambda *a, **k: types.SimpleNamespace(results=dict(NASTY)))


def _unwrap(doc):
    return doc[0] if isinstance(doc, list) else doc


@pytest.mark.parametrize("argv, patch", [
    (["list", "--json"], _patch_list),
    (["train", "xor-relu", "--impl", "numpy", "--json"], _patch_train),
    (["diverge", "xor-relu", "--json"], _patch_diverge),
    (["bench", "--json"], _patch_bench),
    (["selftest", "--json"], _patch_selftest),
    (["claims", "--json"], _patch_claims),
    (["bayes", "cs231n_spiral", "--json"], _patch_bayes),
    (["study", "--models", "xor-relu", "--json"], _patch_study),
], ids=["list", "train", "diverge", "bench", "selftest", "claims", "bayes", "study"])
def test_every_json_printer_is_strict(cli, capsys, monkeypatch, tmp_path, argv, patch):
    monkeypatch.chdir(tmp_path)
    patch(monkeypatch)
    assert cli(argv) == 0, capsys.readouterr().err
    assert _unwrap(strict(capsys.readouterr().out)) == EXPECTED


def test_diverge_out_and_claims_out_files_are_strict(cli, capsys, monkeypatch, tmp_path):
    _patch_diverge(monkeypatch)
    _patch_claims(monkeypatch)
    assert cli(["diverge", "xor-relu", "--json", "--out", str(tmp_path / "curve.json")]) == 0
    assert cli(["claims", "--json", "--out", str(tmp_path / "claims.json")]) == 0
    capsys.readouterr()
    assert strict((tmp_path / "curve.json").read_text()) == EXPECTED
    assert strict((tmp_path / "claims.json").read_text()) == [EXPECTED]


def test_study_results_json_is_strict(monkeypatch, tmp_path):
    from parity.study import report

    class Doc:
        images: list = []

        def p(self, text):
            pass

        def markdown(self):
            return "# report\n"

        def html(self, title):
            return "<html></html>"

    monkeypatch.setattr(report, "build_document", lambda study, img: Doc())
    study = types.SimpleNamespace(results={**NASTY, "timing": {}, "claims": {
        "available": True, "rows": [dict(NASTY)]}})
    report.write_report(study, str(tmp_path / "report"))
    assert {k: v for k, v in strict((tmp_path / "report" / "results.json").read_text()).items()
            if k in EXPECTED} == EXPECTED
    assert strict((tmp_path / "report" / "claims.json").read_text()) == [EXPECTED]


def test_drift_record_file_is_strict(monkeypatch, tmp_path):
    from parity.tools import drift
    res = types.SimpleNamespace(final_loss=NAN, train_accuracy=0.5, test_accuracy=INF)
    monkeypatch.setattr(drift, "run", lambda *a, **k: (res, None))
    monkeypatch.setattr(drift, "compare", lambda *a, **k: types.SimpleNamespace(
        by_quantity=lambda: {"loss": {"max_abs": -INF}}))
    path = drift.record(str(tmp_path), epochs=1, models=["xor-relu"])
    row = strict(Path(path).read_text())["models"]["xor-relu"]
    assert row["numpy_loss"] == "NaN" and row["torch_test_acc"] == "Infinity"
    assert row["parity_float64_max_abs"] == "-Infinity"


def test_checkpoint_metadata_with_non_finite_extras_is_strict(tmp_path):
    """``extra_meta`` may carry NaN (a diverged loss): every format's record stays strict
    JSON and reads back, the value as its string."""
    spec = zoo.get(GOOD)
    m = spec.build_numpy(1, "float64")
    for fmt in ("npz", "safetensors"):
        path = tmp_path / f"ck.{fmt}"
        meta = C.save(path, m, GOOD, fmt, extra_meta={"final_loss": NAN, "seed": 3})
        assert meta["final_loss"] == "NaN"
        ck = C.read_checkpoint(path, GOOD)
        assert ck.meta["final_loss"] == "NaN" and ck.meta["seed"] == 3
    with np.load(tmp_path / "ck.npz") as z:
        strict(str(z[C.META_KEY]))
    from safetensors import safe_open
    with safe_open(tmp_path / "ck.safetensors", "np") as f:
        strict(f.metadata()[C.ST_RECORD])


def test_export_json_is_strict(cli, capsys, monkeypatch, tmp_path):
    import dataclasses

    import parity.catalogue.train
    real = parity.catalogue.train.run

    def nan_accuracy(*a, **k):
        res, model = real(*a, **{**k, "epochs": 1})
        return dataclasses.replace(res, test_accuracy=NAN), model

    monkeypatch.setattr(parity.catalogue.train, "run", nan_accuracy)
    out = tmp_path / "m.npz"
    assert cli(["export", "xor-relu", "--impl", "numpy", "--out", str(out), "--json"]) == 0
    assert strict(capsys.readouterr().out)["test_accuracy"] == "NaN"
    assert C.read_checkpoint(out, "xor-relu").meta["test_accuracy"] == "NaN"


# ── readers: numbers no float64 holds, one line naming the file and the field ───────────────

BIG = "9" * 5000            # past Python's 4300-digit int() limit
MID = "9" * 400             # an int() but no float


def _meta_text(**raw):
    """(state, metadata record) of a good checkpoint whose fields ``raw`` (added or replaced)
    hold the given JSON text: tokens ``json.dumps`` would never write."""
    spec = zoo.get(GOOD)
    state = transfer.torch_state(spec.build_torch("float64"))
    meta = {**C._meta(spec, "float64", state, "numpy", None),
            **{k: f"@@{k}@@" for k in raw}}
    text = json.dumps(meta)
    for k, v in raw.items():
        text = text.replace(f'"@@{k}@@"', v)
    return state, text


def _npz(path, **raw):
    state, text = _meta_text(**raw)
    with open(path, "wb") as f:               # a file object: np.savez adds no .npz suffix
        np.savez(f, **state, **{C.META_KEY: np.array(text)})


def _safetensors(path, **raw):
    """A safetensors checkpoint whose record carries ``raw`` with correct digests (so the
    reader reaches the record's numbers)."""
    state, text = _meta_text(**raw)
    md = {"format": C.FORMAT, "version": str(C.FORMAT_VERSION), "model": GOOD,
          C.ST_RECORD: text, C.ST_DIGESTS: json.dumps(C._st_digests(text, state))}
    path.write_bytes(safetensors.numpy.save(state, md))


@pytest.mark.parametrize("make", [_npz, _safetensors], ids=["npz", "safetensors"])
@pytest.mark.parametrize("raw, pattern", [
    ({"seed": BIG}, r"metadata field seed is 99999999…9999 \(5000 characters\), outside the "
                    r"float64 range"),
    ({"seed": MID}, r"metadata field seed is 99999999…9999 \(400 characters\), outside"),
    ({"train_accuracy": "1e400"}, r"metadata field train_accuracy is 1e400, outside the "
                                  r"float64 range"),
    ({"final_loss": "NaN"}, r"metadata field final_loss is NaN, not a finite number"),
    ({"x": "[1, -Infinity]"}, r"metadata field x\[1\] is -Infinity, not a finite number"),
    ({"model": "5"}, r"checkpoint of model 5, not 'cs231n-2layer'|header field 'model'"),
], ids=["int-5000-digits", "int-400-digits", "1e400", "NaN", "nested-Infinity",
        "number-for-a-string"])
def test_checkpoint_metadata_numbers_name_file_and_field(cli, capsys, tmp_path, make, raw,
                                                         pattern):
    p = tmp_path / "ck.bin"
    make(p, **raw)
    code = cli(["import-check", GOOD, str(p)])
    one_line_exit_2(capsys, code, r"ck\.bin: .*" + pattern)


def _drift_dir(tmp_path, text):
    (tmp_path / "drift-py3.11-good.json").write_text(json.dumps(
        {"env": "py3.11-good", "epochs": 3, "models": {"xor-relu": {"numpy_loss": 0.5}}}))
    (tmp_path / "drift-py3.11-bad.json").write_text(text)
    return str(tmp_path)


def _rec(epochs="3", metric="0.5", env='"e"'):
    return (f'{{"env": {env}, "epochs": {epochs}, '
            f'"models": {{"xor-relu": {{"numpy_loss": {metric}}}}}}}')


@pytest.mark.parametrize("text, pattern", [
    (_rec(metric=BIG), r"models\['xor-relu'\]\['numpy_loss'\] is 99999999…9999 \(5000 "
                       r"characters\), outside the float64 range"),
    (_rec(metric=MID), r"models\['xor-relu'\]\['numpy_loss'\] is 99999999…9999 \(400 "),
    (_rec(metric="1e400"), r"models\['xor-relu'\]\['numpy_loss'\] is 1e400, outside"),
    (_rec(metric="NaN"), r"models\['xor-relu'\]\['numpy_loss'\] is NaN, not a finite number"),
    (_rec(metric='"NaN"'), r"models\['xor-relu'\]\['numpy_loss'\] is 'NaN'; metric values "
                           r"must be finite numbers"),
    (_rec(epochs=BIG), r"epochs is 99999999…9999 \(5000 characters\)"),
    (_rec(epochs="1e400"), r"epochs is 1e400, outside"),
    (_rec(epochs=str(10**7)), r"'epochs' must be an int >= 1, at most 1000000, got 10000000"),
    (_rec(env="5"), r"'env' must be a non-empty string, one line .* got 5"),
    (_rec(env='"a\\nb"'), r"'env' must be a non-empty string, one line .* got 'a\\nb'"),
    ('{"env": "e", "epochs": 3, "models": {"m": ' + "[" * 100_000 + "]" * 100_000 + "}}",
     r"not JSON: maximum recursion depth"),
    ('{"env": "e", "epochs": 3, "models": {"m": ' + '{"a":' * 100_000 + "1" + "}" * 100_002,
     r"not JSON: maximum recursion depth"),
], ids=["int-5000-digits", "int-400-digits", "1e400", "NaN", "NaN-string", "epochs-5000-digits",
        "epochs-1e400", "epochs-too-many", "env-number", "env-newline", "deep-list",
        "deep-object"])
def test_drift_record_numbers_name_file_and_field(cli, capsys, tmp_path, text, pattern):
    code = cli(["drift", "--combine", _drift_dir(tmp_path, text)])
    one_line_exit_2(capsys, code, r"drift-py3\.11-bad\.json: not a drift record.*" + pattern)
    assert sorted(os.listdir(tmp_path)) == ["drift-py3.11-bad.json", "drift-py3.11-good.json"]


def test_read_json_keeps_what_a_float64_holds():
    text = ('{"a": 1e-400, "b": -0.0, "c": 1.7976931348623157e308, "d": %d, "e": -%d}'
            % (int(1.7976931348623157e308), 2**64))
    assert fileio.read_json(text) == {"a": 0.0, "b": -0.0, "c": 1.7976931348623157e308,
                                      "d": int(1.7976931348623157e308), "e": -2**64}
    with pytest.raises(fileio.NumberOutOfRange, match=r"^\[0\]\['d'\] is "):
        fileio.read_json('[{"d": %d}]' % (int(1.7976931348623157e308) + 1))


# ── two writers swapping the same directory at the same instant ──────────────────────────────

def _slow(f, seconds):
    def slow(*a, **k):
        try:
            return f(*a, **k)
        finally:
            time.sleep(seconds)
    return slow


def _widened_swap(monkeypatch):
    """``fileio.os`` whose renames, listings and stats sleep after they act: the instant
    between "old set out" and "new set in" (3 ms) and those between the look-ups of the
    target check (0.3 to 1 ms), when the other writer's rename can land, are widened from
    microseconds to milliseconds."""
    real_os = os
    path = types.SimpleNamespace(**{n: getattr(os.path, n) for n in dir(os.path)
                                    if not n.startswith("__")})
    path.lexists = _slow(os.path.lexists, 0.001)

    class SlowOs:
        def __getattr__(self, name):
            return getattr(real_os, name)

        listdir = staticmethod(_slow(os.listdir, 0.0003))
        stat = staticmethod(_slow(os.stat, 0.0003))

        @staticmethod
        def replace(src, dst):
            real_os.replace(src, dst)
            time.sleep(0.003 if ".nn-parity-old." in os.fspath(dst) else 0.0003)

    SlowOs.path = path
    monkeypatch.setattr(fileio, "os", SlowOs())


def _writer(target: str, who: str, barrier: threading.Barrier, outcome: list):
    def fill(tmp):
        for k in range(3):
            Path(tmp, f"{k}.txt").write_text(who)
        os.mkdir(os.path.join(tmp, "img"))
        Path(tmp, "img", "p.txt").write_text(who)

    def run():
        barrier.wait()
        time.sleep(random.uniform(0, 0.004))   # which step meets which varies by round
        try:
            fileio.write_dir_set(target, fill, "race")
            outcome.append((who, "ok"))
        except (ValueError, OSError) as e:
            outcome.append((who, e))
    return threading.Thread(target=run)


def _one_whole_set(target: Path) -> str:
    """The writer whose complete set ``target`` holds; fails on a mix or a partial set."""
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert files == [fileio.MARKER, "0.txt", "1.txt", "2.txt", "img/p.txt"], files
    owners = {(target / f).read_text() for f in files if f != fileio.MARKER}
    assert len(owners) == 1, f"a mix of sets: {owners}"
    return owners.pop()


@pytest.mark.parametrize("existing", [False, True], ids=["new-target", "replacing-a-set"])
def test_two_writers_racing_leave_one_whole_set_and_nothing_else(monkeypatch, tmp_path,
                                                                 existing):
    _widened_swap(monkeypatch)
    target = tmp_path / "out"
    winners, refusals = set(), []
    for _ in range(40):
        if not existing:
            shutil.rmtree(target, ignore_errors=True)
        barrier, outcome = threading.Barrier(2), []
        threads = [_writer(str(target), who, barrier, outcome) for who in ("A", "B")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(outcome) == 2
        winners.add(_one_whole_set(target))
        assert os.listdir(tmp_path) == ["out"], os.listdir(tmp_path)   # no -old, no temp
        for _who, result in outcome:
            if result != "ok":          # allowed: the one-line refusal (exit 2) of a loser
                assert isinstance(result, ValueError) and "\n" not in str(result), result
                assert re.fullmatch(RETRIES_SPENT.format(re.escape(str(target))),
                                    str(result)), result
                refusals.append(result)
    assert len(refusals) < 80 and winners <= {"A", "B"}


RETRIES_SPENT = (r"cannot write {}: other nn-parity runs replaced it \d+ times while this one "
                 r"tried to; this run's files were not kept")


def test_a_writer_that_always_loses_gives_up_in_one_line(monkeypatch, tmp_path, cli, capsys):
    """A competitor whose set lands after every "moved aside": the bounded retries end in
    one line (exit 2 from the CLI), the competitor's set stays whole, nothing else is left."""
    real_os, target = os, tmp_path / "out"
    attempts = []

    class Competitor:
        def __getattr__(self, name):
            return getattr(real_os, name)

        @staticmethod
        def replace(src, dst):
            real_os.replace(src, dst)
            if ".nn-parity-old." in os.fspath(dst):
                attempts.append(dst)
                real_os.mkdir(target)
                Path(target, fileio.MARKER).write_text("{}")
                Path(target, "theirs.txt").write_text("C")

    fileio.write_dir_set(target, lambda tmp: Path(tmp, "mine.txt").write_text("0"), "race")
    monkeypatch.setattr(fileio, "os", Competitor())
    code = cli(["check", "xor-relu", "--steps", "1", "--save", str(target)])
    one_line_exit_2(capsys, code, RETRIES_SPENT.format(re.escape(f"--save {target}")))
    assert len(attempts) == fileio.SWAP_ATTEMPTS
    assert sorted(os.listdir(target)) == [fileio.MARKER, "theirs.txt"]
    assert os.listdir(tmp_path) == ["out"]


def test_a_foreign_directory_landing_mid_swap_is_never_removed(monkeypatch, tmp_path):
    """Someone puts their own directory at the target while a run is swapping: the retry
    refuses to move it aside for good (one line), and it stays, whole, where it was."""
    real_os, target = os, tmp_path / "out"
    placed = []

    class Stranger:
        def __getattr__(self, name):
            return getattr(real_os, name)

        @staticmethod
        def replace(src, dst):
            real_os.replace(src, dst)
            if ".nn-parity-old." in os.fspath(dst) and not placed:
                real_os.mkdir(target)
                Path(target, "thesis.txt").write_text("four years of work")
                placed.append(dst)

    fileio.write_dir_set(target, lambda tmp: Path(tmp, "mine.txt").write_text("0"), "race")
    monkeypatch.setattr(fileio, "os", Stranger())
    with pytest.raises(ValueError, match=r"^cannot write .*out: it became a directory that "
                                         r"nn-parity did not write while this run was "
                                         r"writing; left as it was$"):
        fileio.write_dir_set(target, lambda tmp: Path(tmp, "new.txt").write_text("1"), "race")
    assert os.listdir(target) == ["thesis.txt"]
    assert Path(target, "thesis.txt").read_text() == "four years of work"
    assert os.listdir(tmp_path) == ["out"]
