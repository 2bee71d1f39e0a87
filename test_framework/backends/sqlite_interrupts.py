"""Stop SQLite statements that run past the statement timeout, or when Ctrl-C is pressed.

SQLite has no server that could cancel a statement, and aiosqlite runs each
connection's statements on a worker thread: after Ctrl-C an endless query
went on running, and the class cleanup that closes its connection waited
behind it forever.

* Ctrl-C: every connection is made by ``InterruptibleConnection``, which
  remembers itself so ``interrupt_all`` can call ``sqlite3.Connection.interrupt``
  from the main thread. SQLite aborts the statements running at that moment
  (``sqlite3.OperationalError: interrupted``) and no later ones.
  A statement sent before Ctrl-C but not yet started on the worker thread
  escapes that: SQLite clears the interrupt as a statement starts, and it ran
  on to the statement timeout. So ``interrupt_all`` also counts the Ctrl-C,
  and the progress handler stops a statement sent before the latest one;
  the cleanup's statements, sent after it, run.
* Statement timeout: a progress handler, which SQLite calls on the worker
  thread every ``PROGRESS_STEPS`` virtual-machine instructions (about 0.1 ms
  of work), aborts a statement once it has run longer than the timeout.
* Ctrl-C on the loop's own thread (``sqlite+inline``, ``sqlite_inline.py``):
  Python runs the SIGINT handler only between bytecodes, so inside sqlite3
  it runs in a callback (the progress handler, a SQL function), and sqlite3
  swallows whatever a callback raises: the ``KeyboardInterrupt`` was lost and
  the statement ran on. While an inline connection is open, ``_on_sigint``
  takes SIGINT: during a call into SQLite (``run_guarded``) it only records
  it and interrupts the statements; the call then raises ``KeyboardInterrupt``
  (through the handler it replaced) instead of SQLite's "interrupted".
  Outside such a call it hands the signal to that handler at once.

A statement's clock starts when SQLAlchemy sends it (``before_cursor_execute``)
and stops when it returns or fails. SQLAlchemy does not see raw driver calls
(``executescript``): their clock starts at the first progress call after the
connection sat idle for ``IDLE_GAP``, so raw calls issued back to back share
one clock. (A trace callback would see every statement start, but sqlite3
hands it the SQL with the parameters spelled out: a 1 MB blob insert took
32 ms instead of 1 ms.)
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import threading
import time
import weakref
from typing import Callable

PROGRESS_STEPS = 10_000
IDLE_GAP = 0.1
INFO_KEY = "test_framework.sqlite_statement_clock"
_live: weakref.WeakSet[sqlite3.Connection] = weakref.WeakSet()
_live_lock = threading.Lock()
_interrupts = 0  # Ctrl-Cs so far; a statement sent before the latest one stops


class InterruptibleConnection(sqlite3.Connection):
    """A sqlite3 connection that ``interrupt_all`` can reach from another thread."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        with _live_lock:
            _live.add(self)


def interrupt_all() -> None:
    """Abort the statements running or sent now on every connection (an interrupt callback)."""
    global _interrupts
    with _live_lock:
        _interrupts += 1
        connections = list(_live)
    for connection in connections:
        with contextlib.suppress(sqlite3.ProgrammingError):  # closed meanwhile
            connection.interrupt()  # the one sqlite3 call allowed from any thread


class StatementClock:
    """One connection's running statement: when it began, and whether it ran out of time.

    ``interrupts`` is the Ctrl-C count when it began: a later Ctrl-C stops it.
    """

    __slots__ = ("timeout", "started", "interrupts", "announced", "last_progress", "timed_out")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.started = self.last_progress = float("-inf")
        self.interrupts = _interrupts
        self.announced = False
        self.timed_out = False

    def sent(self) -> None:
        """SQLAlchemy sends a statement (event loop thread)."""
        self.started = time.monotonic()
        self.interrupts = _interrupts
        self.announced = True
        self.timed_out = False

    def done(self) -> None:
        """SQLAlchemy's statement returned or failed: later driver work is a new statement."""
        self.announced = False
        self.last_progress = float("-inf")

    def should_stop(self) -> bool:
        """Progress handler (worker thread): True aborts the running statement."""
        now = time.monotonic()
        if not self.announced and now - self.last_progress > IDLE_GAP:
            self.started = now  # a raw driver call began after the connection idled
            self.interrupts = _interrupts
            self.timed_out = False
        self.last_progress = now
        if self.interrupts != _interrupts:  # Ctrl-C since it was sent, started or not
            self.last_progress = float("-inf")
            return True
        if now - self.started <= self.timeout:
            return False
        self.timed_out = True
        self.last_progress = float("-inf")
        return True


def use_interruptible_connections(dialect, connection_record, cargs, cparams) -> None:
    """Make new connections ``InterruptibleConnection`` (a ``do_connect`` listener),
    unless the dialect chose a subclass (``sqlite_inline.InlineConnection``)."""
    cparams.setdefault("factory", InterruptibleConnection)


def install_statement_clock(dbapi_connection, connection_record, *, timeout: float) -> None:
    """Bound every statement of a new connection (a pool ``connect`` event's arguments).

    The sqlite3 connection accepts the handler only on aiosqlite's thread, so
    it goes through ``run_async`` to aiosqlite's own method (the inline
    driver offers the same two).
    """
    clock = StatementClock(timeout)
    connection_record.info[INFO_KEY] = clock
    dbapi_connection.run_async(
        lambda driver: driver.set_progress_handler(clock.should_stop, PROGRESS_STEPS))


def statement_sent(connection, cursor, statement, parameters, context, executemany) -> None:
    """Start the statement's clock (a ``before_cursor_execute`` listener)."""
    clock = connection.info.get(INFO_KEY)
    if clock is not None:
        clock.sent()


def statement_done(connection, *args) -> None:
    """Stop the statement's clock (an ``after_cursor_execute`` listener)."""
    clock = connection.info.get(INFO_KEY)
    if clock is not None:
        clock.done()


def statement_failed(context) -> None:
    """Stop the statement's clock (a ``handle_error`` listener)."""
    if context.connection is not None:
        with contextlib.suppress(Exception):  # an invalidated connection has no clock
            statement_done(context.connection)


def timed_out(exc: BaseException, connection) -> bool:
    """Return True if ``exc`` is our abort of a statement that ran past the timeout.

    ``connection`` is the SQLAlchemy connection it ran on (``handle_error``'s).
    """
    if not (isinstance(exc, sqlite3.OperationalError) and str(exc) == "interrupted"):
        return False
    try:
        clock = connection.info.get(INFO_KEY) if connection is not None else None
    except Exception:  # the connection is already invalidated: no clock to ask
        return False
    return clock is not None and clock.timed_out


# -- Ctrl-C while SQLite runs on the loop's thread (sqlite+inline) --------------------------

_inside = 0  # calls into SQLite under way on the main thread (run_guarded)
_pending_sigint: int | None = None  # a SIGINT that landed during one: delivered after it
_replaced_handler: Callable | None = None  # the SIGINT handler _on_sigint stands in front of
_watchers = 0  # open inline connections that asked for _on_sigint


def run_guarded(call: Callable, *args):
    """Call into SQLite so that a Ctrl-C meanwhile stops it and raises ``KeyboardInterrupt``.

    The statement SQLite aborted for it fails with "interrupted" (or a SQL
    function's error); that error is dropped for the ``KeyboardInterrupt``,
    raised with no context, as if the user had pressed Ctrl-C between
    statements. A replaced handler that raises nothing (``asyncio.Runner``'s
    cancels its task; ``unittest -c`` stops the run) gets the SQLite error
    raised after it. Costs a counter, not a signal handler, per call.
    """
    global _inside
    _inside += 1
    error = result = None
    try:
        result = call(*args)
    except sqlite3.Error as exc:
        if _pending_sigint is None or _inside > 1:
            raise
        error = exc
    finally:
        _inside -= 1
    if _pending_sigint is not None and not _inside:
        _deliver_sigint()
    if error is not None:  # the replaced handler did not raise (asyncio.Runner's cancels)
        raise error
    return result


def _on_sigint(signum, frame) -> None:
    global _pending_sigint
    if _inside:
        _pending_sigint = signum
        interrupt_all()
        return
    _replaced_handler(signum, frame)


def _deliver_sigint() -> None:
    global _pending_sigint
    signum, _pending_sigint = _pending_sigint, None
    _replaced_handler(signum, None)  # the default one raises KeyboardInterrupt


def watch_ctrl_c() -> bool:
    """Put ``_on_sigint`` in front of the SIGINT handler; True if this call counts.

    Only the main thread can, and only in front of a Python handler (not
    ``SIG_IGN`` or ``SIG_DFL``, which no callback swallows). Each True needs
    one ``unwatch_ctrl_c``.
    """
    global _replaced_handler, _watchers
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGINT)
    if current is not _on_sigint:
        if not callable(current):
            return False
        _replaced_handler = current
        signal.signal(signal.SIGINT, _on_sigint)
    _watchers += 1
    return True


def unwatch_ctrl_c() -> None:
    """Give SIGINT back to the handler ``_on_sigint`` replaced, once no connection needs it."""
    global _watchers
    _watchers = max(0, _watchers - 1)
    if _watchers or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is _on_sigint:  # else set on top of it: leave both
        signal.signal(signal.SIGINT, _replaced_handler)
