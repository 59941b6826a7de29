"""Checkpoints of either twin, readable by either twin.

One layout on disk for every format: the torch ``state_dict`` (keys ``"0.weight"``,
``"1.running_var"``, arrays in torch layout — Linear weight ``(out, in)``, what people porting
a model expect) plus a small JSON metadata record (format version, model name, dtype, layer
summary, how it was trained).

    .npz          ``np.savez``: one ``.npy`` member per state_dict key, and ``__meta__``: a
                  0-d unicode array holding the JSON. No pickles: read with
                  ``allow_pickle=False``.
    .pt           ``torch.save({"meta": {...}, "state_dict": {key: tensor}})``, read with
                  ``weights_only=True``.
    .safetensors  one tensor per state_dict key (written and read through
                  ``safetensors.numpy`` by the NumPy twin, ``safetensors.torch`` by the torch
                  twin: the same bytes); the header's ``__metadata__`` holds ``format``,
                  ``version`` and ``model`` in plain view, the JSON record (``nn-parity``)
                  and SHA-256 digests of the record and of every tensor (``sha256``) —
                  safetensors has no checksum, and a flipped bit must not load silently.

So a model trained in NumPy loads into torch (and back) through ``parity.transfer`` — the only
place that transposes — and predicts the same numbers. A file is *written* in the format its
extension names (``format_for_path``; any other extension is an error) and *read* in the format
its contents show, whatever its name.

Reading is bounded before anything is inflated (``parity.fileio``): only a regular file is read
(a FIFO or ``/dev/zero`` is refused at once), read once, no larger than the model can need; each
zip member's *declared* uncompressed size is checked against the model's shapes (× 8 bytes,
plus an .npy header) from the central directory alone, so a 1.6 MB file declaring 1.6 GB is
refused in milliseconds, and zipfile never inflates past a declared size; a safetensors
header's declared length is checked before it is parsed. ``import-check`` reads the file once
for both twins.

Every problem with a file is a ``ValueError`` with one line naming the file and what differs:
empty, not a checkpoint, truncated, corrupt (a CRC-32 or SHA-256 mismatch — checked for every
format, since ``torch.load`` does not verify CRCs and loads a bit-flipped file silently), too
large, missing or hostile metadata (not an object, nested too deeply, a key named twice, a
bool version, a fractional seed, a NaN/Infinity token or a number no float64 holds —
``1e400``, a 5000-digit integer — named by its field), another model's checkpoint,
missing/unexpected keys, wrong shapes or dtypes, a meta-device, nested or sparse tensor,
NaN/Inf weights. File-system problems (no such file, permission denied) stay ``OSError``.
Writes are atomic (``parity.fileio.atomic_write``): a temp file in the target directory, ``fsync``,
``os.replace``; on any failure the temp file is removed and a previous file at the path is
left untouched; a device or FIFO is never replaced.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from parity import kinds, reference, transfer
from parity.catalogue.spec import ModelSpec
from parity.dtypes import DTYPES
from parity.extras import require
from parity.fileio import (
    NumberOutOfRange,
    atomic_write,
    atomic_write_bytes,
    check_file_target,
    json_text,
    open_zip,
    read_json,
    read_regular,
)
from parity.tools.usermodel import UserModel
from parity.twins import IMPLS, predict

AnySpec = ModelSpec | UserModel     # a catalogue model, or your own (file.py:function)

FORMAT = "nn-parity-checkpoint"
FORMAT_VERSION = 1
META_KEY = "__meta__"
FORMATS = ("npz", "pt", "safetensors")     # also the file extensions that choose them
ST_RECORD, ST_DIGESTS = "nn-parity", "sha256"   # safetensors __metadata__ entries
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class Checkpoint:
    """What a file holds: ``fmt`` (``npz`` | ``pt`` | ``safetensors``), ``meta`` (the JSON
    record) and ``state`` (state_dict key → NumPy array, torch layout)."""

    path: str
    fmt: str
    meta: dict
    state: dict[str, np.ndarray]


# ---- helpers ----------------------------------------------------------------------------------

def _spec(spec: AnySpec | str) -> AnySpec:
    if isinstance(spec, AnySpec):
        return spec
    from parity.catalogue import zoo
    return zoo.get(spec)


def _one_line(e: BaseException) -> str:
    """One line of an exception's message (torch and pickle errors run to paragraphs): the
    ``WeightsUnpickler error:`` sentence when there is one, else the first line."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    pick = next((ln for ln in lines if ln.startswith("WeightsUnpickler error:")),
                lines[0] if lines else "")
    pick = re.sub(r"\x1b\[[0-9;]*m", "", pick).split(". ")[0].rstrip(".")
    return f"{type(e).__name__}: {pick}" if pick else type(e).__name__


def _model_dtype(state: dict[str, np.ndarray], what: str) -> str:
    """The floating dtype shared by all float arrays of a state (``float64`` | ``float32``)."""
    dts = sorted({v.dtype.name for v in state.values() if np.issubdtype(v.dtype, np.floating)})
    if len(dts) != 1 or dts[0] not in DTYPES:
        raise ValueError(f"{what}: expected all floating arrays to be one of {DTYPES}, got {dts}")
    return dts[0]


def _expected_state(spec: AnySpec, dtype: str) -> tuple[dict[str, np.ndarray], nn.Sequential]:
    """The torch twin's state_dict (torch layout, as arrays) — the shapes/dtypes a checkpoint of
    ``spec`` at ``dtype`` must have — and the twin itself (for ``parity.transfer``)."""
    t_model = spec.build_torch(dtype)
    return transfer.torch_state(t_model), t_model


def _check_state(state: dict[str, np.ndarray], expected: dict[str, np.ndarray],
                 where: str) -> None:
    """Same keys, shapes and dtypes, else one ValueError line naming every difference."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = ([f"missing keys {missing}"] if missing else []) + (
            [f"unexpected keys {unexpected}"] if unexpected else [])
        raise ValueError(f"{where}: {', '.join(parts)}")
    problems = []
    for k, want in expected.items():
        got = state[k]
        if got.shape != want.shape:
            hint = " (NumPy layout? checkpoints hold torch layout)" if (
                got.ndim == 2 and got.shape == want.shape[::-1]) else ""
            problems.append(f"{k}: expected shape {want.shape}, got {got.shape}{hint}")
        elif got.dtype != want.dtype:
            problems.append(f"{k}: expected dtype {want.dtype}, got {got.dtype}")
    if problems:
        raise ValueError(f"{where}: {'; '.join(problems)}")


def _meta(spec: AnySpec, dtype: str, state: dict, saved_from: str, extra: dict | None) -> dict:
    meta = {
        "format": FORMAT, "version": FORMAT_VERSION, "model": spec.name, "dtype": dtype,
        "layout": "torch", "layers": spec.layer_summary(), "parameters": spec.num_parameters(),
        "keys": {k: [v.dtype.name, list(v.shape)] for k, v in state.items()},
        "saved_from": saved_from, "numpy": np.__version__, "torch": torch.__version__,
    }
    meta.update(extra or {})
    # plain JSON types only (torch.__version__ is a str subclass that weights_only refuses),
    # non-finite numbers as strings (fileio.json_text: the record is strict JSON); fails
    # before touching the disk if ``extra`` is not JSON-serializable
    return json.loads(json_text(meta))


# ---- save ---------------------------------------------------------------------------------------

def _st_digests(record: str, state: dict[str, np.ndarray]) -> dict[str, str]:
    """SHA-256 of the JSON record (``__meta__``) and of each tensor: its dtype name, shape and
    little-endian C-order bytes. safetensors has no checksum of its own; this is what the
    zip formats' CRC-32 is to them, and it covers the record too."""
    out = {META_KEY: hashlib.sha256(record.encode("utf-8")).hexdigest()}
    for k, v in state.items():
        h = hashlib.sha256(json.dumps([v.dtype.name, list(v.shape)]).encode("ascii"))
        h.update(v.astype(v.dtype.newbyteorder("<"), copy=False).tobytes(order="C"))
        out[k] = h.hexdigest()
    return out


def _st_header_meta(meta: dict, state: dict[str, np.ndarray]) -> dict[str, str]:
    """The safetensors ``__metadata__`` (str → str): format, version and model in plain view
    for other tools, the whole JSON record, and the SHA-256 digests (``_st_digests``)."""
    record = json_text(meta)
    return {"format": FORMAT, "version": str(meta["version"]), "model": meta["model"],
            ST_RECORD: record, ST_DIGESTS: json_text(_st_digests(record, state))}


def _saved(spec: AnySpec, state: dict[str, np.ndarray], saved_from: str,
           extra_meta: dict | None) -> dict:
    """Checks shared by both savers (``state``: torch layout); returns the metadata."""
    dtype = _model_dtype(state, f"save_{saved_from} {spec.name}")
    expected, _ = _expected_state(spec, dtype)
    _check_state(state, expected, f"save_{saved_from}: the model is not a {spec.name!r} twin")
    _first_nonfinite(f"save_{saved_from} {spec.name}", state, "save")
    return _meta(spec, dtype, state, saved_from, extra_meta)


def _safetensors(flavour: str):
    """``safetensors.numpy`` or ``safetensors.torch``, imported on first use: the package is
    the 'safetensors' extra (parity.extras), needed only for that format."""
    import importlib
    require("safetensors")
    return importlib.import_module(f"safetensors.{flavour}")


def _check_fmt(fmt: str, allowed: tuple[str, ...], who: str) -> None:
    if fmt not in allowed:
        raise ValueError(f"{who}: format must be one of {allowed}, got {fmt!r}")


def save_numpy(path: str, np_model: reference.Sequential, spec_name: str | AnySpec, *,
               fmt: str = "npz", extra_meta: dict | None = None) -> dict:
    """Write ``np_model`` (a twin of catalogue model ``spec_name``) in torch layout (Linear
    weights transposed by ``parity.transfer``): ``fmt="npz"`` — state_dict keys → arrays plus
    ``__meta__`` (0-d unicode array of JSON); ``fmt="safetensors"`` — through
    ``safetensors.numpy``, the record and digests in the header. Returns the metadata."""
    _check_fmt(fmt, ("npz", "safetensors"), "save_numpy")
    spec = _spec(spec_name)
    np_state = np_model.state_dict()
    t_model = spec.build_torch(_model_dtype(np_state, f"save_numpy {spec.name}"))
    # C order: safetensors.numpy writes an array's memory as is, whatever its strides
    # (a transposed view would be written untransposed); ascontiguousarray would make 0-d 1-d
    state = {k: v if v.flags.c_contiguous else v.copy(order="C")
             for k, v in transfer.to_torch_layout(np_state, t_model).items()}
    meta = _saved(spec, state, "numpy", extra_meta)
    if fmt == "safetensors":
        atomic_write_bytes(path, _safetensors("numpy").save(state, _st_header_meta(meta, state)))
    else:
        arrays = {**state, META_KEY: np.array(json_text(meta))}
        atomic_write(path, lambda f: np.savez(f, **arrays))
    return meta


def save_torch(path: str, t_model: nn.Module, spec_name: str | AnySpec, *,
               fmt: str = "pt", extra_meta: dict | None = None) -> dict:
    """Write ``t_model`` (a twin of ``spec_name``): ``fmt="pt"`` —
    ``torch.save({"meta": {...}, "state_dict": {key: tensor}})`` (detached CPU copies);
    ``fmt="safetensors"`` — through ``safetensors.torch``, the record and digests in the
    header. Returns the metadata written."""
    _check_fmt(fmt, ("pt", "safetensors"), "save_torch")
    spec = _spec(spec_name)
    state = transfer.torch_state(t_model)
    meta = _saved(spec, state, "torch", extra_meta)
    tensors = {k: torch.from_numpy(v).contiguous() for k, v in state.items()}
    if fmt == "safetensors":
        atomic_write_bytes(path, _safetensors("torch").save(tensors, _st_header_meta(meta, state)))
    else:
        payload = {"meta": meta, "state_dict": tensors}
        atomic_write(path, lambda f: torch.save(payload, f))
    return meta


def format_for_path(path) -> str:
    """The checkpoint format a file name asks for, by its extension (``.npz`` | ``.pt`` |
    ``.safetensors``, any case); ValueError for any other."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext.lstrip(".") not in FORMATS:
        raise ValueError(f"{path}: unknown checkpoint extension {ext or '(none)'!r}; the file "
                         f"name must end in one of {', '.join('.' + f for f in FORMATS)}")
    return ext.lstrip(".")


def save(path: str, model, spec_name: str | AnySpec, fmt: str | None = None, *,
         extra_meta: dict | None = None) -> dict:
    """Save either twin in any format (``fmt``: ``npz`` | ``pt`` | ``safetensors``; default:
    from the extension, ``format_for_path``), converting through ``parity.transfer`` when the
    format is the other side's (``.npz`` is NumPy's, ``.pt`` torch's; either side writes
    ``.safetensors`` itself)."""
    fmt = format_for_path(path) if fmt is None else fmt
    _check_fmt(fmt, FORMATS, "save")
    spec = _spec(spec_name)
    if isinstance(model, nn.Module) and fmt == "npz":
        np_model = spec.build_numpy(0, _model_dtype(transfer.torch_state(model), "save"))
        transfer.torch_to_numpy(model, np_model)
        model = np_model
    elif isinstance(model, reference.Sequential) and fmt == "pt":
        t_model = spec.build_torch(_model_dtype(model.state_dict(), "save"))
        transfer.numpy_to_torch(model, t_model)
        model = t_model
    if isinstance(model, reference.Sequential):
        return save_numpy(path, model, spec, fmt=fmt, extra_meta=extra_meta)
    if isinstance(model, nn.Module):
        return save_torch(path, model, spec, fmt=fmt, extra_meta=extra_meta)
    raise TypeError(f"save: model must be a reference.Sequential or torch.nn.Sequential, "
                    f"got {type(model).__name__}")


# ---- read ---------------------------------------------------------------------------------------
# A checkpoint is judged before it is inflated: the file must be a regular file no larger than
# the model can need, and each zip member's *declared* uncompressed size must fit the model's
# expected arrays (shape × 8 bytes + an .npy header) before any byte of it is decompressed.
META_BYTES = 1 << 20          # __meta__.npy / data.pkl: the JSON record is ~1 KB
NPY_HEADER_BYTES = 4096       # an .npy header is 128 bytes for these arrays (v1: < 64 KiB)
SMALL_MEMBER_BYTES = 4096     # .pt bookkeeping members: version, byteorder, serialization id
MAX_SEED = 2**64 - 1
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
               NotImplementedError, OverflowError, KeyError, IndexError, struct.error,
               zlib.error, UnicodeDecodeError, RuntimeError)


@dataclass(frozen=True)
class _Bounds:
    """Most bytes each state_dict key's array may hold (``per_key``), and in all (``total``);
    ``what`` names whose shapes they come from."""

    per_key: dict
    total: int
    what: str

    @property
    def file_bytes(self) -> int:
        return 2 * self.total + META_BYTES + (1 << 20)


def _bounds_of(spec: AnySpec) -> _Bounds:
    expected = transfer.torch_state(spec.build_torch("float64"))   # the widest dtype
    per_key = {k: v.size * 8 + NPY_HEADER_BYTES for k, v in expected.items()}
    return _Bounds(per_key, sum(per_key.values()), f"a {spec.name!r} checkpoint")


@functools.lru_cache(maxsize=1)
def _catalogue_bounds() -> _Bounds:
    from parity.catalogue import zoo
    each = [_bounds_of(s) for s in zoo.CATALOGUE.values()]
    per_key: dict = {}
    for b in each:
        for k, v in b.per_key.items():
            per_key[k] = max(per_key.get(k, 0), v)
    return _Bounds(per_key, max(b.total for b in each), "any catalogue checkpoint")


def _zip_error(path: str, e: BaseException) -> ValueError:
    m = re.match(r"Bad CRC-32 for file '(.*)'$", str(e))
    if m:
        return ValueError(f"{path}: corrupt checkpoint: member {m.group(1)!r} fails its CRC-32 "
                          f"check")
    return ValueError(f"{path}: corrupt zip archive ({_one_line(e)})")


def _member_limit(bounds: _Bounds):
    """Phase one, from the central directory: every member within what any key could hold."""
    def limit(name: str) -> tuple[int, str]:
        tail = name.rsplit("/", 1)[-1]
        if name == f"{META_KEY}.npy" or tail == "data.pkl":
            return META_BYTES, "bytes allowed for the metadata"
        if name.endswith(".npy") or "/data/" in name:
            return bounds.total, f"bytes {bounds.what} can hold in all"
        return SMALL_MEMBER_BYTES, "bytes allowed for a bookkeeping member"
    return limit


def _looks_safetensors(data: bytes) -> bool:
    """An 8-byte little-endian header length, then the header's opening ``{`` (a zip's byte 8
    is the low byte of its compression method, 0 or 8)."""
    return len(data) > 8 and data[8:9] == b"{" and data[:4] != _ZIP_MAGIC


def _open(path: str, bounds: _Bounds) -> tuple[str, zipfile.ZipFile | None, bytes]:
    """Read ``path`` once (a regular file within ``bounds.file_bytes``) and say what it is:
    ``("npz" | "pt", zip, the file's bytes)`` with the zip's central directory checked, or
    ``("safetensors", None, the file's bytes)``."""
    data = read_regular(path, bounds.file_bytes, f"{bounds.what} can need")
    if not data:
        raise ValueError(f"{path}: empty file (0 bytes), not a checkpoint")
    if _looks_safetensors(data):
        return "safetensors", None, data
    head = data[:4]
    try:
        z = open_zip(path, data, _member_limit(bounds))
    except ValueError as e:
        if str(e).startswith(f"{path}: "):
            raise
        raise _zip_error(path, e) from None
    except zipfile.BadZipFile:
        if head == _ZIP_MAGIC:
            raise ValueError(f"{path}: truncated or damaged zip archive (no central directory)"
                             f", not a readable checkpoint") from None
        raise ValueError(f"{path}: not a checkpoint (.npz and .pt are zip archives, "
                         f".safetensors starts with a header length and '{{'; this file "
                         f"starts with {head!r})") from None
    except _ZIP_ERRORS as e:
        raise _zip_error(path, e) from None
    names = z.namelist()
    if any(n.endswith("/data.pkl") for n in names):
        return "pt", z, data
    if names and all(n.endswith(".npy") for n in names):
        return "npz", z, data
    z.close()
    shown = names[:5] + (["…"] if len(names) > 5 else [])
    raise ValueError(f"{path}: a zip archive but neither .npz nor torch .pt (members {shown})")


def _read_member(path: str, z: zipfile.ZipFile, name: str) -> bytes:
    """One member, inflated once (never past its checked declared size), CRC verified."""
    try:
        return z.read(name)
    except _ZIP_ERRORS as e:
        raise _zip_error(path, e) from None


def detect_format(path: str) -> str:
    """``npz``, ``pt`` or ``safetensors`` from the file's contents; ValueError for an empty,
    truncated, damaged or foreign file (CRCs and digests are checked when the contents are
    read, see ``read_checkpoint``)."""
    path = os.fspath(path)
    fmt, z, _ = _open(path, _catalogue_bounds())
    if z is not None:
        z.close()
    return fmt


def _npy(path: str, key: str, raw: bytes) -> np.ndarray:
    try:
        arr = np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise ValueError(f"{path}: holds a pickled object array (member {key!r}); "
                             f"refusing to load pickles") from None
        raise ValueError(f"{path}: unreadable .npz member {key!r} ({_one_line(e)})") from None
    except Exception as e:  # noqa: BLE001 — a hostile header: SyntaxError, TypeError, …
        raise ValueError(f"{path}: unreadable .npz member {key!r} ({_one_line(e)})") from None
    return arr


class _DuplicateKey(ValueError):
    pass


def _unique_pairs(pairs: list) -> dict:
    """``json.loads`` hook: a JSON object naming a key twice is refused (last-wins would let a
    second ``"0.weight"`` hide the first)."""
    out = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _parse_meta_json(path: str, text: str, what: str = "metadata"):
    """``text`` as JSON, objects with unique keys, every number within the float64 range
    (``fileio.read_json``: no NaN/Infinity, no ``1e400``, no 5000-digit integer); one
    ValueError line naming the file, ``what`` and, for a number, its field."""
    try:
        return read_json(text, object_pairs_hook=_unique_pairs)
    except NumberOutOfRange as e:
        raise ValueError(f"{path}: {what} field {e}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: {what} is not valid JSON ({e.msg} at char {e.pos})") from None
    except _DuplicateKey as e:
        raise ValueError(f"{path}: {what} names key {e.args[0]!r} twice") from None
    except RecursionError:
        raise ValueError(f"{path}: {what} JSON nests too deeply") from None


def _read_npz_meta(path: str, z: zipfile.ZipFile) -> dict:
    name = f"{META_KEY}.npy"
    if name not in z.namelist():
        raise ValueError(f"{path}: no {META_KEY!r} entry: an .npz but not an nn-parity "
                         f"checkpoint")
    meta_arr = _npy(path, META_KEY, _read_member(path, z, name))
    if meta_arr.ndim != 0 or meta_arr.dtype.kind != "U":
        raise ValueError(f"{path}: {META_KEY!r} must be a 0-d unicode array of JSON, "
                         f"got {meta_arr.dtype} {meta_arr.shape}")
    return _parse_meta_json(path, str(meta_arr))


def _check_keys(path: str, present: list[str], bounds: _Bounds) -> None:
    """The file's keys are the model's (``bounds.per_key``), checked before reading arrays."""
    missing = [k for k in bounds.per_key if k not in present]
    unexpected = [k for k in present if k not in bounds.per_key]
    if missing or unexpected:
        parts = ([f"missing keys {missing}"] if missing else []) + (
            [f"unexpected keys {unexpected}"] if unexpected else [])
        raise ValueError(f"{path}: {', '.join(parts)}")


def _read_npz_state(path: str, z: zipfile.ZipFile, bounds: _Bounds | None) -> dict:
    """Every array but the metadata; with ``bounds`` (the model is known), key names and
    declared sizes are checked against it before anything is inflated."""
    infos = {i.filename[:-4]: i for i in z.infolist() if i.filename != f"{META_KEY}.npy"}
    if bounds is not None:
        _check_keys(path, list(infos), bounds)
        for k, info in infos.items():
            if info.file_size > bounds.per_key[k]:
                raise ValueError(f"{path}: member {info.filename!r} declares {info.file_size} "
                                 f"bytes uncompressed, more than the {bounds.per_key[k]} bytes "
                                 f"{k!r} can hold in {bounds.what}; refusing to decompress it")
    return {k: _npy(path, k, _read_member(path, z, info.filename)) for k, info in infos.items()}


def _read_npz(path: str, z: zipfile.ZipFile, data: bytes,
              spec: AnySpec | None) -> tuple[dict, dict]:
    meta = _read_npz_meta(path, z)
    bounds = None
    if spec is not None:
        _check_model_name(path, meta, spec)
        bounds = _bounds_of(spec)
    return meta, _read_npz_state(path, z, bounds)


def _tensor_array(path: str, k, v) -> np.ndarray:
    """A dense CPU tensor of a .pt state_dict as a NumPy array; anything else is refused."""
    if not isinstance(k, str) or not isinstance(v, torch.Tensor):
        raise ValueError(  # noqa: TRY004 — file contents: ValueError by design
            f"{path}: state_dict entry {k!r} must map a str to a tensor, "
            f"got {type(v).__name__}")
    kind = ("a meta-device" if v.is_meta else "a nested" if v.is_nested else
            "a quantized" if v.is_quantized else "a sparse" if v.layout != torch.strided else
            f"a {v.device.type}" if v.device.type != "cpu" else None)
    if kind is not None:
        raise ValueError(f"{path}: {k}: {kind} tensor, expected a dense CPU tensor")
    try:
        return v.detach().numpy().copy()
    except (TypeError, RuntimeError):
        raise ValueError(f"{path}: {k}: unsupported dtype {v.dtype}") from None


def _read_pt(path: str, z: zipfile.ZipFile, data: bytes,
             spec: AnySpec | None) -> tuple[dict, dict]:
    for info in z.infolist():        # sizes were checked by _open; the CRCs, which
        _read_member(path, z, info.filename)   # torch.load does not check, are checked here
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 — UnpicklingError, RuntimeError (zip reader), …
        raise ValueError(f"{path}: torch.load(weights_only=True) refused it "
                         f"({_one_line(e)})") from None
    if not (isinstance(obj, dict) and set(obj) == {"meta", "state_dict"}):
        got = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{path}: not an nn-parity checkpoint: expected a dict with keys "
                         f"['meta', 'state_dict'], got {got}")
    meta, sd = obj["meta"], obj["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: 'state_dict' must be a dict, "  # noqa: TRY004
                         f"got {type(sd).__name__}")
    return meta, {k: _tensor_array(path, k, v) for k, v in sd.items()}


# ---- .safetensors: 8-byte little-endian header length n, n bytes of JSON, the tensors' bytes --
ST_HEADER_BYTES = META_BYTES + (1 << 16)   # the record (≤ META_BYTES) + ~200 B per tensor


def _st_header(path: str, data: bytes) -> tuple[dict, int]:
    """The header object and where the tensor data starts; its declared length is checked
    against ``ST_HEADER_BYTES`` and the file before a byte of it is parsed."""
    (n,) = struct.unpack("<Q", data[:8])
    if n > ST_HEADER_BYTES:
        raise ValueError(f"{path}: safetensors header declares {n} bytes, more than the "
                         f"{ST_HEADER_BYTES} bytes allowed for a checkpoint's header")
    if len(data) < 8 + n:
        raise ValueError(f"{path}: truncated safetensors file: its header declares {n} bytes, "
                         f"{len(data) - 8} follow")
    try:
        text = data[8:8 + n].decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: safetensors header is not UTF-8 (byte {e.start})") from None
    header = _parse_meta_json(path, text, "safetensors header")
    if not isinstance(header, dict):
        raise ValueError(f"{path}: safetensors header must be a JSON object, "  # noqa: TRY004
                         f"got {type(header).__name__}")
    return header, 8 + n


def _st_data_end(header: dict) -> int | None:
    """The end of the last tensor's bytes (``data_offsets``), None when ill-formed (left to
    safetensors' own validation)."""
    ends = [e.get("data_offsets") for k, e in header.items() if k != "__metadata__"
            and isinstance(e, dict)]
    offsets = [o for o in ends if isinstance(o, list) and len(o) == 2 and type(o[1]) is int]
    return max((o[1] for o in offsets), default=0) if len(offsets) == len(ends) else None


def _st_record(path: str, header: dict) -> tuple[object, dict]:
    """The JSON record and the digests from ``__metadata__``; the record's own digest and the
    plain ``format``/``version``/``model`` fields must agree with it."""
    md = header.get("__metadata__")
    if not isinstance(md, dict) or not isinstance(md.get(ST_RECORD), str):
        raise ValueError(f"{path}: a safetensors file but not an nn-parity checkpoint: no "
                         f"{ST_RECORD!r} record in its __metadata__")
    if not isinstance(md.get(ST_DIGESTS), str):
        raise ValueError(f"{path}: no {ST_DIGESTS!r} digests in the safetensors __metadata__")
    digests = _parse_meta_json(path, md[ST_DIGESTS], f"the {ST_DIGESTS!r} digests")
    if not (isinstance(digests, dict) and all(isinstance(v, str) for v in digests.values())):
        raise ValueError(f"{path}: the {ST_DIGESTS!r} digests must map names to hex strings")
    record = md[ST_RECORD]
    if hashlib.sha256(record.encode("utf-8", "surrogatepass")).hexdigest() != digests.get(
            META_KEY):
        raise ValueError(f"{path}: corrupt checkpoint: the metadata record fails its SHA-256 "
                         f"check")
    meta = _parse_meta_json(path, record)
    for field in ("format", "version", "model") if isinstance(meta, dict) else ():
        want = str(meta.get(field))     # a record that is not an object: _check_meta_fields
        if md.get(field) != want:
            raise ValueError(f"{path}: safetensors header field {field!r} is "
                             f"{md.get(field)!r}, the record says {want!r}")
    return meta, digests


def _st_tensors(path: str, data: bytes, via: str) -> dict[str, np.ndarray]:
    """Every tensor as an owned NumPy array, parsed by ``safetensors.numpy`` or (``via``
    ``"torch"``) ``safetensors.torch``."""
    reader = _safetensors("torch" if via == "torch" else "numpy")
    try:
        raw = reader.load(data)
    except Exception as e:  # noqa: BLE001 — SafetensorError, KeyError (unknown dtype), …
        raise ValueError(f"{path}: unreadable safetensors file ({_one_line(e)})") from None
    if via == "torch":
        return {k: _tensor_array(path, k, v) for k, v in raw.items()}
    return {k: np.array(v, copy=True) for k, v in raw.items()}


def _st_verify(path: str, state: dict[str, np.ndarray], digests: dict) -> None:
    """Each tensor's SHA-256 (dtype, shape, bytes) is the one the header records."""
    listed = sorted(k for k in digests if k != META_KEY)
    if listed != sorted(state):
        raise ValueError(f"{path}: corrupt checkpoint: the {ST_DIGESTS!r} digests list keys "
                         f"{listed}, the file holds {sorted(state)}")
    got = _st_digests("", state)
    for k in state:
        if got[k] != digests[k]:
            raise ValueError(f"{path}: corrupt checkpoint: tensor {k!r} fails its SHA-256 "
                             f"check")


def _read_safetensors(path: str, data: bytes, spec: AnySpec | None,
                      via: str) -> tuple[object, dict]:
    """(record, state in the record's key order) of a .safetensors checkpoint."""
    header, start = _st_header(path, data)
    meta, digests = _st_record(path, header)
    if spec is not None:
        _check_model_name(path, meta, spec)
        _check_keys(path, [k for k in header if k != "__metadata__"], _bounds_of(spec))
    end = _st_data_end(header)
    if end is not None and start + end > len(data):
        raise ValueError(f"{path}: truncated safetensors file: its tensors need {end} bytes "
                         f"of data, {len(data) - start} follow the header")
    state = _st_tensors(path, data, via)
    _st_verify(path, state, digests)
    order = meta.get("keys") if isinstance(meta, dict) else None
    order = list(order) if isinstance(order, dict) else []
    rank = {k: i for i, k in enumerate(order)}
    return meta, {k: state[k] for k in sorted(state, key=lambda k: (rank.get(k, len(rank)), k))}


def _check_model_name(path: str, meta, spec: AnySpec) -> None:
    name = meta.get("model") if isinstance(meta, dict) else None
    if isinstance(meta, dict) and meta.get("format") == FORMAT and name != spec.name:
        raise ValueError(f"{path}: checkpoint of model {name!r}, not {spec.name!r}")


def _check_meta_fields(path: str, meta: object) -> dict:
    """The record itself: a JSON object of our format, an int version we read, an int seed.
    Returns it."""
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: metadata must be a JSON object, "  # noqa: TRY004
                         f"got {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: metadata format is {meta.get('format')!r}, "
                         f"expected {FORMAT!r}")
    version = meta.get("version")
    if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format version {version!r}; this nn-parity "
                         f"reads versions 1..{FORMAT_VERSION}")
    seed = meta.get("seed")
    if seed is not None and (type(seed) is not int or not 0 <= seed <= MAX_SEED):
        raise ValueError(f"{path}: metadata seed {seed!r} is not an integer in [0, 2**64)")
    return meta


def read_checkpoint(path: str, spec: AnySpec | str | None = None, *,
                    via: str = "numpy") -> Checkpoint:
    """Read any format into a ``Checkpoint`` (model checks: ``check_meta``). The file is
    read once; member sizes are bounded by ``spec``'s shapes (default: the largest catalogue
    model's — pass the spec of a model outside the catalogue). ``via`` (``numpy`` | ``torch``):
    whose safetensors reader parses a .safetensors file (the other formats have one reader)."""
    if via not in IMPLS:
        raise ValueError(f"via must be one of {IMPLS}, got {via!r}")
    path = os.fspath(path)
    spec = _spec(spec) if spec is not None else None
    bounds = _bounds_of(spec) if spec is not None else _catalogue_bounds()
    fmt, z, data = _open(path, bounds)
    meta: object
    state: dict
    if z is None:
        meta, state = _read_safetensors(path, data, spec, via)
    else:
        with z:
            meta, state = (_read_npz if fmt == "npz" else _read_pt)(path, z, data, spec)
    return Checkpoint(path, fmt, _check_meta_fields(path, meta), state)


def check_meta(ck: Checkpoint, spec: AnySpec, dtype: str | None = None) -> str:
    """The checkpoint is of ``spec`` (by name) at ``dtype`` (if given); returns its dtype."""
    name = ck.meta.get("model")
    if name != spec.name:
        raise ValueError(f"{ck.path}: checkpoint of model {name!r}, not {spec.name!r}")
    ck_dtype = ck.meta.get("dtype")
    if ck_dtype not in DTYPES:
        raise ValueError(f"{ck.path}: metadata dtype {ck_dtype!r}, expected one of {DTYPES}")
    if dtype is not None and dtype != ck_dtype:
        raise ValueError(f"{ck.path}: checkpoint holds {ck_dtype} weights, requested {dtype} "
                         f"(no silent casts)")
    return ck_dtype


def _first_nonfinite(path: str, state: dict[str, np.ndarray], verb: str = "load") -> None:
    """Weights and buffers must be finite: a NaN/Inf checkpoint is bad input, not a parity
    failure (both twins would agree on NaN only by accident)."""
    for k, v in state.items():
        if np.issubdtype(v.dtype, np.floating) and not np.all(np.isfinite(v)):
            bad = ~np.isfinite(v)
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{path}: {k} holds {int(bad.sum())} non-finite value(s) "
                             f"(first {float(v[idx])!r} at index {idx}); refusing to {verb} it")


def checked(ck: Checkpoint, spec: AnySpec | str, dtype: str | None = None):
    """``ck`` is a finite checkpoint of ``spec`` (at ``dtype`` if given) with exactly the torch
    twin's keys, shapes and dtypes. Returns ``(spec, its dtype, an empty torch twin)``."""
    spec = _spec(spec)
    ck_dtype = check_meta(ck, spec, dtype)
    expected, t_model = _expected_state(spec, ck_dtype)
    _check_state(ck.state, expected, f"{ck.path}: checkpoint of {spec.name!r} ({ck_dtype})")
    _first_nonfinite(ck.path, ck.state)
    return spec, ck_dtype, t_model


def numpy_twin(ck: Checkpoint, spec: AnySpec | str, *, dtype: str | None = None,
               seed: int = 0) -> reference.Sequential:
    """A NumPy twin of ``spec`` holding the weights and buffers of a read checkpoint."""
    model_spec, ck_dtype, t_model = checked(ck, spec, dtype)
    model = model_spec.build_numpy(seed, ck_dtype)
    model.load_state_dict(transfer.to_numpy_layout(ck.state, t_model))
    return model


def torch_twin(ck: Checkpoint, spec: AnySpec | str, *,
               dtype: str | None = None) -> nn.Sequential:
    """A torch twin of ``spec`` holding the weights and buffers of a read checkpoint."""
    _, _, t_model = checked(ck, spec, dtype)
    transfer.load_torch(t_model, ck.state)
    return t_model


# ---- load ---------------------------------------------------------------------------------------

def load_numpy(path: str, spec: AnySpec | str, *, dtype: str | None = None,
               seed: int = 0) -> reference.Sequential:
    """A NumPy twin of ``spec`` holding the checkpoint's weights and buffers (any format; a
    .safetensors file is parsed by ``safetensors.numpy``).
    ``dtype``: require this dtype (default: the checkpoint's). ``seed``: only seeds the
    Dropout mask stream (``spec.build_numpy(seed)``); every array comes from the file."""
    spec = _spec(spec)
    return numpy_twin(read_checkpoint(path, spec), spec, dtype=dtype, seed=seed)


def load_torch(path: str, spec: AnySpec | str, *, dtype: str | None = None) -> nn.Sequential:
    """A torch twin of ``spec`` holding the checkpoint's weights and buffers (any format; a
    .safetensors file is parsed by ``safetensors.torch``)."""
    spec = _spec(spec)
    return torch_twin(read_checkpoint(path, spec, via="torch"), spec, dtype=dtype)


def load_any(path: str, spec: AnySpec | str, impl: str, *, dtype: str | None = None):
    """Load an ``.npz``, ``.pt`` or ``.safetensors`` checkpoint into ``impl`` (``numpy`` |
    ``torch``)."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    return (load_numpy if impl == "numpy" else load_torch)(path, spec, dtype=dtype)


def predictions(model, X: np.ndarray) -> np.ndarray:
    """Eval-mode outputs of either twin on ``X: (N, D)`` as a NumPy array ``(N, K)``."""
    return predict(model, X)


# ---- CLI ----------------------------------------------------------------------------------------

def _format_for(path: str, fmt: str | None) -> str:
    """The format ``--out`` names by its extension; ``--format``, if given, must agree."""
    try:
        ext = format_for_path(path)
    except ValueError as e:
        raise ValueError(f"--out {e}") from None
    if fmt is not None and fmt != ext:
        raise ValueError(f"--out {path} ends in .{ext} but --format is {fmt}")
    if ext == "safetensors":
        require("safetensors")    # before training, not after
    return ext


def file_sha256(path: str, limit: int) -> str:
    """SHA-256 (hex) of the regular file ``path`` (at most ``limit`` bytes)."""
    return hashlib.sha256(read_regular(path, limit, "a checkpoint can need")).hexdigest()


def written(path: str, fmt: str, meta: dict, spec: AnySpec) -> dict:
    """What ``save`` wrote, as ``export --json`` prints it: path, format, size, the file's
    SHA-256 (read back from disk), and each key's dtype and shape (torch layout)."""
    data_sha = file_sha256(path, _bounds_of(spec).file_bytes)
    return {"model": spec.name, "path": os.fspath(path), "format": fmt,
            "bytes": os.path.getsize(path), "sha256": data_sha, "layout": meta["layout"],
            "dtype": meta["dtype"],
            "keys": {k: {"dtype": d, "shape": shape} for k, (d, shape) in meta["keys"].items()}}


def cmd_export(args) -> int:
    from parity import usercode
    if usercode.is_target(args.model):
        check_file_target(args.out, "--out")
        fmt = _format_for(args.out, args.format)
        with usercode.loaded(args.model) as got:
            return _export_user(args, UserModel.of(args.model, got), fmt)
    from parity.catalogue import train, zoo
    spec = zoo.get(args.model)
    check_file_target(args.out, "--out")     # before training, not after
    fmt = _format_for(args.out, args.format)
    seed = spec.pinned_seed if args.seed is None else args.seed
    res, model = train.run(spec, args.impl, seed=seed, dtype=args.dtype, epochs=args.epochs)
    extra = {"trained_with": args.impl, "seed": seed, "epochs": res.epochs, "steps": res.steps,
             "train_accuracy": res.train_accuracy, "test_accuracy": res.test_accuracy,
             "final_loss": res.final_loss, "threads": res.threads}
    meta = save(args.out, model, spec.name, fmt, extra_meta=extra)
    out = written(args.out, fmt, meta, spec)
    if args.json:
        print(json_text({**out, "trained_with": args.impl, "seed": seed, "epochs": res.epochs,
                          "steps": res.steps, "test_accuracy": res.test_accuracy}, indent=2))
        return 0
    print(f"{spec.name}: trained in {args.impl} ({res.epochs} epochs, seed {seed}, {args.dtype}); "
          f"held-out accuracy {res.test_accuracy:.4f}")
    print(f"  wrote {args.out} ({fmt}, {out['bytes']} bytes, sha256 {out['sha256']})")
    return 0


def _export_user(args, user: UserModel, fmt: str) -> int:
    """``export file.py:function``: the model your function returns, saved as it is."""
    if args.epochs is not None or args.seed is not None:
        raise ValueError(f"{args.model}: --epochs and --seed need a catalogue recipe; export "
                         f"saves the model your function returns as it is")
    model = (user.build_numpy(0, args.dtype) if args.impl == "numpy"
             else user.build_torch(args.dtype))
    meta = save(args.out, model, user, fmt, extra_meta={"saved_with": "export",
                                                        "source": args.model})
    out = written(args.out, fmt, meta, user)
    if args.json:
        print(json_text({**out, "saved_from": args.impl}, indent=2))
        return 0
    print(f"{user.name}: your {args.impl} model as {args.model} returns it ({args.dtype})")
    print(f"  wrote {args.out} ({fmt}, {out['bytes']} bytes, sha256 {out['sha256']})")
    return 0


def cmd_import_check(args) -> int:
    from parity import usercode
    if not usercode.is_target(args.model):
        from parity.catalogue import zoo
        return _import_check(args, zoo.get(args.model))
    if args.seed is not None:
        raise ValueError(f"{args.model}: --seed chooses a catalogue model's held-out data; "
                         f"yours is the batch your function returns")
    with usercode.loaded(args.model) as got:
        return _import_check(args, UserModel.of(args.model, got))


def _import_check(args, spec: AnySpec) -> int:
    from parity.tolerances import tolerance
    ck = read_checkpoint(args.path, spec)     # the file is read once, for both twins
    np_model, t_model = numpy_twin(ck, spec), torch_twin(ck, spec)
    dtype = check_meta(ck, spec)
    seed = args.seed if args.seed is not None else ck.meta.get("seed", spec.pinned_seed)
    d = spec.data(seed)
    X = d.X_test.astype(dtype)
    out_np, out_t = predictions(np_model, X), predictions(t_model, X)
    diff = np.abs(out_np - out_t)
    max_abs = float(diff.max())
    rtol, atol = tolerance(dtype, "output")
    ok = bool(np.all(diff <= atol + rtol * np.abs(out_t)))
    pred = (lambda o: o.argmax(1)) if out_np.shape[1] > 1 else (
        lambda o: (o[:, 0] > kinds.decision_threshold(t_model[-1])))
    agree = int((pred(out_np) == pred(out_t)).sum())
    y = np.asarray(d.y_test).reshape(-1)
    acc_np, acc_t = float((pred(out_np) == y).mean()), float((pred(out_t) == y).mean())
    result = {"model": spec.name, "path": args.path, "format": ck.fmt, "dtype": dtype,
              "saved_from": ck.meta.get("saved_from"), "seed": seed, "samples": len(X),
              "max_abs_diff": max_abs, "bit_identical": max_abs == 0.0, "rtol": rtol,
              "atol": atol, "passed": ok, "labels_agree": agree, "accuracy_numpy": acc_np,
              "accuracy_torch": acc_t}
    if args.json:
        print(json_text(result, indent=2))
    else:
        print(f"{spec.name}: {args.path} ({ck.fmt}, {dtype}, saved from "
              f"{result['saved_from']}) loaded into numpy and torch")
        data = ("the batch X your function returns" if isinstance(spec, UserModel)
                else f"data seed {seed}")
        print(f"  held-out predictions, {len(X)} samples ({data}): "
              f"max |numpy - torch| = {max_abs:.3e}"
              f"{' (bit-identical)' if max_abs == 0.0 else ''}; "
              f"{dtype} output tolerance rtol {rtol:g} atol {atol:g}: "
              f"{'identical' if ok else 'DIFFERENT'}")
        print(f"  accuracy numpy {acc_np:.4f}, torch {acc_t:.4f}; predicted labels agree on "
              f"{agree}/{len(X)}")
    return 0 if ok else 1


def register(subparsers) -> None:
    """Add ``export`` and ``import-check`` to the ``nn-parity`` sub-command parsers."""
    s = subparsers.add_parser(
        "export", help="train one twin with the model's recipe and save a checkpoint",
        description="Train MODEL in NumPy or torch (parity.catalogue.train.run: NumPy-initialized "
        "weights, the recipe's data and batch order) and save the weights as a checkpoint in "
        "the format the --out extension names: .npz (no pickles), torch .pt or .safetensors, "
        "each holding torch state_dict keys in torch layout (Linear weight (out, in)) plus "
        "JSON metadata. Any file loads into either implementation. The file is written "
        "atomically, and only after training succeeded. MODEL may also be your own code, "
        "path/to/file.py:function (README, 'Check your own model').")
    s.add_argument("model", metavar="MODEL",
                   help="catalogue name (see `nn-parity list`), or path/to/file.py:function "
                        "returning your twins (as for `nn-parity check`): the model it "
                        "returns is saved as it is, without training")
    s.add_argument("--impl", required=True, choices=IMPLS,
                   help="which twin to train (yours: which to save)")
    s.add_argument("--out", required=True, metavar="PATH",
                   help="checkpoint file to write, ending in .npz, .pt or .safetensors (which "
                        "chooses the format; its directory must exist)")
    s.add_argument("--format", choices=FORMATS, default=None,
                   help="optional: npz, pt or safetensors, which must agree with the --out "
                        "extension; every format can hold either twin")
    s.add_argument("--seed", type=int, default=None,
                   help="seed for data, initial weights, batch order and dropout "
                        "(default: the model's pinned seed; catalogue models only)")
    s.add_argument("--epochs", type=int, default=None,
                   help="training epochs (default: the recipe's; catalogue models only)")
    s.add_argument("--dtype", default="float64", help="float64 (default) or float32")
    s.add_argument("--json", action="store_true",
                   help="print what was written as JSON: path, format, bytes, sha256, keys")
    s.set_defaults(func=cmd_export)

    s = subparsers.add_parser(
        "import-check", help="load a checkpoint into both twins and compare their predictions",
        description="Load PATH (.npz, .pt or .safetensors, detected from its contents) into "
        "the NumPy and "
        "the torch twin of MODEL, run both on the held-out data and print the max absolute "
        "difference of their outputs. Exit 0 when they agree within the tolerance table's "
        "'output' tolerance for the checkpoint's dtype (the weights are bit-identical; "
        "float64 outputs differ by summation order only, ~1e-16 to 5e-15 measured), "
        "1 when they do not, 2 for an unreadable or mismatched checkpoint. MODEL may also be "
        "your own code, path/to/file.py:function: your two twins load the checkpoint "
        "(one that export wrote from the same function) and predict on the X it returns.")
    s.add_argument("model", metavar="MODEL",
                   help="catalogue name the checkpoint must be of, or path/to/file.py:function "
                        "returning your twins: both load the checkpoint and predict on the "
                        "batch X it returns")
    s.add_argument("path", metavar="PATH", help="checkpoint file (.npz, .pt or .safetensors)")
    s.add_argument("--seed", type=int, default=None,
                   help="seed of the held-out data (default: the seed recorded in the "
                        "checkpoint, else the model's pinned seed; catalogue models only)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_import_check)
