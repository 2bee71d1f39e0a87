"""The service in commit mode: rows are really committed, so the app reads them itself.

``self.db`` commits the rows it creates and deletes them at teardown,
children before parents. Rows the *app* commits are not tracked: a test that
lets the app write must delete those rows itself, before ``super().asyncTearDown()``
deletes the parents they point at.

On SQLite, let the app write before the test reads through ``self.db``: a
read leaves the test session's transaction (and its lock) open, and the
app's commit on another connection would wait for it.
"""

from datetime import datetime, timedelta, timezone

from test_framework import SSotAsyncTestCase

from app.models import Base
from app.passwords import hash_password
from app.service import ChatService

SHARED_EMAIL = "committed-in-two-tests@example.com"


class ChatServiceCommitTest(SSotAsyncTestCase):
    """The app, through its own sessions and connections, sees what the test committed."""

    metadata = Base.metadata
    isolation = "commit"

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.service = ChatService(self.session_factory)
        self.app_message_ids = []

    async def asyncTearDown(self):
        for message_id in self.app_message_ids:
            await self.db.execute_query("DELETE FROM messages WHERE id = :id", {"id": message_id})
        await super().asyncTearDown()

    async def test_app_authenticates_user_the_test_created(self):
        await self.db.create_test_user({"email": "mary@example.com", "full_name": "Mary",
                                        "password_hash": hash_password("pw")})

        user = await self.service.authenticate("mary@example.com", "pw")

        self.assertIsNotNone(user)
        self.assertEqual(user.full_name, "Mary")

    async def test_app_deactivates_user_the_test_created(self):
        user = await self.db.create_test_user({"email": "edsger@example.com"})

        self.assertTrue(await self.service.deactivate_user(user.id))

        row = await self.db.fetch_one("SELECT is_active FROM users WHERE id = :id",
                                      {"id": user.id})
        self.assertFalse(row.is_active)

    async def test_app_reads_history_of_thread_the_test_created(self):
        user = await self.db.create_test_user({"email": "donald@example.com"})
        thread = await self.db.create_test_thread({"user_id": user.id})
        start = datetime(2024, 1, 1, tzinfo=timezone.utc)
        for minute, content in [(2, "third"), (0, "first"), (1, "second")]:
            await self.db.create_test_message({
                "thread_id": thread.id, "role": "user", "content": content,
                "created_at": start + timedelta(minutes=minute)})

        history = await self.service.thread_history(thread.id)

        self.assertEqual([m.content for m in history], ["first", "second", "third"])

    async def test_app_posts_to_thread_the_test_created(self):
        user = await self.db.create_test_user({"email": "niklaus@example.com"})
        thread = await self.db.create_test_thread({"user_id": user.id})

        message = await self.service.post_message(thread.id, "assistant", "ready")
        self.app_message_ids.append(message.id)

        self.assertEqual(await self.db.count_records(
            "messages", "thread_id = :thread_id AND content = :content",
            {"thread_id": thread.id, "content": "ready"}), 1)

    # Two tests commit the same email. If teardown left any row behind, the
    # second test's insert or its table-wide counts would fail.

    async def test_committed_rows_gone_after_teardown_first(self):
        await self.db.create_test_user({"email": SHARED_EMAIL})
        self.assertEqual(await self.db.count_records("users"), 1)
        self.assertEqual(await self.db.count_records("messages"), 0)

    async def test_committed_rows_gone_after_teardown_second(self):
        await self.db.create_test_user({"email": SHARED_EMAIL})
        self.assertEqual(await self.db.count_records("users"), 1)
        self.assertEqual(await self.db.count_records("messages"), 0)
