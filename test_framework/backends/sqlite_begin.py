"""When a SQLite transaction begins, and how a writer waits for the write lock.

The sqlite3 driver's own transaction handling is off (``sqlite._on_connect``);
``begin_before_write`` sends the BEGIN itself, a ``before_cursor_execute``
listener that ``SQLiteBackend.prepare_engine`` installs.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time

from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError

from test_framework.backends import sqlite_inline
from test_framework.greenlet_bridge import await_from_sync

LOCK_RETRY = 0.005  # seconds between tries for the write lock on the loop's thread


def busy_wait(url: URL, lock_timeout: float) -> float:
    """How long SQLite itself waits for a lock: all of the lock timeout on a worker thread."""
    if url.get_driver_name() == sqlite_inline.DRIVER:
        return min(lock_timeout, sqlite_inline.BUSY_WAIT)
    return lock_timeout


NO_BEGIN_NEEDED = {"SELECT", "BEGIN", "COMMIT", "END", "ROLLBACK", "RELEASE"}
BEGIN_SENDING = "test_framework.sqlite_begin_sending"
_FIRST_WORD = re.compile(r"\s*([A-Za-z]+)")


def begin_before_write(connection, statement: str, context, *, lock_timeout: float,
                        busy_wait: float) -> None:
    """Send ``BEGIN IMMEDIATE`` just before a transaction's first statement that is not a SELECT.

    Under a plain (deferred) ``BEGIN``, a transaction that read holds SQLite's
    read lock; if it then writes while another connection holds the write
    lock, each would wait for the other, so SQLite skips the busy timeout and
    answers ``database is locked`` at once (workers that read a task, then
    claimed it, failed after 0.03 s). ``BEGIN IMMEDIATE`` asks for the write
    lock while holding nothing, so SQLite waits for it up to ``timeout`` (our
    lock timeout): writers take turns.

    Reads before the first write run outside the transaction, each seeing the
    latest committed rows (like PostgreSQL's default READ COMMITTED) and
    holding no lock afterwards. Taking the write lock at every BEGIN instead
    made 8 concurrent read-only sessions 5x slower (they queued), and a
    session left open after a read blocked every other session's writes for
    ``lock_timeout``. A SAVEPOINT or any other statement begins the
    transaction, so savepoints still join it.

    A ``before_cursor_execute`` listener, registered before the statement
    clock so the BEGIN is timed and logged as a statement of its own. Sending
    it waits on the event loop: another task's statement on this connection
    (a misuse, which rollback mode names once its session has begun) waits
    for the BEGIN, so it never runs outside the transaction and commits alone.

    SQLite's own wait (``busy_wait``) blocks the thread it runs on. On the
    loop's thread it is short, and the BEGIN is retried on the loop until
    ``lock_timeout``, so the lock's holder, on the same loop, can finish.
    """
    if not connection.in_transaction() or _is_read(statement, context):
        return
    info = connection.info  # the pooled connection's: shared by every task using it
    while (sending := info.get(BEGIN_SENDING)) is not None:
        await_from_sync(sending.wait())
    if connection.connection.driver_connection.in_transaction:
        return
    sending = info[BEGIN_SENDING] = asyncio.Event()
    started = time.monotonic()
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except OperationalError as exc:
        if "database is locked" in str(exc.orig) and \
                _begin_on_the_loop(connection, started + lock_timeout):
            return
        if "database is locked" in str(exc.orig):
            exc.add_note(
                f"test_framework: waited lock_timeout ({lock_timeout:g}s) for SQLite's write "
                f"lock, to run {statement.strip()[:60]!r}: another connection kept a write "
                "transaction open all that time (a session of this test that wrote and has "
                "not committed or closed, or another process using this file). Commit or "
                "close that session before another one writes, or raise "
                "TEST_FRAMEWORK_LOCK_TIMEOUT if that writer is just slow")
        raise
    finally:
        del info[BEGIN_SENDING]
        sending.set()


def _begin_on_the_loop(connection, deadline: float) -> bool:
    """Retry ``BEGIN IMMEDIATE`` without SQLite's busy wait until ``deadline``; True once sent.

    The retries go to the driver, past SQLAlchemy's events: a contended lock
    is one statement in the log and in query counts, not dozens.
    """
    if time.monotonic() >= deadline:
        return False
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        (busy_ms,), = cursor.execute("PRAGMA busy_timeout").fetchall()
        cursor.execute("PRAGMA busy_timeout = 0")
        try:
            while time.monotonic() < deadline:
                await_from_sync(asyncio.sleep(LOCK_RETRY))
                try:
                    cursor.execute("BEGIN IMMEDIATE")
                    return True
                except sqlite3.OperationalError as exc:
                    if "database is locked" not in str(exc):
                        raise
            return False
        finally:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
    finally:
        cursor.close()


def _is_read(statement: str, context) -> bool:
    """Whether a statement needs no transaction: a SELECT (CTEs too), COMMIT and the like."""
    compiled = getattr(context, "compiled", None)
    if compiled is not None and getattr(compiled.statement, "is_select", False):
        return True
    word = _FIRST_WORD.match(statement)
    return word is not None and word.group(1).upper() in NO_BEGIN_NEEDED
