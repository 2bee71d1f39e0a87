"""AsyncTestDatabase: the helper tests use to query, create rows and clean up.

It wraps an ``AsyncSession`` it does not own. Raw SQL goes through ``text()``
with bound parameters; table names are checked against the database; rows
made through ``create*`` are tracked and removed by ``cleanup()``.

By default (``autocommit=True``) a statement this helper runs commits on its
own when no transaction the test opened is in progress, so rows are visible
to application code using other sessions and no read keeps locks; a failed
statement is rolled back so the session stays usable. Inside
``begin_transaction()`` nothing commits until you say so.

The rollback isolation mode passes ``delete_rows_on_cleanup=False`` and
``hold_read_transactions=True``: its outer rollback removes every row, and
all its sessions share one connection, so there are no locks to release. It
also passes that ``connection``: a helper statement that would begin and end
a transaction of its own (the session holds none, so nothing is pending)
runs on it directly, with the savepoint bookkeeping the session's
transaction would have had (``shared_savepoints.run_alone``) but without
SQLAlchemy's session machinery, which cost more than the statement.
Commit mode passes the test's connection too (a lone statement commits on
it at once) and its backend's ``without_transaction``: one statement that
would begin and commit a transaction of its own (a read, a ``create`` that
makes no parent row, a cleanup that is one DELETE) runs without one, which
on PostgreSQL saves the BEGIN and COMMIT round trips.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any, Awaitable, Callable, ContextManager, Iterable, Mapping

from sqlalchemy import MetaData, Table, func, insert, select, table, text
from sqlalchemy.engine import Result, Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, AsyncSessionTransaction
from sqlalchemy.sql.expression import ClauseElement, Executable

from test_framework.errors import CleanupError, ConcurrentSessionsError, QueryGuardError
from test_framework.log import get_logger
from test_framework.backends import require_test_connection
from test_framework.ssot.factories import RowFactory
from test_framework.ssot.query_guards import check_where_clause, split_table_name
from test_framework.ssot.session_tasks import used_by_two_tasks
from test_framework.ssot.shared_savepoints import Writer, run_alone
from test_framework.ssot.tables import (DEFAULT_TABLES, TableLookup, column_conditions,
                                        require_primary_key, table_mapping, typed_parameters)
from test_framework.ssot.tracking import RowTracker, TrackedRow, deletes_in_one_statement

__all__ = ["AsyncTestDatabase", "DEFAULT_TABLES"]

logger = get_logger(__name__)
# A read run in the cleanup's transaction, after its DELETEs (``cleanup(before_commit=...)``).
CleanupRead = Callable[[AsyncConnection], Awaitable[Any]]


class AsyncTestDatabase:
    """Async database helper for tests: queries, tracked test rows, transactions, cleanup."""

    def __init__(self, session: AsyncSession | None = None, *,
                 tables: Mapping[str, str] | None = None,
                 metadata: MetaData | None = None, autocommit: bool = True,
                 delete_rows_on_cleanup: bool = True,
                 hold_read_transactions: bool = False,
                 without_transaction: Callable[[Any], ContextManager] | None = None,
                 connection: AsyncConnection | None = None,
                 make_session: Callable[[], AsyncSession] | None = None,
                 name: str = "self.db") -> None:
        if session is None and make_session is None:
            raise TypeError("AsyncTestDatabase needs a session (or make_session to make one)")
        self._session = session
        self._make_session = make_session
        self.tables = table_mapping(tables)
        self.metadata = metadata
        self.autocommit = autocommit
        self.delete_rows_on_cleanup = delete_rows_on_cleanup
        self.hold_read_transactions = hold_read_transactions
        self._without_transaction = without_transaction
        self._connection = connection  # the test's: where a lone statement runs
        self._lone_writer = Writer(name)  # who its lone statements are credited to
        self._tracker = RowTracker(lambda: self.session)
        self._transactions: list[AsyncSessionTransaction] = []
        self._autobegun: object | None = None
        self._tables = TableLookup(lambda: self.session, metadata, connection=connection)
        self._running_in: asyncio.Task | None = None  # the task inside a helper call

    def __repr__(self) -> str:
        return (f"<AsyncTestDatabase tracked={len(self.tracked_rows)} "
                f"open_transactions={len(self._transactions)}>")

    @property
    def session(self) -> AsyncSession:
        """The session the helpers share with the test (``self.session``). Given, or made
        on first need: a test whose helper calls all run alone never makes one."""
        if self._session is None:
            self._session = self._make_session()
        return self._session

    @session.setter
    def session(self, session: AsyncSession) -> None:
        self._session = session

    def connection_released(self) -> None:
        """The test's connection went back to the pool (commit mode's teardown): from here
        on, statements go through the session, which falls back to the engine, so a
        cleanup that runs after teardown can still use the helpers."""
        self._connection = None
        self._tables.connection_released()

    @property
    def dialect(self):
        """The SQLAlchemy dialect of the database the helpers run on."""
        return self._tables.dialect

    @property
    def tracked_rows(self):
        """Rows created through this helper and not yet removed (committed ones first)."""
        return self._tracker.committed_rows + self._tracker.pending_rows

    # -- raw SQL ----------------------------------------------------------------

    async def execute_query(self, query: str | Executable,
                            params: Mapping[str, Any] | None = None) -> Result:
        """Run raw SQL (or a Core statement) with bound parameters; return the buffered result."""
        async with self._statement(write=True):
            return await self._execute(*_as_statement(query), params)

    async def fetch_one(self, query: str | Executable,
                        params: Mapping[str, Any] | None = None) -> Row | None:
        """Run a query (SQL text or a Core ``select``) and return its first row, or None."""
        async with self._statement(write=False):
            return (await self._execute(*_as_statement(query), params)).first()

    async def fetch_all(self, query: str | Executable,
                        params: Mapping[str, Any] | None = None) -> list[Row]:
        """Run a query (SQL text or a Core ``select``) and return all its rows."""
        async with self._statement(write=False):
            return list((await self._execute(*_as_statement(query), params)).all())

    # -- test rows ----------------------------------------------------------------

    async def create(self, table_name: str, data: Mapping[str, Any] | None = None,
                     **parents: Any) -> Row:
        """Insert one row into ``table_name`` and track it; return it with all columns.

        Columns ``data`` leaves out are made up where the row needs them, and a
        required foreign key gets a parent row (see factories.py); pass an existing
        parent by its table's name or ``tables`` kind: ``create("tasks", projects=p)``.
        """
        return await self._create_row(table_name, data, parents, caller=f"create({table_name!r})")

    async def create_test_user(self, user_data: Mapping[str, Any] | None = None) -> Row:
        """Insert a user row (table ``tables["user"]``, default ``users``)."""
        return await self._create_row(self.tables["user"], user_data, {},
                                      caller="create_test_user()")

    async def create_test_thread(self, thread_data: Mapping[str, Any] | None = None, *,
                                 user: Any = None) -> Row:
        """Insert a thread row (table ``tables["thread"]``), owned by ``user`` if given."""
        return await self._create_row(self.tables["thread"], thread_data, {"user": user},
                                      caller="create_test_thread()")

    async def create_test_message(self, message_data: Mapping[str, Any] | None = None, *,
                                  thread: Any = None) -> Row:
        """Insert a message row (table ``tables["message"]``), in ``thread`` if given."""
        return await self._create_row(self.tables["message"], message_data, {"thread": thread},
                                      caller="create_test_message()")

    async def _create_row(self, table_name: str, data, parents: Mapping[str, Any], *,
                          caller: str) -> Row:
        """Run ``create`` and its parents as one statement: one commit, or one rollback."""
        async with self._statement(write=True):
            factory = RowFactory(self._tables, self._insert_row, self.tables)
            return await factory.create(table_name, data, parents, caller=caller)

    async def _insert_row(self, target: Table, values: dict[str, Any], *,
                          only: bool = False) -> Row:
        """Insert one row and track it; ``only``: the helper call's one statement."""
        if self.delete_rows_on_cleanup:
            require_primary_key(target)
        for value in values.values():  # a loop, not any(): a generator costs a call a value
            if isinstance(value, ClauseElement):  # SQL expressions: a statement of their own
                statement, params = insert(target).values(values).returning(*target.c), None
                break
        else:  # one statement per table, built once: values go as parameters
            statement, params = _insert_returning(target), values
        committed_at_once = only and self._can_go_alone()
        if committed_at_once:  # no context manager on the common path: it costs each call
            async with self._alone():
                row = (await self._execute(statement, True, params)).one()
        else:  # a Core INSERT on a Table: alone where it is the call's one statement
            row = (await self._execute(statement, only, params)).one()
        if self.delete_rows_on_cleanup:
            key = tuple(row._mapping[column.name] for column in target.primary_key.columns)
            self._tracker.track(target, key, committed=committed_at_once)
        return row

    # -- inspection ----------------------------------------------------------------

    async def count_records(self, table_name: str, where_clause: str = "",
                            params: Mapping[str, Any] | None = None, **filters: Any) -> int:
        """Count rows in a real table matching a condition with bound ``params`` and
        ``column=value`` filters; values meant for a column bind through its type."""
        schema, name = split_table_name(table_name)
        dialect = self.dialect
        condition = check_where_clause(where_clause, dialect=dialect.name) if where_clause else ""
        if params and not condition:
            raise QueryGuardError(
                f"count_records({table_name!r}) got params {sorted(params)} but no where_clause "
                "to use them in; pass a condition such as 'email = :email'")
        values = dict(params or {})
        async with self._statement(write=False):
            await self._tables.require(table_name)
            source, conditions = table(name, schema=schema), []
            if values or filters:
                source = await self._tables.get(table_name, filters.keys())
                conditions = column_conditions(source, filters, dialect=dialect,
                                               caller=f"count_records({table_name!r})")
            if condition:
                clause = text(f"({condition})")
                if values:
                    binds, values = typed_parameters(where_clause, values, source, dialect)
                    clause = clause.bindparams(*binds)
                conditions.insert(0, clause)
            query = select(func.count()).select_from(source)
            if conditions:
                query = query.where(*conditions)
            return (await self._execute(query, True, values)).scalar_one()

    async def table(self, table_name: str, columns: Iterable[str] = ()) -> Table:
        """Return the ``Table`` the helpers use for a name (from ``metadata``, else reflected;
        reflected too when the metadata's version lacks any of ``columns``)."""
        async with self._statement(write=False):
            return await self._tables.get(table_name, columns)

    async def table_exists(self, table_name: str) -> bool:
        """Return whether the table exists (``schema.table`` allowed where schemas exist)."""
        async with self._statement(write=False):
            return await self._tables.exists(table_name)

    # -- transactions ----------------------------------------------------------------

    async def begin_transaction(self) -> AsyncSessionTransaction:
        """Open a transaction, or a savepoint inside the one already open."""
        if self.session.in_transaction():
            transaction = await self.session.begin_nested()
        else:
            transaction = await self.session.begin()
        self._transactions.append(transaction)
        return transaction

    async def commit_transaction(self, transaction: AsyncSessionTransaction | None = None) -> None:
        """Commit ``transaction`` (default: the innermost one opened here, else the session's)."""
        transaction = self._pop_transaction(transaction)
        if transaction is None:
            await self.session.commit()
        else:
            await transaction.commit()

    async def rollback_transaction(self, transaction: AsyncSessionTransaction | None = None) -> None:
        """Roll back ``transaction`` (default: the innermost one opened here, else the session's)."""
        transaction = self._pop_transaction(transaction)
        if transaction is None:
            await self.session.rollback()
        elif transaction.is_active:
            await transaction.rollback()

    # -- cleanup ----------------------------------------------------------------

    async def cleanup_test_data(self, *, before_commit: CleanupRead | None = None) -> None:
        """Delete every tracked row, children before parents, and commit.

        ``before_commit`` is awaited with the session's connection after the
        DELETEs, inside their transaction (one is opened for it if nothing was
        tracked): a read that must follow the cleanup, such as commit mode's
        leftover count, then costs one statement, not a transaction of its own.
        The deletion never depends on it: if it fails, the rows are deleted and
        committed without it, and its error is raised.
        """
        if self._transactions:
            raise CleanupError(
                f"cleanup_test_data() called with {len(self._transactions)} transaction(s) "
                "from begin_transaction() still open; commit or roll them back first, "
                "or call cleanup(), which rolls them back")
        rows = self.tracked_rows
        if not rows and before_commit is None:
            return
        try:
            failure = await self._delete_and_commit(rows, before_commit)
            if failure is not None:
                await self._delete_and_commit(rows, None, again=True)
                raise failure
        finally:
            self._autobegun = None

    async def cleanup(self, *, before_commit: CleanupRead | None = None) -> None:
        """Roll back what the test left open, then delete tracked rows; safe to call twice.

        ``before_commit``: as in ``cleanup_test_data``.
        """
        try:
            while self._transactions:
                transaction = self._transactions.pop()
                if transaction.is_active:
                    await transaction.rollback()
            if self._session_holds_transaction():
                await self.session.rollback()
            self._autobegun = None
            await self.cleanup_test_data(before_commit=before_commit)
        finally:
            self._tracker.close()

    async def _delete_and_commit(self, rows: list[TrackedRow], before_commit: CleanupRead | None,
                                 *, again: bool = False) -> Exception | None:
        """In one transaction: DELETE ``rows``, await ``before_commit``, commit.

        Return ``before_commit``'s error, after rolling back; raise ``CleanupError``
        if the rows cannot be deleted. ``again``: the tracker forgot ``rows`` in
        a first attempt that was rolled back; track them once more.
        """
        try:
            alone = deletes_in_one_statement(rows) and self._can_go_alone()
            connection = await self.session.connection()
            async with self._alone() if alone else contextlib.nullcontext():
                if rows:
                    await require_test_connection(connection, "delete rows from")
                    for row in rows if again else ():
                        self._tracker.track(row.table, row.key)
                    await self._tracker.delete_all()
                if before_commit is not None:
                    try:
                        await before_commit(connection)
                    except Exception as exc:
                        await self._rollback_quietly()
                        return exc
            await self.session.commit()
        except Exception as exc:
            await self._rollback_quietly()
            if not rows:
                raise
            tables = sorted({row.table.fullname for row in rows})
            raise CleanupError(
                f"could not delete the rows this test created in {tables}: "
                f"{type(exc).__name__}: {exc}. If other rows now reference them, delete "
                "those first, or use isolation = 'rollback'") from exc
        return None

    async def _rollback_quietly(self) -> None:
        with contextlib.suppress(Exception):
            await self.session.rollback()

    # -- internals ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _statement(self, *, write: bool):
        """Run one helper operation: note an implicit BEGIN, commit or roll it back.

        Reads end their implicit transaction too, unless ``hold_read_transactions``:
        an open read holds SQLite's shared lock (other connections cannot commit)
        and PostgreSQL's table locks (their DDL or TRUNCATE would wait).
        """
        outer = self._one_task_at_a_time()
        try:
            began = not self._session_holds_transaction()
            try:
                if not write and self._can_go_alone():  # writes decide per statement
                    async with self._alone():
                        yield
                else:
                    yield
            except BaseException:
                if self.autocommit and not self._transactions and self._session is not None \
                        and (began or self._owns_transaction()):
                    await self._rollback_quietly()
                    self._autobegun = None
                raise
            if began and self._session is not None:
                self._autobegun = self._session.sync_session.get_transaction()
            ends = write or not self.hold_read_transactions
            if ends and self.autocommit and not self._transactions and self._owns_transaction():
                try:
                    await self.session.commit()
                except BaseException:  # a deferred constraint: the session would stay unusable
                    await self._rollback_quietly()
                    raise
                finally:
                    self._autobegun = None
        finally:
            self._running_in = outer

    def _one_task_at_a_time(self) -> asyncio.Task | None:
        """Refuse a helper call while another task's is still running; return the task
        whose call this one is inside (the same task, or none) for the caller to restore.

        The helpers share one session, which is not safe to use from two tasks at
        once (``asyncio.gather`` of two helper calls): its transaction and the rows
        it tracks would mix, in any isolation mode.
        """
        me, running = asyncio.current_task(), self._running_in
        if running is not None and running is not me and not running.done():
            raise ConcurrentSessionsError(used_by_two_tasks(
                "self.db", repr(running.get_name()), repr(me.get_name())))
        self._running_in = me
        return running

    def _can_go_alone(self) -> bool:
        """Whether one statement that would begin and commit a transaction of its own may
        run without one: the backend saves by it (``without_transaction``), no
        transaction is open, and nothing pending would be flushed (a flush of several
        rows must stay one transaction)."""
        if self._without_transaction is None or not self.autocommit or self._transactions \
                or self.hold_read_transactions:
            return False
        session = self._session  # one not made yet has nothing open or pending
        return session is None or not session.in_transaction() and not (
            session.new or session.dirty or session.deleted)

    @contextlib.asynccontextmanager
    async def _alone(self):
        """Run what follows without a transaction (what it writes is committed at once)."""
        connection = self._connection or await self.session.connection()
        raw = await connection.get_raw_connection()
        with self._without_transaction(raw.dbapi_connection):
            yield

    def _owns_transaction(self) -> bool:
        if self._session is None:
            return False
        current = self._session.sync_session.get_transaction()
        return current is not None and current is self._autobegun

    def _session_holds_transaction(self) -> bool:
        return self._session is not None and self._session.in_transaction()

    async def _execute(self, statement, alone: bool,
                       params: Mapping[str, Any] | None = None) -> Result:
        """Run ``statement`` through the session, or alone on the test's connection.

        ``alone``: the statement is plain Core or SQL text, whose rows are the
        same either way (an ORM ``select`` returns objects only through a session).
        """
        params = dict(params or {})
        try:
            if alone and self._runs_alone():
                return await self._connection.run_sync(run_alone, self._lone_writer,
                                                       statement, params)
            return await self.session.execute(statement, params)
        except Exception as exc:
            logger.debug("statement failed: %s (%s: %s)", statement, type(exc).__name__, exc)
            raise

    def _runs_alone(self) -> bool:
        """Whether a statement may skip the session: on the test's connection, with no
        transaction of the session's or the test's open. Nothing is pending
        then either: SQLAlchemy 2 begins the session's transaction as soon as an
        object is added, changed or deleted (the session would flush it first)."""
        return (self._connection is not None and self.autocommit and not self._transactions
                and not self._session_holds_transaction())

    def _pop_transaction(self, transaction):
        if transaction is None:
            return self._transactions.pop() if self._transactions else None
        if transaction in self._transactions:
            del self._transactions[self._transactions.index(transaction):]
        return transaction


def _as_statement(query: str | Executable) -> tuple[Executable, bool]:
    """The statement for ``query``, and whether it may run alone: not an ORM statement,
    whose rows are objects only through a session (SQLAlchemy's private
    ``_propagate_attrs`` is how its own ``Session.execute`` tells them apart;
    ``tests/ssot/test_helpers_alone.py`` checks an ORM select still returns
    objects), and not one that streams its rows (``stream_results``): those are
    read after the helper returns, when a lone statement's transaction has
    ended, so the session refuses it as it always did."""
    if isinstance(query, str):
        return _text(query), True
    plugin = getattr(query, "_propagate_attrs", {}).get("compile_state_plugin")
    streams = query.get_execution_options().get("stream_results", False) \
        if hasattr(query, "get_execution_options") else False
    return query, plugin != "orm" and not streams


@functools.lru_cache(maxsize=1024)
def _text(query: str) -> Executable:
    """One ``text()`` per SQL string: building it (and its cache key) again costs each call."""
    return text(query)


@functools.lru_cache(maxsize=512)
def _insert_returning(target: Table) -> Executable:
    return insert(target).returning(*target.c)
