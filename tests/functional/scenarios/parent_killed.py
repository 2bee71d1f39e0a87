"""Two classes whose tests wait for a file that never appears, for the nose2 kill -9 test.

Run under ``nose2 -N 2`` each class goes to its own worker. A test first makes
a row (so its worker's database exists), then creates the file
``$PARENT_KILLED_MARKERS/<worker pid>`` and waits, at most a minute.
"""

import asyncio
import os
import time
from pathlib import Path

from test_framework import SSotAsyncTestCase

MARKERS = "PARENT_KILLED_MARKERS"
WAIT = 60


async def announce_and_wait(test: SSotAsyncTestCase) -> None:
    await test.db.create_test_user()
    folder = Path(os.environ[MARKERS])
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + WAIT
    while not (folder / "never").exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


class First(SSotAsyncTestCase):
    async def test_waits(self):
        await announce_and_wait(self)


class Second(SSotAsyncTestCase):
    async def test_waits(self):
        await announce_and_wait(self)
