"""create_test_user/thread/message with no, some and all data, on this pass's backend."""

import datetime
import unittest
import uuid
from types import SimpleNamespace

from sqlalchemy import (JSON, Boolean, Column, Date, Enum, ForeignKey, Integer, MetaData,
                        String, Table, Text, Uuid)
from sqlalchemy.types import NullType

from test_framework import SSotAsyncTestCase
from test_framework.errors import QueryGuardError
from test_framework.ssot.factories import made_up_value

NOW = datetime.datetime(2025, 9, 10, 12, 0, tzinfo=datetime.timezone.utc)
SEED_USER = {"email": "test@example.com", "full_name": "Test User",
             "password_hash": "hash123", "is_active": True, "created_at": NOW}

custom = MetaData()
Table("teams", custom,
      Column("id", Integer, primary_key=True),
      Column("name", String(40), nullable=False))
Table("accounts", custom,
      Column("account_id", Integer, primary_key=True),
      Column("username", String(40), nullable=False, unique=True),
      Column("contact_email", String(100), nullable=False),
      Column("plan", Enum("free", "pro", name="factory_plan"), nullable=False),
      Column("score", Integer, nullable=False),
      Column("joined_on", Date, nullable=False),
      Column("is_staff", Boolean, nullable=False),
      Column("status", String(10), nullable=False, server_default="new"),
      Column("nickname", String(20)),
      Column("external_id", Uuid, nullable=False))
Table("projects", custom,
      Column("slug", String(40), primary_key=True),
      Column("team_id", ForeignKey("teams.id"), nullable=False),
      Column("owner_id", ForeignKey("accounts.account_id")),
      Column("settings", JSON, nullable=False))
Table("notes", custom,
      Column("id", Integer, primary_key=True),
      Column("project_slug", ForeignKey("projects.slug"), nullable=False),
      Column("body", Text, nullable=False))


class TestSampleSchema(SSotAsyncTestCase):
    async def test_user_with_no_data_gets_a_unique_email_and_defaults(self):
        first = await self.db.create_test_user()
        second = await self.db.create_test_user()
        self.assertRegex(first.email, r"^user-\d+@example\.test$")
        self.assertNotEqual(first.email, second.email)
        self.assertTrue(first.is_active, "column default kept")
        self.assertIsNone(first.full_name)
        self.assertIsNone(first.created_at, "optional columns are not made up")

    async def test_thread_gets_a_string_id_and_no_owner(self):
        thread = await self.db.create_test_thread()
        self.assertRegex(thread.id, r"^thread-\d+$")
        self.assertIsNone(thread.user_id)
        await self.assertRowCount("users", 0)

    async def test_message_makes_the_thread_it_needs(self):
        message = await self.db.create_test_message()
        self.assertRegex(message.id, r"^message-\d+$")
        self.assertEqual(message.role, "user")
        await self.assertRowExists("threads", id=message.thread_id)

    async def test_parents_passed_as_rows_objects_or_dicts(self):
        user = await self.db.create_test_user()
        thread = await self.db.create_test_thread(user=user)
        self.assertEqual(thread.user_id, user.id)
        in_thread = await self.db.create_test_message(thread=thread)
        from_object = await self.db.create_test_message(thread=SimpleNamespace(id=thread.id))
        from_dict = await self.db.create_test_message({"content": "hi"}, thread={"id": thread.id})
        self.assertEqual({in_thread.thread_id, from_object.thread_id, from_dict.thread_id},
                         {thread.id})
        await self.assertRowCount("threads", 1)

    async def test_caller_values_win(self):
        thread = await self.db.create_test_thread({"id": "mine"})
        message = await self.db.create_test_message({"thread_id": "mine", "role": "assistant",
                                                     "id": "m-1"})
        self.assertEqual((thread.id, message.id, message.role), ("mine", "m-1", "assistant"))
        await self.assertRowCount("threads", 1)

    async def test_seed_style_call_is_unchanged(self):
        async with self.assertNumQueries(1):
            user = await self.db.create_test_user(SEED_USER)
        self.assertRowEqual(user, {**SEED_USER, "created_at": user.created_at})
        self.assertEqual(user.created_at.replace(tzinfo=datetime.timezone.utc), NOW)

    async def test_bad_parent_is_explained(self):
        with self.assertRaisesRegex(QueryGuardError, r"create_test_thread\(user=5\): it has no "
                                                     r"column 'id'"):
            await self.db.create_test_thread(user=5)
        with self.assertRaisesRegex(QueryGuardError, "pass a dict of column values"):
            await self.db.create_test_user(["not", "a", "dict"])


class TestOwnTablesInMetadata(SSotAsyncTestCase):
    metadata = custom
    tables = {"user": "accounts", "thread": "projects", "message": "notes"}

    async def test_only_required_columns_are_made_up(self):
        account = await self.db.create_test_user()
        self.assertRegex(account.username, r"^user-\d+$")
        self.assertRegex(account.contact_email, r"^user-\d+@example\.test$")
        self.assertEqual((account.plan, account.is_staff, account.status),
                         ("free", False, "new"))
        self.assertIsInstance(account.score, int)
        self.assertIsInstance(account.joined_on, datetime.date)
        self.assertIsInstance(account.external_id, uuid.UUID)
        self.assertIsNone(account.nickname)

    async def test_required_parent_in_an_unmapped_table(self):
        note = await self.db.create_test_message()
        project = await self.assertRowExists("projects", slug=note.project_slug)
        team = await self.assertRowExists("teams", id=project.team_id)
        self.assertRegex(team.name, r"^teams-\d+$")
        self.assertEqual((project.owner_id, project.settings), (None, {}))
        self.assertRegex(note.body, r"^message-\d+$")

    async def test_parent_keys_follow_the_foreign_key_columns(self):
        account = await self.db.create_test_user()
        project = await self.db.create_test_thread(user=account)
        self.assertEqual(project.owner_id, account.account_id)
        note = await self.db.create_test_message(thread=project)
        self.assertEqual(note.project_slug, project.slug)


class TestReflectedTables(SSotAsyncTestCase):
    """Tables outside the class's metadata are reflected; made in-test, rolled back after."""

    tables = {"user": "gadgets", "thread": "loops"}

    async def asyncSetUp(self):
        await super().asyncSetUp()
        await self.db.execute_query(
            "CREATE TABLE gadgets (id INTEGER PRIMARY KEY, label VARCHAR(30) NOT NULL, "
            "note VARCHAR(10))")
        await self.db.execute_query(
            "CREATE TABLE loops (id VARCHAR(10) PRIMARY KEY, "
            "parent_id VARCHAR(10) NOT NULL REFERENCES loops (id))")

    async def test_required_columns_of_a_reflected_table(self):
        gadget = await self.db.create_test_user()
        self.assertRegex(gadget.label, r"^user-\d+$")
        self.assertIsNone(gadget.note)

    async def test_required_key_back_to_the_same_table_is_refused(self):
        with self.assertRaisesRegex(QueryGuardError, r"\['parent_id'\] of 'loops': it leads back"):
            await self.db.create_test_thread()

    async def test_parent_without_foreign_key_is_refused(self):
        with self.assertRaisesRegex(QueryGuardError, "'loops' has no foreign key to 'gadgets'"):
            await self.db.create_test_thread(user={"id": 1})


class TestMadeUpValues(unittest.TestCase):
    def test_text_is_cut_to_the_column_length(self):
        column = Table("t", MetaData(), Column("code", String(4), nullable=False)).c.code
        self.assertEqual(made_up_value(column, "user", 12), "user")

    def test_unknown_type_asks_for_the_value(self):
        column = Table("t", MetaData(), Column("blob", NullType, nullable=False)).c.blob
        with self.assertRaisesRegex(QueryGuardError, r"required column t\.blob .*pass it in the "
                                                     r"row data, e\.g\. create_test_user\("):
            made_up_value(column, "user", 1)
