"""Every file nn-parity writes or reads goes through here: nothing half-written, nothing of
the user's destroyed, nothing unbounded read.

Writing
    ``atomic_write(path, write)``      one file: a temp file beside it, fsync, ``os.replace``.
    ``write_dir_set(path, fill, kind)`` a set of files (a study report, ``check --save``
        evidence): built in a temporary sibling directory that carries the marker file
        ``MARKER``, then swapped in as a whole; the previous set survives any failure.
    ``check_file_target`` / ``check_dir_target`` / ``check_record_dir``: what ``--out`` may
        name, checked before any long run (one ``ValueError`` line naming the option):
        a directory is replaced only when it is empty or carries ``MARKER``; a regular file
        only by a file; devices, FIFOs, sockets, the current directory and its parents never.
        Symlinks are followed (the link stays, its target is written).
    Temporaries are named ``.NAME.nn-parity-tmp.PID.HEX`` (``-old`` for a set being
    replaced); those of a dead PID are removed by the next write to the same target.
    ``json_text(obj)`` is the text of every JSON document nn-parity writes or prints: strict
    JSON, a non-finite number written as the string ``"NaN"``, ``"Infinity"`` or
    ``"-Infinity"``.

Reading
    ``read_regular(path, limit)``      the bytes of a regular file, read once, at most
        ``limit`` bytes (a FIFO, a device or a directory is refused without blocking).
    ``open_zip(path, data, member_limit)`` a zip archive over those bytes whose members'
        *declared* uncompressed sizes were checked against ``member_limit(name)`` before
        anything is decompressed (zipfile never inflates past the declared size).
    ``read_json(text)`` JSON whose numbers all fit a float64 (no ``NaN``/``Infinity``
        tokens, no ``1e400``, no 5000-digit integers); ``NumberOutOfRange`` names the field.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import re
import secrets
import shutil
import stat
import sys
import zipfile

MARKER = ".nn-parity-output"
_TMP, _OLD = "nn-parity-tmp", "nn-parity-old"


# ---- what a path is ---------------------------------------------------------------------------

def _kind(mode: int) -> str:
    """Words for a file type (``st_mode``): 'a directory', 'a FIFO', …"""
    for test, words in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return words
    return "not a regular file"


def _what(option: str | None, path: str) -> str:
    return f"{option} {path}" if option else str(path)


def _is_cwd_or_parent(real: str) -> bool:
    cwd = os.path.realpath(os.getcwd())
    return real == cwd or cwd.startswith(real.rstrip(os.sep) + os.sep)


def _probe_writable(directory: str, what: str) -> None:
    """Create and remove a directory in ``directory``: the only honest writability test
    (``os.access`` says yes to root on a read-only mount)."""
    probe = os.path.join(directory, f".{_TMP}.probe.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        os.mkdir(probe)
        os.rmdir(probe)
    except OSError as e:
        raise ValueError(f"cannot write {what}: {directory}: {e.strerror or e}") from None


def _existing_ancestor(real: str, what: str) -> str:
    """The nearest existing ancestor of ``real``; it must be a directory."""
    parent = os.path.dirname(real)
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"cannot write {what}: {parent} is not a directory")
    return parent


def check_file_target(path, option: str | None = None) -> str:
    """``path`` may be written as one file: it is missing or a regular file (after symlinks),
    its directory exists and is writable. Returns the real path to write."""
    path = os.fspath(path)
    what = _what(option, path)
    if not path:
        raise ValueError(f"cannot write {option or 'to'} '': empty path")
    real = os.path.realpath(path)
    if os.path.lexists(real):
        mode = os.stat(real).st_mode
        if not stat.S_ISREG(mode):
            raise ValueError(f"cannot write {what}: it is {_kind(mode)}, not a regular file "
                             f"(refusing to replace it)")
    parent = os.path.dirname(real)
    if not os.path.isdir(parent):
        state = "is not a directory" if os.path.lexists(parent) else "does not exist"
        raise ValueError(f"cannot write {what}: {parent} {state}")
    _probe_writable(parent, what)
    return real


def is_ours(directory: str) -> bool:
    """``directory`` carries the marker: nn-parity wrote it, nn-parity may replace it."""
    try:
        return stat.S_ISREG(os.lstat(os.path.join(directory, MARKER)).st_mode)
    except OSError:
        return False


def check_dir_target(path, option: str | None = None) -> str:
    """``path`` may be replaced by a directory set: missing, an empty directory, or one that
    carries ``MARKER``; never a file, a device, a FIFO, the current directory or a parent of
    it. The directory that will hold it must be writable. Returns the real path."""
    path = os.fspath(path)
    what = _what(option, path)
    if not path:
        raise ValueError(f"cannot write {option or 'to'} '': empty path")
    real = os.path.realpath(path)
    if _is_cwd_or_parent(real):
        raise ValueError(f"cannot write {what}: it is the current directory or one of its "
                         f"parents; name a new directory")
    try:
        mode = os.stat(real).st_mode
    except (FileNotFoundError, NotADirectoryError):   # missing (or moved aside this instant)
        mode = None
    if mode is not None and not stat.S_ISDIR(mode):
        raise ValueError(f"cannot write {what}: it is {_kind(mode)}, not a directory "
                         f"(refusing to replace it)")
    if mode is not None and _foreign_dir(real):
        raise ValueError(f"cannot write {what}: a non-empty directory that nn-parity did "
                         f"not write (no {MARKER}); refusing to replace it, name a new or "
                         f"empty directory")
    _probe_writable(_existing_ancestor(real, what), what)
    return real


def _foreign_dir(real: str) -> bool:
    """``real`` is a non-empty directory without ``MARKER``, judged on one opened directory:
    a concurrent writer renaming sets in and out meanwhile cannot make a set of ours look
    foreign (half seen before, half after its rename). Gone meanwhile: not foreign."""
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except FileNotFoundError:
        return False
    try:
        if not os.listdir(fd):
            return False
        try:
            return not stat.S_ISREG(os.stat(MARKER, dir_fd=fd, follow_symlinks=False).st_mode)
        except FileNotFoundError:
            return True
    finally:
        os.close(fd)


def check_record_dir(path, option: str | None = None) -> str:
    """``path`` is a directory that files are added to (``drift --out``): missing or a
    directory, writable. Returns the real path."""
    path = os.fspath(path)
    what = _what(option, path)
    real = os.path.realpath(path)
    if os.path.lexists(real):
        mode = os.stat(real).st_mode
        if not stat.S_ISDIR(mode):
            raise ValueError(f"cannot write {what}: it is {_kind(mode)}, not a directory")
        _probe_writable(real, what)
    else:
        _probe_writable(_existing_ancestor(real, what), what)
    return real


# ---- temporaries --------------------------------------------------------------------------------

def _temp_name(real: str, tag: str = _TMP) -> str:
    directory, base = os.path.split(real)
    return os.path.join(directory, f".{base}.{tag}.{os.getpid()}.{secrets.token_hex(4)}")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_stale(real: str) -> list[str]:
    """Remove the temporaries of dead processes beside ``real`` (``.NAME.nn-parity-tmp.PID.HEX``
    and ``-old``): files, and directories that are empty or carry ``MARKER``. Returns them."""
    directory, base = os.path.split(real)
    pattern = re.compile(rf"\.{re.escape(base)}\.(?:{_TMP}|{_OLD})\.(\d+)\.[0-9a-f]{{8}}")
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = pattern.fullmatch(name)
        if not m or _alive(int(m.group(1))):
            continue
        p = os.path.join(directory, name)
        try:
            mode = os.lstat(p).st_mode
            if stat.S_ISREG(mode):
                os.unlink(p)
            elif stat.S_ISDIR(mode) and (is_ours(p) or not os.listdir(p)):
                shutil.rmtree(p)
            else:
                continue
        except OSError:
            continue
        removed.append(p)
    return removed


# ---- writing ------------------------------------------------------------------------------------

def atomic_write(path, write) -> None:
    """Call ``write(file)`` on a binary temp file next to ``path``, fsync, then ``os.replace``
    it onto ``path`` (onto a symlink's target, keeping the link). ``path`` must be missing or
    a regular file: a device, a FIFO or a directory is refused (``ValueError``), never
    replaced. On any failure the temp file is removed and ``path`` is left as it was.
    (reference.datasets.save_csv does the same for text; reference/ stays free of parity.)"""
    path = os.fspath(path)
    real = os.path.realpath(path)
    if os.path.lexists(real) and not stat.S_ISREG(mode := os.stat(real).st_mode):
        raise ValueError(f"cannot write {path}: it is {_kind(mode)}, not a regular file "
                         f"(refusing to replace it)")
    remove_stale(real)
    tmp = _temp_name(real)
    try:
        with open(tmp, "xb") as f:  # "x": never clobber; mode from the umask, unlike mkstemp
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, real)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path, payload: bytes) -> None:
    """``atomic_write`` of a ready payload."""
    atomic_write(path, lambda f: f.write(payload))


def _fsync_tree(top: str) -> None:
    for root, _, names in os.walk(top):
        for n in names:
            fd = os.open(os.path.join(root, n), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_dir_set(path, fill, kind: str, option: str | None = None) -> list[str]:
    """Write a set of files as a whole: ``fill(tmp_dir)`` writes them into a temporary sibling
    of ``path`` (which already holds ``MARKER``), then the set replaces ``path`` (checked
    with ``check_dir_target`` before and again just before the swap). On any failure — an
    exception, SIGINT/SIGTERM turned into one — the temporary is removed and a previous
    ``path`` is left as it was. Returns the files written (relative, sorted, marker included).
    """
    real = check_dir_target(path, option)
    os.makedirs(os.path.dirname(real), exist_ok=True)
    remove_stale(real)
    tmp = _temp_name(real)
    os.mkdir(tmp)           # 0o777 & ~umask: a report is for reading (mkdtemp would be 0700)
    try:
        with open(os.path.join(tmp, MARKER), "w") as f:
            f.write(json_text({"tool": "nn-parity", "kind": kind}) + "\n")
        fill(tmp)
        files = sorted(os.path.relpath(os.path.join(r, n), tmp)
                       for r, _, ns in os.walk(tmp) for n in ns)
        _fsync_tree(tmp)
        check_dir_target(path, option)   # a long run: the target may have changed meanwhile
        _swap_into_place(tmp, real, _what(option, os.fspath(path)))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return files


SWAP_ATTEMPTS = 5     # two writers at once need two; each more is one more writer at that instant


def _swap_into_place(tmp: str, real: str, what: str) -> None:
    """``real`` ← ``tmp`` by renames: the previous ``real`` is moved aside, ``tmp`` moved in,
    the previous set removed. Another run writing the same directory at the same instant can
    put its own whole set at ``real`` between those two renames (``ENOTEMPTY``): then the set
    moved aside is superseded and removed, and the swap is tried again — up to
    ``SWAP_ATTEMPTS`` times, then one ``ValueError`` line. Either way ``real`` holds one
    writer's whole set, never a mix, and no ``-old`` directory is left. Any other failure
    moves the previous set back and raises."""
    for _ in range(SWAP_ATTEMPTS):
        old = _move_aside(real, what)
        try:
            os.replace(tmp, real)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                _move_back(old, real)
                raise
            if old is not None:         # another writer's set took its place: it is stale
                shutil.rmtree(old, ignore_errors=True)
            continue
        except BaseException:
            _move_back(old, real)
            raise
        _fsync_dir(os.path.dirname(real))
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return
    raise ValueError(f"cannot write {what}: other nn-parity runs replaced it {SWAP_ATTEMPTS} "
                     f"times while this one tried to; this run's files were not kept")


def _move_aside(real: str, what: str) -> str | None:
    """Rename ``real`` to a fresh ``-old`` sibling and return that name; None when nothing is
    there (any more). What was moved must be a set of ours or an empty directory (a run
    writing concurrently may have found anything there): otherwise it is moved back and
    a ``ValueError`` line says so."""
    old = _temp_name(real, _OLD)
    try:
        os.replace(real, old)
    except FileNotFoundError:
        return None
    mode = os.lstat(old).st_mode
    if stat.S_ISDIR(mode) and (is_ours(old) or not os.listdir(old)):
        return old
    where = "left as it was"
    try:
        os.replace(old, real)
    except OSError:
        where = f"it is now at {old}"
    raise ValueError(f"cannot write {what}: it became {_kind(mode)} that nn-parity did not "
                     f"write while this run was writing; {where}")


def _move_back(old: str | None, real: str) -> None:
    """Undo ``_move_aside`` after a failed swap; when another writer's set holds ``real`` by
    now, the superseded ``old`` is removed instead."""
    if old is None:
        return
    try:
        os.replace(old, real)
    except OSError:
        shutil.rmtree(old, ignore_errors=True)


# ---- reading ------------------------------------------------------------------------------------

def read_regular(path, limit: int, why: str = "") -> bytes:
    """The whole content of the regular file ``path``, read once. A FIFO, device, socket or
    directory is refused without blocking (opened ``O_NONBLOCK``, judged by ``fstat``); so is
    a file over ``limit`` bytes (``why`` says where the limit comes from). Missing files and
    permission problems stay ``OSError``."""
    path = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path}: {_kind(st.st_mode)}, not a regular file; only regular "
                             f"files are read")
        if st.st_size > limit:
            raise ValueError(f"{path}: {st.st_size} bytes, more than the {limit} bytes "
                             f"{why or 'allowed'}")
        chunks, total = [], 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise ValueError(f"{path}: grew past the {limit} bytes {why or 'allowed'} "
                                 f"while being read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def open_zip(path, data: bytes, member_limit) -> zipfile.ZipFile:
    """A ``ZipFile`` over ``data`` (the bytes of ``path``) after checking, from the central
    directory alone, every member: no duplicates, stored or deflated only (bzip2/lzma inflate a
    whole chunk at once), and a declared uncompressed size within ``member_limit(name)`` —
    ``(bytes, "whose limit that is")``, or a ``ValueError`` of its own. zipfile stops
    inflating at the declared size (then fails the CRC), so nothing larger is ever produced.
    Raises ``zipfile``'s own errors for a damaged archive; the caller words them."""
    z = zipfile.ZipFile(io.BytesIO(data))
    try:
        seen = set()
        for info in z.infolist():
            name = info.filename
            if name in seen:
                raise ValueError(f"{path}: member {name!r} appears twice in the archive")
            seen.add(name)
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ValueError(f"{path}: member {name!r} uses compression method "
                                 f"{info.compress_type}; only stored or deflated are read")
            cap, whose = member_limit(name)
            if info.file_size > cap:
                raise ValueError(f"{path}: member {name!r} declares {info.file_size} bytes "
                                 f"uncompressed, more than the {cap} {whose}; refusing to "
                                 f"decompress it")
    except BaseException:
        z.close()
        raise
    return z


# ---- JSON ---------------------------------------------------------------------------------------

def _name_non_finite(x: float) -> str:
    return "NaN" if x != x else ("Infinity" if x > 0 else "-Infinity")


def _strict(obj, default):
    """``obj`` with every non-finite float (NumPy's included: scalars and arrays become
    Python numbers and lists) replaced by ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``, in
    dict values and keys, lists and tuples at any depth; an unknown object goes through
    ``default`` when given (else ``json.dumps`` refuses it)."""
    if isinstance(obj, float):                 # np.float64 too: a float subclass
        return obj if math.isfinite(obj) else _name_non_finite(obj)
    if obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, dict):
        return {(_strict(k, None) if isinstance(k, float) else k): _strict(v, default)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v, default) for v in obj]
    if type(obj).__module__ == "numpy" and hasattr(obj, "tolist"):   # np.generic, ndarray
        return _strict(obj.tolist(), default)
    return obj if default is None else _strict(default(obj), default)


def json_text(obj, indent: int | None = None, default=None) -> str:
    """``obj`` as strict JSON text (RFC 8259: no ``NaN``/``Infinity`` tokens, which strict
    parsers refuse): a non-finite float is written as the *string* ``"NaN"``, ``"Infinity"``
    or ``"-Infinity"`` — where a number was expected a reader sees a string, not a silent
    ``null`` that would read as "missing", and the three stay apart (``float()`` in Python
    and ``Number()`` in JavaScript parse them back). NumPy scalars and arrays are written as
    numbers and lists. ``indent`` and ``default`` as in ``json.dumps``; otherwise the same text
    ``json.dumps`` gives for finite data. ``allow_nan=False`` guards the result: a
    non-finite value this walk missed raises ``ValueError`` instead of writing invalid JSON."""
    return json.dumps(_strict(obj, default), indent=indent, allow_nan=False)


_FLOAT_MAX = int(sys.float_info.max)
_FLOAT_MAX_DIGITS = len(str(_FLOAT_MAX))


class _Unread(str):
    """A JSON number token no float64 holds, kept as its text until its field is named."""


def _int_token(s: str):
    """An integer token as an int, or ``_Unread`` past the float64 range (its digits are
    counted before ``int()``, which refuses over 4300 of them with an unnamed error)."""
    if len(s.lstrip("-")) > _FLOAT_MAX_DIGITS:
        return _Unread(s)
    v = int(s)
    return v if -_FLOAT_MAX <= v <= _FLOAT_MAX else _Unread(s)


def _float_token(s: str):
    v = float(s)
    return v if math.isfinite(v) else _Unread(s)      # 1e400 → inf


class NumberOutOfRange(ValueError):
    """A JSON number that no float64 holds: ``str()`` is ``'FIELD is TOKEN, REASON'``;
    ``.field`` is the path to it (``models['xor-relu']['numpy_loss']``, ``[3]``)."""

    def __init__(self, field: str, token: str):
        self.field, self.token = field, token
        shown = (token if len(token) <= 24 else
                 f"{token[:8]}…{token[-4:]} ({len(token)} characters)")
        reason = ("not a finite number (nn-parity reads finite numbers only)"
                  if token.lstrip("-") in ("NaN", "Infinity") else
                  "outside the float64 range")
        super().__init__(f"{field} is {shown}, {reason}")


def _field(path: list) -> str:
    """``['models', 'm', 0]`` → ``models['m'][0]``."""
    head = path[0] if path and isinstance(path[0], str) else ""
    rest = path[1:] if head else path
    return head + "".join(f"[{k!r}]" for k in rest)


def _first_unread(obj) -> tuple[str, str] | None:
    """(field, token) of the first ``_Unread`` in ``obj``, depth first; iterative, so any
    depth ``json.loads`` produced can be walked."""
    stack: list[tuple[list, object]] = [([], obj)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, _Unread):
            return _field(path), str(v)
        if isinstance(v, dict):
            stack.extend((path + [k], x) for k, x in reversed(list(v.items())))
        elif isinstance(v, list):
            stack.extend((path + [i], x) for i, x in reversed(list(enumerate(v))))
    return None


def read_json(text: str | bytes, object_pairs_hook=None):
    """``json.loads(text)`` where every number fits a float64: a ``NaN``/``Infinity`` token,
    a float that overflows (``1e400``) or an integer past ±1.8e308 (however many digits)
    raises ``NumberOutOfRange`` naming its field. Otherwise raises what ``json.loads``
    raises (``JSONDecodeError``, ``RecursionError`` for deep nesting, ``UnicodeDecodeError``,
    what ``object_pairs_hook`` raises); the caller names the file."""
    obj = json.loads(text, parse_int=_int_token, parse_float=_float_token,
                     parse_constant=_Unread, object_pairs_hook=object_pairs_hook)
    bad = _first_unread(obj)
    if bad is not None:
        raise NumberOutOfRange(*bad)
    return obj
