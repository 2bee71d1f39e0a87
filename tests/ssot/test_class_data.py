"""asyncSetUpTestData: rows made once per class, each test's changes undone, gone after."""

import unittest

from sqlalchemy import text

from test_framework import SSotAsyncTestCase
from tests.support import count_rows_sync, problems, run_case


class TestClassData(unittest.TestCase):
    def test_rows_shared_changes_undone_and_gone_after_the_class(self):
        seen = {"calls": 0}

        class SharedRows(SSotAsyncTestCase):
            @classmethod
            async def asyncSetUpTestData(cls, db):
                seen["calls"] += 1
                cls.alice = await db.create_test_user({"email": "alice@x.test", "full_name": "A"})
                await db.create_test_thread({"id": "shared", "user_id": cls.alice.id})

            async def test_1_changes_and_deletes(self):
                seen["url"] = self.engine.url
                await self.db.execute_query("UPDATE users SET full_name = 'changed'")
                await self.db.execute_query("DELETE FROM threads")
                await self.db.create_test_user({"email": "extra@x.test"})
                seen["first"] = await self.db.count_records("users")

            async def test_2_sees_the_original_rows(self):
                row = await self.db.fetch_one("SELECT full_name FROM users WHERE id = :id",
                                              {"id": self.alice.id})
                seen["second"] = (row.full_name, await self.db.count_records("users"),
                                  await self.db.count_records("threads"))

            async def test_3_app_commit_undone_too(self):
                async with self.session_factory() as app:
                    await app.execute(text("DELETE FROM threads"))
                    await app.commit()
                seen["third"] = await self.db.count_records("threads")

            async def test_4_still_there(self):
                seen["fourth"] = await self.db.count_records("threads")

        result = run_case(SharedRows)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["calls"], 1, "created once per class")
        self.assertEqual(seen["first"], 2)
        self.assertEqual(seen["second"], ("A", 1, 1))
        self.assertEqual((seen["third"], seen["fourth"]), (0, 1))
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0, "gone after the class")

    def test_other_modes_are_explained(self):
        class CommitWithData(SSotAsyncTestCase):
            isolation = "commit"

            @classmethod
            async def asyncSetUpTestData(cls, db):
                pass

            async def test_x(self):
                pass

        result = run_case(CommitWithData)
        self.assertIn("asyncSetUpTestData needs isolation = 'rollback'", problems(result))
