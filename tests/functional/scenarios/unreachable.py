"""Two classes on a server nobody listens on: the run should stop after the first error.

Each test uses the database; a test that never does needs no server.
"""

from test_framework import SSotAsyncTestCase


class FirstUnreachable(SSotAsyncTestCase):
    database_url = "postgresql+asyncpg://postgres@127.0.0.1:1/app"

    async def test_a(self):
        await self.db.count_records("users")

    async def test_b(self):
        await self.db.count_records("users")


class SecondUnreachable(FirstUnreachable):
    pass
