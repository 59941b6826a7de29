"""Run the fast suite under other kernel and thread choices, one pytest process per variant.

A float32 verdict must hold on every machine; the kernels a machine picks can be varied on
this one. Each knob acts when its library is imported, hence one process per variant:

- ``ATEN_CPU_CAPABILITY`` default | avx2 | avx512: torch's vectorized CPU kernels;
- ``OPENBLAS_CORETYPE`` Haswell | SkylakeX: the kernels of NumPy's (and SciPy's) OpenBLAS;
- ``NPY_DISABLE_CPU_FEATURES``: NumPy without its AVX-512 dispatch targets (X86_V4,
  AVX512_ICL, AVX512_SPR — the names NumPy 2.4 dispatches; it warns about unknown names);
- ``NN_PARITY_THREADS`` 1 | 2: torch and BLAS threads (tests/conftest.py).

``python tests/portability.py`` runs ``SUBSET`` (``make test-portability``, tox -e portability);
``--all`` runs every combination, 3·2·2·2 = 24 (``make test-portability-all``, tox -m slow).
Arguments after ``--`` go to pytest. Before each variant a probe process checks that every
setting took effect (``parity.runtime.kernels_in_force``); variants the CPU cannot run
(AVX-512 kernels on a CPU without AVX-512) are skipped, saying so. Exit 1 if any variant
failed. Stdlib only: it runs under whatever Python has the project installed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time

ATEN = ("default", "avx2", "avx512")
CORETYPE = ("Haswell", "SkylakeX")
NO_AVX512 = "X86_V4 AVX512_ICL AVX512_SPR"
NUMPY = ("", NO_AVX512)        # "": NumPy's own choice
THREADS = (1, 2)
# every value of every knob at least once, each variant far from `make test`'s own choice
# (this CPU's best ATen kernels, OpenBLAS's own core type, all NumPy targets, 1 thread)
SUBSET = (("default", "SkylakeX", NO_AVX512, 2),
          ("avx2", "SkylakeX", "", 1),
          ("avx512", "Haswell", NO_AVX512, 2))
PROBE = ("import json; from parity.runtime import *; configure_threads(threads_from_env()); "
         "print(json.dumps({**kernels_in_force(), 'threads': threads_in_force()}))")


def environment(aten: str, coretype: str, numpy_off: str, threads: int) -> dict:
    """The variables a variant sets (an empty ``numpy_off`` leaves NumPy's choice alone)."""
    env = {"ATEN_CPU_CAPABILITY": aten, "OPENBLAS_CORETYPE": coretype,
           "NN_PARITY_THREADS": str(threads)}
    if numpy_off:
        env["NPY_DISABLE_CPU_FEATURES"] = numpy_off
    return env


def describe(env: dict) -> str:
    return " ".join(f"{k}={v!r}" if " " in v else f"{k}={v}" for k, v in env.items())


def probe(env: dict | None) -> dict:
    """What a fresh process with ``env`` added reports: kernels and threads in force."""
    full = {**os.environ, **(env or {})}
    out = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def unsupported(variant: tuple, machine: dict) -> str | None:
    """Why this CPU cannot run ``variant`` (None if it can): the kernels it asks for need
    AVX2 (avx2, Haswell) or AVX-512 (avx512, SkylakeX); torch's own choice tells which the
    CPU has (an x86 CPU without AVX-512 would die of SIGILL in OpenBLAS's SkylakeX kernels)."""
    aten, coretype, _, _ = variant
    rank = {"DEFAULT": 0, "AVX2": 1, "AVX512": 2}
    need = max(rank[aten.upper()], {"Haswell": 1, "SkylakeX": 2}[coretype])
    if need > rank.get(machine["aten"], 0):
        return f"the CPU lacks the instructions (torch's best kernels here: {machine['aten']})"
    return None


def not_in_force(variant: tuple, got: dict) -> list[str]:
    """The settings of ``variant`` that did not take effect in the probed process."""
    aten, coretype, numpy_off, threads = variant
    wrong = []
    if got["aten"] != aten.upper():
        wrong.append(f"ATen capability {got['aten']}, asked {aten}")
    if got["openblas"] is not None and got["openblas"] != [coretype]:
        wrong.append(f"OpenBLAS core types {got['openblas']}, asked {coretype}")
    left = sorted(set(numpy_off.split()) & set(got["numpy"] or ()))
    if left:
        wrong.append(f"NumPy still dispatches {left}")
    if got["threads"]["torch"] != threads or got["threads"]["blas"] not in (threads, None):
        wrong.append(f"threads {got['threads']}, asked {threads}")
    return wrong


def run_variant(i: int, total: int, variant: tuple, machine: dict, pytest_args: list) -> tuple:
    """Probe, then run the fast suite under ``variant``: ``(status, seconds)``."""
    env = environment(*variant)
    print(f"\n=== variant {i}/{total}: {describe(env)}", flush=True)
    why = unsupported(variant, machine)
    if why:
        print(f"--- variant {i}/{total} skipped: {why}", flush=True)
        return "skipped", 0.0
    start = time.perf_counter()
    wrong = not_in_force(variant, probe(env))
    if wrong:
        print(f"--- variant {i}/{total} NOT IN FORCE: {'; '.join(wrong)}", flush=True)
        return "not in force", time.perf_counter() - start
    evidence = os.path.join("parity-evidence", "portability", f"variant-{i}")
    full = {"NN_PARITY_EVIDENCE": evidence, **os.environ, **env}
    cmd = [sys.executable, "-m", "pytest", "-m", "not slow", "-q", "-rf", *pytest_args]
    rc = subprocess.run(cmd, env=full).returncode
    seconds = time.perf_counter() - start
    status = "passed" if rc == 0 else f"FAILED (pytest exit {rc})"
    print(f"--- variant {i}/{total} {status} in {seconds:.1f} s: {describe(env)}", flush=True)
    return status, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="every combination (24), not SUBSET")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to pytest")
    args = parser.parse_args(argv)
    variants = list(itertools.product(ATEN, CORETYPE, NUMPY, THREADS)) if args.all else SUBSET
    machine = probe(None)
    print(f"this machine without overrides: {machine}", flush=True)
    start, rows = time.perf_counter(), []
    for i, variant in enumerate(variants, 1):
        status, seconds = run_variant(i, len(variants), variant, machine, args.pytest_args)
        rows.append((i, status, seconds, describe(environment(*variant))))
    print(f"\n=== portability: {len(variants)} variants in {time.perf_counter() - start:.1f} s")
    for i, status, seconds, env in rows:
        print(f"  {i:2d}  {status:<22s} {seconds:6.1f} s  {env}")
    return 0 if all(s in ("passed", "skipped") for _, s, _, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
