"""The smallest use: seed rows with the helpers, count them, and find them gone next test."""

from test_framework import SSotAsyncTestCase

from app.models import Base


class SeedRowsTest(SSotAsyncTestCase):
    """Rows made with ``self.db.create_*`` in the default rollback mode."""

    metadata = Base.metadata

    async def test_create_test_user_from_dict_counts_one(self):
        user = await self.db.create_test_user({"email": "seed@example.com",
                                               "full_name": "Seed User"})

        self.assertEqual(await self.db.count_records("users"), 1)
        self.assertEqual(user.email, "seed@example.com")
        self.assertTrue(user.is_active, "the model's default applies to helper rows")
        self.assertIsNotNone(user.created_at)

    async def test_thread_and_message_rows_reference_their_user(self):
        user = await self.db.create_test_user({"email": "author@example.com"})
        thread = await self.db.create_test_thread({"user_id": user.id})
        await self.db.create_test_message({"thread_id": thread.id, "role": "user",
                                           "content": "hello"})

        self.assertTrue(thread.id.startswith("thr_"), thread.id)
        self.assertEqual(await self.db.count_records("users"), 1)
        self.assertEqual(await self.db.count_records(
            "messages", "thread_id = :thread_id", {"thread_id": thread.id}), 1)
