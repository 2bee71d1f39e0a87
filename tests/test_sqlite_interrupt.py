"""SQLite statements end: at the statement timeout, and at once on Ctrl-C.

In-process tests run the endless query on an engine built by
``test_framework.engines``; functional tests run ``scenarios/endless_query.py``
in a subprocess, which prints ``INSIDE`` from a SQL function the query calls,
so the parent acts only once the statement is running.
"""

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from test_framework.backends.sqlite import SQLiteBackend
from test_framework.config import Timeouts
from test_framework.engines import create_engine
from test_framework.interrupts import interrupt_running_statements
from tests.functional.example_runs import ROOT, child_environment
from tests.support import skip_unless_backend

ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
SCENARIO = "tests.functional.scenarios.endless_query"
TIMEOUT_NOTE = ("the statement ran longer than statement_timeout (0.5s) and was stopped; "
                "raise the bound with TEST_FRAMEWORK_STATEMENT_TIMEOUT")
BOUND = 5  # seconds; the subprocess timeouts are far larger, so a regression fails, not hangs


@skip_unless_backend("sqlite")
class TestStatementTimeout(unittest.IsolatedAsyncioTestCase):
    driver = "aiosqlite"

    async def asyncSetUp(self):
        folder = tempfile.TemporaryDirectory(prefix="sqlite_interrupt_")
        self.addCleanup(folder.cleanup)
        self.url = make_url(f"sqlite+{self.driver}:///{folder.name}/test_interrupt.sqlite3")
        self.engine = self.engine_with(statement_timeout=0.5)

    def engine_with(self, *, statement_timeout: float):
        backend = SQLiteBackend(self.url, source="test",
                                timeouts=Timeouts(statement=statement_timeout))
        engine = create_engine(backend, backend.url)
        self.addAsyncCleanup(_dispose, engine)
        return engine

    async def test_endless_query_stopped_with_a_note_naming_the_setting(self):
        started = time.monotonic()
        async with self.engine.connect() as connection:
            with self.assertRaises(OperationalError) as caught:
                await asyncio.wait_for(connection.execute(text(ENDLESS)), BOUND * 2)
        self.assertLess(time.monotonic() - started, BOUND)
        self.assertIn("interrupted", str(caught.exception))
        self.assertIn(TIMEOUT_NOTE, "\n".join(caught.exception.__notes__))

    async def test_raw_driver_script_is_bounded_too(self):
        started = time.monotonic()
        async with self.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            with self.assertRaisesRegex(sqlite3.OperationalError, "^interrupted$"):
                await asyncio.wait_for(raw.driver_connection.executescript(ENDLESS), BOUND * 2)
        self.assertLess(time.monotonic() - started, BOUND)

    async def test_each_statement_gets_its_own_clock(self):
        """Twelve statements of at least 0.1 s each: over the 1 s bound in all, none alone."""
        async with self.engine_with(statement_timeout=1).connect() as connection:
            raw = await connection.get_raw_connection()
            await raw.driver_connection.create_function("pause", 1, _pause)
            for _ in range(12):
                query = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                         "WHERE x < 1000) SELECT count(pause(x)) FROM c")
                self.assertEqual((await connection.execute(text(query))).scalar_one(), 1000)

    async def test_interrupt_stops_a_running_statement_and_not_the_next(self):
        inside = threading.Event()
        threading.Thread(target=lambda: inside.wait(BOUND) and interrupt_running_statements(),
                         daemon=True).start()
        async with self.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            await raw.driver_connection.create_function("entered", 1,
                                                        lambda x: inside.set() or True)
            with self.assertRaises(OperationalError) as caught:
                await asyncio.wait_for(connection.execute(text(
                    ENDLESS.replace("FROM c", "FROM c WHERE entered(x)"))), BOUND * 2)
            self.assertNotIn(TIMEOUT_NOTE, "\n".join(getattr(caught.exception, "__notes__", [])))
            await connection.rollback()
            self.assertEqual((await connection.execute(text("SELECT 1"))).scalar_one(), 1)

    async def test_interrupt_before_the_statement_starts_stops_it_and_not_the_next(self):
        """Ctrl-C while the statement is sent, before SQLite starts it (which clears
        ``sqlite3_interrupt``): it ran on to the statement timeout."""
        engine = self.engine_with(statement_timeout=BOUND * 2)

        def ctrl_c_as_it_is_sent(connection, cursor, statement, *args):
            if statement == ENDLESS:
                interrupt_running_statements()

        event.listen(engine.sync_engine, "before_cursor_execute", ctrl_c_as_it_is_sent)
        started = time.monotonic()
        async with engine.connect() as connection:
            with self.assertRaises(OperationalError) as caught:
                await asyncio.wait_for(connection.execute(text(ENDLESS)), BOUND * 3)
            self.assertLess(time.monotonic() - started, BOUND)
            self.assertNotIn("statement_timeout",
                             "\n".join(getattr(caught.exception, "__notes__", [])))
            await connection.rollback()
            self.assertEqual((await connection.execute(text("SELECT 1"))).scalar_one(), 1)


class TestStatementTimeoutInline(TestStatementTimeout):
    """The same on sqlite3 driven on the loop's thread (rollback mode's engines)."""

    driver = "inline"

    async def asyncSetUp(self):
        await super().asyncSetUp()
        # The loop waits while the statement runs, by design: no "slow callback" lines.
        asyncio.get_running_loop().slow_callback_duration = BOUND * 3


@skip_unless_backend("sqlite")
class TestEndlessQueryInASuite(unittest.TestCase):
    def test_statement_timeout_setting_fails_the_test_with_the_note(self):
        with tempfile.TemporaryDirectory(prefix="endless_") as folder:
            process = _start_scenario(folder, {"TEST_FRAMEWORK_STATEMENT_TIMEOUT": "0.5"})
            started = time.monotonic()
            _, stderr = _finish(process)
            elapsed = time.monotonic() - started
            leftovers = os.listdir(folder)
        self.assertEqual(process.returncode, 1, stderr)
        self.assertIn(TIMEOUT_NOTE, stderr)
        self.assertIn("FAILED (errors=1)", stderr)
        self.assertLess(elapsed, BOUND + 3, "start-up included")
        self.assertEqual(leftovers, [])

    def test_ctrl_c_inside_the_query_ends_the_run_at_once_and_drops_the_database(self):
        with tempfile.TemporaryDirectory(prefix="endless_") as folder:
            process = _start_scenario(folder, {})
            line = process.stdout.readline()
            self.assertEqual(line, "INSIDE\n", "the query did not start")
            interrupted = time.monotonic()
            process.send_signal(signal.SIGINT)
            _, stderr = _finish(process)
            elapsed = time.monotonic() - interrupted
            leftovers = os.listdir(folder)
        self.assertLess(elapsed, BOUND, stderr)
        self.assertEqual(process.returncode, -signal.SIGINT, stderr)
        self.assertEqual(stderr.count("Traceback"), 1, stderr)
        self.assertTrue(stderr.rstrip().endswith("KeyboardInterrupt"), stderr)
        self.assertEqual(leftovers, [])


def _pause(x: int) -> int:
    time.sleep(0.0001)
    return x


async def _dispose(engine) -> None:
    """Dispose, but fail instead of hanging if a statement still holds the driver thread."""
    await asyncio.wait_for(engine.dispose(), BOUND)


def _start_scenario(folder: str, env_updates: dict[str, str]) -> subprocess.Popen:
    env = child_environment(folder, {"TEST_DATABASE_URL": "", **env_updates}, ())
    return subprocess.Popen([sys.executable, "-m", "unittest", SCENARIO], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> tuple[str, str]:
    """Wait for the child; kill it after 60 s so a regression fails the test instead."""
    try:
        return process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        return stdout, stderr + "\n(killed after 60 s)"
