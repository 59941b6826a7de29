"""A careless or hostile user: every row of the hostile-input table (issue "Never lose a user's
file") as a test of the behaviour that replaced it.

Outputs never destroy what is not ours (rows 1, 2, 7-10), reads are bounded (3, 4, 12),
interrupts are clean (5, 6, 15), exit codes mean something (11-14, 16, 17), and corrupted
checkpoints give a clean error or an identical load, never a traceback (hypothesis).
Subprocess tests carry timeouts and kill what they started.
"""

import dataclasses
import io
import json
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity import fileio, transfer
from parity.catalogue import zoo
from parity.tools import checkpoint as C

ROOT = Path(__file__).resolve().parents[1]
GOOD = "cs231n-2layer"
LINUX = sys.platform.startswith("linux")


# ── helpers ──────────────────────────────────────────────────────────────────────────────────

def snapshot(top: Path) -> dict:
    """Every entry under ``top``: type, mode, size, mtime (ns) and the bytes of files — a user
    directory is 'untouched' when this is equal before and after."""
    out = {}
    for root, dirs, files in os.walk(top):
        for n in dirs + files:
            p = Path(root, n)
            s = p.lstat()
            out[str(p.relative_to(top))] = (stat.S_IFMT(s.st_mode), s.st_mode, s.st_size,
                                            s.st_mtime_ns,
                                            p.read_bytes() if stat.S_ISREG(s.st_mode) else None)
    s = top.lstat()
    out["."] = (s.st_mode, s.st_mtime_ns)
    return out


def user_dir(tmp_path: Path) -> Path:
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "thesis.txt").write_text("four years of work\n")
    (d / "sub" / "data.bin").write_bytes(bytes(range(256)))
    return d


def one_line_exit_2(capsys, code, pattern):
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(pattern, err), err
    return out, err


def good_checkpoint(path: Path, fmt: str, dtype: str = "float64") -> dict:
    spec = zoo.get(GOOD)
    m = spec.build_numpy(1, dtype)
    m.forward(np.random.default_rng(1).standard_normal((8, 2)).astype(dtype), training=True)
    C.save(path, m, GOOD, fmt, extra_meta={"seed": 3})
    return transfer.torch_state(C.load_torch(path, GOOD))


def zip_bytes(members) -> bytes:
    """A zip archive from ``(name, method, payload, crc, uncompressed size)``: payload is
    already compressed for method 8 — so a test can declare any size it likes."""
    out, central = io.BytesIO(), []
    for name, method, payload, crc, size in members:
        offset, nb = out.tell(), name.encode()
        out.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc,
                              len(payload), size, len(nb), 0) + nb + payload)
        central.append(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, method, 0,
                                   0x21, crc, len(payload), size, len(nb), 0, 0, 0, 0, 0,
                                   offset) + nb)
    cd_start = out.tell()
    out.write(b"".join(central))
    out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(central), len(central),
                          out.tell() - cd_start, cd_start, 0))
    return out.getvalue()


def npy_bytes(arr) -> bytes:
    b = io.BytesIO()
    np.lib.format.write_array(b, np.asarray(arr), allow_pickle=False)
    return b.getvalue()


def stored(name: str, data: bytes):
    return name, 0, data, zlib.crc32(data), len(data)


def deflated_zeros(name: str, n: int):
    """An .npy member holding ``zeros(n)`` float64, deflated: ~n/1000 bytes on disk, with the
    true CRC and size (built from one compressed MiB repeated: full flushes make deflate
    blocks independent)."""
    header = npy_bytes_header(n)
    chunk = 1 << 20
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    c0 = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c0.compress(bytes(chunk)) + c0.flush(zlib.Z_FULL_FLUSH)
    full, rest = divmod(n * 8, chunk)
    c1 = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = c1.compress(bytes(rest)) + c1.flush(zlib.Z_FINISH)
    crc, zeros = zlib.crc32(header), bytes(chunk)
    for _ in range(full):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(bytes(rest), crc)
    return name, 8, head + block * full + tail, crc, len(header) + n * 8


def npy_bytes_header(n: int) -> bytes:
    b = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        b, {"descr": "<f8", "fortran_order": False, "shape": (n,)})
    return b.getvalue()


def bomb_npz(path: Path, key: str, n: int = 200_000_000) -> Path:
    """A valid cs231n-2layer .npz plus (``key`` new) or instead of (``key`` real) one member
    holding a deflated ``zeros(n)``: 1.6 GB declared, ~1.6 MB on disk."""
    spec = zoo.get(GOOD)
    state = transfer.torch_state(spec.build_torch("float64"))
    meta = C._meta(spec, "float64", state, "numpy", None)
    members = [stored(f"{k}.npy", npy_bytes(v)) for k, v in state.items() if k != key]
    members.append(stored(f"{C.META_KEY}.npy", npy_bytes(np.array(json.dumps(meta)))))
    members.append(deflated_zeros(f"{key}.npy", n))
    path.write_bytes(zip_bytes(members))
    return path


def procs_in_group(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid`` (/proc)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(pid))
    return found


def cli_process(*argv, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "parity", *argv], cwd=kw.pop("cwd", ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)


def finish(p: subprocess.Popen, timeout: float = 60):
    try:
        return p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        pytest.fail(f"{p.args} did not exit within {timeout} s")


# ── row 1: --out into a user's directory ─────────────────────────────────────────────────────

@pytest.mark.parametrize("argv", [
    ["study", "--quick", "--models", "xor-relu", "--jobs", "1", "--out", "D"],
    ["check", "xor-relu", "--save", "D"],
], ids=["study", "check-save"])
def test_row1_foreign_directory_is_refused_and_untouched(cli, capsys, tmp_path, argv):
    d = user_dir(tmp_path)
    before = snapshot(tmp_path)
    code = cli([a.replace("D", str(d)) for a in argv])
    one_line_exit_2(capsys, code, r"non-empty directory that nn-parity did not write")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("out", [".", "..", "./"])
def test_row1_current_directory_and_parents_are_refused(cli, capsys, tmp_path, monkeypatch,
                                                        out):
    d = user_dir(tmp_path)
    (d / fileio.MARKER).write_text("{}")   # even one that looks like ours
    monkeypatch.chdir(d / "sub")
    if out != "..":
        monkeypatch.chdir(d)
    before = snapshot(tmp_path)
    code = cli(["study", "--quick", "--models", "xor-relu", "--out", out])
    one_line_exit_2(capsys, code, r"current directory or one of its parents")
    assert snapshot(tmp_path) == before


def test_row1_our_own_and_empty_directories_are_replaced(tmp_path):
    out = tmp_path / "ev"
    out.mkdir()                                           # empty: fine
    assert fileio.write_dir_set(out, lambda t: Path(t, "a").write_text("1"), "test") == [
        fileio.MARKER, "a"]
    fileio.write_dir_set(out, lambda t: Path(t, "b").write_text("2"), "test")   # ours: fine
    assert sorted(os.listdir(out)) == [fileio.MARKER, "b"]
    assert os.listdir(tmp_path) == ["ev"]


# ── rows 2 and 8: devices, FIFOs, files and symlinks as --out ────────────────────────────────

def _special(tmp_path, kind):
    if kind == "devnull":
        return Path(os.devnull)
    p = tmp_path / "fifo"
    os.mkfifo(p)
    return p


@pytest.mark.parametrize("kind", ["devnull", "fifo"])
@pytest.mark.parametrize("argv", [
    ["diverge", "xor-relu", "--steps", "5", "--out", "P"],
    ["export", "xor-relu", "--impl", "numpy", "--epochs", "1", "--out", "P"],
    ["study", "--quick", "--models", "xor-relu", "--out", "P"],
    ["check", "xor-relu", "--save", "P"],
    ["claims", "--quick", "--out", "P"],
    ["drift", "--out", "P", "--epochs", "1"],
], ids=["diverge", "export", "study", "check-save", "claims", "drift"])
def test_row2_devices_and_fifos_are_never_replaced(cli, capsys, tmp_path, argv, kind):
    p = _special(tmp_path, kind)
    mode = os.stat(p).st_mode
    code = cli([a.replace("P", str(p)) for a in argv])
    one_line_exit_2(capsys, code, r"it is a (character device|FIFO), not a")
    assert os.stat(p).st_mode == mode
    assert sorted(os.listdir(tmp_path)) == ([] if kind == "devnull" else ["fifo"])


def test_row2_atomic_write_itself_refuses_a_device(tmp_path):
    with pytest.raises(ValueError, match="character device"):
        fileio.atomic_write_bytes(os.devnull, b"x")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_row8_a_file_is_not_turned_into_a_report(cli, capsys, tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("my notes\n")
    before = snapshot(tmp_path)
    code = cli(["study", "--quick", "--models", "xor-relu", "--out", str(f)])
    one_line_exit_2(capsys, code, r"--out .*f\.txt: it is a regular file, not a directory")
    assert snapshot(tmp_path) == before


def test_row8_a_symlink_to_a_directory_is_followed_not_replaced(cli, capsys, tmp_path):
    real = tmp_path / "real"
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    fileio.write_dir_set(link, lambda t: Path(t, "old").write_text("1"), "test")  # created
    assert cli(["check", GOOD, "--save", str(link), "--seed", "1"]) == 0   # replaced
    capsys.readouterr()
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert json.loads((real / "summary.json").read_text())["seed"] == 1
    assert not (real / "old").exists()
    assert sorted(os.listdir(tmp_path)) == ["link", "real"]


def test_row8_a_symlink_to_a_file_keeps_the_link(tmp_path):
    real, link = tmp_path / "real.json", tmp_path / "link.json"
    real.write_text("old")
    link.symlink_to(real)
    fileio.atomic_write_bytes(link, b"new")
    assert link.is_symlink() and real.read_text() == "new"


# ── row 3: /dev/zero and FIFOs as input ──────────────────────────────────────────────────────

def test_row3_dev_zero_is_refused_at_once(cli, capsys):
    code = cli(["import-check", "xor-relu", "/dev/zero"])
    one_line_exit_2(capsys, code, r"/dev/zero: a character device, not a regular file")


def test_row3_a_fifo_does_not_hang(cli, capsys, tmp_path):
    fifo = tmp_path / "ck.npz"
    os.mkfifo(fifo)
    old = signal.signal(signal.SIGALRM, lambda *a: pytest.fail("reading a FIFO hung"))
    signal.alarm(30)
    try:
        code = cli(["import-check", "xor-relu", str(fifo)])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    one_line_exit_2(capsys, code, r"ck\.npz: a FIFO, not a regular file")


def test_row3_a_directory_is_refused(tmp_path):
    with pytest.raises(ValueError, match="a directory, not a regular file"):
        C.load_numpy(tmp_path, GOOD)


# ── row 4: a compressed bomb ──────────────────────────────────────────────────────────────────

@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bombs")
    return {key: bomb_npz(d / f"bomb-{key}.npz", key) for key in ("extra", "0.weight")}


@pytest.mark.parametrize("key", ["extra", "0.weight"], ids=["extra-key", "real-key"])
def test_row4_bomb_is_refused_before_decompressing(bombs, key):
    path = bombs[key]
    assert path.stat().st_size < 3_000_000
    with zipfile.ZipFile(path) as z:
        assert z.getinfo(f"{key}.npy").file_size > 1_600_000_000   # honest declared size
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=rf"member '{re.escape(key)}\.npy' declares "
                                         rf"1600000128 bytes uncompressed, more than"):
        C.load_numpy(path, GOOD)
    assert time.perf_counter() - t0 < 2.0     # inflating 1.6 GB takes several seconds


def test_row4_bomb_under_a_memory_cap(bombs):
    """The CLI on both bombs with the address space capped at what is mapped after import +
    400 MB: one line and exit 2 each (inflating one once would need 1.6 GB)."""
    script = textwrap.dedent(f"""
        import contextlib, io, resource, re, sys
        import parity.cli, parity.tools.checkpoint, parity.catalogue.zoo
        vm = int(re.search(r"VmSize:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
        cap = vm * 1024 + 400 * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        for path in sys.argv[1:]:
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = parity.cli.main(["import-check", "{GOOD}", path])
            print(code, err.getvalue().count("\\n"), "declares 1600000128 bytes" in err.getvalue())
    """)
    p = subprocess.run([sys.executable, "-c", script, *map(str, bombs.values())],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 0 and p.stdout == "2 1 True\n" * 2, p.stdout + p.stderr


def test_row4_each_member_is_inflated_once(tmp_path, monkeypatch):
    p = tmp_path / "m.npz"
    good_checkpoint(p, "npz")
    reads, real = [], zipfile.ZipFile.read

    def counting(self, name, pwd=None):
        reads.append(name)
        return real(self, name, pwd)
    monkeypatch.setattr(zipfile.ZipFile, "read", counting)
    opened, real_open = [], os.open
    monkeypatch.setattr(os, "open", lambda f, *a, **k: opened.append(f) or real_open(f, *a, **k))
    C.load_numpy(p, GOOD)
    assert sorted(reads) == sorted(set(reads)) and len(reads) == 5    # 4 arrays + __meta__
    assert [f for f in opened if str(f) == str(p)] == [str(p)]       # the file: opened once


# ── rows 5 and 6: SIGINT and SIGTERM during a study with workers ─────────────────────────────

def _signal_study(tmp_path, sig, to_group):
    out = tmp_path / "report"
    p = cli_process("study", "--quick", "--models", "xor-relu", "--jobs", "2", "--out",
                    str(out))
    try:
        t0 = time.monotonic()      # parent + 2 workers + resource tracker
        while len(procs_in_group(p.pid)) < 4 and time.monotonic() - t0 < 60:
            time.sleep(0.05)
        assert len(procs_in_group(p.pid)) >= 4, "the workers never started"
        time.sleep(0.5)
        (os.killpg if to_group else os.kill)(p.pid, sig)
        _, err = finish(p, 30)
        deadline = time.monotonic() + 5
        while procs_in_group(p.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = procs_in_group(p.pid)
    finally:
        for pid in procs_in_group(p.pid):
            os.kill(pid, signal.SIGKILL)
    return p.returncode, err, left, sorted(os.listdir(tmp_path))


@pytest.mark.skipif(not LINUX, reason="orphans are found through /proc")
def test_row6_sigterm_stops_workers_and_leaves_nothing(tmp_path):
    code, err, left, files = _signal_study(tmp_path, signal.SIGTERM, to_group=False)
    assert code == 143 and err == "nn-parity study: terminated\n", err
    assert left == [], f"orphans after 5 s: {left}"
    assert files == []


@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="orphans are found through /proc")
@pytest.mark.parametrize("run", range(3))
def test_row5_ctrl_c_to_the_group_is_one_line_and_no_orphan(tmp_path, run):
    code, err, left, files = _signal_study(tmp_path, signal.SIGINT, to_group=True)
    assert code == 130 and err == "nn-parity study: interrupted\n", err
    assert left == [] and files == []


@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="PR_SET_PDEATHSIG and /proc are Linux's")
def test_row6_kill_9_of_the_parent_takes_the_workers_along(tmp_path):
    code, _, left, files = _signal_study(tmp_path, signal.SIGKILL, to_group=False)
    assert code == -signal.SIGKILL
    assert left == [], f"orphans after 5 s: {left}"
    assert files == []            # it died before writing: no report, no temporary


def test_row5_workers_ignore_sigint(monkeypatch):
    """In-process half of row 5: the pool initializer ignores SIGINT (the parent decides)."""
    from parity.study import progress
    saved = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(progress, "_die_with_parent", lambda parent: None)
    monkeypatch.setattr("parity.runtime.configure_threads", lambda n: None)
    import multiprocessing as mp
    try:
        progress._init_worker(False, None, mp.get_context("spawn").Value("i", 0), os.getppid())
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, saved)


# ── row 7: killed while the report is written ────────────────────────────────────────────────

_SLOW_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from parity import cli, fileio
    def fill(tmp):
        Path(tmp, "index.md").write_text("half")
        print("writing", flush=True)
        time.sleep(60)
    with cli._signals():
        try:
            fileio.write_dir_set(sys.argv[1], fill, "test")
        except KeyboardInterrupt:
            sys.exit(143)
""")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_row7_no_temporary_survives_a_killed_write(tmp_path, sig):
    target = tmp_path / "report"
    p = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(target)], cwd=ROOT,
                         stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert p.stdout.readline() == "writing\n"
        os.kill(p.pid, sig)
        p.wait(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
        p.stdout.close()
    temps = [n for n in os.listdir(tmp_path) if ".nn-parity-tmp." in n]
    if sig == signal.SIGTERM:
        assert p.returncode == 143 and temps == []
        return
    assert len(temps) == 1                         # SIGKILL cannot clean up ...
    fileio.write_dir_set(target, lambda t: Path(t, "index.md").write_text("whole"), "test")
    assert sorted(os.listdir(tmp_path)) == ["report"]      # ... the next run does
    assert (target / "index.md").read_text() == "whole"


def test_row7_stale_temps_of_live_processes_and_strangers_stay(tmp_path):
    target = tmp_path / "r"
    live = tmp_path / f".r.nn-parity-tmp.{os.getppid()}.0123abcd"     # a live pid: kept
    stranger = tmp_path / ".r.nn-parity-tmp.999999999.0123abcd"        # no marker, not empty
    live.mkdir()
    stranger.mkdir()
    (stranger / "thesis.txt").write_text("x")
    dead_file = tmp_path / ".r.nn-parity-tmp.999999999.89abcdef"
    dead_file.write_text("half a file")
    fileio.write_dir_set(target, lambda t: None, "test")
    assert sorted(os.listdir(tmp_path)) == sorted(["r", live.name, stranger.name])


# ── row 9: an unwritable destination is found before the run ─────────────────────────────────

def test_row9_unwritable_parent_is_refused_before_the_run(cli, capsys, tmp_path, monkeypatch):
    from parity.audit import claims
    from parity.study import report

    def never(*a, **k):
        raise AssertionError("the long run started")
    monkeypatch.setattr(report, "run_study", never)
    monkeypatch.setattr(claims, "run_audit", never)
    real_mkdir = os.mkdir
    (tmp_path / "ro").mkdir()

    def read_only(path, *a, **k):            # what a read-only mount says, even to root
        if str(path).startswith(str(tmp_path / "ro") + os.sep):
            raise OSError(30, "Read-only file system")
        return real_mkdir(path, *a, **k)
    monkeypatch.setattr(os, "mkdir", read_only)
    for argv in (["study", "--models", "xor-relu", "--out", str(tmp_path / "ro" / "rep")],
                 ["claims", "--quick", "--out", str(tmp_path / "ro" / "c.json")]):
        code = cli(argv)
        _, err = one_line_exit_2(capsys, code, r"--out .*ro.*: Read-only file system")
        assert "nn-parity-tmp" not in err


# the permission test's body as a script, for an unprivileged user when the tests run as root:
# the claims run must not start (the refusal comes first); the CLI's exit code is the result
READ_ONLY_BODY = """
import os, sys
from parity.audit import claims
from parity.cli import main

def never(*a, **k):
    raise AssertionError("the long run started")
claims.run_audit = never
if os.geteuid() != int(sys.argv[2]):
    sys.exit(f"running as uid {os.geteuid()}, expected {sys.argv[2]}")
sys.exit(main(["claims", "--quick", "--out", sys.argv[1]]))
"""
NOBODY = 65534
# who runs the body when this process is root, first that works: uid/gid 65534 with no
# supplementary groups (setpriv, runuser); else root with an empty capability bounding set
# (no CAP_DAC_OVERRIDE: the mode bits of a directory it owns bind it) — for an interpreter
# that uid 65534 cannot reach (a venv over a Python under /root, mode 0700)
UNPRIVILEGED = [
    ("setpriv", ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"],
     NOBODY),
    ("runuser", ["runuser", "-u", "nobody", "--"], NOBODY),
    ("setpriv", ["setpriv", "--bounding-set=-all", "--inh-caps=-all"], 0),
]


def _unprivileged(env: dict, cwd: Path) -> tuple[list[str], int] | None:
    """``(command prefix, uid it runs as)`` of the first way in ``UNPRIVILEGED`` that is
    installed and runs this Python (same major.minor) with this checkout importable."""
    probe = ("import os, sys, parity.cli; print(os.geteuid(), *sys.version_info[:2], "
             "open('/proc/self/status').read().split('CapEff:')[1].split()[0])")
    for tool, prefix, uid in UNPRIVILEGED:
        if not shutil.which(tool):
            continue
        r = subprocess.run([*prefix, sys.executable, "-c", probe], capture_output=True,
                           text=True, timeout=120, env=env, cwd=cwd)
        if r.returncode == 0 and r.stdout.split() == [str(uid), *map(str, sys.version_info[:2]),
                                                      "0" * 16]:
            return prefix, uid
    return None


def test_row9_read_only_directory_by_permissions(cli, capsys, monkeypatch, tmp_path):
    """A mode-0555 directory, owned by the user who runs the CLI: one line, exit 2, before
    the run. Root writes into it anyway (CI runs as root), so as root the body runs in a
    subprocess as uid 65534 — or, where that user cannot reach this Python, as root without
    capabilities (``UNPRIVILEGED``) — in a directory under /tmp it can reach, with this
    checkout importable and this Python."""
    if os.geteuid() != 0:                        # the body in this process
        from parity.audit import claims

        def never(*a, **k):
            raise AssertionError("the long run started")
        monkeypatch.setattr(claims, "run_audit", never)
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        try:
            code = cli(["claims", "--quick", "--out", str(ro / "c.json")])
            assert os.listdir(ro) == []
        finally:
            ro.chmod(0o755)
        one_line_exit_2(capsys, code, r"--out .*ro.*: Permission denied")
        return
    top = Path(tempfile.mkdtemp(prefix="nn-parity-ro-", dir="/tmp"))
    try:
        top.chmod(0o755)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(top),
               "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1",
               **{k: v for k, v in os.environ.items()
                  if k.startswith(("NN_PARITY_", "OMP_", "OPENBLAS_", "MKL_", "ATEN_"))}}
        found = _unprivileged(env, top)
        if found is None:
            pytest.skip("running as root, and neither setpriv nor runuser can run this "
                        "Python unprivileged: no one to run the permission check as")
        prefix, uid = found
        ro = top / "ro"
        ro.mkdir()
        os.chown(ro, uid, uid)                # the runner's own directory, mode 0555
        ro.chmod(0o555)
        code = subprocess.run([*prefix, sys.executable, "-c", READ_ONLY_BODY,
                               str(ro / "c.json"), str(uid)], capture_output=True,
                              text=True, timeout=120, env=env, cwd=top)
        assert os.listdir(ro) == []
    finally:
        shutil.rmtree(top)
    assert code.returncode == 2, code.stderr
    assert code.stderr.count("\n") == 1 and "Traceback" not in code.stderr, code.stderr
    assert re.search(r"--out .*ro.*: Permission denied", code.stderr), code.stderr


# ── row 10: a failing --save never mixes two runs ────────────────────────────────────────────

def test_row10_failed_save_keeps_the_previous_set_whole(cli, capsys, tmp_path, monkeypatch):
    ev = tmp_path / "ev"
    assert cli(["check", "xor-relu", "--save", str(ev)]) == 0
    before = snapshot(ev)
    real, calls = np.savez, []

    def savez(f, *a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(f, *a, **k)
    monkeypatch.setattr(np, "savez", savez)
    code = cli(["check", "cs231n-2layer", "--save", str(ev)])
    monkeypatch.undo()
    one_line_exit_2(capsys, code, r"cannot write --save .*ev: No space left on device")
    assert snapshot(ev) == before and os.listdir(tmp_path) == ["ev"]


# ── row 11: drift --combine reads only records, checked ──────────────────────────────────────

def _record(d: Path, env="py3.11-np2.0-torch2.13", **over):
    rec = {"env": env, "epochs": 3, "models": {"xor-relu": {"numpy_loss": 0.5}}, **over}
    (d / f"drift-{env}.json").write_text(json.dumps(rec))


def test_row11_combine_twice(cli, capsys, tmp_path):
    _record(tmp_path)
    _record(tmp_path, env="py3.11-np2.1-torch2.13")
    assert cli(["drift", "--combine", str(tmp_path)]) == 0
    first = (tmp_path / "drift-table.json").read_bytes()
    assert cli(["drift", "--combine", str(tmp_path)]) == 0
    assert (tmp_path / "drift-table.json").read_bytes() == first
    assert json.loads(first)["envs"] == ["py3.11-np2.0-torch2.13", "py3.11-np2.1-torch2.13"]
    capsys.readouterr()


@pytest.mark.parametrize("content, pattern", [
    ("[1, 2]", r"a JSON list, expected an object"),
    ('{"epochs": 3, "models": {}}', r"'env' must be a non-empty string"),
    ('{"env": "e", "epochs": true, "models": {}}', r"'epochs' must be an int >= 1"),
    ('{"env": "e", "epochs": 3, "models": []}', r"'models' must be an object"),
    ('{"env": "e", "epochs": 3, "models": {"m": {"loss": "x"}}}', r"finite numbers"),
    ("{not json", r"not JSON"),
], ids=["list", "no-env", "bool-epochs", "models-list", "string-metric", "not-json"])
def test_row11_malformed_records_are_one_line(cli, capsys, tmp_path, content, pattern):
    (tmp_path / "drift-py3.11-bad.json").write_text(content)
    code = cli(["drift", "--combine", str(tmp_path)])
    one_line_exit_2(capsys, code, r"drift-py3\.11-bad\.json: not a drift record.*" + pattern)


# ── row 12: hostile structures inside a checkpoint ───────────────────────────────────────────

def _pt_with(path, tensor):
    spec = zoo.get(GOOD)
    state = transfer.torch_state(spec.build_torch("float64"))
    meta = C._meta(spec, "float64", state, "torch", None)
    sd = {k: torch.from_numpy(v) for k, v in state.items()}
    sd["0.weight"] = tensor
    torch.save({"meta": meta, "state_dict": sd}, path)


@pytest.mark.parametrize("make, pattern", [
    (lambda: torch.empty(100, 2, dtype=torch.float64, device="meta"), r"a meta-device tensor"),
    # torch >= 2.15 refuses a nested tensor inside torch.load(weights_only=True) already (its
    # unpickler no longer allows _rebuild_nested_tensor): a one-line refusal either way
    (lambda: torch.nested.nested_tensor([torch.zeros(2, dtype=torch.float64)] * 100),
     r"a nested tensor|refused it \(UnpicklingError"),
    (lambda: torch.zeros(100, 2, dtype=torch.float64).to_sparse(), r"a sparse tensor|refused"),
], ids=["meta", "nested", "sparse"])
def test_row12_odd_tensors_in_a_pt(cli, capsys, tmp_path, make, pattern):
    p = tmp_path / "ck.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # nested tensors are a prototype: torch says so
        _pt_with(p, make())
    code = cli(["import-check", GOOD, str(p)])
    one_line_exit_2(capsys, code, pattern)


@pytest.mark.parametrize("depth, pattern", [
    (200_000, r"member '__meta__\.npy' declares 1600128 bytes uncompressed, more than the "
              r"1048576"),
    (50_000, r"metadata JSON nests too deeply"),
])
def test_row12_deeply_nested_metadata(cli, capsys, tmp_path, depth, pattern):
    spec = zoo.get(GOOD)
    state = transfer.torch_state(spec.build_torch("float64"))
    p = tmp_path / "ck.npz"
    np.savez(p, **state, **{C.META_KEY: np.array("[" * depth + "]" * depth)})
    code = cli(["import-check", GOOD, str(p)])
    one_line_exit_2(capsys, code, pattern)


# ── row 13: non-finite weights ───────────────────────────────────────────────────────────────

@pytest.mark.parametrize("fmt", C.FORMATS)
@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_row13_non_finite_weights_are_bad_input_not_a_parity_failure(cli, capsys, tmp_path,
                                                                     fmt, bad):
    spec = zoo.get(GOOD)
    state = transfer.torch_state(spec.build_torch("float64"))
    state["2.weight"][1, 2] = bad
    meta = C._meta(spec, "float64", state, "numpy", None)
    p = tmp_path / f"ck.{fmt}"
    if fmt == "npz":
        np.savez(p, **state, **{C.META_KEY: np.array(json.dumps(meta))})
    elif fmt == "safetensors":      # valid digests: only the values are wrong
        p.write_bytes(safetensors.numpy.save(state, C._st_header_meta(meta, state)))
    else:
        torch.save({"meta": meta, "state_dict": {k: torch.from_numpy(v)
                                                 for k, v in state.items()}}, p)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no RuntimeWarning on the way either
        code = cli(["import-check", GOOD, str(p)])
    one_line_exit_2(capsys, code, r"2\.weight holds 1 non-finite value\(s\) \(first "
                                  r"(nan|inf) at index \(1, 2\)\); refusing to load it")


def test_row13_saving_non_finite_weights_is_refused(tmp_path):
    m = zoo.get(GOOD).build_numpy(0)
    m.layers[0].params["weight"][0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite value"):
        C.save_numpy(tmp_path / "m.npz", m, GOOD)
    assert os.listdir(tmp_path) == []


# ── row 14: bayes extremes ────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("argv, pattern", [
    (["--samples", "1000000000000"], r"--samples must be <= 100000000"),
    (["--noise", "1e-300"], r"noise must be in \[1e-100, 1000\]"),
    (["--noise", "1e300"], r"noise must be in \[1e-100, 1000\]"),
    (["--n-per-class", "10000000"], r"--n-per-class must be <= 100000"),
], ids=["samples", "tiny-noise", "huge-noise", "n-per-class"])
def test_row14_bayes_extremes_are_bad_input(cli, capsys, argv, pattern):
    code = cli(["bayes", "cs231n_spiral", *argv])
    one_line_exit_2(capsys, code, pattern)


def test_row14_smallest_allowed_noise_is_finite():
    from parity.audit import bayes
    est = bayes.bayes_ceiling("two_spirals_corrected", np.random.default_rng(0),
                              n_samples=100, n_per_class=20, noise=bayes.NOISE_MIN)
    assert np.isfinite([est.mean, est.stderr, est.consistency_z]).all()


# ── row 15: a closed stdout ───────────────────────────────────────────────────────────────────

class _ClosedPipe(io.StringIO):
    def write(self, s):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


def test_row15_broken_pipe_is_quiet(cli, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    code = cli(["list", "--json"])
    monkeypatch.undo()
    assert code == 141 and capsys.readouterr().err == ""


@pytest.mark.slow
def test_row15_broken_pipe_from_a_real_process():
    r, w = os.pipe()
    os.close(r)                                   # the reader is gone before the first write
    p = subprocess.run([sys.executable, "-m", "parity", "list", "--json"], stdout=w,
                       stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT)
    os.close(w)
    assert p.returncode == 141 and p.stderr == ""


# ── row 16: digits that are not ASCII, complex features ──────────────────────────────────────

@pytest.mark.parametrize("field", ["١٫٥", "١", "１．５", "１"], ids=["arabic-indic-float",
                                                                "arabic-indic-int",
                                                                "fullwidth-float",
                                                                "fullwidth-int"])
def test_row16_non_ascii_digits_are_not_numbers(tmp_path, field):
    from parity.reference.datasets import load_csv
    p = tmp_path / "a.csv"
    p.write_text(f"x1,y\n{field},0\n1.0,{field}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2: x1 = .* is not a number"):
        load_csv(p)
    p.write_text(f"x1,y\n1.0,{field}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2: y = .* is not an integer label"):
        load_csv(p)


def test_row16_complex_features_are_refused():
    from parity.catalogue import train
    spec = zoo.get("xor-relu")
    d = dataclasses.replace(spec.data(0), X_train=spec.data(0).X_train + 1j)
    with pytest.raises(TypeError, match=r"data\.X_train must have a real .*complex128"):
        train.run(spec, "numpy", data=d, epochs=1)


def test_row16_load_csv_reads_only_regular_files(tmp_path):
    from parity.reference.datasets import load_csv
    fifo = tmp_path / "a.csv"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="a FIFO, not a regular file"):
        load_csv(fifo)


# ── row 17: bool and float where ints belong, numbers out of range ───────────────────────────

def _npz_with_meta(path, **over):
    spec = zoo.get(GOOD)
    state = transfer.torch_state(spec.build_torch("float64"))
    meta = {**C._meta(spec, "float64", state, "numpy", None), **over}
    np.savez(path, **state, **{C.META_KEY: np.array(json.dumps(meta))})


@pytest.mark.parametrize("over, pattern", [
    ({"version": True}, r"checkpoint format version True"),
    ({"version": 1.0}, r"checkpoint format version 1\.0"),
    ({"seed": 1.5}, r"metadata seed 1\.5 is not an integer"),
    ({"seed": True}, r"metadata seed True is not an integer"),
    ({"seed": -1}, r"metadata seed -1 is not an integer in \[0, 2\*\*64\)"),
    ({"seed": 2**64}, r"metadata seed 18446744073709551616"),
], ids=["version-true", "version-float", "seed-float", "seed-bool", "seed-negative",
        "seed-2**64"])
def test_row17_metadata_numbers(cli, capsys, tmp_path, over, pattern):
    p = tmp_path / "ck.npz"
    _npz_with_meta(p, **over)
    code = cli(["import-check", GOOD, str(p)])
    one_line_exit_2(capsys, code, pattern)


@pytest.mark.parametrize("argv, pattern", [
    (["train", "xor-relu", "--seed", str(2**64)], r"--seed must be in \[0, 2\*\*64\), got 1844"),
    (["check", "xor-relu", "--seed", "-1"], r"--seed must be in \[0, 2\*\*64\), got -1"),
    (["export", "xor-relu", "--impl", "numpy", "--out", "m.npz", "--seed", str(2**70)],
     r"--seed must be in"),
    (["--threads", str(2**40), "list"], r"--threads must be <= 1024"),
    (["study", "--jobs", "0"], r"--jobs must be >= 1, got 0"),
    (["diverge", "xor-relu", "--steps", str(10**12)], r"--steps must be <= 1000000"),
    (["train", "xor-relu", "--epochs", str(10**9)], r"--epochs must be <= 1000000"),
], ids=["seed-2**64", "seed-negative", "export-seed", "threads", "jobs-0", "steps", "epochs"])
def test_row17_cli_numbers_name_the_option(cli, capsys, tmp_path, monkeypatch, argv, pattern):
    monkeypatch.chdir(tmp_path)
    one_line_exit_2(capsys, cli(argv), pattern)
    assert os.listdir(tmp_path) == []


def test_row17_library_seed_and_threads_checks():
    from parity.runtime import check_seed, check_threads
    assert check_seed(2**64 - 1) == 2**64 - 1 and check_seed(np.int64(3)) == 3
    for bad, exc in ((True, TypeError), (1.5, TypeError), (2**64, ValueError), (-1, ValueError)):
        with pytest.raises(exc, match="seed"):
            check_seed(bad)
    with pytest.raises(TypeError, match="threads must be an int"):
        check_threads(2.0)


# ── exit codes: the last resort ───────────────────────────────────────────────────────────────

def test_unexpected_error_is_one_line_exit_3_and_debug_shows_it(cli, capsys, monkeypatch):
    from parity import cli as cli_mod

    def boom(args):
        raise RuntimeError("a bug\nsecond line")
    monkeypatch.setattr(cli_mod, "cmd_list", boom)
    assert cli(["list"]) == 3
    err = capsys.readouterr().err
    assert err == ("nn-parity list: internal error: RuntimeError: a bug (run again with --debug "
                   "for the traceback)\n")
    assert cli(["--debug", "list"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("for the traceback)\n")


def test_signal_handlers_are_restored(cli, capsys):
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    assert cli(["list", "--json"]) == 0
    capsys.readouterr()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


# ── corrupted checkpoints: a clean error or an identical load, never a traceback ─────────────

@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("valid")
    out = {}
    for fmt in C.FORMATS:
        p = d / f"good.{fmt}"
        state = good_checkpoint(p, fmt)
        out[fmt] = (p.read_bytes(), state, C.read_checkpoint(p, GOOD).meta)
    return out


def _load_or_refuse(data: bytes, fmt: str, tmp: Path, expected) -> None:
    p = tmp / f"x.{fmt}"
    p.write_bytes(data)
    for impl in C.IMPLS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = C.load_any(p, GOOD, impl)
        except ValueError as e:
            msg = str(e)
            assert "\n" not in msg and msg.startswith(f"{p}: "), msg
            continue
        state = (transfer.torch_state(model) if impl == "torch" else
                 transfer.to_torch_layout(model.state_dict(), zoo.get(GOOD).build_torch()))
        assert set(state) == set(expected[1])
        for k, v in expected[1].items():
            assert state[k].dtype == v.dtype and np.array_equal(state[k], v), k
        assert C.read_checkpoint(p, GOOD).meta == expected[2]


_FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FUZZ
@given(fmt=st.sampled_from(C.FORMATS), data=st.data())
def test_random_byte_flips(valid_files, tmp_path, fmt, data):
    raw = bytearray(valid_files[fmt][0])
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        at = data.draw(st.integers(0, len(raw) - 1), label="at")
        raw[at] ^= data.draw(st.integers(1, 255), label="xor")
    _load_or_refuse(bytes(raw), fmt, tmp_path, valid_files[fmt])


@_FUZZ
@given(fmt=st.sampled_from(C.FORMATS), data=st.data())
def test_random_truncations(valid_files, tmp_path, fmt, data):
    raw = valid_files[fmt][0]
    cut = data.draw(st.integers(0, len(raw) - 1), label="keep")
    _load_or_refuse(raw[:cut], fmt, tmp_path, valid_files[fmt])


@_FUZZ
@given(fmt=st.sampled_from(["npz", "pt"]), data=st.data())   # the zip formats: members to rename
def test_random_member_renames(valid_files, tmp_path, fmt, data):
    raw = valid_files[fmt][0]
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        infos = z.infolist()
        victim = data.draw(st.sampled_from([i.filename for i in infos]), label="member")
        new = data.draw(st.one_of(
            st.sampled_from([i.filename for i in infos] + ["x.npy", "archive/data/9",
                                                           "__meta__.npy", "a/../b.npy"]),
            st.text(st.characters(codec="ascii", exclude_characters="\x00"), min_size=1,
                    max_size=12)), label="new name")
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as w:
            for i in infos:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")     # a duplicate name: that is the point
                    w.writestr(new if i.filename == victim else i.filename, z.read(i))
    _load_or_refuse(out.getvalue(), fmt, tmp_path, valid_files[fmt])
