"""A synchronous test class drives the async app with ``self.run_async``."""

from test_framework import SSotBaseTestCase

from app.errors import EmailTaken
from app.models import Base
from app.service import ChatService


class SyncChatServiceTest(SSotBaseTestCase):
    """Plain ``def`` tests: each coroutine runs on the class's event loop."""

    metadata = Base.metadata

    def setUp(self):
        super().setUp()
        self.service = ChatService(self.session_factory)

    def test_register_then_duplicate_through_run_async(self):
        self.run_async(self.service.register_user("joan@example.com", "Joan", "pw"))

        with self.assertRaises(EmailTaken):
            self.run_async(self.service.register_user("joan@example.com", "Joan", "pw"))
        self.assertEqual(self.run_async(self.db.count_records("users")), 1)

    def test_conversation_through_run_async(self):
        user = self.run_async(self.service.register_user("dennis@example.com", "Dennis", "pw"))
        thread = self.run_async(self.service.start_thread(user.id, "C"))
        self.run_async(self.service.post_message(thread.id, "user", "hello, world"))

        history = self.run_async(self.service.thread_history(thread.id))

        self.assertEqual([m.content for m in history], ["hello, world"])
        self.assertEqual(history[0].thread_id, thread.id)
