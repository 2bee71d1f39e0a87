"""Subprocess timing, slope and statistics.

Per-test cost is the slope between a small and a large suite,
``(t_large - t_small) / (n_large - n_small)``: fixed costs -- process start,
imports, discovery, creating a throwaway database, the first class's
set-up -- appear in both runs and cancel.  Each suite runs in a fresh
subprocess so no state (warm pools, caches, leaked tasks) crosses runs, and
the child times itself (see ``child.py``) so interpreter start-up noise is
excluded even from the two raw timings.
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .child import RESULT_MARKER

CHILD_SCRIPT = Path(__file__).with_name("child.py")


class RowFailed(Exception):
    """A child run failed; the message is what the table shows.

    ``databases`` are the ones the child connected to, for clean-up."""

    def __init__(self, message, databases=()):
        super().__init__(message)
        self.databases = list(databases)


class Interrupted(RowFailed):
    """Ctrl-C during a child run: the child was killed; stop the benchmark."""


@dataclass
class ChildRun:
    """The child's own report of one suite run."""

    n_tests: int
    seconds: float
    connections: int
    rss_start: int
    rss_end: int
    databases: list
    log: str = ""          # the child's stderr: the library's log lines, when asked for
    calls: int | None = None        # counting runs only (see child_counters)
    statements: int | None = None   # None too when a driver's statements are out of reach


def child_command(runner, suite_dir, count_connections, count=False):
    cmd = [sys.executable, str(CHILD_SCRIPT), "--runner", runner, "--dir", str(suite_dir)]
    return (cmd + (["--count-connections"] if count_connections else [])
            + (["--count"] if count else []))


def run_child(cmd, env, cwd, timeout, expected_tests):
    """Run one child; return a ChildRun or raise RowFailed with the reason."""
    with tempfile.NamedTemporaryFile("r", suffix=".dblog") as db_log:
        env = dict(env, BENCH_DB_LOG=db_log.name)
        try:
            proc = _run_with_timeout(cmd, env, cwd, timeout)
        except subprocess.TimeoutExpired:
            raise RowFailed(f"timed out after {timeout:.0f}s", _read_lines(db_log.name))
        except KeyboardInterrupt:
            raise Interrupted("interrupted", _read_lines(db_log.name)) from None
        report = _parse_report(proc.stdout)
        if report is None:
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:]
            raise RowFailed(f"child exited {proc.returncode} without a result: "
                            + " | ".join(tail), _read_lines(db_log.name))
    if report["problems"] or report["tests_run"] != expected_tests:
        raise RowFailed(_problem_summary(report, expected_tests), report["databases"])
    return ChildRun(expected_tests, report["seconds"], report["connections"],
                    report["rss_start"], report["rss_end"], report["databases"], proc.stderr,
                    report.get("calls"), report.get("statements"))


def run_timed(cmd, env, cwd, timeout):
    """Run a whole command; return (wall seconds, CompletedProcess).

    For rows whose cost is the whole run as a user sees it -- interpreter,
    imports, worker processes -- so the parent times from start to exit.
    """
    started = time.perf_counter()
    try:
        proc = _run_with_timeout(cmd, env, cwd, timeout)
    except subprocess.TimeoutExpired:
        raise RowFailed(f"timed out after {timeout:.0f}s") from None
    except KeyboardInterrupt:
        raise Interrupted("interrupted") from None
    return time.perf_counter() - started, proc


def _run_with_timeout(cmd, env, cwd, timeout):
    """subprocess.run, but kill the child's whole process group on timeout.

    The child gets its own session so a terminal's Ctrl-C reaches only the
    parent, which then kills the child's group itself: nothing is orphaned.
    """
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException:  # timeout or Ctrl-C
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def _read_lines(path):
    try:
        return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError:
        return []


def _parse_report(stdout):
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    return None


def _problem_summary(report, expected):
    """One line for the table: the last line of the first error, and counts."""
    first = (report.get("first_error") or "").strip().splitlines()
    reason = first[-1] if first else "no error text"
    return (f"{report['problems']} problem(s), {report['tests_run']}/{expected} tests ran; "
            f"first: {reason}")


def slope(small, large):
    """Seconds per test between two runs of different sizes."""
    return (large.seconds - small.seconds) / (large.n_tests - small.n_tests)


def count_slope(small, large, name):
    """A count per test between two counting runs (None when either lacks it)."""
    a, b = getattr(small, name), getattr(large, name)
    if a is None or b is None:
        return None
    return (b - a) / (large.n_tests - small.n_tests)


def fixed_cost(small, per_test):
    """What the small run cost beyond N x per-test: per-process/per-run overhead."""
    return small.seconds - per_test * small.n_tests


def summarise(values):
    """min/median/max of a list (None for an empty list)."""
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "n": len(values)}


def median_ratio(numerator, denominator):
    """Divide two summaries' medians (None when either is missing)."""
    if not numerator or not denominator or denominator["median"] <= 0:
        return None
    return numerator["median"] / denominator["median"]


class Progress:
    """Progress lines on stderr: what runs now and the elapsed wall time."""

    def __init__(self, stream=sys.stderr):
        self.stream, self.t0 = stream, time.monotonic()

    def __call__(self, message):
        elapsed = time.monotonic() - self.t0
        self.stream.write(f"[{int(elapsed) // 60:2d}m{elapsed % 60:04.1f}s] {message}\n")
        self.stream.flush()
