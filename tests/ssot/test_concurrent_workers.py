"""Concurrent sessions of one commit-mode test: workers that read, then write.

Application code often claims work this way: read an unclaimed row, update
it (guarded, so a lost race changes nothing), commit. On SQLite such a
transaction failed at once with ``database is locked`` while another session
wrote; now writers take turns, each waiting at most ``lock_timeout``
(``backends/sqlite_begin.py``, ``begin_before_write``). Both backends run these.
"""

import asyncio
import time
import unittest

from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text, update

from test_framework import SSotAsyncTestCase
from test_framework.backends import backend_for
from test_framework.config import Setting, Timeouts
from test_framework.engines import create_engine
from tests.support import (count_rows, count_rows_sync, problems, run_case, skip_unless_backend,
                           timeout)

task_schema = MetaData()
tasks = Table("tasks", task_schema,
              Column("id", Integer, primary_key=True),
              Column("title", String(40), nullable=False),
              Column("claimed_by", Integer, nullable=True))

TASKS = 12
WORKERS = 4
BOUND = 5.0  # seconds for all claims; one busy wait to lock_timeout (10 s) would exceed it
CLAIMED = select(func.count()).select_from(tasks).where(tasks.c.claimed_by.is_not(None))


async def claim_until_done(session_factory, worker: int) -> list[int]:
    """Claim tasks one at a time in the worker's own session; return the ids it won."""
    won = []
    async with session_factory() as session:
        while True:
            found = (await session.execute(
                select(tasks.c.id).where(tasks.c.claimed_by.is_(None))
                .order_by(tasks.c.id).limit(1))).first()
            if found is None:
                await session.commit()
                return won
            await asyncio.sleep(0.005)  # work between the read and the write: workers overlap
            claimed = await session.execute(
                update(tasks).where(tasks.c.id == found.id, tasks.c.claimed_by.is_(None))
                .values(claimed_by=worker))
            if claimed.rowcount == 1:
                won.append(found.id)
            await session.commit()


class TestWorkersClaimTasks(unittest.TestCase):
    def test_four_workers_claim_twelve_tasks_once_each(self):
        seen = {}

        class Workers(SSotAsyncTestCase):
            n_plus_one = "ignore"  # the workers poll with the same SELECT on purpose
            isolation = "commit"
            metadata = task_schema

            @timeout(30)
            async def test_claim(self):
                seen["url"] = self.engine.url
                for number in range(TASKS):
                    await self.db.create("tasks", {"title": f"task {number}"})
                started = time.monotonic()
                seen["won"] = await asyncio.gather(*(
                    claim_until_done(self.session_factory, worker)
                    for worker in range(1, WORKERS + 1)))
                seen["seconds"] = time.monotonic() - started
                seen["claimed"] = await count_rows(self.engine.url, "tasks",
                                                   "claimed_by IS NOT NULL")

        result = run_case(Workers)
        self.assertTrue(result.wasSuccessful(), problems(result))
        every_claim = sorted(task for won in seen["won"] for task in won)
        self.assertEqual(len(every_claim), TASKS, seen["won"])
        self.assertEqual(len(set(every_claim)), TASKS, seen["won"])
        self.assertEqual(seen["claimed"], TASKS)
        self.assertLess(seen["seconds"], BOUND)
        self.assertEqual(count_rows_sync(seen["url"], "tasks"), 0)  # tracked rows deleted

    def test_session_that_only_read_does_not_block_a_writer(self):
        """A session left open after a read (the test's own, say) must not hold a lock."""
        seen = {}

        class ReaderLeftOpen(SSotAsyncTestCase):
            isolation = "commit"
            metadata = task_schema

            @timeout(BOUND)
            async def test_write_beside_open_reader(self):
                seen["url"] = self.engine.url
                await self.db.create("tasks", {"title": "one"})
                async with self.session_factory() as reader, self.session_factory() as writer:
                    seen["before"] = (await reader.execute(CLAIMED)).scalar_one()
                    await writer.execute(update(tasks).values(claimed_by=1))
                    await writer.commit()
                    seen["after"] = (await reader.execute(CLAIMED)).scalar_one()

        result = run_case(ReaderLeftOpen)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual((seen["before"], seen["after"]), (0, 1))  # READ COMMITTED on both
        self.assertEqual(count_rows_sync(seen["url"], "tasks"), 0)


@skip_unless_backend("sqlite")  # PostgreSQL's row-lock wait: tests/test_faults.py TestLockWait
class TestSqliteWriterWaits(unittest.TestCase):
    def test_open_write_transaction_makes_the_next_writer_wait_lock_timeout(self):
        seen = {}

        class HeldWriteLock(SSotAsyncTestCase):
            isolation = "commit"
            metadata = task_schema

            @timeout(BOUND)
            async def test_second_writer(self):
                url = self.engine.url
                backend = backend_for(Setting(url.render_as_string(hide_password=False), "test"),
                                      timeouts=Timeouts(lock=0.3))
                engine = create_engine(backend, url)
                try:
                    async with engine.connect() as holder, engine.connect() as waiter:
                        await holder.execute(text("INSERT INTO tasks (title) VALUES ('held')"))
                        started = time.monotonic()
                        with self.assertRaises(Exception) as caught:
                            await waiter.execute(text("UPDATE tasks SET claimed_by = 2"))
                        seen["waited"] = time.monotonic() - started
                        seen["error"] = caught.exception
                        await holder.rollback()
                finally:
                    await engine.dispose()
                seen["url"] = url

        result = run_case(HeldWriteLock)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertGreaterEqual(seen["waited"], 0.3)
        self.assertLess(seen["waited"], 3)
        self.assertIn("database is locked", str(seen["error"]))
        notes = "\n".join(getattr(seen["error"], "__notes__", []))
        self.assertIn("waited lock_timeout (0.3s) for SQLite's write lock, to run "
                      "'UPDATE tasks SET claimed_by = 2'", notes)
        self.assertEqual(count_rows_sync(seen["url"], "tasks"), 0)


if __name__ == "__main__":
    unittest.main()
