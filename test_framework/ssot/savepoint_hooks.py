"""Where SQLAlchemy tells the sessions' ledger what happens on the one connection.

``shared_savepoints.SharedSavepoints`` decides what each session's savepoint
statements send; this module connects it: the dialect's documented savepoint
hooks on the engine's own dialect instance (as ``backends/savepoints.py``
does, whose depth names stay underneath), the engine's statement and error
events, the session events (registered once, on ``Session``), and the test's
own savepoint, sent on the driver's cursor. Every hook finds its ledger in
the connection's or the session's ``info`` under ``LEDGER_KEY`` and does
nothing where there is none.
"""

from __future__ import annotations

import functools
import re
from functools import partial
from typing import Callable, NamedTuple

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from test_framework.backends.savepoints import STACK as DEPTH_NAMES

LEDGER_KEY = "test_framework_shared_savepoints"
_FIRST_WORD = re.compile(r"\s*([A-Za-z]+)")
_ENDS = {"RELEASE", "ROLLBACK", "COMMIT", "BEGIN", "END"}
_READS = {"SELECT", "SHOW", "EXPLAIN", "VALUES"}


class SavepointSql(NamedTuple):
    """The dialect's own savepoint statements, each taking a savepoint's name."""

    release: Callable[[str], None]
    rollback_to: Callable[[str], None]


def begin_base(connection: Connection, name: str) -> None:
    """Make the test's savepoint, which every test of the class rolls back to and keeps."""
    _driver_sql(connection, f"SAVEPOINT {name}")


def rollback_to_base(connection: Connection, name: str) -> None:
    """Undo everything since the test's savepoint, keeping it; forget the savepoints above.

    On the driver's cursor, past SQLAlchemy: this may run inside SQLAlchemy's
    own savepoint handling, and it is bookkeeping, not the test's work.
    """
    _driver_sql(connection, f"ROLLBACK TO SAVEPOINT {name}")
    connection.info.pop(DEPTH_NAMES, None)


def _driver_sql(connection: Connection, sql: str) -> None:
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


def share_savepoints(engine: AsyncEngine) -> None:
    """Send the engine's savepoint SQL through its connection's ``SharedSavepoints``, if any.

    The dialect's documented savepoint hooks on this engine's own dialect
    instance, as ``backends/savepoints.py`` does (its depth names stay under).
    """
    if event.contains(engine.sync_engine, "before_cursor_execute", _on_statement):
        return
    dialect = engine.dialect
    savepoint, release = dialect.do_savepoint, dialect.do_release_savepoint
    rollback_to = dialect.do_rollback_to_savepoint

    def do_savepoint(connection, name):
        if (ledger := connection.info.get(LEDGER_KEY)) is not None:
            ledger.take_turn(opening=True)  # before the name: hooks beneath count depth
            return ledger.made(name, partial(savepoint, connection, name))
        savepoint(connection, name)

    def do_release_savepoint(connection, name):
        if (ledger := connection.info.get(LEDGER_KEY)) is None:
            return release(connection, name)
        ledger.release(name, SavepointSql(partial(release, connection),
                                          partial(rollback_to, connection)))

    def do_rollback_to_savepoint(connection, name):
        if (ledger := connection.info.get(LEDGER_KEY)) is None:
            return rollback_to(connection, name)
        ledger.rollback(name, SavepointSql(partial(release, connection),
                                           partial(rollback_to, connection)))

    dialect.do_savepoint = do_savepoint
    dialect.do_release_savepoint = do_release_savepoint
    dialect.do_rollback_to_savepoint = do_rollback_to_savepoint
    event.listen(engine.sync_engine, "before_cursor_execute", _on_statement)
    event.listen(engine.sync_engine, "handle_error", _on_error)


@functools.cache
def follow_sessions() -> None:
    """Listen on ``Session`` once; each listener finds its ledger in the session's ``info``."""
    event.listen(Session, "after_begin", _session_began)
    event.listen(Session, "do_orm_execute", _session_runs)
    event.listen(Session, "before_flush", _session_flushes)


def _session_began(session: Session, transaction, connection: Connection) -> None:
    if (ledger := session.info.get(LEDGER_KEY)) is not None:
        ledger._began(session, transaction, connection)


def _session_runs(state) -> None:
    if (ledger := state.session.info.get(LEDGER_KEY)) is not None:
        ledger._runs(state.session)


def _session_flushes(session: Session, *_) -> None:
    if (ledger := session.info.get(LEDGER_KEY)) is not None:
        ledger._runs(session)


def _on_statement(conn, cursor, statement, parameters, context, executemany) -> None:
    if (ledger := conn.info.get(LEDGER_KEY)) is not None:
        ledger.statement(statement, context)


def _on_error(context) -> None:
    if context.sqlalchemy_exception is None or context.is_disconnect \
            or context.connection is None or context.statement is None:
        return
    if (ledger := context.connection.info.get(LEDGER_KEY)) is not None:
        ledger.failed(context.statement, context.execution_context)


def statement_kind(statement: str, context) -> str:
    """'end' (RELEASE, COMMIT...), 'savepoint', 'read', or 'write' for anything else."""
    match = _FIRST_WORD.match(statement)
    word = match.group(1).upper() if match else ""
    if word in _ENDS:
        return "end"
    if word == "SAVEPOINT":
        return "savepoint"
    if context is not None and (context.isinsert or context.isupdate or context.isdelete):
        return "write"
    if word == "PRAGMA":  # SQLite: a question (table_info) reads, a setting (x = y) writes
        return "write" if "=" in statement else "read"
    compiled = getattr(getattr(context, "compiled", None), "statement", None)
    return "read" if word in _READS or getattr(compiled, "is_select", False) else "write"
