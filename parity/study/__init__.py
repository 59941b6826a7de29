"""The side-by-side study: train every catalogue model in both twins, write ``report/``.

``nn-parity study [--models ...] [--out report] [--quick] [--jobs N]`` →
``report/index.md``, ``report/index.html`` (both linking each picture, a PNG saved once
under ``report/img/``), ``report/results.json`` (and
``report/claims.json`` when ``parity.audit.claims`` exists).

Work is cut into independent jobs — one training run (model × impl), one model's parity
checks (one-step ``compare`` and lockstep ``diverge``, float64 and float32), a chunk of the
XOR seed sweep, one hidden size of the seed-003 search, one LR-finder sweep, the claims audit —
each a pure function of its arguments (every random draw comes from the seed), run in order
in this process (``jobs=1``) or in ``jobs`` spawned worker processes with one thread each.
Results are keyed by job, never by completion order, so everything except wall-clock seconds
is identical for any ``jobs`` (at one thread: the CLI's default ``--threads 1``). The
benchmark, if ``parity.tools.bench`` exists, runs after all jobs, alone, since it measures time.

Every picture is drawn from these measurements (``parity.study.plots``). The report is written with
``parity.fileio.write_dir_set``: ``--out`` is checked before any job runs (a file, a device,
a foreign non-empty directory or the current directory is refused), the report is built in a
temporary sibling carrying the marker ``.nn-parity-output`` and swapped into place only at the
end: a crash, SIGINT or SIGTERM leaves the previous report as it was and no temporary behind.
Workers ignore SIGINT (a Ctrl-C reaches the whole process group); on an interrupt the parent
terminates them, so nothing outlives the run.
"""
