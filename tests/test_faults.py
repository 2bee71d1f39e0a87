"""Faults: each has a named outcome, a bound on time, and leaves the next test unaffected."""

import asyncio
import time
import unittest

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from test_framework import SSotAsyncTestCase
from tests.support import (count_rows_sync, problems, run_case, separate_connection,
                           skip_unless_backend, timeout)


class TestServerDown(unittest.TestCase):
    def test_unreachable_server_stops_the_run_with_one_clear_error(self):
        class Unreachable(SSotAsyncTestCase):
            database_url = "postgresql+asyncpg://postgres:s3cret@127.0.0.1:1/app"

            async def test_a(self):
                await self.db.count_records("users")

            async def test_b(self):
                await self.db.count_records("users")

            async def test_c(self):
                await self.db.count_records("users")

        started = time.monotonic()
        result = run_case(Unreachable)
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(result.testsRun, 1, "the run stops after the first failure")
        self.assertTrue(result.shouldStop)
        message = problems(result)
        self.assertIn("postgresql+asyncpg://postgres:***@127.0.0.1:1/app", message)
        self.assertIn("Unreachable.database_url (class attribute)", message)
        self.assertNotIn("s3cret", message)


@skip_unless_backend("postgresql")
class TestPostgreSQLFaults(unittest.TestCase):
    def test_killed_connection_errors_that_test_and_the_next_one_passes(self):
        class Killed(SSotAsyncTestCase):
            @timeout(20)
            async def test_1_killed(self):
                await self.db.create_test_user({"email": "lost@x.test"})
                pid = (await self.db.fetch_one("SELECT pg_backend_pid() AS pid")).pid
                async with separate_connection(self.engine.url) as other:
                    await other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
                await self.db.fetch_one("SELECT 1")

            @timeout(20)
            async def test_2_next(self):
                self.assertEqual(await self.db.count_records("users"), 0)
                await self.db.create_test_user({"email": "fine@x.test"})

        result = run_case(Killed)
        self.assertEqual(result.testsRun, 2)
        self.assertEqual(len(result.failures), 0, problems(result))
        self.assertEqual([test.id().rsplit(".", 1)[-1] for test, _ in result.errors],
                         ["test_1_killed"], problems(result))
        self.assertRegex(problems(result), "connection was lost|connection was closed")

    def test_connections_closed_by_the_server_between_tests_are_replaced(self):
        """What a server restart looks like to the client: every connection dropped."""
        class Restarted(SSotAsyncTestCase):
            async def test_1_then_server_drops_us(self):
                await self.db.create_test_user({"email": "before@x.test"})
                self.add_cleanup(self.drop_all_connections)

            async def drop_all_connections(self):
                async with separate_connection(self.engine.url) as admin:
                    await admin.execute(text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
                await asyncio.sleep(0.1)

            @timeout(20)
            async def test_2_recovers(self):
                self.assertEqual(await self.db.count_records("users"), 0)

        result = run_case(Restarted)
        self.assertTrue(result.wasSuccessful(), problems(result))

    def test_statement_error_aborting_the_transaction_is_seen_and_cleaned(self):
        seen = {}

        class Aborts(SSotAsyncTestCase):
            isolation = "commit"

            @timeout(20)
            async def test_1_aborts(self):
                seen["url"] = self.engine.url
                await self.db.begin_transaction()
                await self.db.create_test_user({"email": "a@x.test"})
                with self.assertRaises(DBAPIError):
                    await self.db.execute_query("SELECT 1/0")
                with self.assertRaisesRegex(DBAPIError, "current transaction is aborted"):
                    await self.db.fetch_one("SELECT 1")

            @timeout(20)
            async def test_2_clean(self):
                self.assertEqual(await self.db.count_records("users"), 0)

        result = run_case(Aborts)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)


@skip_unless_backend("postgresql")
class TestLockWait(unittest.TestCase):
    def test_lock_wait_is_bounded_and_explained(self):
        from tests.functional.example_runs import ROOT, run_suite
        started = time.monotonic()
        run = run_suite("-m", "unittest", "tests.functional.scenarios.lock_wait", cwd=ROOT,
                        env_updates={"TEST_FRAMEWORK_LOCK_TIMEOUT": "0.5"})
        self.assertLess(time.monotonic() - started, 30)
        self.assertEqual(run.returncode, 1, run.describe())
        self.assertIn("Ran 2 tests", run.stderr)
        self.assertIn("FAILED (errors=1)", run.stderr)
        self.assertIn("waited lock_timeout (0.5s)", run.stderr)
        self.assertRegex(run.stderr, r"Sessions with a transaction open in this database: pid \d+ "
                                     r"\(idle in transaction, .*FOR UPDATE")
        self.assertRegex(run.stderr, r"This one: pid \d+")
        self.assertEqual(run.leftover_databases, [])
