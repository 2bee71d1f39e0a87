"""AsyncTestDatabase on the real database of this pass (SQLite or PostgreSQL)."""

import uuid
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from test_framework import SSotAsyncTestCase
from test_framework.errors import QueryGuardError
from tests.realistic_app import ALEMBIC_INI
from tests.realistic_app.models import Base, Role
from tests.support import count_rows, skip_unless_backend, timeout

NOW = datetime(2025, 9, 10, 12, 0, tzinfo=timezone.utc)
SEED_USER = {"email": "test@example.com", "full_name": "Test User",
             "password_hash": "hash123", "is_active": True, "created_at": NOW}


class TestSeedScenario(SSotAsyncTestCase):
    """The usage the original design note promised, now kept."""

    async def test_user_creation(self):
        user = await self.db.create_test_user(SEED_USER)
        self.assertIsNotNone(user)
        self.assertEqual(user.email, "test@example.com")
        self.assertIsInstance(user.id, int)
        self.assertEqual(await self.db.count_records("users"), 1)

    async def test_thread_and_message_chain(self):
        user = await self.db.create_test_user(SEED_USER)
        thread = await self.db.create_test_thread(
            {"id": "thread-1", "user_id": user.id, "metadata_": {"tags": ["a", "b"]}})
        message = await self.db.create_test_message(
            {"id": "msg-1", "thread_id": thread.id, "role": "user", "content": "hi"})
        self.assertEqual(thread.metadata_, {"tags": ["a", "b"]})
        self.assertEqual((message.thread_id, message.role), ("thread-1", "user"))
        self.assertEqual(await self.db.count_records("messages", "thread_id = :t", {"t": "thread-1"}), 1)


class TestRawSql(SSotAsyncTestCase):
    async def test_fetch_one_and_all_return_rows_with_both_accessors(self):
        await self.db.create_test_user({"email": "a@x.test", "full_name": "A"})
        await self.db.create_test_user({"email": "b@x.test", "full_name": "B"})
        row = await self.db.fetch_one("SELECT email, full_name FROM users WHERE email = :e",
                                      {"e": "a@x.test"})
        self.assertEqual((row.email, row._mapping["full_name"]), ("a@x.test", "A"))
        rows = await self.db.fetch_all("SELECT email FROM users ORDER BY email")
        self.assertEqual([r.email for r in rows], ["a@x.test", "b@x.test"])
        self.assertIsNone(await self.db.fetch_one("SELECT id FROM users WHERE id = -1"))

    async def test_parameters_are_bound_not_interpolated(self):
        hostile = "x'); DELETE FROM users; --"
        await self.db.create_test_user({"email": "keep@x.test"})
        await self.db.execute_query("INSERT INTO users (email, is_active) VALUES (:e, :a)",
                                    {"e": hostile, "a": True})
        self.assertEqual(await self.db.count_records("users"), 2)
        row = await self.db.fetch_one("SELECT email FROM users WHERE email = :e", {"e": hostile})
        self.assertEqual(row.email, hostile)

    async def test_execute_query_returns_rowcount(self):
        await self.db.create_test_user({"email": "a@x.test"})
        result = await self.db.execute_query("UPDATE users SET full_name = :n", {"n": "Z"})
        self.assertEqual(result.rowcount, 1)

    async def test_sql_errors_propagate_and_session_stays_usable(self):
        with self.assertRaises(Exception) as caught:
            await self.db.execute_query("SELECT * FROM no_such_table")
        self.assertIn("no_such_table", str(caught.exception))
        self.assertEqual(await self.db.count_records("users"), 0)


class TestCreate(SSotAsyncTestCase):
    async def test_caller_id_is_used_and_defaults_filled(self):
        user = await self.db.create_test_user({"id": 4242, "email": "id@x.test"})
        self.assertEqual(user.id, 4242)
        self.assertTrue(user.is_active)  # column default
        self.assertIsNone(user.full_name)

    async def test_any_subset_of_columns(self):
        user = await self.db.create("users", {"email": "only@x.test"})
        self.assertEqual(user.email, "only@x.test")

    async def test_unknown_column_names_table_and_columns(self):
        with self.assertRaises(QueryGuardError) as caught:
            await self.db.create_test_user({"email": "a@x.test", "nickname": "n"})
        self.assertIn("'users' has no column(s) ['nickname']", str(caught.exception))
        self.assertIn("'email'", str(caught.exception))
        self.assertEqual(await self.db.count_records("users"), 0)

    async def test_unknown_table(self):
        with self.assertRaisesRegex(QueryGuardError, r"table 'nope' does not exist.*'users'"):
            await self.db.create("nope", {"a": 1})

    async def test_integrity_error_leaves_helper_usable(self):
        await self.db.create_test_user({"email": "dup@x.test"})
        with self.assertRaises(IntegrityError):
            await self.db.create_test_user({"email": "dup@x.test"})
        await self.db.create_test_user({"email": "other@x.test"})
        self.assertEqual(await self.db.count_records("users"), 2)

    async def test_foreign_keys_enforced(self):
        with self.assertRaises(IntegrityError):
            await self.db.create_test_message({"id": "m", "thread_id": "missing", "role": "user"})

    async def test_reflected_table_outside_metadata(self):
        await self.db.execute_query("CREATE TABLE extra_notes (id INTEGER PRIMARY KEY, body TEXT)")
        note = await self.db.create("extra_notes", {"id": 7, "body": "hello"})
        self.assertEqual((note.id, note.body), (7, "hello"))
        self.assertEqual(await self.db.count_records("extra_notes"), 1)


class TestCountAndExists(SSotAsyncTestCase):
    async def test_count_with_clause_and_params(self):
        for n in range(3):
            await self.db.create_test_user({"email": f"u{n}@x.test", "is_active": n != 1})
        self.assertEqual(await self.db.count_records("users", "is_active = :a", {"a": True}), 2)
        self.assertEqual(await self.db.count_records("users", "WHERE email LIKE :p", {"p": "u%"}), 3)

    async def test_count_rejects_unknown_and_hostile_names(self):
        with self.assertRaisesRegex(QueryGuardError, "table 'ghosts' does not exist"):
            await self.db.count_records("ghosts")
        with self.assertRaisesRegex(QueryGuardError, "not a plain identifier"):
            await self.db.count_records("users; DROP TABLE users")
        self.assertTrue(await self.db.table_exists("users"))

    async def test_count_rejects_escaping_clauses(self):
        for clause in ("1=1; DELETE FROM users", "1=1 --", "1=1) OR (1=1"):
            with self.subTest(clause=clause), self.assertRaises(QueryGuardError):
                await self.db.count_records("users", clause)

    async def test_count_with_keyword_filters(self):
        await self.db.create_test_user({"email": "a@x.test", "is_active": False})
        await self.db.create_test_user({"email": "b@x.test", "full_name": "B"})
        self.assertEqual(await self.db.count_records("users", is_active=True), 1)
        self.assertEqual(await self.db.count_records("users", full_name=None), 1)
        self.assertEqual(await self.db.count_records(
            "users", "email LIKE :p", {"p": "%@x.test"}, is_active=False), 1)
        with self.assertRaisesRegex(QueryGuardError, r"count_records\('users'\) got column\(s\) "
                                                     r"\['nick'\] that the table does not have"):
            await self.db.count_records("users", nick="n")

    async def test_params_without_clause_is_an_error(self):
        with self.assertRaisesRegex(QueryGuardError, "no where_clause"):
            await self.db.count_records("users", params={"a": 1})

    async def test_table_exists(self):
        self.assertTrue(await self.db.table_exists("users"))
        self.assertTrue(await self.db.table_exists("messages"))
        self.assertFalse(await self.db.table_exists("nope"))

    @skip_unless_backend("postgresql")
    async def test_schema_qualified_on_postgresql(self):
        self.assertTrue(await self.db.table_exists("public.users"))
        self.assertFalse(await self.db.table_exists("public.nope"))
        await self.db.execute_query("CREATE SCHEMA audit")
        await self.db.execute_query("CREATE TABLE audit.events (id int primary key)")
        self.assertTrue(await self.db.table_exists("audit.events"))
        self.assertEqual(await self.db.count_records("audit.events"), 0)


class TestExplicitTransactions(SSotAsyncTestCase):
    isolation = "commit"

    @timeout(20)
    async def test_rollback_forgets_rows_and_commit_keeps_them(self):
        outer = await self.db.begin_transaction()
        await self.db.create_test_user({"email": "kept@x.test"})
        inner = await self.db.begin_transaction()
        await self.db.create_test_user({"email": "dropped@x.test"})
        await self.db.rollback_transaction(inner)
        await self.db.commit_transaction(outer)
        self.assertEqual([r.key for r in self.db.tracked_rows].__len__(), 1)
        self.assertEqual(await count_rows(self.engine.url, "users"), 1)
        self.assertEqual(await count_rows(self.engine.url, "users", "email = 'kept@x.test'"), 1)

    @timeout(20)
    async def test_begin_after_implicit_work_is_a_savepoint(self):
        await self.db.fetch_one("SELECT 1")
        tx = await self.db.begin_transaction()
        await self.db.create_test_user({"email": "sp@x.test"})
        await self.db.rollback_transaction()
        self.assertFalse(tx.is_active)
        self.assertEqual(await self.db.count_records("users"), 0)
        self.assertEqual(self.db.tracked_rows, [])

    @timeout(20)
    async def test_nothing_commits_inside_an_open_transaction(self):
        await self.db.begin_transaction()
        await self.db.create_test_user({"email": "wait@x.test"})
        self.assertEqual(await count_rows(self.engine.url, "users"), 0)
        await self.db.commit_transaction()
        self.assertEqual(await count_rows(self.engine.url, "users"), 1)

    @timeout(20)
    async def test_cleanup_rolls_back_what_the_test_left_open(self):
        await self.db.begin_transaction()
        await self.db.create_test_user({"email": "open@x.test"})
        await self.db.cleanup()
        await self.db.cleanup()  # idempotent
        self.assertFalse(self.session.in_transaction())
        self.assertEqual(await count_rows(self.engine.url, "users"), 0)

    async def test_direct_session_rollback_also_forgets_rows(self):
        self.db.autocommit = False
        await self.db.create_test_user({"email": "direct@x.test"})
        await self.session.rollback()
        self.assertEqual(self.db.tracked_rows, [])


class TestMemoryDatabase(SSotAsyncTestCase):
    """``sqlite+aiosqlite:///:memory:``: one shared connection, schema made once."""

    database_url = "sqlite+aiosqlite:///:memory:"

    async def test_first(self):
        await self.db.create_test_user({"email": "m@x.test"})
        self.assertEqual(await self.db.count_records("users"), 1)

    async def test_second_sees_clean_schema(self):
        self.assertTrue(await self.db.table_exists("users"))
        self.assertEqual(await self.db.count_records("users"), 0)
        await self.db.create_test_user({"email": "m@x.test"})


class TestCoreStatementsAndTables(SSotAsyncTestCase):
    async def test_fetch_and_execute_take_core_statements(self):
        users = await self.db.table("users")
        await self.db.execute_query(users.insert().values(email="core@x.test", is_active=True))
        rows = await self.db.fetch_all(select(users.c.email))
        row = await self.db.fetch_one(select(users).where(users.c.email == "core@x.test"))
        self.assertEqual(([r.email for r in rows], row.is_active), (["core@x.test"], True))

    async def test_table_reflects_what_metadata_lacks(self):
        await self.db.execute_query("CREATE TABLE loose_notes (id INTEGER PRIMARY KEY, body TEXT)")
        self.assertEqual(list((await self.db.table("loose_notes")).c.keys()), ["id", "body"])
        with self.assertRaisesRegex(QueryGuardError, "table 'nowhere' does not exist"):
            await self.db.table("nowhere")


class TestAlteredTable(SSotAsyncTestCase):
    async def test_create_and_assert_use_a_column_added_by_the_test(self):
        await self.db.execute_query("ALTER TABLE users ADD COLUMN nickname VARCHAR(20)")
        user = await self.db.create_test_user({"email": "n@x.test", "nickname": "nick"})
        self.assertEqual(user.nickname, "nick")
        await self.assertRowExists("users", nickname="nick")


class TypedConditions:
    """Values for a column bind through its type; mixed into one class per schema source."""

    async def test_uuid_in_a_condition_or_a_filter(self):
        task = await self.db.create("tasks", {})
        self.assertIsInstance(task.id, uuid.UUID)
        for condition in ("id = :id", "WHERE :id = tasks.id", "(id IN (:id, :other))"):
            with self.subTest(condition=condition):
                self.assertEqual(await self.db.count_records(
                    "tasks", condition, {"id": task.id, "other": uuid.uuid4()}), 1)
        self.assertEqual(await self.db.count_records("tasks", id=task.id), 1)
        self.assertEqual(await self.db.count_records("tasks", id=uuid.uuid4()), 0)

    async def test_param_named_after_a_column_and_other_types(self):
        task = await self.db.create("tasks", {})
        self.assertEqual(await self.db.count_records(
            "tasks", "coalesce(project_id, id) = :project_id AND priority BETWEEN :low AND 5",
            {"project_id": task.project_id, "low": 1}), 1)
        self.assertEqual(await self.db.count_records("users", "role = :r", {"r": Role.member}), 1)
        self.assertEqual(await self.db.count_records("users", role=Role.admin), 0)

    async def test_text_for_a_uuid_column_still_binds_as_text(self):
        user = await self.db.create("users", {})
        stored = (await self.db.fetch_one("SELECT id FROM users")).id
        self.assertEqual(await self.db.count_records("users", "id = :id", {"id": stored}), 1)
        self.assertEqual(uuid.UUID(str(stored)), user.id)


class TestTypedConditionsFromModels(TypedConditions, SSotAsyncTestCase):
    metadata = Base.metadata


class TestTypedConditionsFromMigrations(TypedConditions, SSotAsyncTestCase):
    alembic_ini = ALEMBIC_INI
