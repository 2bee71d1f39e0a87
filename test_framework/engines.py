"""Build an AsyncEngine for a provisioned database with its backend's options.

Every connection such an engine opens is first asked which database it is
on (``backends.guard_connection``): a connection that is not on a ``test_``
database is refused before any statement of the framework or a test runs.

Every engine logs its SQL at DEBUG on ``test_framework.sql`` (with the test
id), and feeds the statement counters that ``get_all_metrics()`` and query
assertions read.
"""

from __future__ import annotations

import logging
from typing import Callable

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from test_framework.backends import Backend, guard_connection
from test_framework.log import get_logger, mask_secrets

sql_logger = get_logger("test_framework.sql")
StatementListener = Callable[[str, object], None]

def create_engine(backend: Backend, url: URL, *, search_path: str | None = None,
                  on_statement: StatementListener | None = None,
                  shared: bool = False) -> AsyncEngine:
    """Create an engine for ``url`` with the backend's hooks and our statement listener.

    ``search_path`` makes its connections work in a run's own schema;
    ``shared``: class after class uses the engine (``ssot/shared_engines.py``);
    the backend says how its pool hands connections on.
    """
    url = backend.engine_url(url)
    options = backend.engine_options(url, test_database=True)
    if shared:
        options = {**options, **backend.shared_engine_options()}
    if search_path is not None:
        options = backend.with_search_path(options, search_path)
    engine = create_async_engine(url, **options)
    backend.prepare_engine(engine)

    def before_cursor_execute(conn, cursor, statement, parameters, context, executemany):
        if sql_logger.isEnabledFor(logging.DEBUG):
            sql_logger.debug("%s %s", statement, mask_secrets(repr(parameters)))
        if on_statement is not None:
            on_statement(statement, parameters)

    def handle_error(context) -> None:
        """Add a plain note where the driver's words do not say what happened or what to do."""
        error = context.sqlalchemy_exception
        if error is None:
            if isinstance(context.original_exception, TimeoutError):
                context.original_exception.add_note(
                    f"test_framework: the database did not answer within statement_timeout "
                    f"({backend.timeouts.statement:g}s) plus a margin, so the client gave up: "
                    "the server or the network to it is unreachable (the server's own "
                    "timeout cannot fire then). The connection is dropped; the next test "
                    "gets a new one")
            return
        if context.is_disconnect:
            error.add_note(
                "test_framework: the database connection was lost (killed, or the server "
                "restarted); this test's uncommitted work is gone, the next test gets a new "
                "connection")
        note = backend.explain_statement_error(context.original_exception, context.connection)
        if note:
            error.add_note(note)

    def connect(dbapi_connection, connection_record) -> None:
        guard_connection(type(backend), dbapi_connection, connection_record.info, "use")

    def checkout(dbapi_connection, connection_record, connection_proxy) -> None:
        """Refuse a pooled connection the server closed (a restart): the pool makes another.

        ``pool_pre_ping`` without its round trip: the driver already knows.
        """
        if backend.connection_is_closed(dbapi_connection.driver_connection):
            raise DisconnectionError("closed by the server while in the pool")

    event.listen(engine.sync_engine, "connect", connect)
    event.listen(engine.sync_engine, "checkout", checkout)
    event.listen(engine.sync_engine, "before_cursor_execute", before_cursor_execute)
    event.listen(engine.sync_engine, "handle_error", handle_error)
    return engine
