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

from parity import fileio, transfer, zoo
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
