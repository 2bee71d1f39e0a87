"""MigrationTestCase: ready-made checks of an Alembic project, cached until it changes.

Subclass it, name the project's ``alembic_ini`` and, optionally, the models'
``metadata`` and a ``migration_data`` hook; the subclass gets four tests
(README "Checking migrations"). They share one walk of the revisions in a
scratch database (``provision/migration_checks.py``), made by the first of
them that runs. A walk that passed is remembered by a hash of everything it
depends on (``provision/migration_cache.py``): while nothing changes, the
database tests skip, saying when the project was checked and what that took.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import unittest
from typing import Any, Callable

from sqlalchemy import MetaData

from test_framework.backends import backend_for
from test_framework.config import (class_file_setting, database_url_for, project_settings,
                                   run_setting)
from test_framework.log import configure_stderr_handler, current_test_id
from test_framework.provision.migration_cache import (cache_path, passed_before,
                                                      remember_pass)
from test_framework.provision.migration_checks import (MigrationProject, check_migrations,
                                                       import_alembic)
from test_framework.provision.migration_walk import MigrationReport

__unittest = True  # keep these frames out of users' failure tracebacks

PROJECT_ATTRIBUTE = "_ssot_migration_project"
OUTCOME_ATTRIBUTE = "_ssot_migration_outcome"
README = "README: Checking migrations"


class _ContributedTest:
    """A test method that only classes naming an ``alembic_ini`` have.

    unittest, nose2 and pytest list a class's tests with ``getattr(cls,
    name)`` and keep what is callable; on ``MigrationTestCase`` itself (or a
    subclass of yours without ``alembic_ini``) that is None, so importing the
    base class into a test module adds no tests to the module.
    """

    def __init__(self, function: Callable) -> None:
        self.function = function

    def __get__(self, instance: Any, owner: type) -> Any:
        if instance is None:
            return self.function if getattr(owner, "alembic_ini", None) else None
        return self.function.__get__(instance, owner)


class MigrationTestCase(unittest.TestCase):
    """Checks an Alembic project: one head, every revision's round trip, models, data."""

    alembic_ini: str | None = None  # found beside the test file, or up to the project root
    metadata: MetaData | None = None  # the models the migrated schema must match
    database_url: str | None = None  # like the other base classes: else TEST_DATABASE_URL
    # async def migration_data(self, revision, phase, connection): see test_data_survives
    migration_data: Callable | None = None

    @_ContributedTest
    def test_single_head(self) -> None:
        """One head: a second one is a branch nobody merged, and ``upgrade head`` fails."""
        project = self._ssot_project()
        if len(project.heads) > 1:
            heads = ", ".join(project.describe(project.script.get_revision(head))
                              for head in project.heads)
            self.fail(f"{project.ini_path} has {len(project.heads)} heads: {heads}. "
                      "Merge them into one: alembic merge -m 'merge heads' heads")

    @_ContributedTest
    def test_upgrade_downgrade_round_trip(self) -> None:
        """Every revision upgrades from base, downgrades one step and upgrades again."""
        report = self._ssot_report()
        problems = report.round_trip + ([report.stopped] if report.stopped else [])
        if problems:
            self.fail(f"{len(problems)} problem(s) walking the revisions of "
                      f"{self._ssot_project().ini_path} (for each revision from base: "
                      "upgrade, downgrade one step, upgrade again):" + _listed(problems))

    @_ContributedTest
    def test_models_match_migrations(self) -> None:
        """The schema at head is what ``metadata`` declares, types and server defaults too."""
        if self.metadata is None:
            self.skipTest("no metadata to compare with: set metadata = Base.metadata on "
                          "the class")
        report = self._ssot_report()
        self._ssot_skip_if_stopped(report)
        if report.model_differences:
            self.fail(f"the schema the migrations build differs from {type(self).__name__}"
                      f".metadata in {len(report.model_differences)} way(s); write a "
                      "migration for each (alembic revision --autogenerate) or fix the "
                      "models:" + _listed(report.model_differences))

    @_ContributedTest
    def test_data_survives(self) -> None:
        """Rows the ``migration_data`` hook writes before an upgrade are right after it."""
        if self.migration_data is None:
            self.skipTest("no migration_data hook: define async def migration_data(self, "
                          f"revision, phase, connection) to check rows ({README})")
        report = self._ssot_report()
        if report.data:
            self.fail(f"the migration_data hook failed {len(report.data)} time(s):" +
                      _listed(report.data))
        self._ssot_skip_if_stopped(report)

    # -- the class's one walk ----------------------------------------------------------

    def _ssot_project(self) -> MigrationProject:
        """The scripts, read once per class run; no database needed."""
        return _once_per_class(self, PROJECT_ATTRIBUTE, self._ssot_read_project)

    def _ssot_report(self) -> MigrationReport:
        """The walk's report; skips the test when an unchanged project passed before."""
        outcome = _once_per_class(self, OUTCOME_ATTRIBUTE, self._ssot_check)
        if isinstance(outcome, str):
            self.skipTest(outcome)
        return outcome

    def _ssot_skip_if_stopped(self, report: MigrationReport) -> None:
        if report.stopped:
            self.skipTest("not checked: the walk stopped before head "
                          "(test_upgrade_downgrade_round_trip says where)")

    def _ssot_read_project(self) -> MigrationProject:
        configure_stderr_handler(run_setting("log_level").value)
        import_alembic(type(self))
        return MigrationProject(class_file_setting(type(self), "alembic_ini"))

    def _ssot_check(self) -> MigrationReport | str:
        """Walk the revisions, or return why an earlier pass makes that unnecessary."""
        import_alembic(type(self))  # once per process: not part of the look-up's time
        started = time.perf_counter()
        project = self._ssot_project()
        backend = backend_for(database_url_for(type(self)))
        fingerprint = project.fingerprint(backend, self.metadata, self.migration_data)
        earlier = passed_before(fingerprint)
        if earlier is not None:
            return _cached_reason(earlier, started)
        report = asyncio.run(check_migrations(
            project, backend, metadata=self.metadata, data_hook=self.migration_data,
            keep=project_settings().keep_database.value))
        if report.passed and len(project.heads) <= 1:
            remember_pass(fingerprint, seconds=report.seconds, revisions=report.revisions,
                          backend=backend.name, alembic_ini=str(project.ini_path))
        return report


def _once_per_class(test: unittest.TestCase, attribute: str, compute: Callable) -> Any:
    """``compute()`` on the first call in a class's run, kept on the class until it ends.

    An error is kept too, and raised again for each later test: they share
    the verdict, and would otherwise each wait for the same failure.
    """
    test_class = type(test)
    if attribute not in test_class.__dict__:
        test_class.addClassCleanup(_forget, test_class, attribute)
        token = current_test_id.set(test.id())
        try:
            setattr(test_class, attribute, compute())
        except Exception as exc:
            setattr(test_class, attribute, exc)
        finally:
            current_test_id.reset(token)
    value = test_class.__dict__[attribute]
    if isinstance(value, Exception):
        raise value
    return value


def _forget(test_class: type, attribute: str) -> None:
    """Let the class's next run read the scripts and the cache again (a class cleanup)."""
    if attribute in test_class.__dict__:
        delattr(test_class, attribute)


def _listed(problems: list[str]) -> str:
    """One problem per indented line; a problem's own further lines indented deeper."""
    return "".join("\n  " + problem.replace("\n", "\n    ") for problem in problems)


def _cached_reason(earlier: dict, started: float) -> str:
    """Say that, when, and the time saved, and how to check again anyway."""
    when = datetime.datetime.fromtimestamp(earlier.get("checked_at", 0))
    looked_up = (time.perf_counter() - started) * 1000
    return (f"already checked: these {earlier.get('revisions', '?')} revisions, env.py, "
            f"alembic.ini, models and data hook passed on {earlier.get('backend', '?')} at "
            f"{when:%Y-%m-%d %H:%M:%S} in {earlier.get('seconds', 0):.2f} s; unchanged "
            f"(looked up in {looked_up:.0f} ms). Delete {cache_path()} to check again")
