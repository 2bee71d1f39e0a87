"""Property tests: random table names and conditions never run foreign SQL.

Whatever string comes in, ``count_records`` / ``table_exists`` / ``create``
either reject it before running anything, or run only their own read (which
the database may reject). Afterwards the schema and every row count are as
they were.
"""

from hypothesis import HealthCheck, assume, given, settings, strategies as st
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, StatementError

from test_framework import SSotBaseTestCase, sample_schema
from test_framework.errors import QueryGuardError

FRAGMENTS = [";", "--", "/*", "*/", "'", '"', "(", ")", " ", "1=1", "OR", "AND",
             "DROP TABLE users", "DELETE FROM users", "UNION SELECT", "email", ":e",
             "users", "main.users", "public.users", "\\", "\n", "x"]
hostile = st.one_of(st.text(max_size=40),
                    st.lists(st.sampled_from(FRAGMENTS), max_size=8).map("".join))
WRITES = ("insert", "update", "delete", "drop", "create", "alter", "truncate")
PROPERTY = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


class TestHostileInput(SSotBaseTestCase):
    def setUp(self):
        super().setUp()
        self.run_async(self.db.create_test_user({"email": "keep@x.test"}))
        self.tables_before = self.snapshot()
        self.statements = []
        event.listen(self.engine.sync_engine, "before_cursor_execute", self.record)
        self.addCleanup(event.remove, self.engine.sync_engine, "before_cursor_execute",
                        self.record)

    def record(self, conn, cursor, statement, *args):
        self.statements.append(statement)

    def snapshot(self):
        names = self.run_async(self.db.fetch_all(
            "SELECT name FROM sqlite_master WHERE type = 'table'" if self.engine.dialect.name == "sqlite"
            else "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'"))
        return {row.name: self.run_async(self.db.count_records(row.name)) for row in names}

    def attempt(self, coroutine):
        try:
            self.run_async(coroutine)
        except (QueryGuardError, DBAPIError, StatementError):
            pass

    def assert_nothing_foreign_ran(self):
        for statement in self.statements:
            self.assertFalse(statement.lstrip().lower().startswith(WRITES), statement)
        self.statements.clear()

    @PROPERTY
    @given(table=hostile, clause=hostile)
    def test_count_records(self, table, clause):
        self.attempt(self.db.count_records(table, clause))
        self.assert_nothing_foreign_ran()

    @PROPERTY
    @given(table=hostile)
    def test_table_exists(self, table):
        self.attempt(self.db.table_exists(table))
        self.assert_nothing_foreign_ran()

    @PROPERTY
    @given(table=hostile, column=hostile)
    def test_create_with_hostile_table_or_column(self, table, column):
        assume(column not in sample_schema.users.c)  # a real column is a legitimate insert
        self.attempt(self.db.create(table, {column: "v"}))
        self.attempt(self.db.create("users", {column: "v"}))
        for statement in self.statements:
            lowered = statement.lstrip().lower()
            self.assertFalse(lowered.startswith(WRITES) and not lowered.startswith("insert into users"),
                             statement)
        self.statements.clear()

    def tearDown(self):
        self.assertEqual(self.snapshot(), self.tables_before)
        super().tearDown()
