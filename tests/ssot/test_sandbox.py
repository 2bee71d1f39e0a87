"""The sandbox: an app's own engine and sessionmaker inside the test's isolation, then back.

The app (``tests/ssot/sandbox_app``) imports its engine and sessionmaker by
value; each throwaway class below lists them in ``sandbox``. What the app
wrote is checked from a separate connection after the class ran.
"""

import asyncio
import threading
import unittest

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from test_framework import SSotAsyncTestCase
from test_framework.config import class_value
from test_framework.errors import ConfigurationError, SandboxError
from test_framework.log import MaskedUrl
from test_framework.ssot.sandbox import SandboxConnection, sandbox_targets
from tests.ssot.sandbox_app import db, service
from tests.support import count_rows, count_rows_sync, problems, run_case

APP = ["tests.ssot.sandbox_app.db:engine", "tests.ssot.sandbox_app.db:SessionLocal"]
ENGINE_CLASS, SYNC_ENGINE = type(db.engine), db.engine.sync_engine


class RollbackSandboxTest(unittest.TestCase):
    def assert_restored(self):
        self.assertIs(type(db.engine), ENGINE_CLASS)
        self.assertIs(db.engine.sync_engine, SYNC_ENGINE)
        self.assertNotIn("connect", SYNC_ENGINE.__dict__)
        self.assertIs(db.SessionLocal.kw["bind"], db.engine)
        self.assertNotIn("join_transaction_mode", db.SessionLocal.kw)
        self.assertIs(db.SessionLocal.class_, AsyncSession)

    def test_app_writes_land_in_the_test_and_are_gone_after(self):
        seen = {}

        class AppWrites(SSotAsyncTestCase):
            sandbox = APP

            async def test_writes(self):
                seen["url"] = self.engine.url
                seen["bind"] = db.SessionLocal.kw["bind"]
                seen["mode"] = db.SessionLocal.kw["join_transaction_mode"]
                await service.register_with_session("session@x.test")
                await service.register_with_engine("engine@x.test")
                await service.register_then_roll_back("undone@x.test")
                seen["app count"] = await service.count_users()
                seen["test count"] = await self.db.count_records("users")
                seen["outside"] = await count_rows(self.engine.url, "users")
                async with db.engine.connect() as connection:
                    seen["connection"] = connection

            async def test_next_test_starts_empty(self):
                seen["next"] = await self.db.count_records("users")

        result = run_case(AppWrites)

        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["bind"].engine.url, seen["url"])  # the test's connection
        self.assertEqual(seen["mode"], "create_savepoint")
        self.assertIsInstance(seen["connection"], SandboxConnection)
        self.assertEqual((seen["app count"], seen["test count"]), (2, 2))
        self.assertEqual(seen["outside"], 0)  # never committed: the test's transaction
        self.assertEqual(seen["next"], 0)
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)
        self.assert_restored()

    def test_objects_are_restored_after_a_failing_test(self):
        class Fails(SSotAsyncTestCase):
            sandbox = APP

            async def test_fails(self):
                await service.register_with_session("fails@x.test")
                self.fail("on purpose")

        result = run_case(Fails)

        self.assertEqual(len(result.failures), 1, problems(result))
        self.assert_restored()

    def test_app_rollback_undoes_only_its_own_session(self):
        seen = {}

        class RollsBack(SSotAsyncTestCase):
            sandbox = APP

            async def test_rollback(self):
                await service.register_with_session("kept@x.test")
                async with db.SessionLocal() as session:
                    await session.execute(service.INSERT, {"email": "dropped@x.test"})
                    await session.rollback()
                seen["emails"] = [row.email for row in
                                  await self.db.fetch_all("SELECT email FROM users")]

        result = run_case(RollsBack)

        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["emails"], ["kept@x.test"])

    def test_session_bound_straight_to_the_engine_is_refused(self):
        seen = {}

        class Direct(SSotAsyncTestCase):
            sandbox = APP

            async def test_direct(self):
                seen["url"] = self.engine.url
                with self.assertRaises(SandboxError) as caught:
                    await service.register_with_a_session_on_the_engine("direct@x.test")
                seen["message"] = str(caught.exception)

        result = run_case(Direct)

        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertIn("tests.ssot.sandbox_app.db:engine", seen["message"])
        self.assertIn("isolation = 'commit'", seen["message"])
        self.assert_restored()

    def test_connection_isolation_level_change_is_refused(self):
        seen = {}

        class IsolationLevel(SSotAsyncTestCase):
            sandbox = APP

            async def test_autocommit(self):
                async with db.engine.connect() as connection:
                    with self.assertRaises(SandboxError) as caught:
                        await connection.execution_options(isolation_level="AUTOCOMMIT")
                    seen["message"] = str(caught.exception)
                    seen["level"] = await connection.get_isolation_level()

        result = run_case(IsolationLevel)

        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertIn("isolation = 'commit'", seen["message"])
        self.assertNotEqual(seen["level"], "AUTOCOMMIT")

    def test_app_on_another_loop_is_told_to_use_asgi_transport(self):
        seen = {}

        class OtherLoop(SSotAsyncTestCase):
            sandbox = APP

            async def test_thread(self):
                def in_a_thread():  # what Starlette's TestClient does with the app
                    try:
                        asyncio.run(service.register_with_session("thread@x.test"))
                    except SandboxError as exc:
                        seen["message"] = str(exc)

                thread = threading.Thread(target=in_a_thread)
                thread.start()
                await asyncio.to_thread(thread.join, 30)
                seen["count"] = await self.db.count_records("users")

        result = run_case(OtherLoop)

        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertIn("another event loop", seen["message"])
        self.assertIn("httpx.ASGITransport", seen["message"])
        self.assertEqual(seen["count"], 0)

    def test_app_shutdown_disposing_the_engine_breaks_no_later_test(self):
        seen = {}

        class Shutdown(SSotAsyncTestCase):
            sandbox = APP

            async def test_1_lifespan_disposes(self):
                await service.register_with_engine("first@x.test")
                await db.engine.dispose()
                seen["after dispose"] = await service.count_users()

            async def test_2_later_test(self):
                await service.register_with_engine("second@x.test")
                seen["later"] = await service.count_users()

        result = run_case(Shutdown)

        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual((seen["after dispose"], seen["later"]), (1, 1))


class CommitSandboxTest(unittest.TestCase):
    def test_commit_mode_points_the_app_at_the_test_database(self):
        seen = {}

        class Commits(SSotAsyncTestCase):
            isolation = "commit"
            sandbox = APP

            async def test_commits(self):
                seen["url"] = self.engine.url
                await service.register_with_session("commit-session@x.test")
                await service.register_with_engine("commit-engine@x.test")
                await service.register_with_a_session_on_the_engine("commit-direct@x.test")
                url = make_url(str(self.test_database_url))
                seen["outside"] = await count_rows(url, "users")
                await db.engine.dispose()  # a lifespan's shutdown: the test's pool stays
                await self.db.execute_query("DELETE FROM users")

            async def test_after(self):
                seen["after"] = await service.count_users()

        result = run_case(Commits)

        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["outside"], 3)
        self.assertEqual(seen["after"], 0)
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)
        self.assertIs(db.engine.sync_engine, SYNC_ENGINE)
        self.assertIs(type(db.engine), ENGINE_CLASS)


class SandboxSettingsTest(unittest.TestCase):
    def targets(self, value):
        return sandbox_targets(class_value(type("AppTest", (), {"sandbox": value}), "sandbox"))

    def test_entries_resolve_to_the_objects(self):
        targets = self.targets(APP + APP[:1])

        self.assertEqual([target for _, target in targets], [db.engine, db.SessionLocal])

    def test_bad_entries_name_the_entry_the_attribute_and_the_fix(self):
        cases = {
            "tests.ssot.sandbox_app.db.engine": "not 'module:attribute'",
            "tests.ssot.no_such_app:engine": "cannot be imported",
            "tests.ssot.sandbox_app.db:engin": "did you mean 'engine'?",
            "tests.ssot.sandbox_app.db:DATABASE_URL": "a str; list only AsyncEngine",
        }
        for entry, expected in cases.items():
            with self.subTest(entry=entry), self.assertRaises(ConfigurationError) as caught:
                self.targets([entry])
            self.assertIn(f"AppTest.sandbox (class attribute) has {entry!r}",
                          str(caught.exception))
            self.assertIn(expected, str(caught.exception))

    def test_a_single_string_is_refused(self):
        with self.assertRaises(ConfigurationError) as caught:
            self.targets("tests.ssot.sandbox_app.db:engine")
        self.assertIn("use a list of 'module:attribute' strings", str(caught.exception))

    def test_engine_on_another_database_is_refused(self):
        seen = {}

        class Elsewhere(SSotAsyncTestCase):
            sandbox = ["tests.ssot.sandbox_app.elsewhere:engine"]

            async def test_never_runs(self):
                seen["ran"] = True

        result = run_case(Elsewhere)

        self.assertEqual(len(result.errors), 1, problems(result))
        message = problems(result)
        self.assertIn("ConfigurationError", message)
        self.assertIn("'tests.ssot.sandbox_app.elsewhere:engine', an engine on "
                      "sqlite+aiosqlite:///another_app.sqlite3", message)
        self.assertNotIn("ran", seen)
        from tests.ssot.sandbox_app import elsewhere
        self.assertIsInstance(elsewhere.engine, AsyncEngine)
        self.assertIs(type(elsewhere.engine), AsyncEngine)


class TestDatabaseUrlTest(unittest.TestCase):
    def test_the_test_database_url_is_a_string_with_a_masked_repr(self):
        url = MaskedUrl(make_url("postgresql+asyncpg://app:s3cret@db:5432/test_app_1"))

        self.assertEqual(str(url), "postgresql+asyncpg://app:s3cret@db:5432/test_app_1")
        self.assertEqual(f"{url}", "postgresql+asyncpg://app:s3cret@db:5432/test_app_1")
        self.assertNotIn("s3cret", repr(url))
        self.assertIn("app:***@db", repr(url))

    def test_each_test_gets_its_database_url_and_the_class_attribute_stays_input(self):
        seen = {}

        class Urls(SSotAsyncTestCase):
            async def test_url(self):
                seen["url"], seen["engine"] = self.test_database_url, self.engine.url
                seen["class value"] = type(self).database_url

        result = run_case(Urls)

        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertIsInstance(seen["url"], str)
        # The engine's database; its driver may differ (SQLite's rollback mode: sqlite+inline).
        self.assertEqual(make_url(seen["url"]).set(drivername=seen["engine"].drivername),
                         seen["engine"])
        self.assertIsNone(seen["class value"])
        self.assertIn("test_", make_url(seen["url"]).database)
