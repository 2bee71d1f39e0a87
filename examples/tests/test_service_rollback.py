"""The service in rollback mode: the app commits, the test's outer transaction undoes it.

The service gets ``self.session_factory``, so each of its sessions joins the
test's transaction and its commits become savepoints. The app behaves as in
production, and nothing it writes survives the test.
"""

from test_framework import SSotAsyncTestCase

from app.errors import EmailTaken, InactiveUser, UnknownThread
from app.models import Base
from app.service import ChatService

SHARED_EMAIL = "same-in-two-tests@example.com"


class ChatServiceRollbackTest(SSotAsyncTestCase):
    """Each test starts from empty tables, whatever the previous test committed."""

    metadata = Base.metadata

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.service = ChatService(self.session_factory)

    async def test_register_user_commit_is_visible_to_other_sessions(self):
        user = await self.service.register_user("Ada@Example.com", "Ada Lovelace", "s3cret")

        row = await self.db.fetch_one("SELECT email, password_hash FROM users WHERE id = :id",
                                      {"id": user.id})
        self.assertEqual(row.email, "ada@example.com")
        self.assertTrue(row.password_hash.startswith("pbkdf2_sha256$"), row.password_hash)
        self.assertNotIn("s3cret", row.password_hash)

    async def test_duplicate_email_raises_email_taken_and_the_app_recovers(self):
        await self.service.register_user("grace@example.com", "Grace Hopper", "one")

        with self.assertRaises(EmailTaken) as caught:
            await self.service.register_user("GRACE@example.com", "Impostor", "two")

        self.assertEqual(caught.exception.email, "grace@example.com")
        await self.service.register_user("alan@example.com", "Alan Turing", "three")
        self.assertEqual(await self.db.count_records("users"), 2)

    async def test_authenticate_checks_the_password(self):
        await self.service.register_user("linus@example.com", "Linus", "correct horse")

        user = await self.service.authenticate("linus@example.com", "correct horse")
        self.assertEqual(user.full_name, "Linus")
        self.assertIsNone(await self.service.authenticate("linus@example.com", "wrong"))

    async def test_thread_history_returns_messages_oldest_first(self):
        user = await self.service.register_user("barbara@example.com", "Barbara", "pw")
        thread = await self.service.start_thread(user.id, "Abstraction")
        for role, content in [("user", "hi"), ("assistant", "hello"), ("user", "bye")]:
            await self.service.post_message(thread.id, role, content)

        history = await self.service.thread_history(thread.id)

        self.assertEqual([(m.role, m.content) for m in history],
                         [("user", "hi"), ("assistant", "hello"), ("user", "bye")])
        self.assertEqual(thread.metadata_, {"title": "Abstraction"})

    async def test_post_message_to_unknown_thread_writes_nothing(self):
        with self.assertRaises(UnknownThread):
            await self.service.post_message("thr_missing", "user", "anyone there?")
        with self.assertRaises(ValueError):
            await self.service.post_message("thr_missing", "robot", "beep")

        self.assertEqual(await self.db.count_records("messages"), 0)

    async def test_deactivated_user_cannot_start_threads(self):
        user = await self.service.register_user("ken@example.com", "Ken", "pw")

        self.assertTrue(await self.service.deactivate_user(user.id))

        with self.assertRaises(InactiveUser):
            await self.service.start_thread(user.id, "too late")
        self.assertFalse(await self.service.deactivate_user(user.id + 1000))
        self.assertEqual(await self.db.count_records("threads"), 0)

    # Two tests commit the same email through the app. If either commit
    # outlived its test, the other one would fail with EmailTaken.

    async def test_app_commit_gone_after_rollback_mode_first(self):
        await self.service.register_user(SHARED_EMAIL, "First", "pw")
        self.assertEqual(await self.db.count_records("users"), 1)

    async def test_app_commit_gone_after_rollback_mode_second(self):
        await self.service.register_user(SHARED_EMAIL, "Second", "pw")
        self.assertEqual(await self.db.count_records("users"), 1)
