"""Tracked rows are deleted children-first, and only if the test really made them."""

import unittest

from sqlalchemy import text

from test_framework import SSotAsyncTestCase
from tests.support import count_rows, count_rows_sync, problems, run_case, separate_connection


class TestForeignKeyOrder(unittest.TestCase):
    def test_parent_created_after_child_still_deleted_last(self):
        """Reverse creation order would delete the user first and break the FK."""
        seen = {}

        class LinksLater(SSotAsyncTestCase):
            isolation = "commit"

            async def test_link(self):
                seen["url"] = self.engine.url
                thread = await self.db.create_test_thread({"id": "t-early"})
                user = await self.db.create_test_user({"email": "late@x.test"})
                await self.db.execute_query("UPDATE threads SET user_id = :u WHERE id = :t",
                                            {"u": user.id, "t": thread.id})

        result = run_case(LinksLater)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(count_rows_sync(seen["url"], "threads"), 0)
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)


class TestTransactionAwareTracking(SSotAsyncTestCase):
    isolation = "commit"

    async def test_reused_key_never_deletes_someone_elses_row(self):
        """A rolled-back row's id reused by another connection must survive cleanup."""
        await self.db.begin_transaction()
        mine = await self.db.create_test_user({"id": 777, "email": "mine@x.test"})
        await self.db.rollback_transaction()
        async with separate_connection(self.engine.url) as other:
            await other.execute(text("INSERT INTO users (id, email, is_active) "
                                     "VALUES (:id, 'theirs@x.test', true)"), {"id": mine.id})
        try:
            await self.db.cleanup()
            self.assertEqual(await count_rows(self.engine.url, "users", "id = 777"), 1)
        finally:
            async with separate_connection(self.engine.url) as other:
                await other.execute(text("DELETE FROM users WHERE id = 777"))

    async def test_savepoint_rollback_inside_committed_transaction(self):
        await self.db.begin_transaction()
        await self.db.create_test_user({"email": "outer@x.test"})
        await self.db.begin_transaction()
        await self.db.create_test_user({"email": "inner@x.test"})
        await self.db.rollback_transaction()
        await self.db.commit_transaction()
        self.assertEqual([row.table.name for row in self.db.tracked_rows], ["users"])
        await self.db.cleanup_test_data()
        self.assertEqual(await count_rows(self.engine.url, "users"), 0)

    async def test_cleanup_test_data_commits_deletes(self):
        await self.db.create_test_user({"email": "a@x.test"})
        self.assertEqual(await count_rows(self.engine.url, "users"), 1)
        await self.db.cleanup_test_data()
        self.assertEqual(await count_rows(self.engine.url, "users"), 0)
        self.assertEqual(self.db.tracked_rows, [])
