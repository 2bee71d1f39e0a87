"""The inline SQLite driver: test engines run sqlite3 on the loop's own thread.

What aiosqlite did must still hold: the framework's BEGIN handling, foreign
keys, the driver-connection calls tests make, a lock wait that lets the
loop run (the holder may be a task of the same test) and ends at
lock_timeout, and Ctrl-C stopping a running statement. Statement-timeout
and interrupt tests for both drivers are in ``tests/test_sqlite_interrupt.py``.
"""

import asyncio
import signal
import tempfile
import threading
import time
import unittest

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from test_framework import SSotAsyncTestCase
from test_framework.backends import sqlite_interrupts
from test_framework.backends.sqlite import SQLiteBackend
from test_framework.config import Setting, Timeouts, load_project_settings, project_settings
from test_framework.config_values import as_sqlite_driver
from test_framework.engines import create_engine
from test_framework.errors import ConfigurationError
from tests.support import count_rows_sync, problems, run_case, skip_unless_backend

ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
BOUND = 5  # seconds; far above what each wait needs, far below the 60 s statement timeout


def _drivers_of(isolation: str, **attributes) -> tuple[dict, unittest.TestResult]:
    seen = {}

    class Probe(SSotAsyncTestCase):
        async def test_probe(self):
            seen["driver"] = self.engine.url.get_driver_name()
            seen["url"] = self.engine.url
            user = await self.db.create_test_user({"email": "inline@example.com"})
            seen["read back"] = (await self.db.fetch_one(
                "SELECT email FROM users WHERE id = :id", {"id": user.id})).email
            raw = await (await self.session.connection()).get_raw_connection()
            seen["in transaction"] = raw.driver_connection.in_transaction
            seen["foreign keys"] = (await self.session.execute(
                text("PRAGMA foreign_keys"))).scalar_one()
            with self.assertRaises(IntegrityError):  # foreign keys enforced
                async with self.session.begin_nested():
                    await self.session.execute(text(
                        "INSERT INTO threads (id, user_id) VALUES ('t1', 987654)"))

    Probe.isolation = isolation
    for name, value in attributes.items():
        setattr(Probe, name, value)
    result = run_case(Probe)
    return seen, result


def _configured_driver() -> str:
    """The inline driver by default; aiosqlite when this pass asks for it."""
    return project_settings().sqlite_driver.value


@skip_unless_backend("sqlite")
class TestDriverChoice(unittest.TestCase):
    def test_rollback_class_runs_inline_and_keeps_the_backends_rules(self):
        seen, result = _drivers_of("rollback")
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["driver"], _configured_driver())
        self.assertEqual(seen["read back"], "inline@example.com")
        self.assertTrue(seen["in transaction"], "BEGIN IMMEDIATE before the first write")
        self.assertEqual(seen["foreign keys"], 1)
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0, "rolled back")

    def test_commit_class_runs_inline_and_its_rows_are_committed_then_deleted(self):
        seen, result = _drivers_of("commit")
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["driver"], _configured_driver())
        self.assertEqual(seen["read back"], "inline@example.com")
        self.assertEqual(seen["foreign keys"], 1)
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0, "deleted by cleanup")

    def test_in_memory_database_runs_inline(self):
        seen, result = _drivers_of("rollback", database_url="sqlite+aiosqlite://")
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual((seen["driver"], seen["url"].database), (_configured_driver(), None))
        self.assertEqual(seen["read back"], "inline@example.com")

    def test_setting_reads_the_environment_and_names_a_bad_value(self):
        chosen = load_project_settings({"TEST_FRAMEWORK_SQLITE_DRIVER": "AIOSQLITE"})
        self.assertEqual(chosen.sqlite_driver,
                         Setting("aiosqlite", "TEST_FRAMEWORK_SQLITE_DRIVER (environment)"))
        self.assertEqual(load_project_settings({}).sqlite_driver.value, "inline")
        with self.assertRaisesRegex(ConfigurationError,
                                    r"^X \(environment\) is 'inlin'; use 'inline' .*"
                                    r"did you mean 'inline'\?"):
            as_sqlite_driver(Setting("inlin", "X (environment)"))


@skip_unless_backend("sqlite")
class TestInlineConnection(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        asyncio.get_running_loop().slow_callback_duration = BOUND * 3  # statements block it
        folder = tempfile.TemporaryDirectory(prefix="sqlite_inline_")
        self.addCleanup(folder.cleanup)
        self.file_url = make_url(f"sqlite+aiosqlite:///{folder.name}/test_inline.sqlite3")

    def engine(self, *, inline: bool, lock: float = 10.0):
        backend = SQLiteBackend(self.file_url, source="test", timeouts=Timeouts(lock=lock))
        url = self.file_url.set(drivername="sqlite+inline") if inline else self.file_url
        engine = create_engine(backend, url)
        self.addAsyncCleanup(engine.dispose)
        return engine

    async def test_driver_connection_offers_aiosqlites_calls(self):
        async with self.engine(inline=True).connect() as connection:
            raw = await connection.get_raw_connection()
            await raw.driver_connection.create_function("twice", 1, lambda x: 2 * x)
            await raw.driver_connection.executescript(
                "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (21);")
            cursor = await raw.driver_connection.execute("SELECT twice(x) FROM t")
            self.assertEqual(cursor.fetchall(), [(42,)])
            self.assertFalse(raw.driver_connection.in_transaction)

    async def test_lock_wait_lets_the_loop_run_so_its_holder_can_commit(self):
        """The holder, on aiosqlite, commits from a task of this loop while the inline
        connection waits: a wait inside SQLite would block that task until lock_timeout."""
        holder_engine, waiter_engine = self.engine(inline=False), self.engine(inline=True)
        async with holder_engine.connect() as setup:
            await setup.execute(text("CREATE TABLE t (x INTEGER)"))
            await setup.commit()
        order = []
        async with holder_engine.connect() as holder, waiter_engine.connect() as waiter:
            await holder.execute(text("INSERT INTO t VALUES (1)"))  # holds the write lock

            async def commit_soon():
                await asyncio.sleep(0.2)
                order.append("holder commits")
                await holder.commit()

            committing = asyncio.create_task(commit_soon())
            started = time.monotonic()
            await waiter.execute(text("INSERT INTO t VALUES (2)"))
            order.append("waiter wrote")
            await waiter.commit()
            await committing
        self.assertEqual(order, ["holder commits", "waiter wrote"])
        self.assertLess(time.monotonic() - started, BOUND)

    async def test_lock_never_released_fails_at_lock_timeout_with_a_note(self):
        holder_engine, waiter_engine = self.engine(inline=False), self.engine(inline=True,
                                                                               lock=0.3)
        async with holder_engine.connect() as setup:
            await setup.execute(text("CREATE TABLE t (x INTEGER)"))
            await setup.commit()
        async with holder_engine.connect() as holder, waiter_engine.connect() as waiter:
            await holder.execute(text("INSERT INTO t VALUES (1)"))
            started = time.monotonic()
            with self.assertRaises(OperationalError) as caught:
                await waiter.execute(text("INSERT INTO t VALUES (2)"))
            waited = time.monotonic() - started
            await holder.rollback()
        self.assertIn("database is locked", str(caught.exception))
        self.assertIn("waited lock_timeout (0.3s) for SQLite's write lock",
                      "\n".join(caught.exception.__notes__))
        self.assertGreaterEqual(waited, 0.2)
        self.assertLess(waited, BOUND)

    async def endless_query_with_ctrl_c(self, engine, expected) -> BaseException:
        """Run an endless query; send SIGINT once it runs; return what it raised."""
        inside = threading.Event()
        threading.Thread(target=lambda: inside.wait(BOUND) and signal.pthread_kill(
            threading.main_thread().ident, signal.SIGINT), daemon=True).start()
        started = time.monotonic()
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            await raw.driver_connection.create_function("entered",
                                                        1, lambda x: inside.set() or True)
            with self.assertRaises(expected) as caught:
                await connection.execute(text(
                    ENDLESS.replace("FROM c", "FROM c WHERE entered(x)")))
        self.assertLess(time.monotonic() - started, BOUND)
        async with engine.connect() as connection:  # the next statement runs
            self.assertEqual((await connection.execute(text("SELECT 1"))).scalar_one(), 1)
        await engine.dispose()
        return caught.exception

    async def test_ctrl_c_stops_the_running_statement_and_raises_keyboard_interrupt(self):
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        self.addCleanup(signal.signal, signal.SIGINT, previous)
        # The connections checked out now (a class's, on its shared engine) watch too.
        others_open = sqlite_interrupts._watchers > 0
        raised = await self.endless_query_with_ctrl_c(self.engine(inline=True),
                                                      KeyboardInterrupt)
        self.assertIsNone(raised.__context__, "no SQLite error shown beside it")
        self.assertIs(signal.getsignal(signal.SIGINT),
                      sqlite_interrupts._on_sigint if others_open else signal.default_int_handler,
                      "given back once no inline connection is open, and only then")

    async def test_ctrl_c_under_a_handler_that_does_not_raise_fails_the_statement(self):
        """``unittest -c`` or ``asyncio.Runner`` handle Ctrl-C without raising: their
        handler runs once, and the stopped statement fails with SQLite's error."""
        calls = []
        previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
        self.addCleanup(signal.signal, signal.SIGINT, previous)
        raised = await self.endless_query_with_ctrl_c(self.engine(inline=True), OperationalError)
        self.assertIn("interrupted", str(raised))
        self.assertEqual(calls, [signal.SIGINT])
