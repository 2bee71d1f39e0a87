"""create() and create_test_user/thread/message with no, some and all data, on this pass's
backend: the sample schema, tables of a test's own, and a realistic application whose schema
comes from its models or from its Alembic migrations (then the types are reflected)."""

import datetime
import unittest
import uuid
from decimal import Decimal
from types import SimpleNamespace

from sqlalchemy import (CHAR, JSON, Boolean, CheckConstraint, Column, Date, Enum, ForeignKey,
                        Integer, MetaData, Numeric, String, Table, Text, TypeDecorator, Uuid)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import NullType

from test_framework import SSotAsyncTestCase
from test_framework.errors import QueryGuardError
from test_framework.ssot.factories import required_columns
from test_framework.ssot.typed_values import UuidText, made_up_value
from tests.realistic_app import ALEMBIC_INI
from tests.realistic_app.models import Base, Role
from tests.support import count_rows, count_rows_sync, problems, run_case

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


class RealisticApp:
    """``create()`` on users -> projects -> tasks; mixed into one class per schema source."""

    async def test_task_from_nothing_makes_its_project_and_user(self):
        task = await self.db.create("tasks", {})
        project = await self.assertRowExists("projects", id=task.project_id)
        user = await self.assertRowExists("users", id=project.owner_id, role=Role.member)
        for key in (task.id, project.id, user.id):
            self.assertIsInstance(key, uuid.UUID)
        self.assertRegex(user.email, r"^user-\d+@example\.test$")
        self.assertEqual((project.settings, task.done, task.due_on), ({}, False, None))
        self.assertIsInstance(project.budget, Decimal)
        self.assertIsInstance(project.starts_on, datetime.date)
        self.assertIsNotNone(task.created_at, "the server default filled it")

    async def test_made_up_values_satisfy_every_constraint(self):
        project = await self.db.create("projects", {})
        tasks = [await self.db.create("tasks", projects=project) for _ in range(12)]
        self.assertTrue(all(1 <= task.priority <= 5 for task in tasks),
                        [task.priority for task in tasks])
        codes = [task.code for task in tasks]
        self.assertEqual(len(set(codes)), 12, f"unique per project: {codes}")
        self.assertTrue(all(len(code) <= 5 for code in codes), codes)
        await self.assertRowCount("tasks", 12, project_id=project.id)

    async def test_the_constraints_are_real(self):
        project = await self.db.create("projects", {})
        with self.assertRaises(IntegrityError):  # CHECK priority BETWEEN 1 AND 5
            await self.db.create("tasks", {"priority": 6}, projects=project)
        with self.assertRaises(IntegrityError):  # NOT NULL owner_id, given as None
            await self.db.create("projects", {"owner_id": None})

    async def test_python_values_of_the_column_types_bind(self):
        user_id = uuid.uuid4()
        user = await self.db.create("users", {"id": user_id, "role": Role.admin,
                                              "email": "ada@example.test"})
        project = await self.db.create(
            "projects", {"budget": Decimal("12.50"), "settings": {"tags": ["a"]},
                         "starts_on": datetime.date(2025, 9, 10)}, user=user)
        self.assertEqual((user.id, project.owner_id), (user_id, user_id))
        self.assertEqual((project.budget, project.settings), (Decimal("12.50"), {"tags": ["a"]}))
        await self.assertRowExists("users", id=user_id, role=Role.admin)
        self.assertEqual(await self.db.count_records("projects", owner_id=user_id), 1)

    async def test_create_test_user_is_create_on_the_users_table(self):
        user = await self.db.create_test_user({"role": Role.admin})
        await self.assertRowExists("users", id=user.id, email=user.email, role=Role.admin)
        with self.assertRaisesRegex(QueryGuardError, r"create\('tasks', users=\.\.\.\): table "
                                                     r"'tasks' has no foreign key to 'users' "
                                                     r"\(it has to \['projects'\]\)"):
            await self.db.create("tasks", users=user)


class TestRealisticModels(RealisticApp, SSotAsyncTestCase):
    """Types from ``metadata``: ``Uuid``, ``Enum(Role)``, the declared CHECKs."""

    metadata = Base.metadata


class TestRealisticMigrations(RealisticApp, SSotAsyncTestCase):
    """Types reflected from what the migrations built: on SQLite ``CHAR(32)`` keys and a
    ``VARCHAR`` role with a CHECK constraint; on PostgreSQL ``UUID`` and an enum type."""

    alembic_ini = ALEMBIC_INI


class TestRealisticCleanup(unittest.TestCase):
    def test_rows_and_made_parents_are_gone_after_commit_mode(self):
        for source in ({"metadata": Base.metadata}, {"alembic_ini": ALEMBIC_INI}):
            with self.subTest(source=sorted(source)):
                seen = {}

                async def test_make(case):
                    seen["url"] = case.engine.url
                    task = await case.db.create("tasks", {"title": "kept"})
                    seen["committed"] = await count_rows(
                        case.engine.url, "tasks", "title = :t", {"t": "kept"})
                    seen["id"] = task.id

                inner = type("MakesRows", (SSotAsyncTestCase,),
                             {**source, "isolation": "commit", "test_make": test_make})
                result = run_case(inner)
                self.assertTrue(result.wasSuccessful(), problems(result))
                self.assertEqual(seen["committed"], 1)
                self.assertIsInstance(seen["id"], uuid.UUID)
                self.assertEqual([count_rows_sync(seen["url"], name)
                                  for name in ("tasks", "projects", "users")], [0, 0, 0])


ON_SQLITE, ON_POSTGRESQL = sqlite.dialect(), postgresql.dialect()


def column(*args, constraints=(), **kwargs):
    """A NOT NULL column ``c`` of a fresh table ``t``, with CHECK constraints given as SQL."""
    table = Table("t", MetaData(), Column("c", *args, nullable=False, **kwargs),
                  *(CheckConstraint(sql) for sql in constraints))
    return table.c.c


class GuidRecipe(TypeDecorator):
    """SQLAlchemy's backend-agnostic GUID recipe: CHAR(32) where there is no UUID type."""

    impl, cache_ok = CHAR(32), True

    def load_dialect_impl(self, dialect):
        return dialect.type_descriptor(postgresql.UUID() if dialect.name == "postgresql"
                                       else CHAR(32))


class TestMadeUpValues(unittest.TestCase):
    def made_up(self, col, number=12, dialect=ON_SQLITE):
        return made_up_value(col, "user", number, dialect=dialect)

    def test_text_fits_the_column_length_and_keeps_the_number(self):
        self.assertEqual(self.made_up(column(String(4))), "us12")
        self.assertEqual(self.made_up(column(String(5)), number=1), "user1")
        self.assertEqual(self.made_up(column(String(3)), number=123456), "456")

    def test_uuid_columns_get_uuids(self):
        for col, dialect in [(column(Uuid), ON_SQLITE), (column(postgresql.UUID), ON_POSTGRESQL),
                             (column(GuidRecipe), ON_SQLITE), (column(GuidRecipe), ON_POSTGRESQL),
                             (column(CHAR(32)), ON_SQLITE), (column(CHAR(36)), ON_SQLITE),
                             (column(UuidText(32)), ON_SQLITE)]:
            with self.subTest(type=col.type, dialect=dialect.name):
                self.assertIsInstance(self.made_up(col, dialect=dialect), uuid.UUID)
        self.assertIsInstance(self.made_up(column(Uuid(as_uuid=False))), str)
        self.assertEqual(self.made_up(column(CHAR(36)), dialect=ON_POSTGRESQL), "user-12",
                         "PostgreSQL has a UUID type, so its CHAR(36) is just text")

    def test_check_constraints_choose_the_value(self):
        cases = [
            (String(6), ["c IN ('member', 'admin')"], "member"),
            (String(20), ["((c)::text = ANY ((ARRAY['member'::character varying, "
                          "'admin'::character varying])::text[]))"], "member"),
            (Integer, ["c BETWEEN 1 AND 5"], 2),
            (Integer, ["c >= 1 AND c <= 5"], 2),
            (Integer, ["c > 100"], 113),
            (Integer, ["c IS NULL OR c < -3"], -4),
            (Integer, ["c <> 12"], 13),
            (Numeric(3, 1), ["c > 0 AND c < 1"], Decimal("0.5")),
            (Numeric(3, 1), [], 12),
            (Numeric(2, 1), [], 2),
            (String(20), ["length(c) >= 10"], "user-12xxx"),
            (String(20), ["c = 'fixed'"], "fixed"),
        ]
        for col_type, checks, expected in cases:
            with self.subTest(checks=checks, type=col_type):
                col = column(col_type, constraints=checks)
                self.assertEqual(self.made_up(col, dialect=ON_POSTGRESQL), expected)

    def test_enum_and_checks_only_on_other_columns(self):
        self.assertIs(self.made_up(column(Enum(Role))), Role.member)
        self.assertEqual(self.made_up(column(Enum("b", "a", name="letters"))), "b")
        table = Table("t", MetaData(), Column("c", Integer, nullable=False), Column("d", Integer),
                      CheckConstraint("c < d"), CheckConstraint("random() > 0"))
        self.assertEqual(self.made_up(table.c.c), 12, "checks it cannot read are left alone")

    def test_unknown_type_asks_for_the_value(self):
        col = column(NullType)
        with self.assertRaisesRegex(QueryGuardError, r"required column t\.c .*pass it in the "
                                                     r"row data, e\.g\. create_test_user\("
                                                     r"\{'c': \.\.\.\}\)"):
            self.made_up(col)
        with self.assertRaisesRegex(QueryGuardError, r"e\.g\. create\('t', \{'c': \.\.\.\}\)"):
            made_up_value(col, "t", 1, dialect=ON_SQLITE, caller="create('t')")


class TestRequiredColumns(unittest.TestCase):
    """Which columns ``create`` must fill is worked out once per table, and again after
    the table gained a column (a test that migrates adds one to the declared table)."""

    def test_a_column_added_later_is_required_too(self):
        table = Table("gains", MetaData(), Column("id", Integer, primary_key=True),
                      Column("name", String(20), nullable=False),
                      Column("note", String(20)))
        self.assertEqual([column.name for column in required_columns(table)], ["name"])
        table.append_column(Column("code", String(8), nullable=False))
        self.assertEqual([column.name for column in required_columns(table)], ["name", "code"])
