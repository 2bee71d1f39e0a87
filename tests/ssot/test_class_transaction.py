"""Rollback isolation's class transaction: a kept savepoint per test, savepoints only for writes.

A test that inserts a row and reads it sends exactly those two statements
(the ``ROLLBACK TO SAVEPOINT`` at its end goes past SQLAlchemy's events); a
session that fails a write is rolled back alone; a test that ends the class's
transaction itself keeps what it committed, and the next test gets a new
one. Rows are checked from a separate connection after the inner classes ran.
"""

import asyncio
import logging
import unittest

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from test_framework import SSotAsyncTestCase
from test_framework.ssot.shared_savepoints import AbortedTransactionError
from tests.support import (backend_name, count_rows_sync, problems, run_case,
                           separate_connection)

INSERT = text("INSERT INTO users (email, is_active) VALUES (:e, true)")


def first_words(statements: list[str]) -> list[str]:
    """``INSERT INTO``, ``ROLLBACK TO``, ``SAVEPOINT`` (whatever its name)..."""
    words = [statement.split()[:2] for statement in statements]
    return [first.upper() if first.upper() == "SAVEPOINT" else f"{first} {second}".upper()
            for first, second in words]


class TestWire(unittest.TestCase):
    def test_a_test_sends_its_own_statements_only(self):
        seen = {}

        class Probe(SSotAsyncTestCase):
            async def test_1(self):
                await self.body()

            async def test_2(self):
                sent = seen.setdefault("sent", [])
                event.listen(self.engine.sync_engine, "before_cursor_execute",
                             lambda conn, cursor, statement, *_: sent.append(statement))
                await self.body()
                seen["url"] = self.engine.url

            async def body(self):
                user = await self.db.create_test_user({"email": "ada@example.com"})
                row = await self.db.fetch_one("SELECT email FROM users WHERE id = :id",
                                              {"id": user.id})
                assert row.email == "ada@example.com"

        result = run_case(Probe)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(first_words(seen["sent"]), ["INSERT INTO", "SELECT EMAIL"])
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)

    def test_sessions_that_commit_and_fail_send_only_what_undoing_needs(self):
        seen = {}

        class Probe(SSotAsyncTestCase):
            async def test_app_commits_then_a_duplicate_fails(self):
                sent = seen.setdefault("sent", [])
                event.listen(self.engine.sync_engine, "before_cursor_execute",
                             lambda conn, cursor, statement, *_: sent.append(statement))
                async with self.session_factory() as app:
                    await app.execute(INSERT, {"e": "ada@example.com"})
                    await app.commit()
                async with self.session_factory() as app:
                    with self.assertRaises(IntegrityError):
                        await app.execute(INSERT, {"e": "ada@example.com"})
                    await app.rollback()
                    await app.execute(INSERT, {"e": "bob@example.com"})
                    await app.commit()
                self.assertEqual(await self.db.count_records("users"), 2)
                seen["url"] = self.engine.url

        result = run_case(Probe)
        self.assertTrue(result.wasSuccessful(), problems(result))
        # The first write can go back to the test's savepoint; the second session writes
        # after another's, so it gets a savepoint of its own, which its rollback goes back
        # to; its next write again follows another's (the failed one). No RELEASE.
        writes = [word for word in first_words(seen["sent"])
                  if not word.startswith(("SELECT", "PRAGMA"))]
        self.assertEqual(writes,
                         ["INSERT INTO", "SAVEPOINT", "INSERT INTO", "ROLLBACK TO",
                          "SAVEPOINT", "INSERT INTO"])
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)

    def test_a_raw_commit_keeps_its_rows_and_the_next_test_begins_again(self):
        seen = {}

        class EndsTheTransaction(SSotAsyncTestCase):
            async def test_1_commits_itself(self):
                seen["url"] = self.engine.url
                await self.session.execute(INSERT, {"e": "kept@example.com"})
                await self.session.execute(text("COMMIT"))

            async def test_2_next(self):
                seen["next"] = await self.db.count_records("users")
                await self.db.create_test_user({"email": "undone@example.com"})

        with self.assertLogs("test_framework", logging.WARNING) as logs:
            result = run_case(EndsTheTransaction)
        try:
            self.assertTrue(result.wasSuccessful(), problems(result))
            self.assertEqual(seen["next"], 1)
            self.assertIn("ended the class's transaction itself", "\n".join(logs.output))
            self.assertEqual(count_rows_sync(seen["url"], "users"), 1)
            self.assertEqual(count_rows_sync(seen["url"], "users", "email = :e",
                                             {"e": "kept@example.com"}), 1)
        finally:
            delete_committed(seen["url"])


class TestExpectedFailures(SSotAsyncTestCase):
    """A failed write rolls back alone; a failed read needs a savepoint where the server
    aborts the transaction (PostgreSQL), and says so instead of "transaction is aborted"."""

    async def test_a_failed_write_rolls_back_alone(self):
        await self.db.create_test_user({"email": "ada@example.com"})
        with self.assertRaises(IntegrityError):
            await self.db.create_test_user({"email": "ada@example.com"})
        self.assertEqual(await self.db.count_records("users"), 1)

    async def test_a_failed_read_in_a_savepoint_leaves_the_test_going(self):
        await self.db.create_test_user({"email": "ada@example.com"})
        with self.assertRaises(DBAPIError):
            async with self.session.begin_nested():
                await self.session.execute(text("SELECT no_such_column FROM users"))
        self.assertEqual(await self.db.count_records("users"), 1)

    async def test_a_failed_read_without_one_is_explained_where_it_aborts(self):
        await self.db.create_test_user({"email": "ada@example.com"})
        with self.assertRaises(DBAPIError):
            await self.session.execute(text("SELECT no_such_column FROM users"))
        if backend_name() == "sqlite":  # only the statement is undone: the test goes on
            self.assertEqual(await self.db.count_records("users"), 1)
            return
        with self.assertRaises(AbortedTransactionError) as caught:
            await self.db.count_records("users")
        self.assertRegex(str(caught.exception),
                         r"^an earlier query failed \('SELECT no_such_column FROM users' at "
                         r"tests/ssot/test_class_transaction\.py:\d+ in test_a_failed_read_"
                         r"without_one_is_explained_where_it_aborts: await self\.session\.execute"
                         r".*self\.db wrote since.*async with session\.begin_nested\(\)")


def delete_committed(url) -> None:
    async def delete():
        async with separate_connection(url) as connection:
            await connection.execute(text("DELETE FROM users"))
    asyncio.run(delete())


if __name__ == "__main__":
    unittest.main()
