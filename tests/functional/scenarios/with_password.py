"""A suite whose database URL carries a password; run at DEBUG to scan every output line."""

from test_framework import SSotAsyncTestCase


class UsesPassword(SSotAsyncTestCase):
    async def test_context_and_work(self):
        self.logger.info("engine: %r", self.engine)  # the first use sets the database up
        self.logger.info("context: %s", self.get_test_context())
        await self.db.create_test_user({"email": "pw@x.test"})
        self.assertEqual(await self.db.count_records("users"), 1)
        # A parameter that holds a URL with a password is logged masked at DEBUG.
        await self.db.fetch_one("SELECT :u AS u", {"u": "postgresql://app:param-s3cr3t@db/app"})


class BadPasswordServer(SSotAsyncTestCase):
    database_url = "postgresql+asyncpg://postgres:hunter2-unreachable@127.0.0.1:1/app"

    async def test_unreachable(self):
        await self.db.count_records("users")
