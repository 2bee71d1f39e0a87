"""One loop per process, built on CPython's private runner hooks: prove they still behave,
and that classes sharing it share the rollback connection, each starting clean."""

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import warnings
from pathlib import Path

from sqlalchemy import make_url, text

from test_framework import SSotAsyncTestCase, SSotBaseTestCase
from test_framework.ssot.class_loop import ClassRunner
from tests.support import (backend_name, problems, run_case, separate_connection,
                           skip_unless_backend)

ROOT = Path(__file__).resolve().parents[2]


class TestClassLoop(unittest.TestCase):
    def test_private_hooks_exist_on_this_python(self):
        for name in ("_setupAsyncioRunner", "_tearDownAsyncioRunner"):
            self.assertTrue(callable(getattr(unittest.IsolatedAsyncioTestCase, name, None)), name)
        case = unittest.IsolatedAsyncioTestCase()
        self.assertIsNone(getattr(case, "_asyncioRunner", "missing"))

    def test_classes_share_the_loop_the_engine_and_the_connection(self):
        """One connect serves class after class: the next class checks out the same
        connection (on SQLite's inline driver too; aiosqlite's engines are the class's)."""
        loops, connections, engines = [], [], []

        class Shared(SSotAsyncTestCase):
            async def test_a(self):
                await self._note()

            async def test_b(self):
                await self._note()

            async def _note(self):
                loops.append(asyncio.get_running_loop())
                engines.append(self.engine)
                connection = await self.session.connection()
                raw = await connection.get_raw_connection()
                connections.append(raw.driver_connection)  # kept: no id is reused

        class Other(Shared):
            pass

        result = run_case(Shared)
        other = run_case(Other, "test_a")
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertTrue(other.wasSuccessful(), problems(other))
        self.assertIs(loops[0], loops[1])
        self.assertIs(loops[2], loops[0], "the next class runs on the same loop")
        self.assertFalse(loops[0].is_closed(), "the shared loop stays open for later classes")
        self.assertIs(connections[1], connections[0], "a class holds one connection")
        if not _aiosqlite():
            self.assertIs(engines[2], engines[0], "and uses the same engine")
            self.assertIs(connections[2], connections[0], "handed on to the next class")

    def test_the_next_class_starts_clean_after_a_class_ended(self):
        """The connection a class hands back carries nothing over: rows, savepoints, settings."""
        seen = []

        class Writes(SSotAsyncTestCase):
            async def test_write(self):
                await self.db.execute_query(
                    "INSERT INTO users (email, full_name, password_hash, is_active) "
                    "VALUES ('carried@example.com', 'C', 'h', true)")

        class Reads(SSotAsyncTestCase):
            async def test_read(self):
                seen.append(await self.db.count_records(
                    "users", "email = :e", {"e": "carried@example.com"}))

        for case in (Writes, Reads):
            result = run_case(case)
            self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen, [0])

    def test_session_settings_committed_by_a_test_do_not_reach_the_next_class(self):
        """A raw COMMIT, then a setting outside any transaction (on SQLite a pragma, which
        no rollback undoes): the connection it changed is not handed to the next class."""
        postgresql = backend_name() == "postgresql"
        change = ("SET application_name = 'leaked'" if postgresql
                  else "PRAGMA cache_size = 1234")
        read = ("SELECT current_setting('application_name') AS v" if postgresql
                else "PRAGMA cache_size")
        seen = []

        class Changes(SSotAsyncTestCase):
            async def test_changes_the_session(self):
                await self.session.execute(text("COMMIT"))
                await self.session.execute(text(change))
                seen.append((await self.session.execute(text(read))).scalar_one())

        class Next(SSotAsyncTestCase):
            async def test_reads(self):
                seen.append((await self.session.execute(text(read))).scalar_one())

        with self.assertLogs("test_framework", "WARNING"):  # the raw COMMIT is reported
            changed = run_case(Changes)
        self.assertTrue(changed.wasSuccessful(), problems(changed))
        result = run_case(Next)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen[0], "leaked" if postgresql else 1234)
        self.assertNotEqual(seen[1], seen[0], "the next class's connection is a fresh one")

    @skip_unless_backend("postgresql")
    def test_a_session_advisory_lock_is_released_when_its_class_ends(self):
        """Advisory locks outlive a rollback; the next class must not inherit one."""
        urls = []

        class Locks(SSotAsyncTestCase):
            async def test_locks(self):
                urls.append(make_url(str(self.test_database_url)))
                await self.db.fetch_one("SELECT pg_advisory_lock(424242) AS locked")

        result = run_case(Locks)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertTrue(asyncio.run(_try_advisory_lock(urls[0], 424242)))

    @skip_unless_backend("postgresql")
    def test_a_connection_the_server_closed_between_classes_is_replaced(self):
        """pg_terminate_backend on the pooled connection: the next class connects anew."""
        pids, urls = [], []

        class First(SSotAsyncTestCase):
            async def test_pid(self):
                urls.append(make_url(str(self.test_database_url)))
                pids.append((await self.db.fetch_one("SELECT pg_backend_pid() AS pid")).pid)

        class Second(First):
            pass

        self.assertTrue(run_case(First).wasSuccessful())
        asyncio.run(_terminate(urls[0], pids[0]))
        result = run_case(Second)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertNotEqual(pids[1], pids[0])

    def test_debug_mode_off_by_default(self):
        debug = []

        class Debug(SSotAsyncTestCase):
            async def test_debug(self):
                debug.append(asyncio.get_running_loop().get_debug())

        run_case(Debug)
        self.assertEqual(debug, [False])

    def test_leftover_tasks_cancelled_with_a_warning_naming_the_test(self):
        tasks = []

        class Leaves(SSotAsyncTestCase):
            async def test_leaves_task(self):
                tasks.append(asyncio.get_running_loop().create_task(asyncio.sleep(3600)))

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_case(Leaves)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertTrue(tasks[0].cancelled())
        messages = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        self.assertTrue(any("Leaves.test_leaves_task left 1 task(s) running" in m
                            for m in messages), messages)

    def test_sync_class_loop_shared_too(self):
        loops = []

        class SyncShared(SSotBaseTestCase):
            def test_a(self):
                loops.append(self.run_async(self._loop()))

            def test_b(self):
                loops.append(self.run_async(self._loop()))

            async def _loop(self):
                return asyncio.get_running_loop()

        result = run_case(SyncShared)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertIs(loops[0], loops[1])

    def test_ctrl_c_the_sleeping_loop_missed_still_ends_the_run_at_once(self):
        """SIGINT handled off the main thread while the loop sleeps, as when it lands just
        before ``epoll_wait``: only the signal wakeup fd ends that sleep (it took 60 s)."""
        runner = ClassRunner()
        self.addCleanup(runner.close)

        async def sleep_through_ctrl_c():
            threading.Thread(target=_ctrl_c_on_this_thread_soon).start()
            await asyncio.sleep(10)

        started = time.monotonic()
        with self.assertRaises(KeyboardInterrupt):
            runner.run(sleep_through_ctrl_c())
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(signal.set_wakeup_fd(-1), -1, "the run gave the wakeup fd back")

    def test_a_test_points_the_wakeup_fd_once_and_gives_it_back(self):
        """Between its loop passes (a sync setUp) the fd still points at the loop's socket,
        so a signal landing there wakes the next pass; after the test it is given back."""
        seen = []

        class Wakes(SSotAsyncTestCase):
            def setUp(self):
                seen.append(_current_wakeup_fd())
                super().setUp()

            async def test_nothing(self):
                seen.append(_current_wakeup_fd())

        result = run_case(Wakes)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(len(seen), 2)
        self.assertNotEqual(seen[0], -1, "no wakeup fd between the test's loop passes")
        self.assertEqual(seen[0], seen[1])
        self.assertEqual(_current_wakeup_fd(), -1, "the test gave the wakeup fd back")

    def test_a_runner_closed_inside_a_test_gives_the_wakeup_fd_back_first(self):
        """Ctrl-C closes the shared runner inside the test's ``run``: the fd must not be
        left on the closed socket's number, which the next open file may reuse."""
        runner = ClassRunner()
        self.addCleanup(runner.close)
        with runner.signals_wake_loop:
            runner.run(asyncio.sleep(0))
            runner.close()
            self.assertEqual(_current_wakeup_fd(), -1, "close left the fd on its socket")
        self.assertEqual(_current_wakeup_fd(), -1)


@skip_unless_backend("sqlite")
class TestSQLiteConnectionHandedOn(unittest.TestCase):
    """The next class gets the pooled SQLite connection unless a test changed it in a way
    a rollback does not undo; then it gets a new one, with SQLite's defaults."""

    def setUp(self):
        if _aiosqlite():
            self.skipTest("aiosqlite's engines are the class's own: nothing is handed on")

    def _next_class_sees(self, change):
        """Run ``change(self)`` in one class, then return (the first class's driver
        connection, the next class's, what ``PRAGMA cache_size`` and a ``tf_double``
        call give there)."""
        seen = {}

        class Changes(SSotAsyncTestCase):
            async def test_changes(self):
                await self.db.count_records("users")
                seen["first"] = await _driver_connection(self)
                await change(self)

        class Next(SSotAsyncTestCase):
            async def test_reads(self):
                seen["next"] = await _driver_connection(self)
                seen["cache_size"] = (await self.db.fetch_one("PRAGMA cache_size"))[0]
                try:
                    seen["tf_double"] = (await self.db.fetch_one("SELECT tf_double(2)"))[0]
                except Exception as exc:  # noqa: BLE001 - what the next class sees is the point
                    seen["tf_double"] = type(exc).__name__

        for case in (Changes, Next):
            result = run_case(case)
            self.assertTrue(result.wasSuccessful(), problems(result))
        return seen

    def test_an_unchanged_connection_is_handed_on(self):
        """Reads, writes and pragmas that only report keep the connection poolable."""
        async def reads_and_writes(case):
            await case.db.create_test_user({"email": "kept@x.test"})
            await case.db.table_exists("users")  # PRAGMA main.table_info("users")
            await case.db.fetch_one("PRAGMA foreign_keys")
            await case.db.fetch_all("  /* a comment */ pragma main.index_list('users')")

        seen = self._next_class_sees(reads_and_writes)
        self.assertIs(seen["next"], seen["first"])
        self.assertEqual(seen["tf_double"], "OperationalError")

    def test_a_changed_connection_is_closed_and_the_next_class_starts_fresh(self):
        async def pragma(case):
            await case.db.execute_query("PRAGMA cache_size = 1234")

        async def pragma_in_parentheses(case):
            await case.db.execute_query("-- tune\nPRAGMA main.cache_size(1234)")

        async def function(case):
            raw = await (await case.session.connection()).get_raw_connection()
            await raw.driver_connection.create_function("tf_double", 1, lambda n: 2 * n)

        async def function_on_the_dbapi_connection(case):
            raw = await (await case.session.connection()).get_raw_connection()
            raw.dbapi_connection.create_function("tf_double", 1, lambda n: 2 * n)

        async def pragma_on_the_dbapi_connection(case):
            raw = await (await case.session.connection()).get_raw_connection()
            raw.dbapi_connection.execute("PRAGMA cache_size = 1234")

        async def row_factory(case):
            raw = await (await case.session.connection()).get_raw_connection()
            raw.dbapi_connection.row_factory = None  # set at all, even to the default

        async def script(case):
            """On a connection of its own: ``executescript`` commits first, which would end
            the class's transaction (a connection that is closed anyway)."""
            async with case.engine.connect() as connection:
                raw = await connection.get_raw_connection()
                await raw.driver_connection.executescript("SELECT 1; PRAGMA cache_size = 1234;")

        async def own_connection(case):
            """A connection the test takes from the engine itself, changed and returned."""
            async with case.engine.connect() as connection:
                await connection.exec_driver_sql("PRAGMA cache_size = 1234")

        for change in (pragma, pragma_in_parentheses, function,
                       function_on_the_dbapi_connection, pragma_on_the_dbapi_connection,
                       row_factory, script, own_connection):
            with self.subTest(change.__name__):
                seen = self._next_class_sees(change)
                self.assertNotEqual(seen["cache_size"], 1234)
                self.assertEqual(seen["tf_double"], "OperationalError")
                if change not in (own_connection, script):
                    self.assertIsNot(seen["next"], seen["first"])

    def test_which_statements_count_as_changing_the_connection(self):
        from test_framework.backends.sqlite_inline import changes_session
        changing = ["PRAGMA cache_size = 10", "pragma  Main . cache_size(10)",
                    "  -- x\n/* y */ PRAGMA recursive_triggers=ON",
                    "ATTACH DATABASE 'x.db' AS x", "detach x",
                    "PRAGMA foreign_keys=OFF", "PRAGMA journal_mode = WAL"]
        reporting = ["PRAGMA cache_size", "PRAGMA main.table_info(\"users\")",
                     "PRAGMA foreign_key_check(users)", "PRAGMA integrity_check",
                     "SELECT 'PRAGMA cache_size = 1'", "INSERT INTO pragmas VALUES (1)",
                     "WITH attach AS (SELECT 1) SELECT * FROM attach"]
        for sql in changing:
            self.assertTrue(changes_session(sql), sql)
        for sql in reporting:
            self.assertFalse(changes_session(sql), sql)

    def test_a_statement_made_of_comments_is_read_in_linear_time(self):
        """Every statement passes this check: one of many comments must not make it
        backtrack exponentially (a subprocess, so a regression fails, not hangs)."""
        check = ("from test_framework.backends.sqlite_inline import changes_session as c\n"
                 "assert not c('/* */ ' * 20000 + 'x')\n"
                 "assert not c('-- a\\n' * 20000 + 'x')\n"
                 "assert not c(' ' * 20000 + 'SELECT 1')\n"
                 "assert c('/* a */ /* b */ ' * 1000 + 'PRAGMA cache_size = 1')\n")
        run = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(run.returncode, 0, run.stderr)


async def _driver_connection(case):
    raw = await (await case.session.connection()).get_raw_connection()
    return raw.driver_connection


def _aiosqlite() -> bool:
    return backend_name() == "sqlite" and \
        os.environ.get("TEST_FRAMEWORK_SQLITE_DRIVER", "inline") == "aiosqlite"


def _current_wakeup_fd() -> int:
    """The process's signal wakeup fd, read by setting it and setting it back."""
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    return fd


EXIT_SUITE = '''
import asyncio

from test_framework import SSotAsyncTestCase, SSotBaseTestCase


class First(SSotAsyncTestCase):
    async def test_write(self):
        await self.db.create_test_user({"email": "first@x.test"})


class Second(SSotBaseTestCase):
    def test_write(self):
        self.run_async(self.db.create_test_user({"email": "second@x.test"}))


class Commits(SSotAsyncTestCase):
    isolation = "commit"

    async def test_write(self):
        await self.db.create_test_user({"email": "third@x.test"})
        asyncio.get_running_loop().create_task(asyncio.sleep(0))
'''


class TestProcessEnd(unittest.TestCase):
    def test_the_shared_loop_and_engines_close_cleanly_at_exit(self):
        """Under -X dev every unclosed loop, socket, connection or task is reported; the
        run's database is dropped with the shared engine's connection closed first."""
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        Path(folder.name, "test_exit_suite.py").write_text(EXIT_SUITE)
        env = dict(os.environ, PYTHONPATH=str(ROOT), TEST_FRAMEWORK_LOG_LEVEL="INFO")
        run = subprocess.run([sys.executable, "-X", "dev", "-m", "unittest", "test_exit_suite"],
                             cwd=folder.name, env=env, capture_output=True, text=True,
                             timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("Ran 3 tests", run.stderr)
        for sign in ("ResourceWarning", "unclosed", "Task was destroyed", "Exception ignored",
                     "Traceback", "could not"):
            self.assertNotIn(sign, run.stderr)
        if backend_name() == "postgresql":
            self.assertIn("dropped test database", run.stderr)


@skip_unless_backend("postgresql")
class TestCommitModeHandOver(unittest.TestCase):
    """Commit-mode classes share an engine too; what their tests committed on its pooled
    connections is cleared before the next class checks one out."""

    def test_the_next_class_gets_the_connection_reset_with_its_connect_time_settings(self):
        seen, urls = {}, []

        class Leaves(SSotAsyncTestCase):
            isolation = "commit"

            async def test_leaves_state(self):
                urls.append(make_url(str(self.test_database_url)))
                seen["engine"] = self.engine
                seen["pid"] = await self.state("SELECT pg_backend_pid()")
                seen["timeout at connect"] = await self.state("SHOW statement_timeout")
                for statement in ("SET application_name = 'leaked'",
                                  "SET statement_timeout = '1234s'",
                                  "CREATE TEMP TABLE scratch (n int)",
                                  "SELECT pg_advisory_lock(434343)"):
                    await self.session.execute(text(statement))
                await self.session.commit()
                seen["timeout left"] = await self.state("SHOW statement_timeout")

            async def state(self, query):
                value = (await self.session.execute(text(query))).scalar_one()
                await self.session.commit()
                return value

        class Next(SSotAsyncTestCase):
            isolation = "commit"

            async def test_reads(self):
                seen["same engine"] = self.engine is seen["engine"]
                seen["next pid"] = await Leaves.state(self, "SELECT pg_backend_pid()")
                seen["name"] = await Leaves.state(
                    self, "SELECT current_setting('application_name')")
                seen["timeout"] = await Leaves.state(self, "SHOW statement_timeout")
                seen["scratch"] = await Leaves.state(
                    self, "SELECT to_regclass('pg_temp.scratch') IS NOT NULL")

        first = run_case(Leaves)
        self.assertTrue(first.wasSuccessful(), problems(first))
        self.assertTrue(asyncio.run(_try_advisory_lock(urls[0], 434343)),
                        "the class's advisory lock was released as it ended")
        result = run_case(Next)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertTrue(seen["same engine"])
        self.assertEqual(seen["next pid"], seen["pid"], "the same connection, handed on")
        self.assertEqual(seen["timeout left"], "1234s")
        self.assertNotEqual(seen["name"], "leaked")
        self.assertEqual(seen["timeout"], seen["timeout at connect"],
                         "back to the connect-time statement_timeout, not the server's")
        self.assertNotEqual(seen["timeout"], "0")
        self.assertFalse(seen["scratch"], "the temporary table is gone")


async def _try_advisory_lock(url, key: int) -> bool:
    """Can another connection take advisory lock ``key`` (and let it go again)?"""
    async with separate_connection(url) as other:
        taken = (await other.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                     {"k": key})).scalar_one()
        if taken:
            await other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return taken


async def _terminate(url, pid: int) -> None:
    """End the server process of connection ``pid`` from another connection; wait for it."""
    async with separate_connection(url) as other:
        await other.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})


def _ctrl_c_on_this_thread_soon() -> None:
    """Deliver SIGINT to this (non-main) thread once the main thread's loop is asleep."""
    time.sleep(0.2)
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)
