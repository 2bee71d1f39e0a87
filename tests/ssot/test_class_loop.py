"""One loop per class, built on CPython's private runner hooks: prove they still behave."""

import asyncio
import signal
import threading
import time
import unittest
import warnings

from test_framework import SSotAsyncTestCase, SSotBaseTestCase
from test_framework.ssot.class_loop import ClassRunner
from tests.support import problems, run_case


class TestClassLoop(unittest.TestCase):
    def test_private_hooks_exist_on_this_python(self):
        for name in ("_setupAsyncioRunner", "_tearDownAsyncioRunner"):
            self.assertTrue(callable(getattr(unittest.IsolatedAsyncioTestCase, name, None)), name)
        case = unittest.IsolatedAsyncioTestCase()
        self.assertIsNone(getattr(case, "_asyncioRunner", "missing"))

    def test_tests_of_a_class_share_a_loop_and_connection(self):
        loops, connections = [], []

        class Shared(SSotAsyncTestCase):
            async def test_a(self):
                loops.append(asyncio.get_running_loop())
                connections.append(await self._connection_id())

            async def test_b(self):
                loops.append(asyncio.get_running_loop())
                connections.append(await self._connection_id())

            async def _connection_id(self):
                connection = await self.session.connection()
                raw = await connection.get_raw_connection()
                return id(raw.driver_connection)

        class Other(Shared):
            pass

        result = run_case(Shared)
        run_case(Other, "test_a")
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertIs(loops[0], loops[1])
        self.assertEqual(connections[0], connections[1])
        self.assertIsNot(loops[2], loops[0])
        self.assertTrue(loops[0].is_closed(), "class loop closed after its last test")

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


def _ctrl_c_on_this_thread_soon() -> None:
    """Deliver SIGINT to this (non-main) thread once the main thread's loop is asleep."""
    time.sleep(0.2)
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)
