"""Concurrent tasks: a clear error on the shared rollback connection, fine in commit mode."""

import asyncio
import unittest
import warnings

from sqlalchemy import text

from test_framework import SSotAsyncTestCase
from test_framework.ssot.sessions import ConcurrentSessionsError
from tests.support import problems, run_case, timeout


async def two_writers(session_factory):
    async def write(name):
        async with session_factory() as session:
            for n in range(3):
                await session.execute(text("INSERT INTO users (email, is_active) VALUES (:e, true)"),
                                      {"e": f"{name}-{n}@x.test"})
                await asyncio.sleep(0)
            await session.commit()
    outcomes = await asyncio.gather(write("a"), write("b"), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


class TestRollbackModeTwoTasks(SSotAsyncTestCase):
    @timeout(20)
    async def test_overlap_is_explained(self):
        with self.assertRaisesRegex(ConcurrentSessionsError, "isolation = 'commit'"):
            await two_writers(self.session_factory)

    @timeout(20)
    async def test_sequential_tasks_are_fine(self):
        async def write(email):
            async with self.session_factory() as session:
                await session.execute(text("INSERT INTO users (email, is_active) VALUES (:e, true)"),
                                      {"e": email})
                await session.commit()
        await asyncio.create_task(write("one@x.test"))
        await asyncio.create_task(write("two@x.test"))
        self.assertEqual(await self.db.count_records("users"), 2)


class TestCommitModeTwoTasks(SSotAsyncTestCase):
    isolation = "commit"

    @timeout(30)
    async def test_concurrent_sessions_work(self):
        try:
            await two_writers(self.session_factory)
            self.assertEqual(await self.db.count_records("users"), 6)
        finally:
            await self.db.execute_query("DELETE FROM users")


class TestLeftoverTaskBeforeTeardown(unittest.TestCase):
    def test_task_still_using_the_connection_is_cancelled_before_rollback(self):
        class LeavesBusyTask(SSotAsyncTestCase):
            async def test_1_leaves(self):
                async def busy():
                    async with self.session_factory() as session:
                        while True:
                            await session.execute(text("SELECT 1"))
                asyncio.get_running_loop().create_task(busy())
                await asyncio.sleep(0.05)

            async def test_2_next(self):
                self.assertEqual(await self.db.count_records("users"), 0)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_case(LeavesBusyTask)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertTrue(any("test_1_leaves left 1 task(s) running" in str(w.message)
                            for w in caught))
