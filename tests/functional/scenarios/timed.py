"""Three tests of known speed, run with TEST_FRAMEWORK_TIMING to read the report at exit."""

import asyncio

from test_framework import SSotAsyncTestCase


class Timed(SSotAsyncTestCase):
    async def test_fast(self):
        await self.db.count_records("users")

    async def test_slow_body(self):
        await asyncio.sleep(0.3)

    async def test_writes(self):
        await self.db.create_test_user()
