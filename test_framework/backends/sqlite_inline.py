"""SQLite driven on the event loop's own thread: the driver of test engines.

aiosqlite runs every statement on a worker thread and hands the answer back
to the loop: about 21 thread hops per rollback-mode test, 1.1-1.4 ms of the
~3 ms such a test cost. A test database is a local file, and the loop has
nothing to do while a statement on it works, so a worker thread buys
nothing. ``sqlite+inline`` is SQLAlchemy's pysqlite dialect marked
``is_async``: an ``AsyncEngine`` asks only for that, and the sync code
inside ``greenlet_spawn`` calls ``sqlite3`` directly.

What callers used of aiosqlite works the same on both drivers, so no caller
asks which one it has:

* ``dbapi_connection.run_async(fn)`` (as in pool events) passes ``fn`` the
  driver connection and returns the result of the awaitable it returns;
* the driver connection (``raw.driver_connection``) has aiosqlite's
  coroutines ``execute``, ``executescript``, ``create_function``,
  ``set_progress_handler``, ``commit``, ``rollback`` and its
  ``in_transaction`` and ``isolation_level``.

Waiting is what a loop-thread driver must not do. The busy timeout is short
(``BUSY_WAIT``): ``BEGIN IMMEDIATE``, the one statement that waits for
another connection's lock, retries on the loop (``sqlite_begin.begin_before_write``),
so that connection, perhaps a task of the same test, can commit meanwhile.
Ctrl-C and the statement timeout stop a running statement as before
(``sqlite_interrupts.run_guarded``).

A pooled connection goes from one test class to the next, so each one notes
whether it was changed in a way a rollback does not undo
(``InlineConnection.session_changed``): a pragma set, ``ATTACH``, a SQL
function, collation, authorizer or trace callback registered, a row or text
factory set. The SQLite backend closes such a connection as it returns to
the pool instead of keeping it.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from typing import Any, Awaitable, Callable

from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.base import SQLiteExecutionContext
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine.cursor import FullyBufferedCursorFetchStrategy
from sqlalchemy.exc import MissingGreenlet

from test_framework.backends.sqlite_interrupts import (InterruptibleConnection, run_guarded,
                                                       unwatch_ctrl_c, watch_ctrl_c)
from test_framework.greenlet_bridge import await_from_sync

DRIVER = "inline"
BUSY_WAIT = 0.05  # seconds SQLite itself may wait for a lock, blocking the loop

# Statements that may change the connection beyond its transaction: pragmas, ATTACH, DETACH.
_SESSION_STATEMENT = re.compile(
    r"(?:\s|--[^\n]*(?:\n|$)|/\*(?:[^*]|\*(?!/))*\*/)*(?:PRAGMA\s+(?:\w+\s*\.\s*)?(?P<pragma>\w+)"
    r"\s*(?P<argument>[=(])?|ATTACH\b|DETACH\b)", re.IGNORECASE)
_SCRIPT_SESSION_WORDS = re.compile(r"\b(?:PRAGMA|ATTACH|DETACH)\b", re.IGNORECASE)
# Pragmas that only report, even given an argument in parentheses (a table's name).
_REPORTING_PRAGMAS = frozenset((
    "table_info", "table_xinfo", "table_list", "index_info", "index_xinfo", "index_list",
    "foreign_key_list", "foreign_key_check", "integrity_check", "quick_check",
    "database_list", "collation_list", "function_list", "module_list", "pragma_list",
    "compile_options"))
# What a test can set on the sqlite3 connection itself, which no rollback undoes.
_SESSION_ATTRIBUTES = frozenset(("row_factory", "text_factory", "isolation_level"))
_SESSION_METHODS = ("create_function", "create_aggregate", "create_window_function",
                    "create_collation", "set_authorizer", "set_progress_handler",
                    "set_trace_callback", "setlimit", "enable_load_extension",
                    "load_extension", "deserialize")


def changes_session(sql: str) -> bool:
    """Whether ``sql`` may leave the connection changed after a rollback.

    A pragma that sets (``= value`` or ``(value)``) or ``ATTACH``/``DETACH``
    does; a pragma that reports (``PRAGMA foreign_keys``,
    ``PRAGMA main.table_info("users")``) does not. A script counts if any of
    its statements does; anything unsure counts.
    """
    found = _SESSION_STATEMENT.match(sql)
    if found is None:
        return False
    pragma = found.group("pragma")
    if pragma is None:
        return True  # ATTACH, DETACH
    return found.group("argument") is not None and pragma.lower() not in _REPORTING_PRAGMAS


class InlineCursor(sqlite3.Cursor):
    """A sqlite3 cursor whose every call into SQLite can be stopped by Ctrl-C."""

    def execute(self, sql, parameters=()):
        if changes_session(sql):
            self.connection.session_changed = True
        return run_guarded(sqlite3.Cursor.execute, self, sql, parameters)

    def executemany(self, sql, seq_of_parameters):
        if changes_session(sql):
            self.connection.session_changed = True
        return run_guarded(sqlite3.Cursor.executemany, self, sql, seq_of_parameters)

    def executescript(self, script):
        if _SCRIPT_SESSION_WORDS.search(script) is not None:
            self.connection.session_changed = True  # a pragma anywhere in it: no parsing
        return run_guarded(sqlite3.Cursor.executescript, self, script)

    def fetchone(self):
        return run_guarded(sqlite3.Cursor.fetchone, self)

    def fetchmany(self, size=None):
        return run_guarded(sqlite3.Cursor.fetchmany, self,
                           self.arraysize if size is None else size)

    def fetchall(self):
        return run_guarded(sqlite3.Cursor.fetchall, self)

    async def _async_soft_close(self) -> None:
        """What ``AsyncConnection.execute`` awaits of an async driver's cursor: nothing here."""


class InlineConnection(InterruptibleConnection):
    """The DBAPI connection of ``sqlite+inline``: sqlite3's, with aiosqlite's ``run_async``.

    ``session_changed`` is True once something outside SQL transactions was
    changed (see the module's docstring); the engine's connect listeners
    clear it (``unchanged_from_here``), as what they set every connection has.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.session_changed = False
        self.driver_connection = InlineDriverConnection(self)  # one, as aiosqlite's is
        self._watching = False

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SESSION_ATTRIBUTES:
            object.__setattr__(self, "session_changed", True)
        super().__setattr__(name, value)

    def unchanged_from_here(self) -> None:
        """What was set so far is every connection's (connect listeners), not a test's."""
        self.session_changed = False

    def cursor(self, factory=InlineCursor):
        return sqlite3.Connection.cursor(self, factory)

    # sqlite3's own shortcuts make a plain cursor: these go through ours.
    def execute(self, sql, parameters=()):
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql, seq_of_parameters):
        return self.cursor().executemany(sql, seq_of_parameters)

    def executescript(self, script):
        return self.cursor().executescript(script)

    def commit(self) -> None:
        run_guarded(sqlite3.Connection.commit, self)

    def rollback(self) -> None:
        run_guarded(sqlite3.Connection.rollback, self)

    def checked_out(self) -> None:
        """Ctrl-C stops its statements from now on (a pool ``checkout`` listener).

        Only while it is checked out: a pooled connection outlives the runner
        whose SIGINT handler it would stand in front of, and the next one
        installs its own handler only over the default.
        """
        if not self._watching:
            self._watching = watch_ctrl_c()

    def checked_in(self) -> None:
        """Give SIGINT back (a pool ``checkin`` listener; closing does it too)."""
        if self._watching:
            self._watching = False
            unwatch_ctrl_c()

    def close(self) -> None:
        sqlite3.Connection.close(self)
        self.checked_in()

    def run_async(self, fn: Callable[[InlineDriverConnection], Awaitable[Any]]) -> Any:
        """Run ``fn(driver_connection)``'s awaitable to its end, as aiosqlite's adapter does."""
        return finish_now(fn(self.driver_connection))


def _noting_change(name: str) -> Callable:
    method = getattr(sqlite3.Connection, name)

    def changing(self, *args, **kwargs):
        self.session_changed = True
        return method(self, *args, **kwargs)
    changing.__name__ = changing.__qualname__ = name
    changing.__doc__ = f"sqlite3's ``{name}``, noting that the connection changed."
    return changing


for _name in _SESSION_METHODS:
    if hasattr(sqlite3.Connection, _name):  # load_extension: only if Python was built with it
        setattr(InlineConnection, _name, _noting_change(_name))


def finish_now(awaitable: Awaitable[Any]) -> Any:
    """Drive an awaitable that never suspends (the driver connection's) to its result."""
    steps = awaitable.__await__()
    try:
        steps.send(None)
    except StopIteration as done:
        return done.value
    steps.close()
    raise RuntimeError(f"{awaitable!r} suspended; the inline SQLite driver cannot wait")


class InlineDriverConnection:
    """aiosqlite's ``Connection`` methods that tests and the framework call, done at once."""

    __slots__ = ("_connection",)

    def __init__(self, connection: InlineConnection) -> None:
        self._connection = connection

    def __repr__(self) -> str:
        return f"<InlineDriverConnection {self._connection!r}>"

    @property
    def in_transaction(self) -> bool:
        return self._connection.in_transaction

    @property
    def isolation_level(self) -> str | None:
        return self._connection.isolation_level

    async def execute(self, sql: str, parameters=()) -> sqlite3.Cursor:
        return self._connection.cursor().execute(sql, parameters)

    async def executemany(self, sql: str, seq_of_parameters) -> sqlite3.Cursor:
        return self._connection.cursor().executemany(sql, seq_of_parameters)

    async def executescript(self, script: str) -> sqlite3.Cursor:
        return self._connection.cursor().executescript(script)

    async def create_function(self, name: str, num_params: int, func: Callable,
                              deterministic: bool = False) -> None:
        self._connection.create_function(name, num_params, func, deterministic=deterministic)

    async def set_progress_handler(self, handler: Callable[[], Any] | None, n: int) -> None:
        self._connection.set_progress_handler(handler, n)

    async def commit(self) -> None:
        self._connection.commit()

    async def rollback(self) -> None:
        self._connection.rollback()


def _yield_to_the_loop() -> None:
    """Let other tasks run once before a statement, as an async driver's await does.

    Tasks then interleave at statements as they do on aiosqlite or asyncpg,
    so a test sees the orders production can see (and two tasks sharing one
    session are caught: ``ssot/session_tasks.py``); it also satisfies
    ``AsyncConnection.execute``'s check that an await happened. One loop
    pass costs microseconds, a worker-thread round trip about 50.
    """
    try:
        await_from_sync(asyncio.sleep(0))
    except MissingGreenlet:  # the sync engine used outside greenlet_spawn: nobody to yield to
        pass


class InlineExecutionContext(SQLiteExecutionContext):
    def create_server_side_cursor(self):
        return self._dbapi_connection.cursor()  # sqlite3 steps rows as they are fetched

    def post_exec(self) -> None:
        """Read a statement's rows as it runs, as aiosqlite's and asyncpg's adapters do.

        sqlite3 steps rows only as they are fetched, and SQLite refuses to
        commit while a write is still in progress: an ``INSERT ... RETURNING``
        whose rows were read after its transaction's commit failed ("cannot
        commit transaction - SQL statements in progress"). Server-side
        cursors (``stream_results``) still step row by row.
        """
        super().post_exec()
        cursor = self.cursor
        if cursor.description is not None and not self._is_server_side \
                and not self.executemany:
            self.cursor_fetch_strategy = FullyBufferedCursorFetchStrategy(
                cursor, cursor.description, cursor.fetchall())


class SQLiteDialect_inline(SQLiteDialect_pysqlite):
    """pysqlite, marked async: statements run on the loop's thread, without a worker."""

    driver = DRIVER
    is_async = True
    supports_statement_cache = True
    supports_server_side_cursors = True
    execution_ctx_cls = InlineExecutionContext

    @classmethod
    def get_pool_class(cls, url):
        return pool.AsyncAdaptedQueuePool if cls._is_url_file_db(url) else pool.StaticPool

    def create_connect_args(self, url):
        args, options = super().create_connect_args(url)
        options["factory"] = InlineConnection
        return args, options

    def get_driver_connection(self, connection):
        return connection.driver_connection

    def do_execute(self, cursor, statement, parameters, context=None) -> None:
        _yield_to_the_loop()
        cursor.execute(statement, parameters)

    def do_execute_no_params(self, cursor, statement, context=None) -> None:
        _yield_to_the_loop()
        cursor.execute(statement)

    def do_executemany(self, cursor, statement, parameters, context=None) -> None:
        _yield_to_the_loop()
        cursor.executemany(statement, parameters)


dialect = SQLiteDialect_inline


def register() -> None:
    """Make ``sqlite+inline://`` URLs load this dialect (the module is imported on first use)."""
    registry.register(f"sqlite.{DRIVER}", __name__, "SQLiteDialect_inline")
