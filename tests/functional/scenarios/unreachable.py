"""Two classes on a server nobody listens on: the run should stop after the first error."""

from test_framework import SSotAsyncTestCase


class FirstUnreachable(SSotAsyncTestCase):
    database_url = "postgresql+asyncpg://postgres@127.0.0.1:1/app"

    async def test_a(self):
        pass

    async def test_b(self):
        pass


class SecondUnreachable(FirstUnreachable):
    pass
