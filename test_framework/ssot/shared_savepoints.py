"""Sessions sharing rollback isolation's one connection: whose rollback undoes what.

In rollback isolation each session is a savepoint on the class's connection.
Savepoints nest: rolling one back undoes everything after it, whoever wrote
it. Real code opens and closes sessions in any order (a request's session is
still open while a background task commits), so SQLAlchemy's ``ROLLBACK TO``
the session's savepoint would undo a later session's commit without a word.
``SharedSavepoints`` decides instead what each session's end sends. It keeps
the connection's savepoints as the server has them (its *marks*) and a log of
which session wrote, statement by statement (a failed statement counts:
PostgreSQL refuses everything after it until it is rolled back). Then:

* A commit ends the session's savepoints. Ended ones on top of the stack go in
  one ``RELEASE``; while a savepoint of an open session sits above them, nothing
  is sent, since a ``RELEASE`` would destroy it.
* A rollback or close of a session that wrote nothing since its savepoint
  undoes nothing: its savepoint ends as a commit's does, and others' work stays.
* A session that wrote is rolled back to the newest savepoint below its first
  write, if all written after that savepoint is its own.
* A session that has not written, about to run a statement after others
  wrote, first gets a fresh savepoint, so what it does next can be undone alone.
* Otherwise another session wrote after this one's first write, and undoing
  this one would undo that too. Nothing is undone: ``RollbackConflictError``
  names both sessions, where each was made, and whether the other committed.

So any order works but one: session A writes, session B then writes
(committed or not), and A rolls back before B does. Statements are credited
to sessions by the session's own events (a statement or flush starts, on its
greenlet); one run on ``await session.connection()`` goes to the newest open
session. A helper's lone statement (``run_alone``) is its session's own short
transaction, kept here without SQLAlchemy's. A SELECT is a read, even one
calling a function that writes.

Every statement first asks ``session_tasks.py`` whether its task may use the
connection now. The SQLAlchemy side (hooks and events) is ``savepoint_hooks.py``;
one private detail of SQLAlchemy is used here, below.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from greenlet import getcurrent
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from test_framework.errors import AbortedTransactionError, RollbackConflictError
from test_framework.log import get_logger
from test_framework.greenlet_bridge import await_from_sync
from test_framework.ssot.call_sites import call_sites
from test_framework.ssot.savepoint_hooks import (LEDGER_KEY, SavepointSql, follow_sessions,
                                                 rollback_to_base, statement_kind)
from test_framework.ssot.session_tasks import (ConcurrentSessionsError, ConnectionTurns, Holder,
                                              SessionTask, shared_session)

logger = get_logger(__name__)
LABEL_KEY = "test_framework_label"
_RENEWALS = itertools.count(1)  # names of the savepoints made here, unique in the process
RELEASE_BATCH = 32  # ended savepoints left on the server before one RELEASE removes them
_ONE_CONNECTION = "In rollback isolation every session is a savepoint on the test's one connection"
_COMMIT_MODE = ("or give this test class isolation = 'commit', which gives each session its own "
                "connection")


@dataclass(eq=False)
class _SessionSavepoint:
    """A savepoint SQLAlchemy made for a session: its transaction, or a ``begin_nested()``."""

    session: Session
    transaction: Any  # SQLAlchemy's NestedTransaction
    begin: int  # the log's length then: the session's writes from here on are its own
    root: _SessionSavepoint | None  # the session's transaction, for a begin_nested()
    task: SessionTask
    ended: bool = False


@dataclass(eq=False)
class _Mark:
    """A savepoint on the server, by the name its dialect hook was given.

    ``send`` is set while the savepoint is not on the server yet: a session's
    own savepoint is sent just before its first write, and only if a
    rollback to the newest savepoint there would undo more than that
    session's work. ``base`` is the test's savepoint, kept for the class.
    """

    name: str
    start: int  # the log's length when it was made (or sent)
    owner: _SessionSavepoint | None = None  # None: made outside the sessions
    released: bool = False
    send: Callable[[], None] | None = None
    base: bool = False

    @property
    def sent(self) -> bool:
        return self.send is None

    @property
    def ended(self) -> bool:
        return self.released or (self.owner is not None and self.owner.ended)


class SharedSavepoints:
    """What each session's commit or rollback sends to the one connection (module docstring)."""

    def __init__(self, connection: Connection, *, turn_bound: float,
                 base: str | None = None, aborts: bool = True) -> None:
        self.connection = connection
        self.marks: list[_Mark] = [_Mark(base, 0, base=True)] if base else []
        self.log: list[Session | None] = []  # who wrote (or failed), statement by statement
        self.by_name: dict[str, _SessionSavepoint] = {}
        self.open: list[_SessionSavepoint] = []  # oldest first
        self.outcomes: dict[Session, str] = {}
        self.running: tuple[Any, Session] | None = None  # (greenlet, session)
        self.discarding = False
        self.aborts = aborts  # a failed statement aborts the transaction (PostgreSQL)
        self.stuck: tuple[int, str] | None = None  # (log index, why) of a read nothing undoes
        self.busy: dict[Session, tuple[Any, SessionTask]] = {}  # the call running each session
        self.turns = ConnectionTurns(self._holders, bound=turn_bound)
        connection.info[LEDGER_KEY] = self

    def detach(self) -> None:
        """Leave the connection; forget the test's sessions (nothing keeps them alive)."""
        connection = self.connection
        if not (connection.closed or connection.invalidated) \
                and connection.info.get(LEDGER_KEY) is self:
            del connection.info[LEDGER_KEY]
        for kept in (self.marks, self.log, self.by_name, self.open, self.outcomes, self.busy):
            kept.clear()
        self.running = None
        self.turns.changed()  # a task still waiting goes on: there is nothing left to wait for

    def watch(self, session: Session) -> None:
        """Follow ``session``: its savepoints, the statements it runs, its task.

        The listeners are registered once, on ``Session`` itself (registering
        three per session cost more than the rest of a test's bookkeeping);
        they find the ledger in the session's ``info`` and return at once for
        every other session.
        """
        follow_sessions()
        SessionTask.current()  # tasks started from here on descend from this one
        session.info[LEDGER_KEY] = self

    # -- what happens on the connection ---------------------------------------

    def made(self, name: str, send: Callable[[], None]) -> None:
        """Note a savepoint SQLAlchemy asked for; ``send`` puts it on the server.

        A session's own savepoint (its transaction) waits until the session
        writes: one that only reads has nothing to undo, so most sessions
        (every helper read, every commit of a helper write) cost no SAVEPOINT
        and no RELEASE. A ``begin_nested()`` inside a session, and a savepoint
        no session owns, are sent before anything else runs.
        """
        self.marks.append(_Mark(name, len(self.log), send=send))

    def _send(self, mark: _Mark) -> None:
        send, mark.send = mark.send, None
        send()
        self.marks.remove(mark)
        mark.start = len(self.log)
        self.marks.append(mark)

    def _send_unowned(self) -> None:
        for mark in [mark for mark in self.marks if not mark.sent and mark.owner is None]:
            self._send(mark)

    def _began(self, session: Session, transaction, connection: Connection) -> None:
        """Own the savepoint SQLAlchemy just made for ``session``."""
        if not self.marks or self.marks[-1].owner is not None:
            return  # detached, or not a savepoint of ours
        root = None if transaction.parent is None else self._newest(session, roots=True)
        self._own_newest_mark(session, connection.get_nested_transaction(), root)

    def _own_newest_mark(self, session: Session, transaction, root) -> None:
        """Make the savepoint just noted (``made``) ``session``'s: its transaction, or
        ``transaction`` (a ``begin_nested()``) inside ``root``."""
        savepoint = _SessionSavepoint(session, transaction, len(self.log), root,
                                      SessionTask.current())
        self.marks[-1].owner = self.by_name[self.marks[-1].name] = savepoint
        self.open.append(savepoint)
        if root is not None:
            self._send(self.marks[-1])
        else:
            self.outcomes[session] = "still open"
            self.turns.changed()
        self.running = (getcurrent(), session)

    def run_alone(self, session: Session | Writer, run: Callable[[], Any]) -> Any:
        """Run one statement of ``session`` (a ``Writer``: a helper) as its own short
        transaction would, without SQLAlchemy's (``AsyncTestDatabase`` in rollback isolation).

        The statement gets the savepoint a session's transaction would have:
        noted, sent only if the statement writes and a rollback to the newest
        savepoint would undo more than it. It ends as a commit ends (nothing
        sent), or after a failure as a rollback does, so a failed write leaves
        the test able to go on. Each step is the session path's own: the same
        turns between tasks, the same credit in the log, the same conflicts.
        """
        self._runs(session)
        name = f"tf_helper_{next(_RENEWALS)}"
        dialect = self.connection.dialect
        dialect.do_savepoint(self.connection, name)  # waits its turn, then ``made``
        self._own_newest_mark(session, None, None)
        try:
            result = run()
        except Exception:
            with contextlib.suppress(Exception):  # the statement's error is the one to see
                dialect.do_rollback_to_savepoint(self.connection, name)
            raise
        except BaseException:  # cancelled (SQLAlchemy drops the connection) or Ctrl-C
            if (savepoint := self.by_name.get(name)) is not None:
                self._end(savepoint, "rolled back")
            self.turns.changed()
            raise
        dialect.do_release_savepoint(self.connection, name)
        return result

    def _runs(self, session: Session) -> None:
        """Before ``session`` runs SQL: one task at a time, and credit it with what runs."""
        self._one_task_at_a_time(session)
        self.running = (getcurrent(), session)

    def _before_write(self, session: Session | None) -> None:
        """Give ``session``'s first write a savepoint that undoes it alone, if none is there.

        The newest savepoint on the server does, when nobody wrote after it;
        else the session's own is sent now (or, for one already on the server
        below others' writes, a fresh one takes its place).
        """
        savepoint = self._newest(session) if session is not None else None
        if savepoint is None or self._first_write(savepoint) is not None:
            return  # not a session's, or its writes are below anyway
        savepoint.begin = len(self.log)  # the same writes are its own; later scans are shorter
        newest_sent = self._newest_sent(len(self.log))
        if newest_sent is not None and newest_sent.start == len(self.log):
            return
        owner = savepoint.root or savepoint
        mark = next((mark for mark in self.marks if mark.owner is owner and not mark.sent), None)
        if mark is None:
            self.connection.dialect.do_savepoint(self.connection,
                                                 f"tf_session_{next(_RENEWALS)}")
            self.marks[-1].owner = owner
            mark = self.marks[-1]
        self._send(mark)

    def statement(self, statement: str, context) -> None:
        kind = statement_kind(statement, context)
        if kind != "end":
            self.take_turn(opening=kind == "savepoint")
            if self.stuck is not None:
                raise AbortedTransactionError(self.stuck[1])
            self._send_unowned()
        if kind == "write":
            writer = self._writer()
            self._before_write(writer)
            self.log.append(writer)

    def take_turn(self, *, opening: bool) -> None:
        """Wait until the running task may use the connection (``session_tasks.py``)."""
        self.turns.take(session=self._running_session(), opening=opening,
                        wait=await_from_sync)

    def failed(self, statement: str, context) -> None:
        """Count a failed statement as a write where it aborts the transaction.

        Then only a rollback lets the test go on, and it must go back to a
        savepoint below the failure. A failed write has one (sent before it);
        a failed read may not, if others wrote since the newest: the next
        statement then fails at once, saying why, instead of the server's
        "current transaction is aborted".
        """
        kind = statement_kind(statement, context)
        if kind == "savepoint":
            self.turns.changed()  # the session it would have begun holds nothing
        if kind not in ("read", "write") or not self.aborts:
            return
        newest_sent = self._newest_sent(len(self.log))
        if kind == "read" and (newest_sent is None or newest_sent.start < len(self.log)):
            self.stuck = (len(self.log), _stuck(statement, self._writers_after(
                newest_sent.start if newest_sent else 0, None)))
        self.log.append(self._writer())

    # -- ends -------------------------------------------------------------------

    def release(self, name: str, sql: SavepointSql) -> None:
        try:
            self._release(name, sql)
        finally:  # only now, with the connection idle, may a waiting task go on
            self.turns.changed()

    def rollback(self, name: str, sql: SavepointSql) -> None:
        try:
            self._rollback(name, sql)
        finally:
            self.turns.changed()

    def _release(self, name: str, sql: SavepointSql) -> None:
        savepoint, mark = self.by_name.get(name), self._mark(name)
        if savepoint is not None:
            _end_newest_first(savepoint.transaction)
            self._end(savepoint, "committed")
        elif mark is not None:
            mark.released = True
        else:
            return sql.release(name)  # made before this test's sessions: as asked
        self._release_ended(sql)

    def _rollback(self, name: str, sql: SavepointSql) -> None:
        savepoint, mark = self.by_name.get(name), self._mark(name)
        if savepoint is None:
            if mark is None:
                return sql.rollback_to(name)  # made before this test's sessions: as asked
            if not mark.sent:
                return self.marks.remove(mark)  # never on the server: nothing to undo
            return self._roll_back_to(mark, sql)
        _end_newest_first(savepoint.transaction)
        first = self._first_write(savepoint)
        self._end(savepoint, "rolled back")
        if self.discarding:
            return
        if first is None:
            logger.debug("%s ends with nothing of its own to undo: no ROLLBACK TO",
                         _label(savepoint.session))
            return self._release_ended(sql)
        target = self._newest_sent(first)
        others = self._writers_after(target.start if target else 0, savepoint)
        if target is None or others:
            raise RollbackConflictError(self._conflict(savepoint, others))
        self._roll_back_to(target, sql)

    def _end(self, savepoint: _SessionSavepoint, outcome: str) -> None:
        savepoint.ended = True
        if savepoint in self.open:
            self.open.remove(savepoint)
        if savepoint.root is None:
            self.outcomes[savepoint.session] = outcome

    def _release_ended(self, sql: SavepointSql) -> None:
        """Forget the ended savepoints on top of the stack; ``RELEASE`` them only when many.

        An ended savepoint left on the server harms nothing (the test's
        rollback removes it) and still marks a place a later rollback may
        go back to, while each ``RELEASE`` is a round trip: so they are
        released in one statement once ``RELEASE_BATCH`` have piled up.
        """
        index = len(self.marks)
        while index and self.marks[index - 1].ended:
            index -= 1
        ended = [mark for mark in self.marks[index:] if mark.sent]
        if len(ended) >= RELEASE_BATCH:
            sql.release(ended[0].name)
            ended = []
        self.marks[index:] = ended

    def _roll_back_to(self, mark: _Mark, sql: SavepointSql) -> None:
        if mark.base:  # kept: on the server and here, for the next rollback and the next test
            rollback_to_base(self.connection, mark.name)
            del self.marks[self.marks.index(mark) + 1:]
        else:
            sql.rollback_to(mark.name)
            del self.marks[self.marks.index(mark):]
        del self.log[mark.start:]
        if self.stuck is not None and self.stuck[0] >= mark.start:
            self.stuck = None
        for savepoint in self.open:
            savepoint.begin = min(savepoint.begin, mark.start)

    # -- bookkeeping ----------------------------------------------------------------

    def _newest_sent(self, at_or_before: int) -> _Mark | None:
        """The newest savepoint on the server made at or before log position ``at_or_before``."""
        return next((mark for mark in reversed(self.marks)
                     if mark.sent and mark.start <= at_or_before), None)

    def _mark(self, name: str) -> _Mark | None:
        return next((mark for mark in self.marks if mark.name == name), None)

    def _newest(self, session: Session, *, roots: bool = False) -> _SessionSavepoint | None:
        return next((savepoint for savepoint in reversed(self.open) if savepoint.session is session
                     and not (roots and savepoint.root is not None)), None)

    def _first_write(self, savepoint: _SessionSavepoint) -> int | None:
        return next((index for index in range(savepoint.begin, len(self.log))
                     if self.log[index] is savepoint.session), None)

    def _writers_after(self, start: int, savepoint: _SessionSavepoint | None) -> list:
        writers = [writer for index, writer in enumerate(self.log[start:], start)
                   if savepoint is None
                   or not (writer is savepoint.session and index >= savepoint.begin)]
        return list(dict.fromkeys(writers))

    def _holders(self) -> list[Holder]:
        return [Holder(savepoint.task, savepoint.session, _label(savepoint.session))
                for savepoint in self.open if savepoint.root is None]

    def _running_session(self) -> Session | None:
        running = self.running
        return running[1] if running is not None and running[0] is getcurrent() else None

    def _one_task_at_a_time(self, session: Session) -> None:
        """Refuse a second task's call on ``session`` while a first task's is still running.

        SQLAlchemy runs each call of an ``AsyncSession`` in a greenlet of its
        own, alive until the call returns: a live one of another task is use
        at the same moment, which would corrupt the session's state.
        """
        me, busy = SessionTask.current(), self.busy.get(session)
        if busy is not None and busy[0] is not getcurrent() and not busy[0].dead \
                and busy[1].task is not me.task and busy[1].live():
            raise ConcurrentSessionsError(shared_session(me, Holder(busy[1], session,
                                                                    _label(session))))
        self.busy[session] = (getcurrent(), me)

    def _writer(self) -> Session | None:
        """The session running now: its event said so on this greenlet, else the newest open."""
        running = self.running
        if running is not None and running[0] is getcurrent():
            return running[1]
        return self.open[-1].session if self.open else None

    def _conflict(self, savepoint: _SessionSavepoint, others: list) -> str:
        mine = _label(savepoint.session)
        if not others:
            return (f"{mine} is rolling back writes made below every savepoint on the "
                    "connection (through session.connection()?), so they were kept, not "
                    f"undone. {_ONE_CONNECTION}; run such statements through the session, "
                    f"{_COMMIT_MODE}")
        theirs = " and ".join("statements run outside the test's sessions" if writer is None
                              else f"{_label(writer)} ({self.outcomes.get(writer, 'closed')})"
                              for writer in others)
        return (f"{mine} is rolling back its writes, but {theirs} wrote after them. "
                f"{_ONE_CONNECTION}, and rolling back to a savepoint undoes everything "
                "written after it, so the first session's writes were kept, not undone. "
                f"Commit or roll back the first session before another one writes, {_COMMIT_MODE}")


class Writer:
    """Who ran statements no session ran: a helper's lone statements (``self.db``).

    It stands where a session would in the log, the turns and the messages,
    under its ``label``.
    """

    def __init__(self, label: str) -> None:
        self.info = {LABEL_KEY: label}

    def __repr__(self) -> str:
        return f"<Writer {self.info[LABEL_KEY]}>"


def run_alone(connection: Connection, writer: Writer, statement, params: dict):
    """Run a helper's statement on the test's connection as ``writer``'s own short
    transaction would run, without a session's machinery; return its result.

    In rollback isolation the ledger keeps that transaction's books
    (``SharedSavepoints.run_alone``); a connection already in a transaction
    with no ledger runs the statement in it. Otherwise (commit mode) the
    statement commits on its own, or is rolled back if it fails, and the
    connection is left with no transaction: a session bound to it later must
    begin its own, not join one it would never commit.
    """
    run = partial(connection.execute, statement, params)
    ledger = connection.info.get(LEDGER_KEY)
    if ledger is not None:
        return ledger.run_alone(writer, run)
    if connection.in_transaction():
        return run()
    try:
        result = run()
        connection.commit()  # may fail too: a deferred constraint, a cancel as it runs
    except BaseException:
        with contextlib.suppress(Exception):  # the statement's error is the one to see
            connection.rollback()  # also clears the transaction a failed COMMIT left inactive
        raise
    return result


def _stuck(statement: str, writers: list) -> str:
    sites = call_sites(1)
    who = " and ".join(dict.fromkeys(
        "statements outside the sessions" if writer is None else _label(writer)
        for writer in writers)) or "earlier statements"
    return (f"an earlier query failed ({' '.join(statement.split())[:80]!r}"
            f"{f' at {sites[0]}' if sites else ''}), and the database refuses every statement "
            "after a failure until a rollback; the only savepoint to roll back to is below "
            f"what {who} wrote since, so nothing can go on in this test. {_ONE_CONNECTION}, "
            "and a read gets no savepoint of its own: run a query you expect to fail inside "
            "async with session.begin_nested(): ... (or self.db's session), as Django's "
            "atomic(), and the test goes on after it")


def _end_newest_first(transaction) -> None:
    """Let SQLAlchemy end ``transaction`` as if it were the connection's newest savepoint.

    SQLAlchemy chains a connection's savepoints and expects them to end newest
    first: ended out of order, it warns, and an ended savepoint becomes the
    chain's head, which fails every later statement (``PendingRollbackError``).
    Moving it to the head just before SQLAlchemy unlinks it keeps the chain
    whole. SQLAlchemy 2's private ``_nested_transaction``/``_previous_nested``;
    tests/ssot/test_sessions.py ends sessions in every order.
    """
    if transaction is None:
        return
    connection = transaction.connection
    head = connection._nested_transaction
    above = head
    while above is not None and above is not transaction \
            and above._previous_nested is not transaction:
        above = above._previous_nested
    if above is None or above is transaction:
        return  # already the head, or no longer chained (its transaction ended)
    above._previous_nested = transaction._previous_nested
    transaction._previous_nested = head
    connection._nested_transaction = transaction


def _label(session: Session) -> str:
    return session.info.get(LABEL_KEY, "a session")
