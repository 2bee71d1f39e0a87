"""Tracked rows are deleted children-first, and only if the test really made them."""

import unittest

from sqlalchemy import text

from test_framework import SSotAsyncTestCase
from tests.support import (count_rows, count_rows_sync, problems, run_case,
                           separate_connection, timeout)


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


class TestManyTrackedRows(SSotAsyncTestCase):
    isolation = "commit"

    @timeout(300)
    async def test_cleanup_removes_100000_tracked_rows_in_batches(self):
        """One DELETE with every key would pass the drivers' 32,767-parameter cap."""
        first, count = 1_000_000, 100_000
        rows = ("SELECT g, 'u' || g || '@x.test', true FROM "
                "generate_series(CAST(:a AS integer), CAST(:b AS integer)) AS g"
                if self.engine.dialect.name == "postgresql" else
                "SELECT g, 'u' || g || '@x.test', 1 FROM (WITH RECURSIVE c(g) AS (SELECT :a "
                "UNION ALL SELECT g + 1 FROM c WHERE g < :b) SELECT g FROM c)")
        users = await self.db.table("users")
        await self.db.begin_transaction()
        await self.db.execute_query(f"INSERT INTO users (id, email, is_active) {rows}",
                                    {"a": first, "b": first + count - 1})
        for key in range(first, first + count):
            self.db._tracker.track(users, (key,))
        await self.db.commit_transaction()
        self.assertEqual(await count_rows(self.engine.url, "users"), count)
        await self.db.cleanup_test_data()
        self.assertEqual(await count_rows(self.engine.url, "users"), 0, "checked from outside")
