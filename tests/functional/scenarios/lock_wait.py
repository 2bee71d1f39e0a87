"""Two sessions of one commit-mode test: the second waits for a row the first locked."""

from sqlalchemy import text

from test_framework import SSotAsyncTestCase


class LockWait(SSotAsyncTestCase):
    isolation = "commit"

    async def test_waits_for_locked_row(self):
        user = await self.db.create_test_user({"email": "locked@x.test"})
        async with self.session_factory() as holder, self.session_factory() as waiter:
            await holder.execute(text("SELECT id FROM users WHERE id = :id FOR UPDATE"),
                                 {"id": user.id})
            await waiter.execute(text("UPDATE users SET full_name = 'x' WHERE id = :id"),
                                 {"id": user.id})

    async def test_next_test_unaffected(self):
        self.assertEqual(await self.db.count_records("users"), 0)
