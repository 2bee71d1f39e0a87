"""Time MigrationTestCase against the Alembic CLI on a generated project (median of runs).

    TEST_DATABASE_URL=... .venv/bin/python -m tests.migrations_fixture.cli_comparison [30] [5]

Each side as a user meets it: ``alembic upgrade head`` then ``alembic
downgrade base`` (two processes, on an empty database made beforehand),
against ``python -m unittest`` of a MigrationTestCase subclass, which also
creates and drops its scratch database and walks three steps per revision
(upgrade, downgrade, upgrade again); that run again with the cache warm; and
the same check inside a process that has started (what it adds to a suite);
and with ``TEST_FRAMEWORK_KEEP_DATABASE=1`` (the walk in the kept database).
The sides take turns run by run, so a busy machine slows them alike. Not
part of the suite: it takes tens of seconds.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from test_framework.backends import backend_for
from test_framework.config import Setting, project_settings
from test_framework.provision import drop_database, provisioned_database
from test_framework.provision.migration_checks import MigrationProject, check_migrations
from tests.migrations_fixture.generated import write_project

ROOT = Path(__file__).resolve().parents[2]
CASE = """from test_framework import MigrationTestCase


class TestGenerated(MigrationTestCase):
    alembic_ini = {ini!r}
"""
CLI = "alembic upgrade head + downgrade base"
FIRST = "python -m unittest, first run"
CACHED = "python -m unittest, cached"
KEPT = "python -m unittest, keep_database=1"
IN_SUITE = "check_migrations in a running suite"


def timed(command: list[str], **options) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, **options)
    return time.perf_counter() - started


def main(revisions: int = 30, runs: int = 5) -> None:
    backend = backend_for(project_settings().database_url)
    database = asyncio.run(provisioned_database(backend, None, private=True))
    times: dict[str, list[float]] = {CLI: [], FIRST: [], CACHED: [], KEPT: [], IN_SUITE: []}
    try:
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            url = database.url.render_as_string(hide_password=False)
            ini = write_project(folder / "project", revisions, url=url)
            (folder / "test_generated.py").write_text(CASE.format(ini=str(ini)),
                                                      encoding="utf-8")
            project = MigrationProject(ini)
            asyncio.run(check_migrations(project, backend))  # warms the disk cache: untimed
            for run in range(runs):
                _one_round(times, folder, ini, project, backend, run)
    finally:
        asyncio.run(drop_database(database))
        if backend.is_persistent(backend.url) and backend.name != "sqlite":
            asyncio.run(backend.drop_database(_kept_url(backend)))
    print(f"{revisions} revisions on {backend.name}, median of {runs} runs (seconds):")
    for label, values in times.items():
        print(f"  {label:40} {statistics.median(values):6.2f}")


def _one_round(times: dict, folder: Path, ini: Path, project, backend, run: int) -> None:
    alembic = [str(Path(sys.executable).parent / "alembic"), "-c", str(ini)]
    unittest = [sys.executable, "-m", "unittest", "test_generated"]
    environment = dict(os.environ, PYTHONPATH=f"{folder}{os.pathsep}{ROOT}",
                       XDG_CACHE_HOME=str(folder / f"cache{run}"))
    times[CLI].append(timed(alembic + ["upgrade", "head"]) +
                      timed(alembic + ["downgrade", "base"]))
    times[FIRST].append(timed(unittest, cwd=folder, env=environment))
    times[CACHED].append(timed(unittest, cwd=folder, env=environment))
    kept = dict(environment, TEST_FRAMEWORK_KEEP_DATABASE="1",
                XDG_CACHE_HOME=str(folder / f"cache{run}kept"),
                TEST_DATABASE_URL=_kept_url(backend, stem=True))
    times[KEPT].append(timed(unittest, cwd=folder, env=kept))
    times[IN_SUITE].append(asyncio.run(check_migrations(project, backend)).seconds)


def _kept_url(backend, *, stem: bool = False):
    """The children's URL in keep mode, or their kept database: a name of this run's own."""
    url = backend.url.set(database=f"migbench{os.getpid()}") if backend.name != "sqlite" \
        else backend.url
    if stem:
        return url.render_as_string(hide_password=False)
    kept = backend_for(Setting(url.render_as_string(hide_password=False), "benchmark"))
    return kept.database_url(kept.test_database_name("keep", "main", "none"), kept=True)


if __name__ == "__main__":
    main(*(int(argument) for argument in sys.argv[1:3]))
