"""Concurrent tasks: a clear error on the shared rollback connection, fine in commit mode."""

import asyncio

from sqlalchemy import text

from test_framework import SSotAsyncTestCase
from test_framework.ssot.sessions import ConcurrentSessionsError
from tests.support import timeout


async def two_writers(session_factory):
    async def write(name):
        async with session_factory() as session:
            for n in range(3):
                await session.execute(text("INSERT INTO users (email, is_active) VALUES (:e, true)"),
                                      {"e": f"{name}-{n}@x.test"})
                await asyncio.sleep(0)
            await session.commit()
    await asyncio.gather(write("a"), write("b"))


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
