"""MigrationTestCase on this pass's backend: planted bugs are caught, naming the revision.

Most tests copy the fixture project (tests/migrations_fixture: four
revisions, models at head) into a temporary folder, plant one bug there, and
run a MigrationTestCase subclass on the copy through a real suite. The copy's
path is part of the cache key, so no test meets another's cached pass (nor
one from an earlier run). The tests of runners (pytest, nose2) and of
keep_database start a child process with a cache folder of its own.
"""

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path
from unittest import mock

from sqlalchemy import Column, MetaData, String, Table, inspect, text
from sqlalchemy.engine import make_url

from test_framework import MigrationTestCase
from test_framework.backends import backend_for
from test_framework.config import Setting, project_settings
from tests.migrations_fixture.models import Base
from tests.support import problems, run_case, separate_connection

FIXTURE = Path(__file__).resolve().parents[1] / "migrations_fixture"
ROOT = FIXTURE.parents[1]
CHECKS = ["test_data_survives", "test_models_match_migrations", "test_single_head",
          "test_upgrade_downgrade_round_trip"]
URL_ONLY_ENV_PY = '''
import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import async_engine_from_config
from sqlalchemy.pool import NullPool


def do_run_migrations(connection):
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


async def main():
    config = context.config
    engine = async_engine_from_config(config.get_section(config.config_ini_section, {}),
                                      prefix="sqlalchemy.", poolclass=NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
        await connection.commit()
    await engine.dispose()


asyncio.run(main())
'''


KEPT_CASES = """from test_framework import MigrationTestCase
from tests.migrations_fixture.models import Base
from tests.ssot.test_migration_test_case import books_keep_their_slug


class TestWithoutHook(MigrationTestCase):
    alembic_ini = {ini!r}
    metadata = Base.metadata


class TestWithHook(TestWithoutHook):
    migration_data = books_keep_their_slug
"""


async def books_keep_their_slug(self, revision, phase, connection):
    """The data hook of the clean project: a row written at 0003 gets its slug at 0004."""
    if (revision, phase) == ("0004", "before"):
        await connection.execute(text("INSERT INTO authors (id, name) VALUES (1, 'Frank')"))
        await connection.execute(
            text("INSERT INTO books (id, author_id, title) VALUES (1, 1, 'Dune')"))
    elif (revision, phase) == ("0004", "after"):
        slug = (await connection.execute(text("SELECT slug FROM books"))).scalar_one()
        self.assertEqual(slug, "dune")


async def expects_an_upper_case_slug(self, revision, phase, connection):
    if (revision, phase) == ("0004", "before"):
        await books_keep_their_slug(self, revision, phase, connection)
    elif (revision, phase) == ("0004", "after"):
        slug = (await connection.execute(text("SELECT slug FROM books"))).scalar_one()
        self.assertEqual(slug, "DUNE")


def outcomes(result: unittest.TestResult) -> dict[str, tuple[str, str]]:
    """Each test's method name -> (outcome, message)."""
    found = {}
    for kind, entries in (("fail", result.failures), ("error", result.errors),
                          ("skip", result.skipped)):
        for test, message in entries:
            found[test._testMethodName] = (kind, message)
    return found


class MigrationCase(unittest.TestCase):
    """Copies of the fixture project, and MigrationTestCase classes that check them."""

    def copy_fixture(self) -> Path:
        folder = Path(tempfile.mkdtemp(prefix="migrations_"))
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        shutil.copytree(FIXTURE, folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))
        return folder

    def plant(self, folder: Path, file: str, old: str, new: str) -> None:
        path = folder / file
        source = path.read_text(encoding="utf-8")
        self.assertIn(old, source, f"the fixture's {file} changed; update this test")
        path.write_text(source.replace(old, new), encoding="utf-8")

    def check(self, folder: Path, **attributes) -> unittest.TestResult:
        attributes.setdefault("metadata", Base.metadata)
        case = type("Migrations", (MigrationTestCase,),
                    {"alembic_ini": str(folder / "alembic.ini"), "__module__": __name__,
                     **attributes})
        return run_case(case)


class TestPlantedBugs(MigrationCase):
    def test_clean_project_passes_every_check(self):
        result = self.check(self.copy_fixture(), migration_data=books_keep_their_slug)
        self.assertEqual(result.testsRun, 4)
        self.assertEqual(outcomes(result), {}, problems(result))

    def test_failing_downgrade_is_named_and_the_walk_goes_on(self):
        folder = self.copy_fixture()
        self.plant(folder, "versions/0003_author_email.py",
                   'op.drop_column("authors", "email")', 'op.drop_table("no_such_table")')
        found = outcomes(self.check(folder))
        kind, message = found.pop("test_upgrade_downgrade_round_trip")
        self.assertEqual(kind, "fail")
        self.assertIn("0003 (0003_author_email.py): the downgrade failed at "
                      "0003_author_email.py:14", message)
        self.assertIn("no_such_table", message)
        self.assertIn("1 problem(s)", message)  # 0004 after it was walked, and passed
        self.assertEqual(list(found), ["test_data_survives"])  # no hook; models: equal

    def test_downgrade_dropping_the_wrong_column_fails_its_upgrade_again(self):
        folder = self.copy_fixture()
        self.plant(folder, "versions/0004_book_slug.py",
                   'op.drop_column("books", "slug")', 'op.drop_column("authors", "email")')
        found = outcomes(self.check(folder))
        kind, message = found["test_upgrade_downgrade_round_trip"]
        self.assertEqual(kind, "fail")
        self.assertIn("0004 (0004_book_slug.py): the upgrade after its downgrade failed "
                      "(the downgrade left something behind, or removed something else) at "
                      "0004_book_slug.py:10", message)
        self.assertIn("slug", message)

    def test_two_heads_are_named(self):
        folder = self.copy_fixture()
        shutil.copy(folder / "versions/0004_book_slug.py", folder / "versions/0004b_tags.py")
        self.plant(folder, "versions/0004b_tags.py", 'revision = "0004"', 'revision = "0004b"')
        self.plant(folder, "versions/0004b_tags.py", 'op.add_column("books", sa.Column("slug"',
                   'op.add_column("authors", sa.Column("nickname"')
        self.plant(folder, "versions/0004b_tags.py", 'UPDATE books SET slug = lower(title)',
                   "UPDATE authors SET nickname = name")
        self.plant(folder, "versions/0004b_tags.py", 'op.drop_column("books", "slug")',
                   'op.drop_column("authors", "nickname")')
        found = outcomes(self.check(folder))
        kind, message = found.pop("test_single_head")
        self.assertEqual(kind, "fail")
        self.assertIn("2 heads: 0004 (0004_book_slug.py), 0004b (0004b_tags.py)", message)
        self.assertIn("alembic merge", message)
        kind, message = found.pop("test_models_match_migrations")  # nickname: no model
        self.assertIn("remove_column: authors nickname", message)
        self.assertEqual(list(found), ["test_data_survives"], found)  # both branches walked

    def test_model_column_missing_from_the_migrations_is_listed(self):
        metadata = MetaData()
        for table in Base.metadata.sorted_tables:
            table.to_metadata(metadata)
        metadata.tables["books"].append_column(Column("isbn", String(13)))
        Table("reviews", metadata, Column("id", String(10), primary_key=True))
        found = outcomes(self.check(self.copy_fixture(), metadata=metadata))
        kind, message = found.pop("test_models_match_migrations")
        self.assertEqual(kind, "fail")
        self.assertIn("in 2 way(s)", message)
        self.assertIn("add_column: books isbn", message)
        self.assertIn("add_table: reviews", message)
        self.assertEqual(list(found), ["test_data_survives"])

    def test_failing_upgrade_stops_the_walk_and_the_later_checks_say_so(self):
        folder = self.copy_fixture()
        self.plant(folder, "versions/0002_books.py", 'op.create_table("books",',
                   'op.create_table("authors",')
        found = outcomes(self.check(folder, migration_data=books_keep_their_slug))
        kind, message = found["test_upgrade_downgrade_round_trip"]
        self.assertEqual(kind, "fail")
        self.assertIn("0002 (0002_books.py): the upgrade failed at 0002_books.py:10", message)
        for name in ("test_models_match_migrations", "test_data_survives"):
            self.assertEqual(found[name][0], "skip")
            self.assertIn("not checked: the walk stopped before head", found[name][1])

    def test_rows_that_do_not_survive_name_revision_phase_and_line(self):
        found = outcomes(self.check(self.copy_fixture(),
                                    migration_data=expects_an_upper_case_slug))
        self.assertEqual(list(found), ["test_data_survives"], found)
        kind, message = found["test_data_survives"]
        self.assertEqual(kind, "fail")
        self.assertIn("0004 (0004_book_slug.py), after at test_migration_test_case.py:", message)
        self.assertIn("AssertionError: 'dune' != 'DUNE'", message)


class TestEnvPyWithItsOwnEngine(MigrationCase):
    """An env.py that ignores the connection gets the scratch database's URL, step by step."""

    def url_only_copy(self) -> Path:
        folder = self.copy_fixture()
        (folder / "env.py").write_text(URL_ONLY_ENV_PY, encoding="utf-8")
        return folder

    def test_clean_project_passes(self):
        result = self.check(self.url_only_copy(), migration_data=books_keep_their_slug)
        self.assertEqual(outcomes(result), {}, problems(result))

    def test_failing_downgrade_stops_the_walk_saying_why(self):
        folder = self.url_only_copy()
        self.plant(folder, "versions/0003_author_email.py",
                   'op.drop_column("authors", "email")', 'op.drop_table("no_such_table")')
        found = outcomes(self.check(folder))
        kind, message = found["test_upgrade_downgrade_round_trip"]
        self.assertIn("0003 (0003_author_email.py): the downgrade failed", message)
        self.assertIn("env.py makes its own connection", message)
        self.assertEqual(found["test_models_match_migrations"][0], "skip")


class TestCache(MigrationCase):
    def test_unchanged_project_skips_in_milliseconds_and_a_changed_revision_rechecks(self):
        folder = self.copy_fixture()
        case = type("Cached", (MigrationTestCase,), {
            "alembic_ini": str(folder / "alembic.ini"), "metadata": Base.metadata,
            "migration_data": books_keep_their_slug, "__module__": __name__})
        first, first_seconds = self.timed_run(case)
        cached, cached_seconds = self.timed_run(case)
        self.assertEqual(outcomes(first), {}, problems(first))
        found = outcomes(cached)
        self.assertEqual(sorted(found), [name for name in CHECKS if name != "test_single_head"])
        for kind, reason in found.values():
            self.assertEqual(kind, "skip")
            self.assertRegex(reason, r"^already checked: these 4 revisions, .* passed on "
                                     r"\w+ at .* in \d+\.\d\d s; unchanged \(looked up in "
                                     r"\d+ ms\)\. Delete .*migration_checks\.json")
        self.assertLess(cached_seconds, first_seconds / 3,
                        f"first run {first_seconds:.3f} s, cached {cached_seconds:.3f} s")
        with open(folder / "versions/0004_book_slug.py", "a", encoding="utf-8") as file:
            file.write("# a comment is a change: checked again\n")
        again, _ = self.timed_run(case)
        self.assertEqual(outcomes(again), {}, problems(again))

    def timed_run(self, case: type) -> tuple[unittest.TestResult, float]:
        started = time.perf_counter()
        result = run_case(case)
        return result, time.perf_counter() - started


class TestScratchDatabase(MigrationCase):
    def test_scratch_database_is_dropped(self):
        backend = backend_for(project_settings().database_url)
        marker = f"_p{os.getpid()}_"

        def ours() -> set[str]:
            records = asyncio.run(backend.list_databases())
            return {record.name for record in records if marker in record.name}

        before = ours()
        result = self.check(self.copy_fixture())
        self.assertEqual(outcomes(result).keys(), {"test_data_survives"}, problems(result))
        self.assertEqual(ours(), before)


class TestUnreachableServer(MigrationCase):
    def test_single_head_still_runs_and_the_database_checks_say_why(self):
        found = outcomes(self.check(self.copy_fixture(), migration_data=books_keep_their_slug,
                                    database_url="postgresql+asyncpg://postgres@127.0.0.1:1/app"))
        self.assertEqual(sorted(found), [name for name in CHECKS if name != "test_single_head"])
        for kind, message in found.values():
            self.assertEqual(kind, "error")
            self.assertIn("DatabaseUnavailableError: cannot create a test database on "
                          "postgresql+asyncpg://postgres@127.0.0.1:1/app", message)


class TestKeepDatabase(unittest.TestCase):
    def test_kept_database_hosts_the_walks_and_stays_empty(self):
        """With keep_database, no database is created or dropped: the walk is rolled back."""
        folder = Path(tempfile.mkdtemp(prefix="migration_keep_"))
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        stem = f"migkeep{os.getpid()}"
        settings_url = project_settings().database_url.value
        url = (make_url(settings_url).set(database=stem).render_as_string(hide_password=False)
               if settings_url else f"sqlite+aiosqlite:///{folder / stem}.sqlite3")
        backend = backend_for(Setting(url, "test"))
        with mock.patch.dict(os.environ, XDG_CACHE_HOME=str(folder / "cache")):
            kept = backend.database_url(backend.test_database_name("keep", "main", "none"),
                                        kept=True)  # as the child sees it (SQLite: a file)
        self.addCleanup(asyncio.run, backend.drop_database(kept))
        (folder / "test_kept.py").write_text(KEPT_CASES.format(ini=str(FIXTURE / "alembic.ini")),
                                             encoding="utf-8")
        environment = dict(os.environ, PYTHONPATH=str(ROOT), TEST_DATABASE_URL=url,
                           XDG_CACHE_HOME=str(folder / "cache"),
                           TEST_FRAMEWORK_KEEP_DATABASE="1", TEST_FRAMEWORK_LOG_LEVEL="INFO")
        environment.pop("PYTEST_XDIST_WORKER", None)  # the kept database's name has "main"
        run = subprocess.run([sys.executable, "-m", "unittest", "test_kept"], cwd=folder,
                             env=environment, capture_output=True, text=True, timeout=300)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.stderr.count("walked 4 revisions"), 2, run.stderr)
        self.assertNotIn("created test database", run.stderr)
        self.assertTrue(backend.is_persistent(kept) and asyncio.run(backend.database_exists(kept)))
        self.assertEqual(asyncio.run(table_names(kept)), [])


async def table_names(url) -> list[str]:
    async with separate_connection(url) as connection:
        return await connection.run_sync(lambda sync: inspect(sync).get_table_names())


class TestCollection(unittest.TestCase):
    def test_only_classes_with_alembic_ini_have_the_checks(self):
        """Importing the base class into a test module must add no tests to it."""
        names = unittest.TestLoader().getTestCaseNames
        abstract = type("Abstract", (MigrationTestCase,), {"metadata": Base.metadata})
        concrete = type("Concrete", (abstract,), {"alembic_ini": "alembic.ini"})
        self.assertEqual(list(names(MigrationTestCase)), [])
        self.assertEqual(list(names(abstract)), [])
        self.assertEqual(list(names(concrete)), CHECKS)

    def test_pytest_and_nose2_collect_four_checks_and_share_the_cache(self):
        folder = Path(tempfile.mkdtemp(prefix="migration_runners_"))
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        (folder / "test_app_migrations.py").write_text(
            "from test_framework import MigrationTestCase\n"
            "from tests.migrations_fixture.models import Base\n\n\n"
            "class TestAppMigrations(MigrationTestCase):\n"
            f"    alembic_ini = {str(FIXTURE / 'alembic.ini')!r}\n"
            "    metadata = Base.metadata\n", encoding="utf-8")
        environment = dict(os.environ, PYTHONPATH=str(ROOT),
                           XDG_CACHE_HOME=str(folder / "cache"))
        runs = [[sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 "test_app_migrations.py"],
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                 "test_app_migrations.py"],
                [sys.executable, "-m", "nose2", "-s", str(folder), "test_app_migrations"]]
        outputs = [subprocess.run(command, cwd=folder, env=environment, capture_output=True,
                                  text=True, timeout=300) for command in runs]
        for run in outputs:
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("3 passed, 1 skipped", outputs[0].stdout)  # no data hook: one skip
        self.assertIn("1 passed, 3 skipped", outputs[1].stdout)
        self.assertIn("already checked", outputs[1].stdout)
        self.assertIn("Ran 4 tests", outputs[2].stderr)
        self.assertIn("OK (skipped=3)", outputs[2].stderr)
