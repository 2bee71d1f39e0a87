"""PostgreSQL through asyncpg: the real server serious suites run against.

Databases are created, cloned and dropped over short-lived AUTOCOMMIT
connections to the server's maintenance database (``postgres``), because
``CREATE DATABASE`` cannot run inside a transaction. Names are quoted by the
dialect's identifier preparer and labels rendered as literals by SQLAlchemy,
never formatted into SQL by hand. Cross-process locks are advisory locks
(``postgresql_locks.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import select
from typing import Any, AsyncIterator

from sqlalchemy import String, Table, literal, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from test_framework.backends.base import (Backend, DatabaseRecord, run_id, run_label,
                                          run_lock_key, run_of)
from test_framework.backends.postgresql_locks import (TRY_LOCK, TRY_LOCK_SHARED, UNLOCK,
                                                      UNLOCK_SHARED, lock_parameters,
                                                      run_locks, wait_for_lock)
from test_framework.backends.savepoints import name_savepoints_by_depth
from test_framework.log import get_logger
from test_framework.greenlet_bridge import await_from_sync

logger = get_logger(__name__)

MAINTENANCE_DATABASE = "postgres"
LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"
OBJECT_IN_USE = "55006"
NAME_TAKEN = ("42P04", "42P06")  # duplicate_database, duplicate_schema
INSUFFICIENT_PRIVILEGE = "42501"
INTEGRITY_CLASS = "23"  # foreign key, unique, check, exclusion violations
CONNECTION_CLASSES = {"08", "28", "3D"}  # connection, authorization, unknown database
COMMAND_TIMEOUT_MARGIN = 2.0  # seconds past statement_timeout before the client gives up
RESET_SESSION = ("SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL; "
                 "DISCARD TEMP; DISCARD SEQUENCES")
DIALECT = postgresql.dialect()
SESSIONS_IN_TRANSACTION = text(
    "SELECT pid, state, extract(epoch FROM now() - xact_start)::float, left(query, 120) "
    "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
    "AND pid <> :waiter AND xact_start IS NOT NULL ORDER BY xact_start")
SESSIONS_ON = text(
    "SELECT pid, application_name, state FROM pg_stat_activity "
    "WHERE datname = :n AND pid <> pg_backend_pid()")
# Each sequence a column of a table on the search path owns (serial or identity) goes
# back to what a fresh table would give: after the highest id there, else its START.
# setval, not ALTER SEQUENCE RESTART: on PostgreSQL 15 both give the test its ids, but
# RESTART holds a lock until the test's transaction ends, so another connection's insert
# into that table waits; setval holds none. That setval outlives the rollback does not
# matter: the next test that asks sets it again.
RESET_SEQUENCES = """DO $reset$
DECLARE r record;
BEGIN
  FOR r IN
    SELECT s.oid::regclass AS seq, t.oid::regclass AS tab, a.attname AS col, q.seqstart
    FROM pg_class s
    JOIN pg_namespace n ON n.oid = s.relnamespace
    JOIN pg_sequence q ON q.seqrelid = s.oid
    JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
         AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
    JOIN pg_class t ON t.oid = d.refobjid
    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
    WHERE s.relkind = 'S' AND n.nspname = ANY (current_schemas(false))
  LOOP
    EXECUTE format('SELECT setval(%L, COALESCE((SELECT max(%I) FROM %s) + 1, %s), false)',
                   r.seq, r.col, r.tab, r.seqstart);
  END LOOP;
END
$reset$"""
LIST_TEST_DATABASES = text(
    "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
    "WHERE left(datname, 5) = 'test_' ORDER BY datname")


class PostgreSQLBackend(Backend):
    name = "postgresql"
    driver = "asyncpg"
    extra = "postgres"
    supports_schemas = True
    failed_statement_aborts_transaction = True

    def database_url(self, name: str, *, kept: bool = False) -> URL:
        return self.url.set(database=name)

    @property
    def maintenance_url(self) -> URL:
        """Where admin and lock connections go: the server's own database, never a test's."""
        return self.url.set(database=MAINTENANCE_DATABASE)

    async def create_database(self, url: URL, *, template: URL | None = None,
                              label: str | None = None) -> None:
        statement = f"CREATE DATABASE {_quoted(url.database)}"
        if template is not None:
            statement += f" TEMPLATE {_quoted(template.database)}"
        async with self._admin() as admin:
            await admin.execute(text(statement))
            if label is not None:
                await admin.execute(_comment(url.database, label))

    async def relabel(self, url: URL, label: str) -> None:
        async with self._admin() as admin:
            await admin.execute(_comment(url.database, label))

    async def drop_database(self, url: URL) -> None:
        """Drop the database, ending its other sessions first (PostgreSQL 13+).

        A published template must stop being one before it can be dropped.
        """
        async with self._admin() as admin:
            is_template = (await admin.execute(text(
                "SELECT datistemplate FROM pg_database WHERE datname = :n"),
                {"n": url.database})).scalar()
            if is_template:
                await admin.execute(text(
                    f"ALTER DATABASE {_quoted(url.database)} IS_TEMPLATE false"))
            await admin.execute(text(
                f"DROP DATABASE IF EXISTS {_quoted(url.database)} WITH (FORCE)"))

    async def publish_template(self, url: URL) -> None:
        """Mark a finished template, so any role that may create databases can clone it
        (otherwise only its owner and superusers may)."""
        async with self._admin() as admin:
            await admin.execute(text(f"ALTER DATABASE {_quoted(url.database)} IS_TEMPLATE true"))

    async def may_create_databases(self) -> bool:
        async with self._admin() as admin:
            return bool((await admin.execute(text(
                "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
            ))).scalar())

    def with_search_path(self, options: dict[str, Any], schema: str) -> dict[str, Any]:
        options["connect_args"]["server_settings"]["search_path"] = _quoted(schema)
        return options

    async def create_schema(self, connection: AsyncConnection, name: str, label: str) -> None:
        await connection.execute(text(f"CREATE SCHEMA {_quoted(name)}"))
        await connection.execute(text(f"COMMENT ON SCHEMA {_quoted(name)} IS {_literal(label)}"))

    async def drop_schema(self, connection: AsyncConnection, name: str) -> None:
        await connection.execute(text(f"DROP SCHEMA IF EXISTS {_quoted(name)} CASCADE"))

    async def list_run_schemas(self, connection: AsyncConnection) -> list[DatabaseRecord]:
        rows = (await connection.execute(text(
            "SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace "
            "WHERE left(nspname, 5) = 'test_' ORDER BY nspname"))).all()
        url = connection.engine.url
        return [DatabaseRecord(name, url, label, schema=name) for name, label in rows]

    def clone_blocked(self, exc: BaseException) -> bool:
        """True when a clone failed because someone is connected to the template."""
        return _sqlstate(exc) == OBJECT_IN_USE

    def name_taken(self, exc: BaseException) -> bool:
        return _sqlstate(exc) in NAME_TAKEN

    def explain_provision_error(self, exc: BaseException) -> str:
        """Name the real cause: a missing grant is not a server that is down."""
        sqlstate = _sqlstate(exc)
        user = self.url.username or "the URL's user"
        if sqlstate == INSUFFICIENT_PRIVILEGE:
            return (f"the role {user!r} lacks a privilege the framework needs to create test "
                    f"databases; grant it with ALTER ROLE {_quoted(user)} CREATEDB (run as a "
                    "superuser), or use a URL whose user may create databases")
        if sqlstate is not None and sqlstate[:2] not in CONNECTION_CLASSES:
            return f"the server refused (SQLSTATE {sqlstate}); see its message above"
        return self.explain_connect_error(exc)

    async def rename_database(self, url: URL, name: str) -> URL:
        async with self._admin() as admin:
            await admin.execute(text(
                f"ALTER DATABASE {_quoted(url.database)} RENAME TO {_quoted(name)}"))
        return url.set(database=name)

    async def database_exists(self, url: URL) -> bool:
        async with self._admin() as admin:
            found = await admin.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                        {"n": url.database})
            return found.first() is not None

    async def list_databases(self) -> list[DatabaseRecord]:
        async with self._admin() as admin:
            rows = (await admin.execute(LIST_TEST_DATABASES)).all()
        return [DatabaseRecord(name, self.database_url(name), label) for name, label in rows]

    @contextlib.asynccontextmanager
    async def exclusive(self, key: str) -> AsyncIterator[None]:
        """Wait for ``key`` as long as its holder lives (a build in progress), logging progress.

        A waiter polls instead of blocking in ``pg_advisory_lock``, so the
        server's lock_timeout never cuts a long wait short; a holder that dies
        releases the lock with its connection.
        """
        async with self._admin() as admin:
            await wait_for_lock(admin, key, TRY_LOCK)
            try:
                yield
            finally:
                await admin.execute(UNLOCK, lock_parameters(key))

    @contextlib.asynccontextmanager
    async def shared(self, key: str) -> AsyncIterator[None]:
        async with self._admin() as admin:
            await wait_for_lock(admin, key, TRY_LOCK_SHARED)
            try:
                yield
            finally:
                await admin.execute(UNLOCK_SHARED, lock_parameters(key))

    @contextlib.asynccontextmanager
    async def try_exclusive(self, key: str) -> AsyncIterator[bool]:
        async with self._admin() as admin:
            taken = (await admin.execute(TRY_LOCK, lock_parameters(key))).scalar_one()
            try:
                yield taken
            finally:
                if taken:
                    await admin.execute(UNLOCK, lock_parameters(key))

    async def hold_for_run(self, key: str) -> bool:
        return await run_locks(self).hold(key)

    async def claim_run(self) -> str:
        if not await self.hold_for_run(run_lock_key(run_id())):
            raise RuntimeError(f"this run's own lock {run_id()!r} is held by another process")
        return run_label()

    @contextlib.asynccontextmanager
    async def claim_orphan(self, record: DatabaseRecord) -> AsyncIterator[bool]:
        """An orphan's run lock is free and nothing is connected to it."""
        run = run_of(record.label)
        if run is None or run == run_id():
            yield False
            return
        async with self.try_exclusive(run_lock_key(run)) as free:
            yield free and not await self.sessions_on(record.name)

    async def sessions_on(self, name: str) -> list[str]:
        """Describe the sessions connected to database ``name`` (pid, application, state)."""
        async with self._admin() as admin:
            rows = (await admin.execute(SESSIONS_ON, {"n": name})).all()
        return [f"pid {pid} ({application or 'no application_name'}, {state})"
                for pid, application, state in rows]

    @classmethod
    def connected_database(cls, dbapi_connection) -> str:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT current_database()")
            return cursor.fetchone()[0]
        finally:
            cursor.close()

    async def empty_tables(self, connection: AsyncConnection, tables: list[Table]) -> None:
        """One TRUNCATE for all tables, restarting sequences, as if freshly created."""
        if tables:
            names = ", ".join(DIALECT.identifier_preparer.format_table(t) for t in tables)
            await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))

    async def execute_script(self, connection: AsyncConnection, script: str) -> None:
        """asyncpg runs a multi-statement script through the simple query protocol."""
        raw = await connection.get_raw_connection()
        await raw.driver_connection.execute(script)

    async def relax_foreign_keys(self, connection: AsyncConnection) -> None:
        """Deferrable keys wait for the commit; the others are met by copying parents first."""
        await connection.execute(text("SET CONSTRAINTS ALL DEFERRED"))

    async def reset_sequences(self, connection: AsyncConnection) -> None:
        await connection.exec_driver_sql(RESET_SEQUENCES)

    async def has_deferrable_constraints(self, connection: AsyncConnection) -> bool:
        return bool((await connection.execute(text(
            "SELECT EXISTS (SELECT 1 FROM pg_constraint c JOIN pg_namespace n "
            "ON n.oid = c.connamespace WHERE c.condeferrable "
            "AND n.nspname = ANY (current_schemas(false)))"))).scalar())

    async def deferred_violation(self, connection: AsyncConnection) -> str | None:
        """``SET CONSTRAINTS ALL IMMEDIATE`` checks now what COMMIT would check.

        Sent on the driver's connection, past SQLAlchemy's statement events:
        the sessions' savepoint bookkeeping must not count it as a write. An
        error outside class 23 (integrity) means the transaction had already
        failed, which the test saw; nothing is reported then. The rollback that
        follows undoes the constraint mode with the rest.
        """
        def check(sync_connection) -> str | None:
            cursor = sync_connection.connection.dbapi_connection.cursor()
            try:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            except Exception as exc:
                if not (_sqlstate(exc) or "").startswith(INTEGRITY_CLASS):
                    return None
                detail = getattr(_innermost(exc), "detail", None)
                return f"{_innermost(exc)}" + (f" ({detail})" if detail else "")
            finally:
                cursor.close()
            return None
        return await connection.run_sync(check)

    def engine_options(self, url: URL, *, test_database: bool = False) -> dict[str, Any]:
        """Bound connects, lock waits and statements, so no test can hang the run.

        ``statement_timeout`` is the server's bound, and a server that cannot be
        reached (a network gone dark) never enforces it. ``command_timeout`` is
        asyncpg's own bound on every operation, a little later
        (``COMMAND_TIMEOUT_MARGIN``) so a slow statement still gets the server's
        clearer error first.

        On a ``test_database``'s connections ``synchronous_commit = off``: a
        commit returns without waiting for its WAL to reach the disk (about
        0.1 ms a commit here, so most of a commit-mode test's writes). A server
        crash may then lose the last moments of a test database's commits,
        never its consistency. Administration (creating and dropping databases)
        keeps the server's setting.
        """
        milliseconds = lambda seconds: f"{int(seconds * 1000)}ms"  # noqa: E731
        return {"connect_args": {
            "timeout": self.timeouts.connect,
            "command_timeout": self.timeouts.statement + COMMAND_TIMEOUT_MARGIN,
            "server_settings": {
                "lock_timeout": milliseconds(self.timeouts.lock),
                "statement_timeout": milliseconds(self.timeouts.statement),
                **({"synchronous_commit": "off"} if test_database else {})}}}

    def prepare_engine(self, engine: AsyncEngine) -> None:
        name_savepoints_by_depth(engine)

    def connection_is_closed(self, driver_connection: Any) -> bool:
        """asyncpg notices a server-side close (restart, termination) between tests."""
        return driver_connection.is_closed()

    async def reset_session(self, connection: AsyncConnection) -> None:
        """What a rollback leaves (advisory locks) or a commit kept (``SET``, ``LISTEN``,
        temporary tables, held cursors), cleared as asyncpg's own pool does, in one round
        trip on the driver outside any transaction (SQLAlchemy's would add BEGIN and
        ROLLBACK). ``RESET ALL`` goes back to the connect-time settings (timeouts,
        search_path): they are the session's defaults."""
        raw = await connection.get_raw_connection()
        await raw.driver_connection.execute(RESET_SESSION)

    @contextlib.contextmanager
    def without_transaction(self, dbapi_connection: Any):
        """SQLAlchemy's asyncpg adapter in autocommit sends no BEGIN before the statement
        and no COMMIT after it: one round trip instead of three."""
        dbapi_connection.autocommit = True
        try:
            yield
        finally:
            dbapi_connection.autocommit = False  # back to the connection's isolation level

    def may_have_closed(self, driver_connection: Any) -> bool:
        """Only if something waits unread on its socket: a server that restarted or ended
        the session sent its goodbye there (or closed it), while no loop ran to read it.
        An idle connection has nothing to read, so one poll answers, not four loop passes.
        """
        if driver_connection.is_closed():
            return True
        transport = getattr(driver_connection, "_transport", None)  # asyncpg's, private
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None:
            return True  # cannot tell: let the driver look
        readable, _, _ = select.select([sock.fileno()], [], [], 0)
        return bool(readable)

    def explain_connect_error(self, exc: BaseException) -> str:
        return ("check that PostgreSQL is running and accepts connections at that host and "
                "port (on Debian: pg_ctlcluster --skip-systemctl-redirect <version> main "
                "start), and that the user, password and database in the URL are right")

    def explain_statement_error(self, exc: BaseException, connection=None) -> str | None:
        sqlstate = getattr(exc, "sqlstate", None)
        if sqlstate == LOCK_NOT_AVAILABLE:
            return (f"test_framework: waited lock_timeout ({self.timeouts.lock:g}s) for a lock "
                    f"another session holds. {self._lock_holders(connection)} Often it is a "
                    "second session of the same test that has not committed (in rollback "
                    "mode all sessions share one transaction, so this cannot happen there); "
                    "raise the bound with TEST_FRAMEWORK_LOCK_TIMEOUT")
        if sqlstate == QUERY_CANCELED:
            return (f"test_framework: the statement ran longer than statement_timeout "
                    f"({self.timeouts.statement:g}s) and was cancelled; raise the bound with "
                    "TEST_FRAMEWORK_STATEMENT_TIMEOUT if it is expected to be slow")
        return None

    def _lock_holders(self, connection) -> str:
        """Name the sessions holding transactions open in this database, from a new connection.

        Runs inside SQLAlchemy's greenlet (this is called from ``handle_error``),
        so it may wait on the event loop with ``await_``; bounded by the connect
        timeout, and silent if anything goes wrong.
        """
        try:
            waiter = connection.connection.driver_connection.get_server_pid()
            rows = await_from_sync(self._sessions_in_transaction(connection.engine.url, waiter))
        except Exception:
            return "Find the holder with SELECT pid, state, query FROM pg_stat_activity."
        held = "; ".join(f"pid {pid} ({state}, transaction open {age:.1f}s, last statement: "
                         f"{query!r})" for pid, state, age, query in rows) or "none any more"
        return f"Sessions with a transaction open in this database: {held}. This one: pid {waiter}."

    async def _sessions_in_transaction(self, url: URL, waiter: int) -> list[tuple]:
        engine = create_async_engine(url, poolclass=NullPool, **self.engine_options(url))
        try:
            async with asyncio.timeout(self.connect_timeout + 2), engine.connect() as check:
                result = await check.execute(SESSIONS_IN_TRANSACTION, {"waiter": waiter})
                return [tuple(row) for row in result]
        finally:
            await engine.dispose()

    @contextlib.asynccontextmanager
    async def _admin(self) -> AsyncIterator[AsyncConnection]:
        """An AUTOCOMMIT connection to the maintenance database; connecting is bounded,
        and each statement by the statement timeout (a lock wait is a loop of them)."""
        engine = create_async_engine(
            self.maintenance_url, poolclass=NullPool,
            isolation_level="AUTOCOMMIT", **self.engine_options(self.url))
        try:
            async with asyncio.timeout(self.connect_timeout + 1):
                connection = await engine.connect()
            try:
                yield connection
            finally:
                await connection.close()
        finally:
            await engine.dispose()


def _innermost(exc: BaseException) -> BaseException:
    """The driver's own error at the end of a chain (its message names the constraint)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _sqlstate(exc: BaseException | None) -> str | None:
    """The SQLSTATE anywhere in an exception's chain (SQLAlchemy wraps asyncpg's errors)."""
    while exc is not None:
        sqlstate = getattr(exc, "sqlstate", None) or getattr(getattr(exc, "orig", None),
                                                              "sqlstate", None)
        if sqlstate:
            return sqlstate
        exc = exc.__cause__
    return None


def _comment(database: str, label: str):
    return text(f"COMMENT ON DATABASE {_quoted(database)} IS {_literal(label)}")


def _quoted(name: str) -> str:
    return DIALECT.identifier_preparer.quote_identifier(name)


def _literal(value: str) -> str:
    return str(literal(value, String()).compile(dialect=DIALECT,
                                                compile_kwargs={"literal_binds": True}))
