"""Run the example suite (``examples/tests``) in a subprocess and collect what it left behind.

The child runs from ``examples/`` with this interpreter, the parent's
``TEST_DATABASE_URL`` (so ``scripts/test`` covers each backend), this
checkout first on ``PYTHONPATH`` and a private ``TMPDIR``. Afterwards we
record two kinds of leftovers: files in that ``TMPDIR`` (where SQLite test
databases live) and, on PostgreSQL, new ``test_`` databases whose owner
process (the child or one of its workers) has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TIMEOUT = 120
MAINTENANCE_DATABASE = "postgres"


@dataclass
class SuiteRun:
    """What one subprocess run printed, returned and left behind."""

    args: list[str]
    pid: int
    returncode: int
    stdout: str
    stderr: str
    leftover_files: list[str] = field(default_factory=list)
    leftover_databases: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """Return the command and the tail of its output, for assertion messages."""
        return (f"\n$ python {' '.join(self.args)}  (cwd {EXAMPLES}, exit {self.returncode})\n"
                f"--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}")


def database_url() -> str | None:
    """Return the backend the parent runs on: ``TEST_DATABASE_URL``, or None for SQLite."""
    return os.environ.get("TEST_DATABASE_URL", "").strip() or None


def run_python(*args: str, env_updates: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess:
    """Run a short helper command (not a suite) from ``examples/`` with a timeout."""
    return subprocess.run([sys.executable, *args], cwd=EXAMPLES,
                          env=dict(os.environ, **(env_updates or {})), capture_output=True,
                          text=True, timeout=TIMEOUT)


def run_suite(*args: str, env_updates: dict[str, str] | None = None,
              env_removals: tuple[str, ...] = (), cwd: Path = EXAMPLES) -> SuiteRun:
    """Run ``python <args>`` from ``cwd`` (default ``examples/``); record output and leftovers."""
    url = database_url()
    databases_before = server_test_databases(url)
    with tempfile.TemporaryDirectory(prefix="example_run_") as tmp:
        env = child_environment(tmp, env_updates or {}, env_removals)
        pid, returncode, stdout, stderr = _run_with_timeout([sys.executable, *args], env, cwd)
        leftover_files = sorted(os.listdir(tmp))
    new_databases = made_by(pid, server_test_databases(url) - databases_before)
    return SuiteRun(list(args), pid, returncode, stdout, stderr, leftover_files,
                    sorted(new_databases & orphaned_databases(url)))


def child_environment(tmp: str, updates: dict[str, str],
                      removals: tuple[str, ...]) -> dict[str, str]:
    """Return the parent's environment with this checkout importable and a private TMPDIR."""
    env = {key: value for key, value in os.environ.items() if key not in removals}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["TMPDIR"] = tmp
    if database_url():  # the example app's own setting names the same server (app/db.py)
        env["DATABASE_URL"] = database_url()
    env.update(updates)
    return env


def _run_with_timeout(command: list[str], env: dict[str, str],
                      cwd: Path) -> tuple[int, int, str, str]:
    """Like ``subprocess.run(timeout=...)``, but also return the child's pid.

    On timeout the child gets SIGINT first, so its exit hooks can still drop
    its test database.
    """
    with subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:
        threading.Thread(target=_note_family, args=(process,), daemon=True).start()
        try:
            stdout, stderr = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
            raise
        return process.pid, process.returncode, stdout, stderr


_families: dict[int, set[int]] = {}


def _note_family(process: subprocess.Popen) -> None:
    """Record the child's descendants (nose2 workers) while it runs, to tell its databases
    from those of other suites running on the same server at the same time."""
    family = _families.setdefault(process.pid, {process.pid})
    while process.poll() is None:
        for pid in list(family):
            with contextlib.suppress(OSError):
                family.update(int(child) for child in
                              Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
        time.sleep(0.05)


def made_by(pid: int, names: set[str]) -> set[str]:
    """The databases among ``names`` that the run ``pid`` (or a worker of it) made."""
    family = _families.pop(pid, {pid})
    return {name for name in names
            if re.search(r"_gw\d+_", name)  # pytest-xdist workers: named by worker id
            or any(f"_p{member}_" in name for member in family)}


def orphaned_databases(url: str | None) -> set[str]:
    """Per-run databases whose owner process has ended: what a finished run left behind.

    Databases of runs still going (other suites on the same server) are not
    counted, nor are templates, which are kept on purpose.
    """
    if url is None or make_url(url).get_backend_name() != "postgresql":
        return set()
    from test_framework.backends import backend_for
    from test_framework.config import Setting
    from test_framework.provision.ownership import describe
    backend = backend_for(Setting(url, "test"))

    async def orphans() -> set[str]:
        return {record.name for record in await backend.list_databases()
                if await describe(backend, record) == "orphan"}
    return asyncio.run(orphans())


def server_test_databases(url: str | None) -> set[str]:
    """Return the ``test_`` databases on the URL's PostgreSQL server; empty for other backends."""
    if url is None or make_url(url).get_backend_name() != "postgresql":
        return set()
    return asyncio.run(_list_test_databases(make_url(url).set(database=MAINTENANCE_DATABASE)))


async def _list_test_databases(url: URL) -> set[str]:
    # LIKE 'test_%' would treat "_" as a wildcard; left() compares the prefix exactly.
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(
                text("SELECT datname FROM pg_database WHERE left(datname, 5) = 'test_'"))
            return {name for (name,) in result}
    finally:
        await engine.dispose()


def unittest_count(output: str) -> int | None:
    """Return N from unittest's (and nose2's) ``Ran N tests in`` line."""
    match = re.search(r"^Ran (\d+) tests? in ", output, re.MULTILINE)
    return int(match.group(1)) if match else None


def pytest_count(output: str) -> int | None:
    """Return N from pytest's summary line (``18 passed in 1.2s``)."""
    match = re.search(r"\b(\d+) passed\b", output)
    return int(match.group(1)) if match else None


def marked_lines(path: Path, marker: str) -> list[int]:
    """Return the numbers of the code lines of ``path`` that end with the comment ``# marker``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [number for number, line in enumerate(lines, start=1)
            if line.rstrip().endswith(f"# {marker}") and not line.lstrip().startswith("#")]
