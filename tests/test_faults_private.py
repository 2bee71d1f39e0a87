"""Faults done to a PostgreSQL server of the tests' own: restarts, kills, a network gone dark.

Restarting or killing the shared server would break every suite using it, so
these tests start a private one (``tests/private_postgres.py``) once for the
module, and put a ``TcpProxy`` in front of it to make the network go dark.
They run in the PostgreSQL pass. Without the server binaries they skip, or
fail when ``CI=true``. Every fault has its own bound on time.

The dark-network tests run ``tests/functional/scenarios/dark_network.py`` in
a subprocess (a statement timeout is per process, and Ctrl-C needs a process
to interrupt) and talk to it through its stdin and stdout: it asks for the
dark network at the point under test, and the parent answers once it is dark.
"""

from __future__ import annotations

import asyncio
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import warnings
from pathlib import Path

from sqlalchemy import text

from test_framework import SSotAsyncTestCase
from tests.functional.example_runs import ROOT, child_environment
from tests.private_postgres import PrivatePostgres, require_private_server
from tests.support import (backend_name, count_rows_sync, problems, run_case, separate_connection,
                           timeout)
from tests.tcp_proxy import TcpProxy

SCENARIO = "tests.functional.scenarios.dark_network"
# A short statement_timeout for the dark network (long enough for the scenario's own
# CREATE DATABASE on a busy machine), and how long past it the test may take to fail and
# be cleaned up (measured: 4 s). Ctrl-C must end the process within CTRL_C_BOUND
# (measured: 5.3 s, of which 3 s are the connect timeout of the database drop).
DARK_STATEMENT_TIMEOUT = 3
DARK_MARGIN = 8.0
CTRL_C_BOUND = 20.0  # ~5 s when idle; the hang it guards against lasted minutes
STEP_TIMEOUT = 60.0  # seconds the parent waits for any one step of a scenario (a hang)
SERVER: PrivatePostgres | None = None
_module_setups = 0


def setUpModule():
    """Start the module's server, once.

    ``run_case`` runs this module's inner test classes as a suite of their
    own, and unittest calls their module's fixtures again (and runs every
    module cleanup, which is why there is none here): a count keeps the
    server up until the outer run's ``tearDownModule``.
    """
    global SERVER, _module_setups
    if SERVER is None:
        require_private_server()  # skip, or fail when CI=true, without the server binaries
        if backend_name() != "postgresql":
            raise unittest.SkipTest("the faults on a private PostgreSQL server run in the "
                                    f"PostgreSQL pass (this pass runs on {backend_name()})")
        SERVER = PrivatePostgres.start_new()
    _module_setups += 1


def tearDownModule():
    global SERVER, _module_setups
    _module_setups -= 1
    if _module_setups == 0 and SERVER is not None:
        SERVER, server = None, SERVER
        server.remove()


def names_of(tests) -> list[str]:
    return [test.id().rsplit(".", 1)[-1] for test, _ in tests]


async def backend_pid(case: SSotAsyncTestCase) -> int:
    return (await case.db.fetch_one("SELECT pg_backend_pid() AS pid")).pid


class TestServerRestartedBetweenTests(unittest.TestCase):
    """``pg_ctl restart -m fast`` after the first of three tests: all three pass."""

    def test_rollback_mode_replaces_the_class_connection(self):
        self.check_restart_between_tests("rollback")

    def test_commit_mode_replaces_pooled_connections(self):
        self.check_restart_between_tests("commit")

    def check_restart_between_tests(self, mode: str) -> None:
        seen = {}

        def restart():
            seen["postmaster before"] = SERVER.postmaster_pid()
            SERVER.restart()
            seen["postmaster after"] = SERVER.postmaster_pid()

        class Restarted(SSotAsyncTestCase):
            database_url = SERVER.url
            isolation = mode

            def setUp(self):
                # Between the tests, after the last loop pass of the first (its cleanups
                # run the loop), so nothing has read the server's goodbye yet.
                if self._testMethodName == "test_2_after_the_restart":
                    restart()
                super().setUp()

            @timeout(30)
            async def test_1_before_the_restart(self):
                seen["backend before"] = await backend_pid(self)
                await self.db.create_test_user({"email": "before@x.test"})

            @timeout(30)
            async def test_2_after_the_restart(self):
                seen["backend after"] = await backend_pid(self)
                self.assertEqual(await self.db.count_records("users"), 0)
                await self.db.create_test_user({"email": "after@x.test"})

            @timeout(30)
            async def test_3_next(self):
                self.assertEqual(await self.db.count_records("users"), 0)

        result = run_case(Restarted)
        self.assertEqual(result.testsRun, 3)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertNotEqual(seen["postmaster before"], seen["postmaster after"],
                            "the server really restarted")
        self.assertNotEqual(seen["backend before"], seen["backend after"])


class TestServerRestartedBetweenClasses(unittest.TestCase):
    """Commit-mode classes share an engine: a restart before the class's hand-over or
    after it, and the next class still gets a working connection of its own."""

    def test_restart_before_the_hand_over_and_after_it(self):
        seen = {"pids": []}

        class Commits(SSotAsyncTestCase):
            database_url = SERVER.url
            isolation = "commit"

            @timeout(30)
            async def test_work(self):
                seen["url"] = self.engine.url
                seen["pids"].append(await backend_pid(self))
                await self.db.create_test_user({"email": "class@x.test"})
                if type(self).__name__ == "Commits":  # after the test, before the hand-over
                    type(self).addClassCleanup(SERVER.restart)  # (class cleanups: LIFO)

        class Next(Commits):
            pass

        class Last(Commits):
            pass

        for case, before in ((Commits, None), (Next, SERVER.restart), (Last, None)):
            if before is not None:
                before()  # after the hand-over: the idle connection it reset dies too
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)  # an abandoned pool is said
                result = run_case(case)
            self.assertTrue(result.wasSuccessful(), f"{case.__name__}: {problems(result)}")
        first, after_restarts, handed_on = seen["pids"]
        self.assertNotEqual(after_restarts, first, "a new connection after the restarts")
        self.assertEqual(handed_on, after_restarts, "then handed on to the next class")
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)


class TestServerKilled(unittest.TestCase):
    """SIGKILL to the postmaster, as the OOM killer does: clear errors, never a hang."""

    def test_killed_mid_statement_errors_that_test_and_the_next_passes(self):
        class Killed(SSotAsyncTestCase):
            database_url = SERVER.url

            @timeout(60)
            async def test_1_killed(self):
                statement = asyncio.ensure_future(self.db.fetch_one("SELECT pg_sleep(30)"))
                await wait_until_active(self.engine.url, "SELECT pg_sleep(30)")
                SERVER.kill()
                SERVER.start()
                await statement

            @timeout(30)
            async def test_2_next(self):
                self.assertEqual(await self.db.count_records("users"), 0)

        started = time.monotonic()
        result = run_case(Killed)
        elapsed = time.monotonic() - started
        self.assertEqual(result.testsRun, 2)
        self.assertEqual(names_of(result.errors), ["test_1_killed"], problems(result))
        self.assertEqual(result.failures, [])
        self.assertIn("the database connection was lost", problems(result))
        self.assertLess(elapsed, 30)

    def test_server_left_down_fails_the_next_tests_at_once_naming_the_url(self):
        class LeftDown(SSotAsyncTestCase):
            database_url = SERVER.url

            async def test_1_then_the_server_dies(self):
                await self.db.count_records("users")
                self.add_cleanup(SERVER.kill)

            @timeout(30)
            async def test_2_no_server(self):
                await self.db.count_records("users")

            @timeout(30)
            async def test_3_no_server(self):
                await self.db.count_records("users")

        self.addCleanup(SERVER.start)
        started = time.monotonic()
        result = run_case(LeftDown)
        elapsed = time.monotonic() - started
        errors = names_of(result.errors)
        self.assertEqual(errors[0], "test_2_no_server", problems(result))
        self.assertEqual(result.failures, [])
        for _, trace in result.errors:  # the run may stop there: the rest would fail alike
            self.assertIn(f"cannot connect to the test database postgresql+asyncpg://postgres@"
                          f"127.0.0.1:{SERVER.port}/test_", trace)
            self.assertIn("check that PostgreSQL is running", trace)
        self.assertLess(elapsed, 30)


async def wait_until_active(url, query: str) -> None:
    """Return once another session runs ``query`` (the caller's bound ends a wait in vain)."""
    async with separate_connection(url) as observer:
        while not (await observer.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = :q"),
                {"q": query})).scalar_one():
            await asyncio.sleep(0.02)


class TestNetworkGoesDark(unittest.TestCase):
    """A network that drops every packet: the server's own timeouts can never fire."""

    def setUp(self):
        self.proxy = TcpProxy("127.0.0.1", SERVER.port).start()
        self.addCleanup(self.proxy.close)

    def test_statement_fails_a_little_after_the_statement_timeout(self):
        run = self.run_dark("statement", statement_timeout=DARK_STATEMENT_TIMEOUT)
        self.assertLess(run.seconds_dark, DARK_STATEMENT_TIMEOUT + DARK_MARGIN, run.describe())
        self.assertIn("Ran 2 tests", run.stderr, run.describe())
        self.assertIn("FAILED (errors=1)", run.stderr, run.describe())
        self.assertIn("ERROR: test_1_meets_dark_network", run.stderr)
        self.assertIn(f"did not answer within statement_timeout ({DARK_STATEMENT_TIMEOUT}s) "
                      "plus a margin", run.stderr)

    def test_teardown_fails_within_its_bound_and_the_next_test_passes(self):
        for mode, reported in (
                ("rollback", "abandoned the class's database connection (the test's rollback "
                             "got no answer"),
                ("commit", f"did not answer within statement_timeout "
                           f"({DARK_STATEMENT_TIMEOUT}s) plus a margin")):
            with self.subTest(isolation=mode):
                run = self.run_dark("teardown", statement_timeout=DARK_STATEMENT_TIMEOUT,
                                    isolation=mode)
                self.assertLess(run.seconds_dark, DARK_STATEMENT_TIMEOUT + DARK_MARGIN,
                                run.describe())
                self.assertIn("Ran 2 tests", run.stderr, run.describe())
                self.assertIn("FAILED (errors=1)", run.stderr, run.describe())
                self.assertIn("ERROR: test_1_meets_dark_network", run.stderr)
                self.assertIn(reported, run.stderr, run.describe())

    def test_ctrl_c_during_a_hung_statement_ends_the_run_within_seconds(self):
        run = self.run_dark("statement", statement_timeout=60, interrupt=True)
        self.assertLess(run.seconds_to_exit, CTRL_C_BOUND, run.describe())
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("KeyboardInterrupt", run.stderr)
        self.assertIn("abandoned the class's database connection (after Ctrl-C, the "
                      "interrupted test was still waiting for the database", run.stderr,
                      run.describe())

    def test_ctrl_c_during_a_hung_teardown_or_class_cleanup_ends_within_seconds(self):
        for dark_at, abandoned in (
                ("teardown", "the class's database connection (after Ctrl-C"),
                # The class's transaction is still open then: its ROLLBACK is what hangs.
                ("class_cleanup", "the class's database connection "
                                  "(Ctrl-C during the class cleanup)")):
            with self.subTest(dark_at=dark_at):
                run = self.run_dark(dark_at, statement_timeout=60, interrupt=True)
                self.assertLess(run.seconds_to_exit, CTRL_C_BOUND, run.describe())
                self.assertNotEqual(run.returncode, 0)
                self.assertIn(f"abandoned {abandoned}", run.stderr, run.describe())

    def run_dark(self, dark_at: str, *, statement_timeout: float, isolation: str = "rollback",
                 interrupt: bool = False) -> "DarkRun":
        """Run the scenario; darken the network when it asks; then Ctrl-C it, or light it."""
        self.proxy.go_light()
        scenario = Scenario(self, {
            "TEST_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{self.proxy.port}/app",
            "TEST_FRAMEWORK_STATEMENT_TIMEOUT": str(statement_timeout),
            "DARK_AT": dark_at, "SCENARIO_ISOLATION": isolation})
        scenario.expect("DARK?")
        self.proxy.go_dark()
        scenario.answer()
        darkened = time.monotonic()
        run = DarkRun()
        if interrupt:
            self.assertTrue(self.proxy.wait_for_held_bytes(STEP_TIMEOUT), "nothing was sent")
            # A Ctrl-C landing while asyncpg is still sending is lost (its protocol code
            # ends in ``finally: return await waiter``); press it once the process waits
            # for the answer, as a person would, seconds later.
            wait_until_waiting_for_events(scenario.process.pid)
            pressed = time.monotonic()
            scenario.process.send_signal(signal.SIGINT)
            run.returncode, run.stderr = scenario.finish()
            run.seconds_to_exit = time.monotonic() - pressed
        else:
            scenario.expect("LIGHT?")
            run.seconds_dark = time.monotonic() - darkened
            self.proxy.go_light()
            scenario.answer()
            run.returncode, run.stderr = scenario.finish()
        return run


class DarkRun:
    """What one scenario run did, and how long its fault took to end."""

    returncode: int | None = None
    stderr: str = ""
    seconds_dark: float = float("inf")  # network dark until the test had failed and cleaned up
    seconds_to_exit: float = float("inf")  # Ctrl-C until the process had ended

    def describe(self) -> str:
        return (f"\nexit {self.returncode}, dark for {self.seconds_dark:.1f}s, exited "
                f"{self.seconds_to_exit:.1f}s after Ctrl-C\n--- stderr ---\n{self.stderr[-4000:]}")


class Scenario:
    """The dark-network scenario in a subprocess; every wait on it is bounded."""

    def __init__(self, case: unittest.TestCase, env_updates: dict[str, str]) -> None:
        folder = tempfile.TemporaryDirectory(prefix="dark_network_")
        case.addCleanup(folder.cleanup)
        self.stderr_file = tempfile.TemporaryFile(mode="w+", dir=folder.name)
        case.addCleanup(self.stderr_file.close)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "unittest", "-v", SCENARIO], cwd=ROOT,
            env=child_environment(folder.name, env_updates, ()), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.stderr_file, text=True)
        case.addCleanup(self.kill)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read_stdout, daemon=True)
        self.reader.start()

    def expect(self, wanted: str) -> None:
        """Wait for the line ``wanted``; fail with the child's output if it never comes."""
        deadline = time.monotonic() + STEP_TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            if line.strip() == wanted:
                return
        raise AssertionError(f"the scenario never printed {wanted!r}:\n{self._stderr()}")

    def answer(self) -> None:
        self.process.stdin.write("\n")
        self.process.stdin.flush()

    def finish(self) -> tuple[int, str]:
        """Close its stdin and wait for the exit; return the exit status and stderr."""
        self.process.stdin.close()
        self.process.wait(timeout=STEP_TIMEOUT)
        return self.process.returncode, self._stderr()

    def kill(self) -> None:
        """End the process if it still runs, and close its pipes."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.reader.join(STEP_TIMEOUT)
        for pipe in (self.process.stdin, self.process.stdout):
            pipe.close()

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _stderr(self) -> str:
        self.stderr_file.seek(0)
        return self.stderr_file.read()


def wait_until_waiting_for_events(pid: int) -> None:
    """Return once ``pid``'s main thread sleeps in epoll/poll/select: its loop is waiting.

    Linux only, like the private server; where ``wchan`` says nothing, a
    sleeping main thread is taken as the sign.
    """
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            wchan = Path(f"/proc/{pid}/wchan").read_text().strip()
        except (OSError, IndexError):
            return
        if state == "S" and ("poll" in wchan or "select" in wchan or wchan in ("", "0")):
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never waited in its event loop")


if __name__ == "__main__":
    unittest.main()
