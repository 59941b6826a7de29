"""parity.tools.checkpoint: bit-exact round trips for every catalogue model, NumPy ↔ torch
interchange through files, one clear ValueError per kind of bad file, atomic writes, and the
``export`` / ``import-check`` commands."""

import argparse
import hashlib
import json
import os
import re
import struct
import zipfile

import numpy as np
import pytest
import safetensors
import safetensors.numpy
import safetensors.torch
import torch

from parity import kinds, transfer
from parity.catalogue import train, zoo
from parity.tolerances import tolerance
from parity.tools import checkpoint as C

MODELS = list(zoo.CATALOGUE)
# models with running statistics (BatchNorm1d, BatchNorm2d): their buffers must survive too
BN_MODELS = [m for m in MODELS if any(kinds.of_spec(i).running_state for i in zoo.get(m).layers)]


def trained_numpy(spec, dtype="float64", seed=1):
    """A NumPy twin off its initial state: seeded init, then one train-mode forward so
    BatchNorm buffers (running stats, num_batches_tracked) are not their defaults."""
    m = spec.build_numpy(seed, dtype)
    x = np.random.default_rng(seed).standard_normal((16, *spec.input_shape())).astype(dtype)
    m.forward(x, training=True)
    return m


def trained_torch(spec, dtype="float64", seed=1):
    t = spec.build_torch(dtype)
    transfer.numpy_to_torch(trained_numpy(spec, dtype, seed), t)
    return t


def assert_bit_identical(a: dict, b: dict):
    """Same keys, dtypes, shapes and bytes (bytes: -0.0 and NaN payloads count too)."""
    assert list(a) == list(b)
    for k, v in a.items():
        assert v.dtype == b[k].dtype and v.shape == b[k].shape, k
        assert v.tobytes() == b[k].tobytes(), k


# ── round trips ────────────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("name", MODELS)
def test_numpy_npz_round_trip_is_bit_exact(name, tmp_path):
    spec = zoo.get(name)
    m = trained_numpy(spec)
    p = tmp_path / "m.npz"
    meta = C.save_numpy(p, m, name)
    assert meta["model"] == name and meta["dtype"] == "float64" and meta["layout"] == "torch"
    assert_bit_identical(C.load_numpy(p, spec).state_dict(), m.state_dict())
    # the file itself holds torch layout: equal to the torch twin's state_dict
    with np.load(p, allow_pickle=False) as f:
        on_disk = {k: f[k] for k in f.files if k != C.META_KEY}
    t = spec.build_torch()
    transfer.numpy_to_torch(m, t)
    assert_bit_identical(on_disk, transfer.torch_state(t))


@pytest.mark.parametrize("name", MODELS)
def test_torch_pt_round_trip_is_bit_exact(name, tmp_path):
    spec = zoo.get(name)
    t = trained_torch(spec)
    p = tmp_path / "m.pt"
    C.save_torch(p, t, name)
    assert_bit_identical(transfer.torch_state(C.load_torch(p, spec)), transfer.torch_state(t))


@pytest.mark.parametrize("name", ["cs231n-2layer", "spiral003", "spiral003-layernorm"])
@pytest.mark.parametrize("fmt", C.FORMATS)
def test_float32_round_trip_keeps_float32(name, fmt, tmp_path):
    spec = zoo.get(name)
    m = trained_numpy(spec, "float32")
    p = tmp_path / f"m.{fmt}"
    C.save(p, m, name, fmt)
    assert C.read_checkpoint(p).meta["dtype"] == "float32"
    assert_bit_identical(C.load_numpy(p, spec).state_dict(), m.state_dict())
    assert C.load_torch(p, spec)[0].weight.dtype == torch.float32


@pytest.mark.parametrize("name", BN_MODELS)
def test_batchnorm_buffers_survive_both_formats(name, tmp_path):
    """The round trips above would pass with default buffers too: make sure these are not."""
    spec = zoo.get(name)
    m = trained_numpy(spec)
    bufs = m.buffers()
    assert any(k.endswith("running_var") and not np.all(v == 1) for k, v in bufs.items())
    assert all(int(v) == 1 for k, v in bufs.items() if k.endswith("num_batches_tracked"))
    for fmt in C.FORMATS:
        C.save(tmp_path / f"m.{fmt}", m, name, fmt)
        t = C.load_torch(tmp_path / f"m.{fmt}", spec)
        assert_bit_identical(C.load_numpy(tmp_path / f"m.{fmt}", spec).buffers(), bufs)
        for k, v in dict(t.named_buffers()).items():
            assert v.numpy().tobytes() == bufs[k].tobytes(), (fmt, k)


# ── interchange: train on one side, load into the other, same predictions ─────────────────────

INTERCHANGE = ["cs231n-2layer", "digits-dropout", "spiral003", "spiral003-layernorm",
               "xor-sigmoid", "spiral004"]


def _max_diff(a_model, b_model, X):
    return float(np.abs(C.predictions(a_model, X) - C.predictions(b_model, X)).max())


@pytest.mark.parametrize("name", INTERCHANGE)
def test_numpy_trained_npz_loads_into_torch_with_identical_predictions(name, tmp_path):
    """The weights arrive bit-identical; predictions differ only by summation order in the two
    sides' matmuls. Measured (float64, 3 epochs, seed 0, every catalogue model, both
    directions): 8.7e-19 (cs231n) … 4.4e-15 (digits, |logit| ≈ 20), atol 1e-12."""
    spec = zoo.get(name)
    _, m = train.run(spec, "numpy", seed=0, epochs=3)
    p = tmp_path / "m.npz"
    C.save_numpy(p, m, name)
    X = spec.data(0).X_test
    t = C.load_any(p, spec, "torch")
    assert_bit_identical(transfer.to_numpy_layout(transfer.torch_state(t), t), m.state_dict())
    _, atol = tolerance("float64", "output")
    assert _max_diff(m, t, X) <= atol
    assert np.array_equal(C.predictions(C.load_any(p, spec, "numpy"), X), m.predict(X))


@pytest.mark.parametrize("name", INTERCHANGE)
def test_torch_trained_pt_loads_into_numpy_with_identical_predictions(name, tmp_path):
    spec = zoo.get(name)
    _, t = train.run(spec, "torch", seed=0, epochs=3)
    p = tmp_path / "m.pt"
    C.save_torch(p, t, name)
    X = spec.data(0).X_test
    m = C.load_any(p, spec, "numpy")
    assert_bit_identical(transfer.to_torch_layout(m.state_dict(), t), transfer.torch_state(t))
    _, atol = tolerance("float64", "output")
    assert _max_diff(m, t, X) <= atol
    assert np.array_equal(C.predictions(C.load_any(p, spec, "torch"), X), C.predictions(t, X))


@pytest.mark.parametrize("impl, fmt, saved_from", [
    ("numpy", "pt", "torch"), ("torch", "npz", "numpy"),     # converted through transfer
    ("numpy", "safetensors", "numpy"), ("torch", "safetensors", "torch"),   # written as is
])
def test_either_twin_saves_in_either_format(impl, fmt, saved_from, tmp_path):
    spec = zoo.get("spiral003")
    model = trained_numpy(spec) if impl == "numpy" else trained_torch(spec)
    C.save(tmp_path / f"m.{fmt}", model, spec.name, fmt)
    assert C.detect_format(tmp_path / f"m.{fmt}") == fmt
    assert C.read_checkpoint(tmp_path / f"m.{fmt}").meta["saved_from"] == saved_from
    assert_bit_identical(C.load_numpy(tmp_path / f"m.{fmt}", spec).state_dict(),
                         trained_numpy(spec).state_dict())


@pytest.mark.parametrize("fmt, name", [("npz", "really-npz.pt"),
                                       ("safetensors", "really-safetensors.npz")])
def test_format_is_read_from_contents_not_name(fmt, name, tmp_path):
    """Writing goes by the extension (``save``); ``save_numpy`` with an explicit format and
    a misleading name is the way to get such a file, and reading sniffs the contents."""
    spec = zoo.get("cs231n-2layer")
    C.save_numpy(tmp_path / name, trained_numpy(spec), spec.name, fmt=fmt)
    assert C.detect_format(tmp_path / name) == fmt
    C.load_torch(tmp_path / name, spec)


# ── safetensors: the torch state_dict as porters exchange it, either twin writes and reads ──

def _st_data(path) -> bytes:
    """The tensor bytes of a .safetensors file (everything after the header)."""
    raw = path.read_bytes()
    return raw[8 + struct.unpack("<Q", raw[:8])[0]:]


@pytest.mark.parametrize("saver", C.IMPLS)
@pytest.mark.parametrize("name", MODELS)
def test_safetensors_round_trip_is_bit_exact(name, saver, tmp_path):
    """Written by either twin (safetensors.numpy / safetensors.torch), read by both, the file
    holds the torch state_dict: its keys, Linear weights (out, in), the same bytes; and plain
    ``safetensors.torch.load_file`` + ``load_state_dict(strict=True)`` — what a porter does,
    no nn-parity code — loads it into the torch twin."""
    spec = zoo.get(name)
    m, t = trained_numpy(spec), trained_torch(spec)          # the same weights and buffers
    p = tmp_path / "m.safetensors"
    C.save(p, m if saver == "numpy" else t, name)
    want = transfer.torch_state(t)
    on_disk = safetensors.numpy.load(p.read_bytes())
    assert_bit_identical({k: on_disk[k] for k in want}, want)
    assert set(on_disk) == set(want)
    assert_bit_identical(transfer.torch_state(C.load_torch(p, spec)), want)
    assert_bit_identical(C.load_numpy(p, spec).state_dict(), m.state_dict())
    assert_bit_identical(C.read_checkpoint(p, spec, via="torch").state,
                         C.read_checkpoint(p, spec, via="numpy").state)
    porter = spec.build_torch()
    porter.load_state_dict(safetensors.torch.load_file(p), strict=True)
    assert_bit_identical(transfer.torch_state(porter), want)


@pytest.mark.parametrize("name", MODELS)
def test_npz_pt_safetensors_chain_is_bit_exact(name, tmp_path):
    """npz → torch → pt → numpy → safetensors → torch → safetensors → numpy → npz: not a bit
    of any array changes; the two twins' .safetensors files hold identical tensor bytes (their
    headers differ in ``saved_from`` only)."""
    spec = zoo.get(name)
    m0 = trained_numpy(spec)
    C.save(tmp_path / "a.npz", m0, name)
    C.save(tmp_path / "b.pt", C.load_torch(tmp_path / "a.npz", spec), name)
    C.save(tmp_path / "c.safetensors", C.load_numpy(tmp_path / "b.pt", spec), name)
    C.save(tmp_path / "d.safetensors", C.load_torch(tmp_path / "c.safetensors", spec), name)
    C.save(tmp_path / "e.npz", C.load_numpy(tmp_path / "d.safetensors", spec), name)
    assert_bit_identical(C.load_numpy(tmp_path / "e.npz", spec).state_dict(), m0.state_dict())
    assert _st_data(tmp_path / "c.safetensors") == _st_data(tmp_path / "d.safetensors")
    metas = [C.read_checkpoint(tmp_path / f"{x}.safetensors").meta for x in "cd"]
    assert [mt.pop("saved_from") for mt in metas] == ["numpy", "torch"]
    assert metas[0] == metas[1]


def test_safetensors_header_names_format_version_and_model(tmp_path):
    """What other tools see (``safe_open(...).metadata()``): str → str entries."""
    p = tmp_path / "m.safetensors"
    meta = C.save(p, trained_numpy(zoo.get(GOOD)), GOOD, extra_meta={"seed": 3})
    with safetensors.safe_open(p, "np") as f:
        md = f.metadata()
    assert (md["format"], md["version"], md["model"]) == (C.FORMAT, str(C.FORMAT_VERSION), GOOD)
    assert json.loads(md[C.ST_RECORD]) == meta == C.read_checkpoint(p).meta
    assert set(json.loads(md[C.ST_DIGESTS])) == {C.META_KEY, *meta["keys"]}


@pytest.mark.parametrize("name", ["cs231n-2layer", "digits-dropout", "spiral003-layernorm"])
@pytest.mark.parametrize("trained_in, loaded_into", [("numpy", "torch"), ("torch", "numpy")])
def test_safetensors_trained_on_one_side_predicts_the_same_on_the_other(name, trained_in,
                                                                        loaded_into, tmp_path):
    """Cross-loading: train one twin, write .safetensors, load the other twin from it. Bound
    and measurement as for npz/pt above (float64 outputs differ by summation order only)."""
    spec = zoo.get(name)
    _, model = train.run(spec, trained_in, seed=0, epochs=3)
    p = tmp_path / "m.safetensors"
    C.save(p, model, name)
    other = C.load_any(p, spec, loaded_into)
    X = spec.data(0).X_test
    _, atol = tolerance("float64", "output")
    assert _max_diff(model, other, X) <= atol


# ── the format comes from the extension when writing ───────────────────────────────────────

@pytest.mark.parametrize("fmt", C.FORMATS)
def test_save_chooses_the_format_by_extension(fmt, tmp_path):
    p = tmp_path / f"M.{fmt.upper()}"                  # any case
    C.save(p, trained_torch(zoo.get(GOOD)), GOOD)
    assert C.format_for_path(p) == C.detect_format(p) == fmt


@pytest.mark.parametrize("name, ext", [("m.bin", ".bin"), ("m", "(none)"),
                                       ("m.npz.part", ".part"), ("m.safetensor", ".safetensor")])
def test_unknown_extension_is_refused_before_writing(name, ext, tmp_path):
    with pytest.raises(ValueError, match=rf": unknown checkpoint extension '{re.escape(ext)}'; "
                                         r"the file name must end in one of \.npz, \.pt, "
                                         r"\.safetensors$"):
        C.save(tmp_path / name, trained_numpy(zoo.get(GOOD)), GOOD)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("saver, fmt", [("numpy", "pt"), ("torch", "npz")])
def test_a_twin_saver_refuses_the_other_sides_format(saver, fmt, tmp_path):
    """save_numpy writes npz/safetensors, save_torch pt/safetensors; ``save`` converts."""
    fn = C.save_numpy if saver == "numpy" else C.save_torch
    model = trained_numpy(zoo.get(GOOD)) if saver == "numpy" else trained_torch(zoo.get(GOOD))
    with pytest.raises(ValueError, match=rf"^save_{saver}: format must be one of .*'{fmt}'$"):
        fn(tmp_path / f"m.{fmt}", model, GOOD, fmt=fmt)
    assert os.listdir(tmp_path) == []


# ── one ValueError line per kind of bad file ─────────────────────────────────────────────────

GOOD = "cs231n-2layer"


def _raw_npz(path, state, meta=None):
    arrays = dict(state)
    if meta is not None:
        arrays[C.META_KEY] = np.array(meta if isinstance(meta, str) else json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _good_parts():
    spec = zoo.get(GOOD)
    t = trained_torch(spec)
    state = transfer.torch_state(t)
    meta = C._meta(spec, "float64", state, "torch", None)
    return state, meta


def _flip_byte_in_member(path, member_suffix, at=40):
    """Flip one byte inside a stored member's data (CRC no longer matches)."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(member_suffix))
    n, m = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    raw[info.header_offset + 30 + n + m + at] ^= 0x40
    path.write_bytes(bytes(raw))


def make_empty(p):
    p.write_bytes(b"")


def make_text(p):
    p.write_text("x1,x2,y\n0.5,0.25,1\n")


def make_truncated_npz(p):
    C.save_numpy(p, trained_numpy(zoo.get(GOOD)), GOOD)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def make_truncated_pt(p):
    C.save_torch(p, trained_torch(zoo.get(GOOD)), GOOD)
    p.write_bytes(p.read_bytes()[:-30])


def make_corrupt_npz(p):
    C.save_numpy(p, trained_numpy(zoo.get(GOOD)), GOOD)
    _flip_byte_in_member(p, "0.weight.npy", at=200)


def make_corrupt_pt(p):
    """torch.load itself would read this silently (no CRC check): we must catch it."""
    C.save_torch(p, trained_torch(zoo.get(GOOD)), GOOD)
    _flip_byte_in_member(p, "data/0")


def make_foreign_zip(p):
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("notes.txt", "hello")


def make_npz_without_meta(p):
    _raw_npz(p, _good_parts()[0])


def make_npz_with_pickle(p):
    state, meta = _good_parts()
    state["0.weight"] = np.array([{"evil": 1}], dtype=object)
    with open(p, "wb") as f:
        np.savez(f, **state, **{C.META_KEY: np.array(json.dumps(meta))})


def make_bad_json(p):
    _raw_npz(p, _good_parts()[0], "{not json")


def make_future_version(p):
    state, meta = _good_parts()
    _raw_npz(p, state, {**meta, "version": 99})


def make_plain_state_dict_pt(p):
    torch.save(trained_torch(zoo.get(GOOD)).state_dict(), p)


# The same three corruptions of a good state, written by either raw writer (npz, safetensors).
def _drop_bias(state):
    del state["2.bias"]


def _numpy_layout(state):
    state["0.weight"] = np.ascontiguousarray(state["0.weight"].T)


def _float32_bias(state):
    state["2.bias"] = state["2.bias"].astype(np.float32)


def _corrupted(change, write):
    """A maker ``f(path)``: the good parts with ``change`` applied, written by ``write``."""
    def make(p):
        state, meta = _good_parts()
        change(state)
        write(p, state, meta)
    return make


def make_pt_with_object(p):
    torch.save({"meta": argparse.Namespace(a=1), "state_dict": {}}, p)


def make_unexpected_key(p):
    state, meta = _good_parts()
    state["5.weight"] = np.zeros((3, 3))
    _raw_npz(p, state, meta)


def make_wrong_dtype_pt(p):
    t = trained_torch(zoo.get(GOOD))
    sd = {k: v.clone() for k, v in t.state_dict().items()}
    sd["0.weight"] = sd["0.weight"].to(torch.float32)
    torch.save({"meta": _good_parts()[1], "state_dict": sd}, p)


def make_other_model(p):
    """blog-2layer has exactly cs231n-2layer's shapes: only the metadata tells them apart."""
    C.save_numpy(p, trained_numpy(zoo.get("blog-2layer")), "blog-2layer")


def make_other_architecture(p):
    C.save_torch(p, trained_torch(zoo.get("xor-relu")), "xor-relu")


# .safetensors: the same kinds of bad file, written the way each would arise
def _raw_st(p, state, meta, **header):
    """A .safetensors file of ``state`` with valid digests; ``header`` overrides entries of
    its __metadata__ (so one field can be made inconsistent at a time)."""
    md = {**C._st_header_meta(meta, state), **header}
    p.write_bytes(safetensors.numpy.save(state, md))


def _st_header_text(p) -> tuple[bytes, str]:
    raw = p.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return raw[8 + n:], raw[8:8 + n].decode()


def _st_with_header(p, data: bytes, header: str):
    h = header.encode()
    p.write_bytes(struct.pack("<Q", len(h)) + h + data)


def make_good_st(p):
    C.save_numpy(p, trained_numpy(zoo.get(GOOD)), GOOD, fmt="safetensors")


def make_truncated_st_data(p):
    make_good_st(p)
    p.write_bytes(p.read_bytes()[:-30])


def make_truncated_st_header(p):
    make_good_st(p)
    p.write_bytes(p.read_bytes()[:8 + 100])


def make_garbage_st(p):
    p.write_bytes(struct.pack("<Q", 24) + b"{garbage, not json at al" + bytes(64))


def make_huge_header_st(p):
    p.write_bytes(struct.pack("<Q", 1 << 40) + b'{"__metadata__":{}}')


def make_plain_st(p):
    """What a porter's ``save_file(model.state_dict())`` gives: no nn-parity record."""
    p.write_bytes(safetensors.torch.save(trained_torch(zoo.get(GOOD)).state_dict(),
                                         {"format": "pt"}))


def make_corrupt_st(p):
    make_good_st(p)
    data, header = _st_header_text(p)
    start = json.loads(header)["0.weight"]["data_offsets"][0]
    data = bytearray(data)
    data[start + 5] ^= 0x40
    _st_with_header(p, bytes(data), header)


def make_corrupt_st_record(p):
    state, meta = _good_parts()
    md = C._st_header_meta(meta, state)
    _raw_st(p, state, meta, **{C.ST_RECORD: md[C.ST_RECORD].replace('"parameters": 603',
                                                                    '"parameters": 604')})


def make_st_without_digests(p):
    make_good_st(p)
    data, header = _st_header_text(p)
    h = json.loads(header)
    del h["__metadata__"][C.ST_DIGESTS]
    _st_with_header(p, data, json.dumps(h))


def make_st_duplicate_key(p):
    make_good_st(p)
    data, header = _st_header_text(p)
    entry = re.search(r'"2\.bias":\{[^}]*\}', header).group(0)
    _st_with_header(p, data, header.rstrip()[:-1] + "," + entry + "}")


def make_st_header_model_mismatch(p):
    state, meta = _good_parts()
    _raw_st(p, state, meta, model="blog-2layer")


def make_st_future_version(p):
    state, meta = _good_parts()
    _raw_st(p, state, {**meta, "version": 99}, version="99")


def make_st_other_model(p):
    C.save_numpy(p, trained_numpy(zoo.get("blog-2layer")), "blog-2layer", fmt="safetensors")


def make_st_nan(p):
    state, meta = _good_parts()
    state["2.weight"][1, 2] = np.nan
    _raw_st(p, state, meta)


def make_st_bfloat16(p):
    """A dtype NumPy has no name for: safetensors.numpy cannot read it, torch can (and the
    checkpoint check refuses it)."""
    t = trained_torch(zoo.get(GOOD))
    sd = {k: v.clone() for k, v in t.state_dict().items()}
    sd["0.weight"] = sd["0.weight"].to(torch.bfloat16)
    state, meta = _good_parts()
    md = C._st_header_meta(meta, state)
    p.write_bytes(safetensors.torch.save(sd, md))


ST_BAD_FILES = [
    ("st-truncated-data", make_truncated_st_data, "safetensors",
     r"truncated safetensors file: its tensors need 4824 bytes of data, 4794 follow the "
     r"header$"),
    ("st-truncated-header", make_truncated_st_header, "safetensors",
     r"truncated safetensors file: its header declares \d+ bytes, 100 follow$"),
    ("st-garbage", make_garbage_st, "safetensors",
     r"safetensors header is not valid JSON \(Expecting property name"),
    ("st-huge-header", make_huge_header_st, "safetensors",
     r"safetensors header declares 1099511627776 bytes, more than the \d+ bytes allowed"),
    ("st-plain-state-dict", make_plain_st, "safetensors",
     r"a safetensors file but not an nn-parity checkpoint: no 'nn-parity' record in its "
     r"__metadata__$"),
    ("st-corrupt-tensor", make_corrupt_st, "safetensors",
     r"corrupt checkpoint: tensor '0\.weight' fails its SHA-256 check$"),
    ("st-corrupt-record", make_corrupt_st_record, "safetensors",
     r"corrupt checkpoint: the metadata record fails its SHA-256 check$"),
    ("st-without-digests", make_st_without_digests, "safetensors",
     r"no 'sha256' digests in the safetensors __metadata__$"),
    ("st-duplicate-key", make_st_duplicate_key, "safetensors",
     r"safetensors header names key '2\.bias' twice$"),
    ("st-header-disagrees-with-record", make_st_header_model_mismatch, "safetensors",
     r"safetensors header field 'model' is 'blog-2layer', the record says 'cs231n-2layer'$"),
    ("st-missing-key", _corrupted(_drop_bias, _raw_st), "safetensors",
     r"missing keys \['2\.bias'\]$"),
    ("st-numpy-layout", _corrupted(_numpy_layout, _raw_st), "safetensors",
     r"0\.weight: expected shape \(100, 2\), got \(2, 100\) \(NumPy layout\? "),
    ("st-wrong-dtype", _corrupted(_float32_bias, _raw_st), "safetensors",
     r"2\.bias: expected dtype float64, got float32$"),
    ("st-future-version", make_st_future_version, "safetensors",
     r"format version 99; .*reads versions 1\.\.1"),
    ("st-other-model", make_st_other_model, "safetensors",
     r"checkpoint of model 'blog-2layer', not 'cs231n-2layer'$"),
    ("st-nan", make_st_nan, "safetensors",
     r"2\.weight holds 1 non-finite value\(s\) \(first nan at index \(1, 2\)\); refusing to "
     r"load it$"),
    # safetensors.numpy has no bfloat16; safetensors.torch reads it, our reader refuses it
    ("st-bfloat16", make_st_bfloat16, "safetensors",
     r"unreadable safetensors file \(.*BF16|0\.weight: unsupported dtype torch\.bfloat16$"),
]


BAD_FILES = [
    # id, maker, file suffix, message regex (after the path)
    ("empty", make_empty, "npz", r"empty file \(0 bytes\)"),
    ("text-not-a-checkpoint", make_text, "npz", r"not a checkpoint .*starts with b'x1,x'"),
    ("truncated-npz", make_truncated_npz, "npz", r"truncated or damaged zip archive"),
    ("truncated-pt", make_truncated_pt, "pt", r"truncated or damaged zip archive"),
    ("corrupt-npz", make_corrupt_npz, "npz",
     r"corrupt checkpoint: member '0\.weight\.npy' fails its CRC-32 check$"),
    ("corrupt-pt", make_corrupt_pt, "pt",
     r"corrupt checkpoint: member 'archive/data/0' fails its CRC-32 check$"),
    ("zip-not-npz-or-pt", make_foreign_zip, "npz", r"neither \.npz nor torch \.pt .*notes\.txt"),
    ("npz-without-meta", make_npz_without_meta, "npz", r"no '__meta__' entry"),
    ("npz-pickled-array", make_npz_with_pickle, "npz", r"pickled object array .*'0\.weight'"),
    ("bad-meta-json", make_bad_json, "npz", r"metadata is not valid JSON"),
    ("future-version", make_future_version, "npz", r"format version 99; .*reads versions 1\.\.1"),
    ("plain-state-dict-pt", make_plain_state_dict_pt, "pt",
     (r"not an nn-parity checkpoint: expected a dict with keys \['meta', 'state_dict'\], got "
      r"\['0\.bias', '0\.weight', '2\.bias', '2\.weight'\]$")),
    ("pt-with-pickled-object", make_pt_with_object, "pt",
     r"torch\.load\(weights_only=True\) refused it \(UnpicklingError: .*Unsupported global"),
    ("missing-key", _corrupted(_drop_bias, _raw_npz), "npz", r"missing keys \['2\.bias'\]$"),
    ("unexpected-key", make_unexpected_key, "npz", r"unexpected keys \['5\.weight'\]$"),
    ("wrong-shape-numpy-layout", _corrupted(_numpy_layout, _raw_npz), "npz",
     r"0\.weight: expected shape \(100, 2\), got \(2, 100\) \(NumPy layout\? "),
    ("wrong-dtype-npz", _corrupted(_float32_bias, _raw_npz), "npz",
     r"2\.bias: expected dtype float64, got float32$"),
    ("wrong-dtype-pt", make_wrong_dtype_pt, "pt",
     r"0\.weight: expected dtype float64, got float32$"),
    ("other-model-same-shapes", make_other_model, "npz",
     r"checkpoint of model 'blog-2layer', not 'cs231n-2layer'$"),
    ("other-model-other-shapes", make_other_architecture, "pt",
     r"checkpoint of model 'xor-relu', not 'cs231n-2layer'$"),
    *ST_BAD_FILES,
]


@pytest.mark.parametrize("impl", C.IMPLS)
@pytest.mark.parametrize("maker, suffix, pattern",
                         [pytest.param(*c[1:], id=c[0]) for c in BAD_FILES])
def test_bad_checkpoint_is_one_clear_value_error(maker, suffix, pattern, impl, tmp_path):
    p = tmp_path / f"ck.{suffix}"
    maker(p)
    with pytest.raises(ValueError) as info:
        C.load_any(p, GOOD, impl)
    msg = str(info.value)
    assert "\n" not in msg and "Traceback" not in msg and len(msg) < 400, msg
    assert msg.startswith(f"{p}: "), msg
    assert re.search(pattern, msg), msg
    assert info.value.__suppress_context__ or info.value.__context__ is None


def test_requested_dtype_must_match(tmp_path):
    p = tmp_path / "m.npz"
    C.save_numpy(p, trained_numpy(zoo.get(GOOD)), GOOD)
    with pytest.raises(ValueError, match=r"holds float64 weights, requested float32 "
                                         r"\(no silent casts\)$"):
        C.load_numpy(p, GOOD, dtype="float32")


def test_missing_file_stays_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        C.load_any(tmp_path / "nope.npz", GOOD, "numpy")


@pytest.mark.parametrize("saver", ["numpy", "torch"])
def test_saving_a_model_under_the_wrong_name_is_refused(saver, tmp_path):
    spec = zoo.get("xor-relu")
    model = trained_numpy(spec) if saver == "numpy" else trained_torch(spec)
    fn = C.save_numpy if saver == "numpy" else C.save_torch
    pattern = (rf"^save_{saver}: the model is not a 'cs231n-2layer' twin: "
               r"0\.weight: expected shape \(100, 2\), got \(8, 2\)")
    with pytest.raises(ValueError, match=pattern):
        fn(tmp_path / "m", model, GOOD)
    assert os.listdir(tmp_path) == []


# ── atomic writes ────────────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("fmt", C.FORMATS)
def test_failed_replace_keeps_old_file_and_leaves_no_temp(fmt, tmp_path, monkeypatch):
    p = tmp_path / f"m.{fmt}"
    C.save(p, trained_numpy(zoo.get(GOOD), seed=1), GOOD, fmt)
    before = p.read_bytes()

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="No space left"):
        C.save(p, trained_numpy(zoo.get(GOOD), seed=2), GOOD, fmt)
    monkeypatch.undo()
    assert p.read_bytes() == before
    assert os.listdir(tmp_path) == [p.name]
    assert_bit_identical(C.load_numpy(p, GOOD).state_dict(),
                         trained_numpy(zoo.get(GOOD), seed=1).state_dict())


@pytest.mark.parametrize("fmt", ["npz", "pt"])
def test_failure_mid_write_leaves_nothing(fmt, tmp_path, monkeypatch):
    """A write that dies half-way (disk full) leaves neither the target nor a temp file.
    (.safetensors is serialized to bytes first: see the fsync case below.)"""
    def half_then_fail(f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", lambda f, **arrays: half_then_fail(f))
    monkeypatch.setattr(torch, "save", lambda obj, f: half_then_fail(f))
    with pytest.raises(OSError):
        C.save(tmp_path / f"m.{fmt}", trained_numpy(zoo.get(GOOD)), GOOD, fmt)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("fmt", C.FORMATS)
def test_failure_after_the_bytes_are_written_leaves_nothing(fmt, tmp_path, monkeypatch):
    """Every byte is in the temp file, then fsync fails (EIO): no target, no temp file."""
    def eio(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", eio)
    with pytest.raises(OSError, match="Input/output error"):
        C.save(tmp_path / f"m.{fmt}", trained_numpy(zoo.get(GOOD)), GOOD)
    assert os.listdir(tmp_path) == []


# ── CLI: export / import-check ──────────────────────────────────────────────────────────────



@pytest.mark.parametrize("impl, fmt", [("numpy", "npz"), ("torch", "pt"), ("numpy", "pt"),
                                       ("numpy", "safetensors"), ("torch", "safetensors")])
def test_cli_export_then_import_check(cli, capsys, tmp_path, impl, fmt):
    p = str(tmp_path / f"m.{fmt}")
    assert cli(["export", "cs231n-2layer", "--impl", impl, "--out", p, "--epochs", "20",
                "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {p} ({fmt}, " in out
    meta = C.read_checkpoint(p).meta
    assert (meta["trained_with"], meta["seed"], meta["epochs"]) == (impl, 2, 20)
    assert cli(["import-check", "cs231n-2layer", p, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["passed"] and r["seed"] == 2 and r["samples"] == 300
    assert r["max_abs_diff"] <= tolerance("float64", "output")[1]
    assert r["labels_agree"] == 300 and r["accuracy_numpy"] == r["accuracy_torch"]
    assert cli(["import-check", "cs231n-2layer", p]) == 0
    assert re.search(r"max \|numpy - torch\| = \d\.\d{3}e[-+]\d+.*: identical",
                     capsys.readouterr().out)


def test_cli_import_check_of_another_model_is_exit_2(cli, capsys, tmp_path):
    p = tmp_path / "m.npz"
    C.save_numpy(p, trained_numpy(zoo.get("blog-2layer")), "blog-2layer")
    assert cli(["import-check", "cs231n-2layer", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert re.search(r"checkpoint of model 'blog-2layer', not 'cs231n-2layer'", err)


def test_cli_export_format_must_match_extension(cli, capsys, tmp_path):
    assert cli(["export", "cs231n-2layer", "--impl", "numpy", "--out",
                str(tmp_path / "m.pt"), "--format", "npz"]) == 2
    assert re.search(r"ends in \.pt but --format is npz", capsys.readouterr().err)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("command", ["export", "import-check"])
def test_cli_help_explains_every_option(cli, capsys, command):
    from parity import cli as cli_mod
    p = cli_mod.build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    actions = [a for a in sub.choices[command]._actions if a.dest != "help"]
    assert all(a.help and len(a.help) > 10 for a in actions), [a.dest for a in actions]
    assert cli([command, "--help"]) == 0
    out = capsys.readouterr().out
    for a in actions:
        assert (a.option_strings[0] if a.option_strings else a.metavar or a.dest) in out


@pytest.mark.parametrize("fmt", C.FORMATS)
def test_cli_export_json_says_what_was_written(cli, capsys, tmp_path, fmt):
    """stdout is one JSON object: path, format, size, the file's SHA-256, every key."""
    p = tmp_path / f"m.{fmt}"
    assert cli(["export", GOOD, "--impl", "torch", "--out", str(p), "--epochs", "2",
                "--seed", "1", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["model"], r["path"], r["format"], r["layout"]) == (GOOD, str(p), fmt, "torch")
    assert r["bytes"] == p.stat().st_size
    assert r["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
    ck = C.read_checkpoint(p, GOOD)
    assert r["keys"] == {k: {"dtype": v.dtype.name, "shape": list(v.shape)}
                         for k, v in ck.state.items()}
    assert list(r["keys"]) == list(ck.state)
    assert (r["trained_with"], r["seed"], r["epochs"]) == ("torch", 1, 2)


def test_cli_export_unknown_extension_is_exit_2_before_training(cli, capsys, tmp_path,
                                                                monkeypatch):
    from parity.catalogue import train as train_mod

    def must_not_train(*a, **k):
        raise AssertionError("trained before the --out extension was checked")

    monkeypatch.setattr(train_mod, "run", must_not_train)
    assert cli(["export", GOOD, "--impl", "numpy", "--out", str(tmp_path / "m.bin")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert re.search(r"--out .*m\.bin: unknown checkpoint extension '\.bin'; the file name "
                     r"must end in one of \.npz, \.pt, \.safetensors$", err.strip())
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("maker, pattern", [
    (make_truncated_st_data, r"truncated safetensors file"),
    (make_garbage_st, r"safetensors header is not valid JSON"),
    (make_corrupt_st, r"tensor '0\.weight' fails its SHA-256 check"),
    (make_plain_st, r"not an nn-parity checkpoint"),
], ids=["truncated", "garbage", "corrupt", "plain-state-dict"])
def test_cli_import_check_of_a_bad_safetensors_is_exit_2(cli, capsys, tmp_path, maker,
                                                         pattern):
    p = tmp_path / "m.safetensors"
    maker(p)
    assert cli(["import-check", GOOD, str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert re.search(pattern, err), err


# ── a member over its own key's bound, the archive within every other bound ──────────────────

def test_one_member_over_its_own_bound_is_refused_naming_it(tmp_path, monkeypatch):
    """``2.bias`` (3 floats: 24 bytes + an .npy header) holding 1000 floats: the member is
    within what the whole model can hold (the archive-wide bound of phase one) and the file
    within its size bound, so only the per-key check of the model's shapes can refuse it —
    before it is inflated, in one line naming the member."""
    state, meta = _good_parts()
    state["2.bias"] = np.zeros(1000)
    p = tmp_path / "ck.npz"
    _raw_npz(p, state, meta)
    bounds = C._bounds_of(zoo.get(GOOD))
    with zipfile.ZipFile(p) as z:
        sizes = {i.filename: i.file_size for i in z.infolist()}
    assert sizes["2.bias.npy"] > bounds.per_key["2.bias"]
    arrays = sum(s for n, s in sizes.items() if n != f"{C.META_KEY}.npy")
    assert arrays <= bounds.total and p.stat().st_size <= bounds.file_bytes
    read, real_read = [], C._read_member
    monkeypatch.setattr(C, "_read_member", lambda path, z, name: (read.append(name),
                                                                  real_read(path, z, name))[1])
    for impl in C.IMPLS:
        with pytest.raises(ValueError) as info:
            C.load_any(p, GOOD, impl)
        assert "2.bias.npy" not in read           # refused before it was inflated
        msg = str(info.value)
        assert "\n" not in msg and msg.startswith(f"{p}: "), msg
        assert re.search(rf"member '2\.bias\.npy' declares {sizes['2.bias.npy']} bytes "
                         rf"uncompressed, more than the {bounds.per_key['2.bias']} bytes "
                         rf"'2\.bias' can hold in a 'cs231n-2layer' checkpoint; refusing to "
                         rf"decompress it$", msg), msg
