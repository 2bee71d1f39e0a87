"""Parallel rows: one database-bound suite under nose2, serially and with ``-N 2``.

The question is what a user gains from ``nose2 -N 2`` on this machine, so
the parent times each whole run from process start to exit -- interpreter,
imports, discovery, worker start-up and every worker's database included --
instead of the in-child run phase the per-test rows time.  Both runs load
the framework's nose2 plugin from a config file in the suite folder
(``nose2-serial.cfg``, ``nose2-parallel.cfg``; they differ only in the ``mp``
plugin), so each worker drops its database when it stops.

The library's INFO log names every database it creates.  The distinct names
are counted -- one per process that ran tests, so 1 serially and 2 with two
workers each using its own -- and dropped if a run left them behind.  Which
mode runs first alternates between repeats, so drift on a shared machine
favours neither.
"""
import re
import sys

from . import harness

WORKERS = 2
CREATED = re.compile(r"created test database \S*/(test_\w+)")
RAN = re.compile(r"^Ran (\d+) tests? in ", re.MULTILINE)
ERROR_LINE = re.compile(r"^[\w.]*(Error|Exception)\b.*$", re.MULTILINE)


def warm_up(bench, row):
    """Build the schema template both modes clone, in one untimed serial run."""
    run_nose2(bench, row, 0, "warm-up, untimed")


def measure(bench, row, repeat):
    """Time the suite serially and with ``-N 2``, in alternating order."""
    label = f"repeat {repeat}/{bench.options.repeats}"
    order = [0, WORKERS] if repeat % 2 else [WORKERS, 0]
    runs = {workers: run_nose2(bench, row, workers, label) for workers in order}
    (serial_s, serial_dbs), (parallel_s, parallel_dbs) = runs[0], runs[WORKERS]
    return {"n_tests": bench.options.parallel_tests, "workers": WORKERS,
            "serial_s": serial_s, "parallel_s": parallel_s,
            "serial_over_parallel": serial_s / parallel_s,
            "databases": [serial_dbs, parallel_dbs]}


def run_nose2(bench, row, workers, label):
    """Run the suite under nose2, with ``-N workers`` unless 0.

    Returns the wall seconds and how many databases the run created.
    """
    n_tests = bench.options.parallel_tests
    suite_dir = bench.suite_dir(row.scenario, n_tests)
    mode = "parallel" if workers else "serial"
    bench.progress(f"{row.scenario.key} N={n_tests} {mode} ({label})")
    cmd = [sys.executable, "-m", "nose2", "--no-user-config",
           "-c", str(suite_dir / f"nose2-{mode}.cfg"), "-s", str(suite_dir),
           "-t", str(suite_dir)] + (["-N", str(workers)] if workers else [])
    seconds, proc = harness.run_timed(cmd, bench.env_for(row, suite_dir), suite_dir,
                                      bench.timeout_for(n_tests))
    databases = sorted(set(CREATED.findall(proc.stderr)))
    bench.drop_leftovers(row, databases)
    _check(proc, n_tests)
    bench.progress(f"  {seconds:.2f}s wall, {len(databases)} database(s)")
    return seconds, len(databases)


def _check(proc, n_tests):
    """Fail the row unless nose2 exited 0 having run every test."""
    ran = RAN.findall(proc.stderr)
    if proc.returncode == 0 and ran and int(ran[-1]) == n_tests:
        return
    error = ERROR_LINE.search(proc.stderr)
    last = proc.stderr.strip().splitlines()[-1:] or ["no output"]
    raise harness.RowFailed(
        f"nose2 exited {proc.returncode}, ran {ran[-1] if ran else '?'}/{n_tests} tests: "
        + " | ".join(([error.group(0)] if error else []) + last))
