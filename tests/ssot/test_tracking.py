"""Tracked rows are deleted children-first, and only if the test really made them."""

import asyncio
import unittest

from sqlalchemy import Column, Integer, MetaData, String, Table, text

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


MEMBERSHIPS = MetaData()
Table("memberships", MEMBERSHIPS, Column("team", String(20), primary_key=True),
      Column("member", Integer, primary_key=True))


class TestCompositeKeys(unittest.TestCase):
    def test_rows_with_a_two_column_key_are_deleted_and_no_other(self):
        """Each tracked row by its whole key: a row sharing one part of it stays."""
        seen = {}

        class Memberships(SSotAsyncTestCase):
            isolation = "commit"
            metadata = MEMBERSHIPS
            leftover_rows = "ignore"

            async def test_members(self):
                seen["url"] = self.engine.url
                for team, member in (("red", 1), ("red", 2), ("blue", 1)):
                    await self.db.create("memberships", {"team": team, "member": member})
                async with separate_connection(self.engine.url) as other:  # not the test's
                    await other.execute(text(
                        "INSERT INTO memberships (team, member) VALUES ('blue', 2)"))

        result = run_case(Memberships)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(count_rows_sync(seen["url"], "memberships"), 1)
        self.assertEqual(count_rows_sync(seen["url"], "memberships",
                                         "team = 'blue' AND member = 2"), 1)
        asyncio.run(_delete_memberships(seen["url"]))


async def _delete_memberships(url) -> None:
    async with separate_connection(url) as connection:
        await connection.execute(text("DELETE FROM memberships"))


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
