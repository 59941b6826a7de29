"""Atomic file writes: nothing half-written, ever."""

from __future__ import annotations

import os
import secrets


def atomic_write(path, write) -> None:
    """Call ``write(file)`` on a binary temp file next to ``path``, fsync, then ``os.replace``
    it onto ``path``. On any failure the temp file is removed and ``path`` is left as it was.
    (reference.datasets.save_csv does the same for text; reference/ stays free of parity.)"""
    path = os.fspath(path)
    directory, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:  # "x": never clobber; mode from the umask, unlike mkstemp
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
