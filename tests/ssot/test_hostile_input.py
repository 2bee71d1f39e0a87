"""Property tests: random table names and conditions never run foreign SQL.

Whatever string comes in, ``count_records`` / ``table_exists`` / ``create``
either reject it before running anything, or run only their own read (which
the database may reject). Afterwards the schema and every row count are as
they were.

The where_clause attacks that once ran on PostgreSQL (ending another backend,
``set_config`` outliving the test, ``lo_import``, ``pg_read_file``, a UNION
hidden behind ``$$...$$`` or ``E'...'``) are each refused before any SQL, on
both backends, and their effect is checked to be absent. Conditions drawn from
the allowed grammar count exactly what the same condition counts when run raw.
"""

import asyncio
from datetime import datetime, timezone

from hypothesis import HealthCheck, assume, given, settings, strategies as st
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, StatementError

from test_framework import SSotAsyncTestCase, SSotBaseTestCase, sample_schema
from test_framework.errors import QueryGuardError
from tests.support import backend_name, separate_connection, timeout

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
        self.statements = recorded_statements(self)

    def snapshot(self):
        names = self.run_async(self.db.fetch_all(
            "SELECT name FROM sqlite_master WHERE type = 'table'" if self.engine.dialect.name == "sqlite"
            else "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'"))
        return {row.name: self.run_async(self.db.count_records(row.name)) for row in names}

    def attempt(self, coroutine):
        """Run a helper that may be refused, or fail in the database (in a savepoint of its own)."""
        async def in_a_savepoint():
            async with self.session.begin_nested():
                await coroutine
        try:
            self.run_async(in_a_savepoint())
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


def recorded_statements(test) -> list[str]:
    """Collect every statement the test's engine sends from now until the test ends."""
    statements = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)
    event.listen(test.engine.sync_engine, "before_cursor_execute", record)
    test.addCleanup(event.remove, test.engine.sync_engine, "before_cursor_execute", record)
    return statements


NOW = datetime(2025, 9, 10, 12, 0, tzinfo=timezone.utc)
POSTGRESQL = backend_name() == "postgresql"
UNION_ATTACKS = ("email = $$'$$) UNION ALL SELECT 42 --'",       # '...' hides ) and --
                 "email = $t$'$t$) UNION ALL SELECT 42 --'",
                 "email = E'\\'') UNION ALL SELECT 42 --'")     # E'\'' is one quote


class TestWhereClauseAttacks(SSotAsyncTestCase):
    """Each attack that once ran is refused before any SQL, and its effect is absent."""

    async def asyncSetUp(self):
        await super().asyncSetUp()
        await self.db.create_test_user({"email": "keep@x.test"})
        self.statements = recorded_statements(self)

    async def assert_refused(self, clause, params=None, *, naming):
        self.statements.clear()
        with self.assertRaises(QueryGuardError) as caught:
            await self.db.count_records("users", clause, params)
        self.assertEqual(self.statements, [], f"{clause!r} ran SQL before it was refused")
        self.assertIn(naming, str(caught.exception))
        return str(caught.exception)

    async def server_value(self, sql):
        """A value only PostgreSQL has (None on SQLite, where the attack has no target)."""
        return (await self.db.fetch_one(sql))[0] if POSTGRESQL else None

    @timeout(30)
    async def test_terminating_a_live_connection_refused_and_it_stays_alive(self):
        async with separate_connection(self.engine.url) as other:
            pid = (await other.execute(text(
                "SELECT pg_backend_pid()" if POSTGRESQL else "SELECT 0"))).scalar_one()
            for clause in (f"pg_terminate_backend({pid})", "pg_terminate_backend(:pid)",
                           "email = :e OR PG_TERMINATE_BACKEND(:pid)",
                           "CASE WHEN pg_terminate_backend(:pid) THEN 1 ELSE 0 END = 1",
                           '"pg_terminate_backend" (:pid) IS NOT NULL'):
                with self.subTest(clause=clause):
                    await self.assert_refused(clause, {"pid": pid, "e": "keep@x.test"},
                                              naming="function ")
            await self.assert_refused("pg_terminate_backend(:pid)", {"pid": pid},
                                      naming="function pg_terminate_backend is not allowed "
                                             "in a where_clause")
            self.assertEqual((await other.execute(text("SELECT 1"))).scalar_one(), 1)

    @timeout(30)
    async def test_set_config_refused_and_statement_timeout_unchanged(self):
        before = await self.server_value("SHOW statement_timeout")
        for clause in ("set_config('statement_timeout', '4321', false) = '4321'",
                       "email = :e AND set_config('statement_timeout', :v, false) IS NOT NULL",
                       "lower(set_config('statement_timeout', :v, false)) = ''"):
            with self.subTest(clause=clause):
                await self.assert_refused(clause, {"e": "keep@x.test", "v": "4321"},
                                          naming="function set_config is not allowed")
        self.assertEqual(await self.server_value("SHOW statement_timeout"), before)
        self.assertNotEqual(before, "4321ms")

    @timeout(30)
    async def test_lo_import_refused_and_no_large_object_made(self):
        count = "SELECT count(*) FROM pg_largeobject_metadata"
        before = await self.server_value(count)
        for clause in ("lo_import('/etc/passwd') > 0", "email = :e OR lo_import(:path) > 0"):
            with self.subTest(clause=clause):
                await self.assert_refused(clause, {"e": "x", "path": "/etc/passwd"},
                                          naming="function lo_import is not allowed")
        self.assertEqual(await self.server_value(count), before)

    @timeout(30)
    async def test_pg_read_file_refused_and_nothing_of_the_file_in_the_error(self):
        for clause in ("CAST(pg_read_file('/etc/passwd') AS int) = 1",
                       "email = pg_read_file(:path)",
                       "length(pg_read_binary_file('/etc/passwd')) > 0"):
            with self.subTest(clause=clause):
                message = await self.assert_refused(clause, {"path": "/etc/passwd"},
                                                    naming="function pg_read_")
                self.assertNotIn("root:", message)

    @timeout(30)
    async def test_union_hidden_in_dollar_and_escape_strings_refused(self):
        for clause in UNION_ATTACKS:
            with self.subTest(clause=clause):
                if POSTGRESQL:  # the attack is real: run raw, it adds a row of its own
                    raw = await self.db.fetch_all(f"SELECT count(*) FROM users WHERE ({clause})")
                    self.assertEqual([row[0] for row in raw], [0, 42])
                await self.assert_refused(clause, naming="a comment is not allowed"
                                          if POSTGRESQL else "does not parse")  # $$ is no string

    @timeout(30)
    async def test_statements_subqueries_and_comments_refused_and_table_intact(self):
        cases = {"1=1; DROP TABLE users": "';' ends the statement",
                 "1=1; DELETE FROM users": "';' ends the statement",
                 "DROP TABLE users": "Unexpected token at 'DROP'",
                 "DELETE FROM users": "does not parse as one condition",
                 "email IN (SELECT email FROM users)": "a subquery",
                 "EXISTS (SELECT 1)": "a subquery", "1=1 UNION SELECT 1": "at 'UNION'",
                 "email = 'x' OR 1=1 -- '": "a comment", "1=1 /* */ OR 1=1": "a comment"}
        for clause, naming in cases.items():
            with self.subTest(clause=clause):
                await self.assert_refused(clause, naming=naming)
        self.assertEqual(await self.db.count_records("users"), 1)

    @timeout(30)
    async def test_a_backslash_ends_no_literal_early_with_standard_strings_off(self):
        # sqlglot reads 'x\' as a whole literal; with standard_conforming_strings off the
        # server would read on, and the second "literal" would run as SQL.
        smuggling = "full_name = 'x\\' OR full_name = ') OR {code} --'"
        async with separate_connection(self.engine.url) as other:
            pid = (await other.execute(text(
                "SELECT pg_backend_pid()" if POSTGRESQL else "SELECT 0"))).scalar_one()
            transaction = await self.db.begin_transaction()
            if POSTGRESQL:
                await self.db.execute_query("SET LOCAL standard_conforming_strings = off")
                raw = await self.db.fetch_one(
                    f"SELECT count(*) FROM users WHERE ({smuggling.format(code='1 = 1')})")
                self.assertEqual(raw[0], 1)  # the smuggled code really runs when sent as is
            for code in ("1 = 1", f"pg_terminate_backend({pid})"):
                with self.subTest(code=code):
                    self.assertEqual(await self.db.count_records(
                        "users", smuggling.format(code=code)), 0)
            await self.db.rollback_transaction(transaction)
            self.assertEqual((await other.execute(text("SELECT 1"))).scalar_one(), 1)

    @timeout(30)
    async def test_ordinary_conditions_still_count(self):
        ann = await self.db.create_test_user({"email": "ann@x.test", "full_name": "O'Brien",
                                              "created_at": NOW})
        await self.db.create_test_user({"email": "Bob@x.test", "full_name": "a:b",
                                        "is_active": False})
        await self.db.create_test_user({"email": "c@x.test", "full_name": "back\\slash:\\"})
        year = ("extract(year from created_at) = 2025" if POSTGRESQL
                else "strftime('%Y', created_at) = '2025'")
        cases = [("email = :email", {"email": "ann@x.test"}, 1),
                 ("id > 0 AND full_name LIKE 'O%'", None, 1),
                 ("lower(email) IN (:a, :b)", {"a": "bob@x.test", "b": "keep@x.test"}, 2),
                 ("created_at IS NOT NULL", None, 1),
                 (f"CAST(id AS TEXT) = '{ann.id}'", None, 1),
                 ("full_name <> 'x' OR full_name IS NULL", None, 4),
                 ("full_name = 'O''Brien'", None, 1),
                 ("full_name = 'a:b'", None, 1),
                 ("full_name = 'back\\slash:\\' OR full_name LIKE '%\\%'", None, 1),
                 ("WHERE NOT is_active", None, 1),
                 ("users.email LIKE :p", {"p": "%@x.test"}, 4),
                 (year, None, 1)]
        for clause, params, expected in cases:
            with self.subTest(clause=clause):
                self.assertEqual(await self.db.count_records("users", clause, params), expected)
        self.assertTrue(self.statements)  # the recorder does see what runs

    @timeout(30)
    async def test_misspelled_column_is_an_error_not_a_string(self):
        with self.assertRaisesRegex(DBAPIError, "emial"):  # SQLite would read "emial" as 'emial'
            async with self.session.begin_nested():  # a query expected to fail (README)
                await self.db.count_records("users", "emial = 'emial'")
        self.assertEqual(await self.db.count_records("users"), 1)


DANGEROUS = ("pg_terminate_backend", "pg_cancel_backend", "set_config", "current_setting",
             "lo_import", "lo_export", "lo_unlink", "pg_read_file", "pg_read_binary_file",
             "pg_ls_dir", "pg_stat_file", "pg_sleep", "pg_reload_conf", "pg_advisory_lock",
             "pg_notify", "dblink", "dblink_exec", "nextval", "setval", "txid_current",
             "query_to_xml", "pg_logical_emit_message", "load_extension", "randomblob",
             "random", "sqlite_version", "last_insert_rowid", "version", "current_database",
             "concat", "replace", "substr", "format")
CALL_CONTEXTS = ("{call}", "{call} IS NULL", "email = {call}", "NOT {call}",
                 "lower({call}) = 'x'", "CASE WHEN {call} THEN 1 ELSE 0 END = 1",
                 "id IN (1, {call})", "coalesce(full_name, {call}) = 'x'",
                 "CAST({call} AS TEXT) = '1'", "id > 0 AND ({call})", "id BETWEEN {call} AND 5",
                 "email LIKE {call}", "{call} || 'x' = 'y'", "abs({call}) = 1",
                 "is_active OR {call} = :n")
function_names = st.one_of(st.sampled_from(DANGEROUS),
                           st.from_regex(r"(pg|lo|fn|x)_[a-z0-9_]{0,10}", fullmatch=True))


@st.composite
def forbidden_calls(draw):
    """A condition with a function outside the allow-list in call position, and its name."""
    name = draw(function_names)
    spelled = draw(st.sampled_from([name, name.upper(), f'"{name}"']))
    args = draw(st.sampled_from(["", "1", ":n", "'x'", "email", "id, 'a', false",
                                 "'/etc/passwd'", "lower(email)"]))
    call = f"{spelled}{draw(st.sampled_from(['', ' ', chr(10), chr(9)]))}({args})"
    return draw(st.sampled_from(CALL_CONTEXTS)).format(call=call), spelled.strip('"')


INT_ATOMS = st.one_of(st.sampled_from(["id", "users.id", '"id"', "ID"]),
                      st.integers(-999, 999).map(str))
LITERAL = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters=":"),
                  max_size=8).map(lambda value: "'" + value.replace("'", "''") + "'")
TEXT_ATOMS = st.one_of(st.sampled_from(["email", "full_name", "users.email", '"full_name"',
                                        "EMAIL"]), LITERAL)
PATTERN = st.text("ab%_xO'@.", max_size=6).map(  # no backslash: PostgreSQL's LIKE escape
    lambda value: "'" + value.replace("'", "''") + "'")
small = st.integers(1, 9)
binary = "({0[0]} {0[1]} {0[2]})".format
int_exprs = st.one_of(
    INT_ATOMS, INT_ATOMS.map("abs({})".format), TEXT_ATOMS.map("length({})".format),
    st.tuples(INT_ATOMS, st.sampled_from(["+", "-"]), INT_ATOMS).map(binary),
    st.tuples(INT_ATOMS, st.sampled_from(["*", "%"]), small).map(binary),  # stays in int range
    INT_ATOMS.map("coalesce(id, {})".format), INT_ATOMS.map("round({})".format))
text_exprs = st.one_of(
    TEXT_ATOMS, st.tuples(st.sampled_from(["lower", "upper", "trim"]), TEXT_ATOMS).map(
        "{0[0]}({0[1]})".format),
    LITERAL.map("coalesce(full_name, {})".format),
    st.tuples(TEXT_ATOMS, TEXT_ATOMS).map("{0[0]} || {0[1]}".format),
    INT_ATOMS.map("CAST({} AS TEXT)".format))
COMPARISON = st.sampled_from(["=", "<>", "!=", "<", "<=", ">", ">="])
LEAVES = [
    st.tuples(int_exprs, COMPARISON, st.one_of(int_exprs, st.just(":n"))).map(" ".join),
    st.tuples(text_exprs, COMPARISON, st.one_of(text_exprs, st.just(":s"))).map(" ".join),
    st.tuples(text_exprs, st.sampled_from(["LIKE", "NOT LIKE"]), PATTERN).map(" ".join),
    st.tuples(int_exprs, st.sampled_from(["BETWEEN", "NOT BETWEEN"]), INT_ATOMS, INT_ATOMS).map(
        "{0[0]} {0[1]} {0[2]} AND {0[3]}".format),
    st.tuples(int_exprs, st.sampled_from(["IN", "NOT IN"]),
              st.lists(st.one_of(INT_ATOMS, st.just(":n")), min_size=1, max_size=3)).map(
        lambda t: f"{t[0]} {t[1]} ({', '.join(t[2])})"),
    st.tuples(text_exprs, st.lists(st.one_of(LITERAL, st.just(":s")), min_size=1, max_size=3)
              ).map(lambda t: f"{t[0]} IN ({', '.join(t[1])})"),
    st.sampled_from(["full_name IS NULL", "full_name IS NOT NULL", "created_at IS NOT NULL",
                     "is_active", "NOT is_active", "is_active = TRUE", "is_active IS FALSE",
                     "created_at < CURRENT_TIMESTAMP", "users.full_name IS NULL"]),
    st.sampled_from(["extract(year from created_at) = 2025", "EXTRACT(MONTH FROM created_at) > 3",
                     "email ILIKE 'A%'", "full_name ILIKE :s"] if POSTGRESQL else
                    ["strftime('%Y', created_at) = '2025'", "date(created_at) = '2025-09-10'"])]
conditions = st.recursive(
    st.one_of(*LEAVES),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["AND", "OR"]), inner).map(
            "({0[0]}) {0[1]} ({0[2]})".format),
        inner.map("NOT ({})".format),
        inner.map("CASE WHEN {} THEN 1 ELSE 0 END = 1".format)),
    max_leaves=4)


class TestWhereClauseGrammar(SSotBaseTestCase):
    """What the allow-list accepts counts like the raw condition; what it refuses never runs."""

    def setUp(self):
        super().setUp()
        for number, (name, active, created) in enumerate([
                ("O'Brien", True, NOW), (None, False, None), ("a%b_c", True, NOW),
                ("back\\slash", False, NOW), ("", True, None), ("Zoë", True, NOW)]):
            self.run_async(self.db.create_test_user({
                "email": f"User{number}@x.test", "full_name": name, "is_active": active,
                "created_at": created}))
        self.statements = recorded_statements(self)

    def bounded(self, coroutine, seconds=20):
        return self.run_async(asyncio.wait_for(coroutine, seconds))

    @PROPERTY
    @given(condition=conditions, prefix=st.sampled_from(["", "WHERE ", "where "]),
           n=st.integers(-999, 999), s=st.sampled_from(["User1@x.test", "O'Brien", "", "x"]))
    def test_allowed_conditions_count_like_the_raw_condition(self, condition, prefix, n, s):
        params = {"n": n, "s": s}
        raw = self.bounded(self.db.fetch_one(
            f"SELECT count(*) FROM users WHERE ({condition})", params))[0]
        self.assertEqual(self.bounded(self.db.count_records("users", prefix + condition, params)),
                         raw, condition)

    @PROPERTY
    @given(call=forbidden_calls())
    def test_disallowed_function_in_call_position_always_refused(self, call):
        clause, name = call
        self.statements.clear()
        with self.assertRaises(QueryGuardError) as caught:
            self.bounded(self.db.count_records("users", clause, {"n": 1}))
        self.assertEqual(self.statements, [], clause)
        if "does not parse" not in str(caught.exception):  # sqlglot checks known arities
            self.assertIn(f"function {name} is not allowed", str(caught.exception))
