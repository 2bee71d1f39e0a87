"""TEST_FRAMEWORK_KEEP_FAILED: a failed test's rows are kept in a database a person can open
(``ssot/kept_failures.py``, ``provision/kept_states.py``)."""

import asyncio
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from test_framework import SSotAsyncTestCase
from test_framework.backends import backend_for
from test_framework.config import project_settings
from test_framework.provision.__main__ import main as databases_cli
from test_framework.provision.ownership import kept_failed_test, reap_orphans
from test_framework.ssot.kept_failures import forget_kept, kept_states, report_kept_states
from tests.support import backend_name, count_rows_sync, problems, run_case

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def keeping_failed():
    """Turn TEST_FRAMEWORK_KEEP_FAILED on for this process while the block runs."""
    before = os.environ.get("TEST_FRAMEWORK_KEEP_FAILED")
    os.environ["TEST_FRAMEWORK_KEEP_FAILED"] = "1"
    project_settings.cache_clear()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TEST_FRAMEWORK_KEEP_FAILED"]
        else:
            os.environ["TEST_FRAMEWORK_KEEP_FAILED"] = before
        project_settings.cache_clear()


def emails(url) -> list[str]:
    async def read():
        from tests.support import separate_connection
        async with separate_connection(url) as connection:
            rows = await connection.execute(text("SELECT email FROM users ORDER BY email"))
            return [row.email for row in rows]
    return asyncio.run(read())


class KeepsFailed(unittest.TestCase):
    def run_keeping(self, test_class, *names):
        """Run an inner class with keeping on; return its result and the states it kept."""
        before = kept_states()
        with keeping_failed():
            result = run_case(test_class, *names)
        new = [state for state in kept_states() if state not in before]
        for state in new:
            self.addCleanup(self.drop, state)
        return result, new

    def drop(self, state):
        forget_kept(state)
        if state.url is not None:
            asyncio.run(backend_for(project_settings().database_url).drop_database(state.url))

    def exists(self, url) -> bool:
        return asyncio.run(backend_for(project_settings().database_url).database_exists(url))


def failing_class(isolation, seen):
    class Fails(SSotAsyncTestCase):
        async def test_1_fails(self):
            seen["url"] = self.engine.url
            await self.db.create_test_user({"email": "helper@x.test"})
            if self.isolation in ("commit", "database"):  # the app's rows would stay there
                await self.db.create_test_user({"email": "app@x.test"})
            else:
                async with self.session_factory() as app:
                    await app.execute(text(
                        "INSERT INTO users (email, is_active) VALUES ('app@x.test', true)"))
                    await app.commit()
            self.fail("on purpose")

        async def test_2_next_test_is_clean(self):
            seen["next"] = await self.db.count_records("users")

    Fails.isolation = isolation
    return Fails


class TestKeepFailed(KeepsFailed):
    def check_mode(self, isolation):
        seen = {}
        result, kept = self.run_keeping(failing_class(isolation, seen))
        self.assertEqual(len(result.failures), 1, problems(result))
        self.assertEqual(result.errors, [], problems(result))
        self.assertEqual([state.test_id.rsplit(".", 1)[1] for state in kept], ["test_1_fails"])
        state = kept[0]
        self.assertIsNone(state.not_kept)
        self.assertEqual(emails(state.url), ["app@x.test", "helper@x.test"])
        self.assertEqual(seen["next"], 0, "the tests after it ran as usual")
        if isolation != "database":
            self.assertEqual(count_rows_sync(seen["url"], "users"), 0, "cleaned as usual")
        shown = io.StringIO()
        report_kept_states(shown)
        self.assertIn(f"{state.test_id}: {state.where}", shown.getvalue())
        if backend_name() == "sqlite":
            self.assertEqual(state.where, state.url.database)
        else:
            self.assertIn(state.url.database, state.where)

    def test_rollback_mode_keeps_uncommitted_rows(self):
        self.check_mode("rollback")

    def test_commit_mode(self):
        self.check_mode("commit")

    def test_truncate_mode(self):
        self.check_mode("truncate")

    def test_database_mode(self):
        self.check_mode("database")

    def test_passing_test_keeps_nothing(self):
        class Passes(SSotAsyncTestCase):
            async def test_passes(self):
                await self.db.create_test_user({"email": "ok@x.test"})

        result, kept = self.run_keeping(Passes)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(kept, [])
        backend = backend_for(project_settings().database_url)
        labelled = [record.name for record in asyncio.run(backend.list_databases())
                    if (kept_failed_test(record) or "").endswith("Passes.test_passes")]
        self.assertEqual(labelled, [])

    def test_failed_subtest_keeps_too(self):
        class SubTests(SSotAsyncTestCase):
            async def test_sub(self):
                await self.db.create_test_user({"email": "sub@x.test"})
                with self.subTest(step=1):
                    self.assertEqual(1, 2)

        result, kept = self.run_keeping(SubTests)
        self.assertEqual(len(result.failures), 1, problems(result))
        self.assertEqual(emails(kept[0].url), ["sub@x.test"])

    def test_failed_statement_keeps_what_the_sessions_committed(self):
        """PostgreSQL refuses every statement after a failed one: the sessions' savepoints
        are rolled back, and what they had committed is kept."""
        class Aborts(SSotAsyncTestCase):
            async def test_aborts(self):
                await self.db.create_test_user({"email": "first@x.test"})
                await self.session.execute(text(
                    "INSERT INTO users (email, is_active) VALUES ('first@x.test', true)"))

        result, kept = self.run_keeping(Aborts)
        self.assertEqual(len(result.errors), 1, problems(result))
        self.assertIn("IntegrityError", problems(result))
        self.assertEqual(emails(kept[0].url), ["first@x.test"])

    def test_off_by_default(self):
        seen = {}
        before = kept_states()
        result = run_case(failing_class("rollback", seen))
        self.assertEqual(len(result.failures), 1, problems(result))
        self.assertEqual(kept_states(), before)

    def test_kept_state_survives_the_reaper_and_is_listed_then_dropped_by_name(self):
        result, kept = self.run_keeping(failing_class("commit", {}), "test_1_fails")
        url = kept[0].url
        backend = backend_for(project_settings().database_url)
        asyncio.run(reap_orphans(backend))
        self.assertTrue(self.exists(url), "the reaper left it alone")
        listed, dropped = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(listed):
            self.assertEqual(databases_cli(["list"]), 0)
        line = next(line for line in listed.getvalue().splitlines()
                    if line.startswith(backend.database_name(url) + "\t"))
        self.assertIn(f"kept-failed: the state {kept[0].test_id} saw", line)
        with contextlib.redirect_stdout(dropped):
            self.assertEqual(databases_cli(["drop", backend.database_name(url)]), 0)
        self.assertFalse(self.exists(url))


SUITE = '''
from sqlalchemy import text
from test_framework import SSotAsyncTestCase


class TestKept(SSotAsyncTestCase):
    async def test_fails(self):
        await self.db.create_test_user({"email": "seen@x.test"})
        self.fail("on purpose")

    async def test_passes(self):
        await self.db.create_test_user({"email": "fine@x.test"})
'''


class TestRunReport(unittest.TestCase):
    def test_run_ends_listing_kept_states_and_drop_kept_failed_removes_them(self):
        """A real run in a subprocess; its own cache folder, so ``--kept-failed`` (every
        kept state on the server) only meets this run's on SQLite."""
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        Path(folder.name, "test_kept_suite.py").write_text(textwrap.dedent(SUITE))
        env = dict(os.environ, TEST_FRAMEWORK_KEEP_FAILED="1", XDG_CACHE_HOME=folder.name,
                   PYTHONPATH=str(ROOT))
        run = subprocess.run([sys.executable, "-m", "unittest", "test_kept_suite"],
                             cwd=folder.name, env=env, capture_output=True, text=True,
                             timeout=120)
        self.assertEqual(run.returncode, 1, run.stderr)
        self.assertIn("FAILED (failures=1)", run.stderr)
        report = run.stderr.split("test_framework kept the database state of 1 failed test(s)")
        self.assertEqual(len(report), 2, run.stderr)
        where = report[1].split("test_kept_suite.TestKept.test_fails: ", 1)[1].split()[0]
        backend = backend_for(project_settings().database_url)
        url = (backend.url.set(database=where) if backend_name() == "sqlite"
               else make_url(where).set(password=backend.url.password))
        self.addCleanup(lambda: asyncio.run(backend.drop_database(url)))
        self.assertEqual(emails(url), ["seen@x.test"])
        command = [sys.executable, "-m", "test_framework", "databases"]
        listed = subprocess.run([*command, "list"], cwd=folder.name, env=env,
                                capture_output=True, text=True, timeout=60)
        self.assertIn("kept-failed: the state test_kept_suite.TestKept.test_fails saw",
                      listed.stdout, listed.stderr)
        if backend_name() == "sqlite":
            dropped = subprocess.run([*command, "drop", "--kept-failed"], cwd=folder.name,
                                     env=env, capture_output=True, text=True, timeout=60)
            self.assertEqual(dropped.returncode, 0, dropped.stderr)
            self.assertIn("1 dropped", dropped.stdout)
            self.assertFalse(Path(where).exists())


if __name__ == "__main__":
    unittest.main()
