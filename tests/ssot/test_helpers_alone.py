"""Rollback isolation: a helper statement the session would have begun and ended
alone runs on the test's connection directly (``shared_savepoints.run_alone``).

It must behave exactly as the session's own short transaction did: only its
statement on the wire, a failed write undone alone, its rows kept when a
session rolls back later, turns taken with other tasks' sessions, conflicts
refused the same way; and whatever it cannot do alone (pending ORM changes,
ORM rows, an open transaction) still goes through the session.
"""

import asyncio
import unittest

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from test_framework import SSotAsyncTestCase
from test_framework.ssot.sessions import RollbackConflictError
from tests.ssot.test_sessions import SessionsTestCase
from tests.ssot.test_sessions import User as Member
from tests.support import count_rows_sync, problems, run_case, skip_unless_backend, timeout


class TestHelpersAlone(SessionsTestCase):
    async def test_a_lone_create_and_read_send_only_their_statements(self):
        async with self.assertNumQueries(2):
            user = await self.db.create_test_user({"email": "ada@x.test"})
            row = await self.db.fetch_one("SELECT email FROM users WHERE id = :id",
                                          {"id": user.id})
        self.assertEqual(row.email, "ada@x.test")
        self.assertFalse(self.session.in_transaction())

    async def test_a_test_that_only_calls_helpers_never_makes_a_session(self):
        user = await self.db.create_test_user({"email": "ada@x.test"})
        await self.db.fetch_all("SELECT email FROM users WHERE id = :id", {"id": user.id})
        self.assertEqual(await self.db.count_records("users", email="ada@x.test"), 1)
        self.assertTrue(await self.db.table_exists("users"))
        await self.assertRowExists("users", {"email": "ada@x.test"})
        self.assertEqual(self.session_factory.sessions, [])
        self.assertNotIn("session", self.__dict__)

    async def test_self_session_made_on_first_use_is_the_helpers(self):
        await self.db.create_test_user({"email": "helper@x.test"})
        self.session.add(Member("orm@x.test"))
        self.assertIs(self.session, self.db.session)
        self.assertEqual(self.session_factory.sessions, [self.session])
        self.assertEqual(await self.db.count_records("users"), 2)  # flushed: it went through

    async def test_a_failed_lone_write_is_undone_alone(self):
        await self.db.create_test_user({"email": "a@x.test"})
        await self.db.create_test_user({"email": "b@x.test"})
        with self.assertRaises(IntegrityError):
            await self.db.create_test_user({"email": "a@x.test"})
        await self.assertRowCount("users", 2)
        await self.db.create_test_user({"email": "c@x.test"})
        await self.assertRowCount("users", 3)

    async def test_a_failed_lone_read_first_in_the_test_is_undone(self):
        with self.assertRaises(Exception):
            await self.db.fetch_one("SELECT no_such_column FROM users")
        await self.db.create_test_user({"email": "after@x.test"})
        await self.assertRowCount("users", 1)

    async def test_lone_rows_stay_when_self_session_rolls_back_later(self):
        await self.db.create_test_user({"email": "helper@x.test"})
        self.session.add(Member("orm@x.test"))
        await self.session.flush()
        await self.session.rollback()
        self.assertEqual(await self.emails(), ["helper@x.test"])

    async def test_pending_orm_changes_are_flushed_before_a_helper_reads(self):
        member = Member("before@x.test")
        self.session.add(member)
        await self.session.commit()
        member.email = "after@x.test"
        row = await self.db.fetch_one("SELECT email FROM users")
        self.assertEqual(row.email, "after@x.test")

    async def test_an_orm_select_through_a_helper_returns_objects(self):
        await self.db.create_test_user({"email": "obj@x.test"})
        row = await self.db.fetch_one(select(Member))
        self.assertIsInstance(row[0], Member)
        self.assertEqual(row[0].email, "obj@x.test")

    async def test_inside_begin_transaction_nothing_runs_alone(self):
        transaction = await self.db.begin_transaction()
        await self.db.create_test_user({"email": "inner@x.test"})
        await self.db.rollback_transaction(transaction)
        await self.assertRowCount("users", 0)

    async def test_an_app_session_rolling_back_under_a_lone_write_is_refused(self):
        app = self.session_factory()
        await app.execute(text("INSERT INTO users (email, is_active) VALUES ('app@x.test', true)"))
        await self.db.create_test_user({"email": "helper@x.test"})
        with self.assertRaises(RollbackConflictError) as caught:
            await app.rollback()
        self.assertIn("but self.db (committed) wrote after them", str(caught.exception))
        self.assertEqual(await self.emails(), ["app@x.test", "helper@x.test"])

    async def test_an_app_session_rolls_back_alone_over_lone_writes_below_it(self):
        await self.db.create_test_user({"email": "helper@x.test"})
        async with self.session_factory() as app:
            app.add(Member("app@x.test"))
            await app.flush()
            await app.rollback()
        await self.db.create_test_user({"email": "later@x.test"})
        self.assertEqual(await self.emails(), ["helper@x.test", "later@x.test"])

    @timeout(30)
    async def test_a_lone_call_waits_its_turn_behind_another_tasks_session(self):
        events, written = [], asyncio.Event()

        async def app_task():
            async with self.session_factory() as app:
                app.add(Member("task@x.test"))
                await app.flush()
                written.set()
                await asyncio.sleep(0.05)
                events.append("app commits")
                await app.commit()

        task = asyncio.create_task(app_task())
        await written.wait()
        await self.db.create_test_user({"email": "helper@x.test"})
        events.append("helper wrote")
        await task
        self.assertEqual(events, ["app commits", "helper wrote"])
        self.assertEqual(await self.emails(), ["helper@x.test", "task@x.test"])


class TestLoneWritesLeaveNothingBehind(unittest.TestCase):
    def test_the_class_rollback_undoes_lone_writes_and_failures(self):
        seen = {}

        class Lone(SSotAsyncTestCase):
            async def test_1_writes_and_fails(self):
                seen["url"] = self.engine.url
                await self.db.create_test_user({"email": "a@x.test"})
                with self.assertRaises(IntegrityError):
                    await self.db.create_test_user({"email": "a@x.test"})
                await self.db.execute_query(
                    "INSERT INTO users (email, is_active) VALUES ('b@x.test', true)")

            async def test_2_sees_nothing(self):
                seen["next"] = await self.db.count_records("users")

        result = run_case(Lone)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["next"], 0)
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)

    @skip_unless_backend("postgresql")  # SQLite runs a statement on the loop's thread: no cut
    def test_a_lone_write_cut_short_leaves_nothing_for_the_next_test(self):
        """SQLAlchemy gives up the connection of a statement cut short; the test's
        writes go with it, and the next test gets a new connection."""
        seen = {}

        class CutShort(SSotAsyncTestCase):
            @timeout(30)
            async def test_1_cut_short(self):
                seen["url"] = self.engine.url
                await self.db.create_test_user({"email": "before@x.test"})
                with self.assertRaises(TimeoutError):
                    async with asyncio.timeout(0.3):
                        await self.db.execute_query(
                            "INSERT INTO users (email, is_active) SELECT 'slow@x.test', true "
                            "FROM pg_sleep(10)")

            async def test_2_next(self):
                await self.db.create_test_user({"email": "next@x.test"})
                seen["next"] = await self.db.count_records("users")

        result = run_case(CutShort)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["next"], 1)
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)


if __name__ == "__main__":
    unittest.main()
