"""Statement shapes, the N+1 detector and query snapshots, against this pass's database.

The planted bug is the classic one: books fetched in one query, then each
book's author lazy-loaded (``lazy="select"``) in a loop, one query per book.
The detector must name that loop's line in this file, warn or fail as the
setting says, and stay quiet for the same code with ``selectinload``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import types
import unittest
import warnings
from pathlib import Path

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload

from test_framework import SSotAsyncTestCase, SSotBaseTestCase
from test_framework.config import Setting, class_setting, load_project_settings, project_settings
from test_framework.errors import ConfigurationError, TestFrameworkError
from test_framework.ssot.n_plus_one import NPlusOneWarning, call_sites
from test_framework.ssot.query_shapes import reads, statement_shape
from test_framework.ssot.query_snapshots import (QuerySnapshotWritten, query_snapshot,
                                                 snapshot_lines, snapshot_path)
from tests.functional.example_runs import marked_lines, run_suite
from tests.support import backend_name, problems, run_case

THIS_FILE = Path(__file__)
AUTHOR_SHAPE = ("SELECT qs_authors.id, qs_authors.name FROM qs_authors "
                "WHERE qs_authors.id = ?")


def line_of(marker: str) -> int:
    [line] = marked_lines(THIS_FILE, marker)
    return line


# -- the application: real models, a relationship loaded lazily -----------------------


class Base(AsyncAttrs, DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "qs_authors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    books: Mapped[list[Book]] = relationship(back_populates="author")


class Book(Base):
    __tablename__ = "qs_books"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    author_id: Mapped[int] = mapped_column(ForeignKey("qs_authors.id"))
    author: Mapped[Author] = relationship(back_populates="books", lazy="select")


async def shelve(session_factory, count: int) -> None:
    """``count`` books, each by its own author, committed by the application's session."""
    async with session_factory() as session:
        session.add_all([Book(title=f"Book {n}", author=Author(name=f"Author {n}"))
                         for n in range(count)])
        await session.commit()


async def author_names_lazily(session_factory, *, backwards: bool = False) -> list[str]:
    """The planted bug: one query for the books, then one per book for its author."""
    async with session_factory() as session:
        books = (await session.scalars(select(Book).order_by(Book.id))).all()
        names = []
        for book in reversed(books) if backwards else books:
            author = await book.awaitable_attrs.author  # lazy load, once per book
            names.append(author.name)
        return names


async def author_names_eagerly(session_factory) -> list[str]:
    """The fix: the authors come with the books, in one more query for all of them."""
    async with session_factory() as session:
        query = select(Book).options(selectinload(Book.author)).order_by(Book.id)
        return [book.author.name for book in (await session.scalars(query)).all()]


def author_names_in_sync_code(session) -> list[str]:
    """The same bug in sync code run through ``AsyncSession.run_sync``."""
    books = session.scalars(select(Book).order_by(Book.id)).all()
    return [book.author.name for book in books]  # lazy load in run_sync


class LibraryCase(SSotAsyncTestCase):
    """Five books by five authors for each test; the detector reports above three."""

    metadata = Base.metadata
    n_plus_one = "warn"
    n_plus_one_threshold = 3

    async def asyncSetUp(self):
        await super().asyncSetUp()
        await shelve(self.session_factory, 5)


def run_recording_warnings(test_class: type) -> tuple[unittest.TestResult, list]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_case(test_class)
    return result, [w for w in caught if issubclass(w.category, NPlusOneWarning)]


# -- shapes ------------------------------------------------------------------------------


class TestShapes(unittest.TestCase):
    def test_parameters_and_literals_become_question_marks(self):
        self.assertEqual(
            statement_shape("SELECT a.id FROM a WHERE a.id = $1::INTEGER AND a.n = "
                            "$2::NUMERIC(10, 2) LIMIT $3::INTEGER", "postgresql"),
            "SELECT a.id FROM a WHERE a.id = ? AND a.n = ? LIMIT ?")
        self.assertEqual(statement_shape("select * from A where name = 'it''s' and n > 5.5"),
                         "SELECT * FROM a WHERE name = ? AND n > ?")
        self.assertEqual(statement_shape("SELECT x FROM t WHERE a = :a AND b = %(b)s "
                                         "AND c = %s AND d IS true AND e = false"),
                         "SELECT x FROM t WHERE a = ? AND b = ? AND c = ? AND d IS TRUE "
                         "AND e = ?")

    def test_the_same_query_for_other_rows_has_the_same_shape_on_each_backend(self):
        sqlite = statement_shape("SELECT qs_authors.id \nFROM qs_authors \n"
                                 "WHERE qs_authors.id IN (?, ?, ?)", "sqlite")
        postgresql = statement_shape("SELECT qs_authors.id FROM qs_authors WHERE "
                                     "qs_authors.id IN ($1::INTEGER, $2::INTEGER)", "postgresql")
        self.assertEqual(sqlite, postgresql)
        self.assertEqual(sqlite, "SELECT qs_authors.id FROM qs_authors WHERE qs_authors.id IN (...)")

    def test_rows_of_one_insert_collapse(self):
        self.assertEqual(statement_shape("INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)"),
                         "INSERT INTO t (a, b) VALUES (?, ?)")
        sentinel = ("INSERT INTO t (a) SELECT p0::VARCHAR FROM (VALUES ($1::VARCHAR, 0), "
                    "($2::VARCHAR, 1)) AS imp_sen(p0, sen_counter) ORDER BY sen_counter "
                    "RETURNING t.id")
        self.assertEqual(statement_shape(sentinel, "postgresql"),
                         "INSERT INTO t (a) SELECT p0::varchar FROM (VALUES (?, ?)) AS "
                         "imp_sen(p0, sen_counter) ORDER BY sen_counter RETURNING t.id")

    def test_savepoint_names_comments_and_quoted_text_are_handled(self):
        for statement in ("SAVEPOINT sa_savepoint_7", 'RELEASE SAVEPOINT "sp 2"',
                          "ROLLBACK TO SAVEPOINT sa_savepoint_1"):
            self.assertNotIn("sa_savepoint", statement_shape(statement))
            self.assertTrue(statement_shape(statement).endswith("SAVEPOINT"), statement)
        self.assertEqual(
            statement_shape("SELECT '-- not a comment', $$ ; 'x $$ FROM \"Odd Name\" -- note\n",
                            "postgresql"),
            'SELECT ?, ? FROM "Odd Name"')

    def test_text_that_cannot_be_split_keeps_its_words_and_loses_its_password(self):
        shape = statement_shape("SELECT   'postgresql://app:s3cret@db/app' 'unterminated",
                                "sqlite")
        self.assertEqual(shape, "SELECT 'postgresql://app:***@db/app' 'unterminated")

    def test_reads_are_selects_and_withs(self):
        self.assertTrue(reads("\n  SELECT 1"))
        self.assertTrue(reads("with x as (select 1) select * from x"))
        self.assertTrue(reads("(SELECT 1) UNION (SELECT 2)"))
        self.assertFalse(reads("INSERT INTO t VALUES (1)"))
        self.assertFalse(reads("UPDATE t SET a = 1"))

    def test_call_sites_skip_framework_and_library_frames(self):
        [site] = call_sites(limit=1)
        self.assertEqual((site.filename, site.function),
                         (str(THIS_FILE), "test_call_sites_skip_framework_and_library_frames"))
        self.assertIn("[site] = call_sites(limit=1)", str(site))


# -- the N+1 detector --------------------------------------------------------------------


class TestNPlusOne(unittest.TestCase):
    maxDiff = None

    def test_lazy_loop_warns_naming_shape_count_and_the_loop_line(self):
        seen = {}

        class Lazy(LibraryCase):
            async def test_titles(self):
                seen["names"] = await author_names_lazily(self.session_factory)

        result, caught = run_recording_warnings(Lazy)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(len(seen["names"]), 5)
        self.assertEqual(len(caught), 1, [str(w.message) for w in caught])
        warning, loop = caught[0], line_of("lazy load, once per book")
        self.assertEqual((warning.filename, warning.lineno), (str(THIS_FILE), loop))
        message = str(warning.message)
        self.assertIn(f"5 x {AUTHOR_SHAPE}", message)
        self.assertIn(f"test_query_shapes.py:{loop} in author_names_lazily: "
                      "author = await book.awaitable_attrs.author", message)
        self.assertIn("called from tests/ssot/test_query_shapes.py:", message)
        self.assertNotIn("support.py", message, "the walk stops at the test's event loop")
        self.assertIn("ran more than 3 times (the threshold, from "
                      "TestNPlusOne.test_lazy_loop_warns_naming_shape_count_and_the_loop_line"
                      ".<locals>.Lazy.n_plus_one_threshold (class attribute)", message)
        self.assertIn("selectinload", message)
        self.assertNotIn("qs_books", message, "the books query ran once")

    def test_lazy_loads_in_run_sync_code_are_found_too(self):
        class InSyncCode(LibraryCase):
            async def test_titles(self):
                async with self.session_factory() as session:
                    await session.run_sync(author_names_in_sync_code)

        result, caught = run_recording_warnings(InSyncCode)
        self.assertTrue(result.wasSuccessful(), problems(result))
        [warning] = caught
        self.assertEqual(warning.lineno, line_of("lazy load in run_sync"))
        self.assertIn(f"5 x {AUTHOR_SHAPE}", str(warning.message))

    def test_error_policy_fails_the_test(self):
        class Strict(LibraryCase):
            n_plus_one = "error"

            async def test_titles(self):
                await author_names_lazily(self.session_factory)

        result, caught = run_recording_warnings(Strict)
        self.assertEqual((len(result.failures), len(result.errors), caught), (1, 0, []),
                         problems(result))
        message = problems(result)
        self.assertIn(f"5 x {AUTHOR_SHAPE}", message)
        self.assertIn(f":{line_of('lazy load, once per book')} in author_names_lazily", message)
        self.assertIn("n_plus_one is 'error', from ", message)
        self.assertNotIn("n_plus_one.py", message, "framework frames hidden")

    def test_selectinload_is_clean(self):
        seen = {}

        class Eager(LibraryCase):
            n_plus_one = "error"

            async def test_titles(self):
                async with self.assertMaxQueries(2):
                    seen["names"] = await author_names_eagerly(self.session_factory)

        result, caught = run_recording_warnings(Eager)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual((len(seen["names"]), caught), (5, []))

    def test_writes_in_a_loop_and_the_threshold_itself_are_not_reported(self):
        class Fixtures(LibraryCase):
            n_plus_one = "error"

            async def test_many_rows_then_three_reads(self):
                for n in range(12):
                    await self.db.create("qs_authors", {"name": f"Fixture {n}"})
                for _ in range(3):  # exactly the threshold: allowed
                    await self.db.fetch_one("SELECT count(*) AS n FROM qs_books")

        result, caught = run_recording_warnings(Fixtures)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(caught, [])

    def test_ignore_policy_turns_the_detector_off(self):
        class Ignored(LibraryCase):
            n_plus_one = "ignore"

            async def test_titles(self):
                await author_names_lazily(self.session_factory)

        result, caught = run_recording_warnings(Ignored)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(caught, [])

    def test_block_assertion_fails_with_its_own_threshold(self):
        class Block(LibraryCase):
            n_plus_one = "ignore"

            async def test_lazy(self):
                async with self.assertNoNPlusOne(4, msg="author list"):
                    await author_names_lazily(self.session_factory)

            async def test_eager(self):
                async with self.assertNoNPlusOne(1):
                    await author_names_eagerly(self.session_factory)

        result = run_case(Block)
        self.assertEqual([test.id().rsplit(".", 1)[1] for test, _ in result.failures],
                         ["test_lazy"], problems(result))
        message = problems(result)
        self.assertIn("N+1 queries in the assertNoNPlusOne() block: 1 statement shape ran "
                      "more than 4 times (the threshold, from the assertNoNPlusOne() "
                      "argument)", message)
        self.assertIn(f"5 x {AUTHOR_SHAPE}", message)
        self.assertIn(f":{line_of('lazy load, once per book')} in author_names_lazily", message)
        self.assertIn(": author list", message)

    def test_sync_class_and_block_default_threshold(self):
        class Sync(SSotBaseTestCase):
            metadata = Base.metadata
            n_plus_one_threshold = 2
            n_plus_one = "ignore"

            def test_lazy(self):
                self.run_async(shelve(self.session_factory, 3))
                with self.assertNoNPlusOne():
                    self.run_async(author_names_lazily(self.session_factory))

        result = run_case(Sync)
        self.assertEqual(len(result.failures), 1, problems(result))
        self.assertIn(f"3 x {AUTHOR_SHAPE}", problems(result))
        self.assertIn("more than 2 times", problems(result))

    def test_settings_come_from_class_environment_setup_cfg_or_default(self):
        folder = Path(tempfile.mkdtemp(prefix="tf_config_"))
        self.addCleanup(shutil.rmtree, folder, True)
        defaults = load_project_settings({}, folder)
        self.assertEqual((defaults.n_plus_one, defaults.n_plus_one_threshold),
                         (Setting("warn", "default"), Setting(10, "default")))
        self.assertIs(defaults.update_snapshots.value, False)
        (folder / "setup.cfg").write_text("[test_framework]\nn_plus_one = ignore\n"
                                          "n_plus_one_threshold = 4\n")
        configured = load_project_settings({"TEST_FRAMEWORK_N_PLUS_ONE": "Error",
                                            "TEST_FRAMEWORK_UPDATE_SNAPSHOTS": "1"}, folder)
        self.assertEqual(configured.n_plus_one,
                         Setting("error", "TEST_FRAMEWORK_N_PLUS_ONE (environment)"))
        self.assertEqual(configured.n_plus_one_threshold.value, 4)
        self.assertIn("n_plus_one_threshold in [test_framework] of",
                      configured.n_plus_one_threshold.source)
        self.assertIs(configured.update_snapshots.value, True)
        with self.assertRaisesRegex(ConfigurationError, r"TEST_FRAMEWORK_N_PLUS_ONE_THRESHOLD "
                                    r"\(environment\) is '0', not a whole number"):
            load_project_settings({"TEST_FRAMEWORK_N_PLUS_ONE_THRESHOLD": "0"}, folder)

        class Plain:
            pass

        class Strict:
            n_plus_one = "error"

        self.assertEqual(class_setting(Plain, "n_plus_one"), project_settings().n_plus_one)
        self.assertEqual(class_setting(Strict, "n_plus_one").source,
                         f"{Strict.__qualname__}.n_plus_one (class attribute)")

    def test_bad_settings_are_explained(self):
        class Typo(SSotAsyncTestCase):
            n_plus_one = "eror"
            n_plus_one_threshold = "many"

        with self.assertRaisesRegex(ConfigurationError,
                                    r"Typo.n_plus_one \(class attribute\) is 'eror'; use one "
                                    r"of 'warn', 'error', 'ignore' \(did you mean 'error'\?\)"):
            class_setting(Typo, "n_plus_one")
        with self.assertRaisesRegex(ConfigurationError, r"Typo.n_plus_one_threshold \(class "
                                    r"attribute\) is 'many', not a whole number.*e\.g\. 10"):
            class_setting(Typo, "n_plus_one_threshold")
        with self.assertRaisesRegex(TestFrameworkError, "whole number"):
            Typo("run").assertNoNPlusOne(-1)


# -- query snapshots ---------------------------------------------------------------------


class SnapshotFolder:
    """A module of its own in a temporary folder, so snapshots land there, not in tests/."""

    def __init__(self, test: unittest.TestCase) -> None:
        folder = tempfile.TemporaryDirectory(prefix="tf_snapshots_")
        test.addCleanup(folder.cleanup)
        self.folder = Path(folder.name)
        self.module = types.ModuleType(f"snapshot_scenario_{id(self)}")
        self.module.__file__ = str(self.folder / "test_library.py")
        sys.modules[self.module.__name__] = self.module
        test.addCleanup(sys.modules.pop, self.module.__name__)

    def adopt(self, test_class: type) -> type:
        test_class.__module__ = self.module.__name__
        return test_class

    def files(self) -> dict[str, list[str]]:
        found = sorted((self.folder / "__query_snapshots__").glob("*.sql"))
        return {path.name: path.read_text(encoding="utf-8").splitlines() for path in found}


def library_snapshots(*, eager: bool, backwards: bool = False) -> type:
    class TestLibrary(LibraryCase):
        query_snapshots = True
        n_plus_one = "ignore"

        async def test_author_names(self):
            if eager:
                await author_names_eagerly(self.session_factory)
            else:
                await author_names_lazily(self.session_factory, backwards=backwards)

    return TestLibrary


def run_recording_snapshots(test_class: type) -> tuple[unittest.TestResult, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_case(test_class)
    return result, [str(w.message) for w in caught if w.category is QuerySnapshotWritten]


class TestQuerySnapshots(unittest.TestCase):
    maxDiff = None

    def test_first_run_writes_then_a_changed_query_fails_with_a_diff(self):
        place = SnapshotFolder(self)
        test_class = place.adopt(library_snapshots(eager=True))
        result, written = run_recording_snapshots(test_class)
        self.assertTrue(result.wasSuccessful(), problems(result))
        name = snapshot_path(test_class, "test_author_names", backend_name()).name
        self.assertEqual(name, "test_library.library_snapshots._locals_.TestLibrary."
                               f"test_author_names.{backend_name()}.sql")
        self.assertEqual(len(written), 1, written)
        self.assertIn(f"wrote its query snapshot {place.folder}/__query_snapshots__/{name} "
                      "(2 statement shape(s)); commit it", written[0])
        lines = place.files()[name]
        self.assertTrue(lines[0].startswith("-- Query snapshot of "), lines)
        shapes = [line for line in lines if not line.startswith("--")]
        self.assertEqual(len(shapes), 2, lines)
        self.assertTrue(shapes[0].startswith("1 x SELECT qs_authors.id, qs_authors.name FROM "
                                             "qs_authors WHERE qs_authors.id IN (...)"), shapes)
        self.assertTrue(shapes[1].startswith("1 x SELECT qs_books.id"), shapes)

        result, written = run_recording_snapshots(place.adopt(library_snapshots(eager=True)))
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(written, [], "an unchanged snapshot is left alone")

        result, _ = run_recording_snapshots(place.adopt(library_snapshots(eager=False)))
        self.assertEqual(len(result.failures), 1, problems(result))
        message = problems(result)
        self.assertIn(f"differ from its snapshot {place.folder}/__query_snapshots__/{name}:\n"
                      "--- snapshot\n+++ this run\n", message)
        self.assertIn("\n-1 x SELECT qs_authors.id, qs_authors.name FROM qs_authors WHERE "
                      "qs_authors.id IN (...)\n", message)
        self.assertIn(f"\n+5 x {AUTHOR_SHAPE}\n", message)
        self.assertIn("TEST_FRAMEWORK_UPDATE_SNAPSHOTS=1", message)
        self.assertEqual(place.files()[name], lines, "a failing comparison writes nothing")

    def test_the_order_statements_ran_in_does_not_matter(self):
        place = SnapshotFolder(self)
        result, written = run_recording_snapshots(place.adopt(library_snapshots(eager=False)))
        self.assertTrue(result.wasSuccessful() and len(written) == 1, problems(result))
        result, written = run_recording_snapshots(
            place.adopt(library_snapshots(eager=False, backwards=True)))
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(written, [])

    def test_decorator_per_test_and_a_failed_test_records_nothing(self):
        place = SnapshotFolder(self)

        class PerTest(LibraryCase):
            @query_snapshot
            async def test_recorded(self):
                await self.db.count_records("qs_books")

            async def test_not_recorded(self):
                await self.db.count_records("qs_authors")

            @query_snapshot
            async def test_fails(self):
                await self.db.count_records("qs_books")
                self.fail("the test's own failure")

        result, written = run_recording_snapshots(place.adopt(PerTest))
        self.assertEqual(len(result.failures), 1, problems(result))
        self.assertIn("the test's own failure", problems(result))
        path = snapshot_path(PerTest, "test_recorded", backend_name())
        self.assertEqual(list(place.files()), [path.name])
        self.assertIn("_locals_.PerTest.test_recorded.", path.name)
        self.assertRegex(place.files()[path.name][-1], r"^1 x SELECT count\(\*\) .*qs_books")
        self.assertEqual(len(written), 1, written)

    def test_a_subclass_can_turn_snapshots_off_and_sync_tests_record(self):
        place = SnapshotFolder(self)

        class Recorded(SSotBaseTestCase):
            query_snapshots = True

            def test_count(self):
                self.run_async(self.db.count_records("users"))

        class NotRecorded(Recorded):
            query_snapshots = False

        class NotRecordedInWords(Recorded):  # read as every yes/no setting is, not truthiness
            query_snapshots = "false"

        for subclass in (NotRecorded, NotRecordedInWords):
            result, written = run_recording_snapshots(place.adopt(subclass))
            self.assertTrue(result.wasSuccessful(), problems(result))
            self.assertEqual((written, place.files()), ([], {}), subclass.__name__)
        result, written = run_recording_snapshots(place.adopt(Recorded))
        self.assertTrue(result.wasSuccessful(), problems(result))
        [(name, lines)] = place.files().items()
        self.assertTrue(name.endswith(f".Recorded.test_count.{backend_name()}.sql"), name)
        self.assertRegex(lines[-1], r"^1 x SELECT count\(\*\) .*FROM users")

    def test_snapshot_lines_count_each_shape_once_sorted(self):
        self.assertEqual(snapshot_lines(["SELECT b", "SELECT a", "SELECT b"]),
                         ["1 x SELECT a", "2 x SELECT b"])

    def test_decorator_refuses_what_is_not_a_method(self):
        with self.assertRaisesRegex(TestFrameworkError, "decorates a test method"):
            query_snapshot(staticmethod(lambda: None))


# -- under each runner, in a project of its own ---------------------------------------------

SCENARIO = '''
import os
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from test_framework import SSotAsyncTestCase
from tests.ssot.test_query_shapes import Author, Base, Book


class TestShelf(SSotAsyncTestCase):
    metadata = Base.metadata
    query_snapshots = True
    n_plus_one_threshold = 3

    async def test_names(self):
        async with self.session_factory() as session:
            session.add_all([Book(title=str(n), author=Author(name=str(n))) for n in range(4)])
            await session.commit()
        async with self.session_factory() as session:
            query = select(Book)
            if os.environ.get("SHELF_EAGER"):
                query = query.options(selectinload(Book.author))
            for book in (await session.scalars(query)).all():
                await book.awaitable_attrs.author  # the loop
'''
RUNNERS = {
    "unittest": ("-m", "unittest", "-v", "test_shelf"),
    "nose2": ("-m", "nose2", "-v", "test_shelf"),
    "pytest": ("-m", "pytest", "-q", "-p", "no:cacheprovider", "test_shelf.py"),
}


class TestUnderEachRunner(unittest.TestCase):
    maxDiff = None

    def test_n_plus_one_warning_and_snapshot_cycle(self):
        for runner, args in RUNNERS.items():
            with self.subTest(runner=runner):
                self.check_runner(runner, args)

    def check_runner(self, runner: str, args: tuple[str, ...]) -> None:
        folder = Path(tempfile.mkdtemp(prefix=f"tf_shelf_{runner}_"))
        self.addCleanup(shutil.rmtree, folder, True)
        (folder / "test_shelf.py").write_text(SCENARIO, encoding="utf-8")
        loop = marked_lines(folder / "test_shelf.py", "the loop")[0]
        snapshot = (folder / "__query_snapshots__" /
                    f"test_shelf.TestShelf.test_names.{backend_name()}.sql")

        first = run_suite(*args, cwd=folder)
        output = first.stdout + first.stderr
        self.assertEqual(first.returncode, 0, first.describe())
        self.assertIn("wrote its query snapshot", output, first.describe())
        self.assertIn(f"test_shelf.py:{loop}: NPlusOneWarning: N+1 queries in ", output)
        self.assertIn(f"4 x {AUTHOR_SHAPE}", snapshot.read_text(encoding="utf-8"))
        self.assertEqual((first.leftover_files, first.leftover_databases), ([], []))

        changed = run_suite(*args, cwd=folder, env_updates={"SHELF_EAGER": "1"})
        output = changed.stdout + changed.stderr
        self.assertNotEqual(changed.returncode, 0, changed.describe())
        self.assertIn(f"-4 x {AUTHOR_SHAPE}", output, changed.describe())
        self.assertIn("+1 x SELECT qs_authors.id, qs_authors.name FROM qs_authors WHERE "
                      "qs_authors.id IN (...)", output)
        self.assertNotIn("NPlusOneWarning", output)
        if runner != "unittest":
            return  # the rewrite is the same code under every runner
        rewritten = run_suite(*args, cwd=folder, env_updates={
            "SHELF_EAGER": "1", "TEST_FRAMEWORK_UPDATE_SNAPSHOTS": "1"})
        self.assertEqual(rewritten.returncode, 0, rewritten.describe())
        self.assertIn("rewrote its query snapshot", rewritten.stderr, rewritten.describe())
        self.assertNotIn(AUTHOR_SHAPE, snapshot.read_text(encoding="utf-8"))
        again = run_suite(*args, cwd=folder, env_updates={"SHELF_EAGER": "1"})
        self.assertEqual(again.returncode, 0, again.describe())
        self.assertNotIn("query snapshot", again.stderr)
