"""PostgreSQL savepoints named by depth: the same SQL text every test, the same semantics."""

from sqlalchemy import event, text

from test_framework import SSotAsyncTestCase
from tests.support import skip_unless_backend

SEEN: list[list[str]] = []


@skip_unless_backend("postgresql")
class TestDepthNamedSavepoints(SSotAsyncTestCase):
    def record(self, conn, cursor, statement, *args):
        if "SAVEPOINT" in statement:
            self.statements.append(statement)

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.statements = []
        event.listen(self.engine.sync_engine, "before_cursor_execute", self.record)
        self.addCleanup(event.remove, self.engine.sync_engine, "before_cursor_execute",
                        self.record)

    async def nested_work(self):
        outer = await self.db.begin_transaction()
        await self.db.create_test_user({"email": "outer@x.test"})
        inner = await self.db.begin_transaction()
        await self.db.create_test_user({"email": "inner@x.test"})
        await self.db.rollback_transaction(inner)
        again = await self.db.begin_transaction()
        await self.db.create_test_user({"email": "again@x.test"})
        await self.db.commit_transaction(again)
        await self.db.commit_transaction(outer)
        emails = [row.email for row in await self.db.fetch_all("SELECT email FROM users ORDER BY email")]
        SEEN.append(self.statements)
        return emails

    async def test_1_semantics(self):
        self.assertEqual(await self.nested_work(), ["again@x.test", "outer@x.test"])
        self.assertTrue(all("tf_sp_" in s for s in self.statements), self.statements)

    async def test_2_same_text_in_the_next_test(self):
        self.assertEqual(await self.nested_work(), ["again@x.test", "outer@x.test"])
        self.assertEqual(SEEN[0], SEEN[1])

    async def test_3_app_sessions_nest_too(self):
        async with self.session_factory() as app:
            await app.execute(text("INSERT INTO users (email, is_active) VALUES ('a@x.test', true)"))
            async with app.begin_nested():
                await app.execute(text("INSERT INTO users (email, is_active) VALUES ('b@x.test', true)"))
            await app.commit()
        self.assertEqual(await self.db.count_records("users"), 2)
