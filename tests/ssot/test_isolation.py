"""Both isolation modes leave the database as it was, seen from another connection."""

import asyncio
import unittest

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from test_framework import SSotAsyncTestCase
from test_framework.backends import backend_for
from test_framework.config import Setting
from tests.support import count_rows, count_rows_sync, problems, run_case


def app_register(session_factory, email):
    """What application code does: its own session, and a real commit."""
    async def register():
        async with session_factory() as session:
            await session.execute(text("INSERT INTO users (email, is_active) VALUES (:e, true)"),
                                  {"e": email})
            await session.commit()
    return register()


class TestRollbackMode(unittest.TestCase):
    def test_app_commit_gone_after_rollback_mode(self):
        seen = {}

        class AppCommits(SSotAsyncTestCase):
            async def test_commit(self):
                seen["url"] = self.engine.url
                await app_register(self.session_factory, "app@x.test")
                await self.db.create_test_user({"email": "helper@x.test"})
                async with self.session_factory() as other:
                    seen["inside"] = (await other.execute(
                        text("SELECT count(*) FROM users"))).scalar_one()

            async def test_next_test_is_clean(self):
                seen["next"] = await self.db.count_records("users")

        result = run_case(AppCommits)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["inside"], 2)
        self.assertEqual(seen["next"], 0)
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)

    def test_integrity_error_recovered_inside_test(self):
        seen = {}

        class Recovers(SSotAsyncTestCase):
            async def test_recover(self):
                seen["url"] = self.engine.url
                await app_register(self.session_factory, "dup@x.test")
                with self.assertRaises(IntegrityError):
                    await app_register(self.session_factory, "dup@x.test")
                await app_register(self.session_factory, "after@x.test")
                seen["count"] = await self.db.count_records("users")

        result = run_case(Recovers)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["count"], 2)
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)

    def test_failing_test_still_rolled_back(self):
        seen = {}

        class Fails(SSotAsyncTestCase):
            async def test_fails(self):
                seen["url"] = self.engine.url
                await self.db.create_test_user({"email": "fail@x.test"})
                self.fail("on purpose")

        result = run_case(Fails)
        self.assertEqual(len(result.failures), 1)
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)


class TestCommitMode(unittest.TestCase):
    def test_commit_mode_rows_visible_outside_then_gone(self):
        seen = {}

        class Commits(SSotAsyncTestCase):
            isolation = "commit"

            async def test_visible(self):
                seen["url"] = self.engine.url
                user = await self.db.create_test_user({"email": "c@x.test"})
                await self.db.create_test_thread({"id": "t1", "user_id": user.id})
                await self.db.create_test_message({"id": "m1", "thread_id": "t1", "role": "user"})
                seen["outside"] = await count_rows(self.engine.url, "messages")

        result = run_case(Commits)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["outside"], 1)
        for table in ("messages", "threads", "users"):
            self.assertEqual(count_rows_sync(seen["url"], table), 0, table)

    def test_cleanup_failure_is_reported_not_hidden(self):
        seen = {}

        class LeavesChild(SSotAsyncTestCase):
            isolation = "commit"

            async def test_child_made_by_app(self):
                seen["url"] = self.engine.url
                await self.db.create_test_thread({"id": "parent"})
                async with self.session_factory() as app:
                    await app.execute(text(
                        "INSERT INTO messages (id, thread_id, role) VALUES ('c', 'parent', 'u')"))
                    await app.commit()

        result = run_case(LeavesChild)
        self.assertEqual(len(result.errors), 1, problems(result))
        self.assertIn("could not delete the rows this test created in ['threads']",
                      problems(result))
        # tidy up what the test left, from outside
        import asyncio
        from tests.support import separate_connection

        async def tidy():
            async with separate_connection(seen["url"]) as connection:
                await connection.execute(text("DELETE FROM messages"))
                await connection.execute(text("DELETE FROM threads"))
        asyncio.run(tidy())

    def test_bad_isolation_value_is_explained(self):
        class Bad(SSotAsyncTestCase):
            isolation = "snapshot"

            async def test_x(self):
                pass

        result = run_case(Bad)
        self.assertIn("Bad.isolation (class attribute) is 'snapshot'; use one of "
                      "['commit', 'database', 'rollback', 'truncate']", problems(result))


class TestCommitModeLocks(SSotAsyncTestCase):
    """A helper read must not leave a transaction that blocks the app's commit."""

    isolation = "commit"

    async def test_app_write_after_helper_read(self):
        user = await self.db.create_test_user({"email": "a@example.com"})
        await self.db.count_records("users")
        await self.db.fetch_one("SELECT id FROM users")
        self.assertFalse(self.session.in_transaction())
        async with self.session_factory() as app:
            await app.execute(text("UPDATE users SET is_active = false WHERE id = :id"),
                              {"id": user.id})
            await app.commit()
        row = await self.db.fetch_one("SELECT is_active FROM users WHERE id = :id", {"id": user.id})
        self.assertFalse(row.is_active)


class TestTruncateMode(unittest.TestCase):
    def test_every_table_emptied_after_each_test_even_untracked_rows(self):
        seen = {}

        class Truncates(SSotAsyncTestCase):
            isolation = "truncate"

            async def test_1_app_writes(self):
                seen["url"] = self.engine.url
                await app_register(self.session_factory, "bulk@x.test")
                await self.db.create_test_thread({"id": "t"})
                seen["outside"] = await count_rows(self.engine.url, "users")

            async def test_2_clean(self):
                seen["next"] = (await self.db.count_records("users"),
                                await self.db.count_records("threads"))

        result = run_case(Truncates)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["outside"], 1, "commits are real")
        self.assertEqual(seen["next"], (0, 0))
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)


class TestDatabaseMode(unittest.TestCase):
    def test_each_class_gets_its_own_database_dropped_after_it(self):
        seen = []

        class OwnDatabase(SSotAsyncTestCase):
            isolation = "database"
            leftover_rows = "ignore"  # the app's row is the point; the database goes anyway

            async def test_writes(self):
                seen.append(self.engine.url)
                await app_register(self.session_factory, "own@x.test")

        class SecondClass(OwnDatabase):
            pass

        for case in (OwnDatabase, SecondClass):
            result = run_case(case)
            self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertNotEqual(seen[0].database, seen[1].database)
        backend = backend_for(Setting(seen[0].render_as_string(hide_password=False), "test"))
        self.assertFalse(asyncio.run(backend.database_exists(seen[0])), "dropped after the class")


class TestSessionOptionsInEveryMode(unittest.TestCase):
    def test_each_mode_gives_its_sessions_the_class_options(self):
        seen = {}

        class Options(SSotAsyncTestCase):
            session_options = {"expire_on_commit": True, "autoflush": False}

            async def test_sessions(self):
                seen[self.isolation] = [
                    (session.sync_session.expire_on_commit, session.sync_session.autoflush)
                    for session in (self.session, self.session_factory())]

        for mode in ("rollback", "commit", "truncate", "database"):
            case = type(f"Options_{mode}", (Options,), {"isolation": mode})
            result = run_case(case)
            self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen, {mode: [(True, False), (True, False)] for mode in
                                ("rollback", "commit", "truncate", "database")})


class TestCommitModeOpenSession(unittest.TestCase):
    def test_session_left_open_is_closed_before_cleanup_no_lock_wait(self):
        import time
        seen = {}

        class LeavesSessionOpen(SSotAsyncTestCase):
            isolation = "commit"

            async def test_open(self):
                seen["url"] = self.engine.url
                user = await self.db.create_test_user({"email": "locked@x.test"})
                app = self.session_factory()
                await app.execute(text("UPDATE users SET full_name = 'x' WHERE id = :id"),
                                  {"id": user.id})  # never committed or closed

        started = time.monotonic()
        result = run_case(LeavesSessionOpen)
        self.assertLess(time.monotonic() - started, 5, "no wait for the lock timeout")
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)
