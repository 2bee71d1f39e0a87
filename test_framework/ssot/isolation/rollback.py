"""Rollback isolation: the class's one connection and transaction, a kept savepoint per test.

The class holds one connection and one transaction on it, with a savepoint
each test rolls back to at its end (and keeps for the next); every session
(``self.session`` and those from ``self.session_factory``) joins that
transaction through savepoints (``join_transaction_mode="create_savepoint"``).
Application code may commit or roll back freely, its sessions opening and
closing in any order: ``shared_savepoints.py`` keeps one session's rollback
from undoing another's work, and sends a session's savepoint only when it
writes. A connection the server closed between tests is replaced; each
teardown step is bounded (``ssot/unanswered.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import weakref

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from test_framework.config import Timeouts
from test_framework.errors import DatabaseUnavailableError, DeferredConstraintError, last_cause
from test_framework.log import current_test_id, get_logger, mask_url
from test_framework.ssot.async_test_helpers import AsyncTestDatabase
from test_framework.ssot.isolation.protocol import (Isolation, IsolationSettings, KeepState,
                                                    TestSessions)
from test_framework.ssot.sessions import RecordingSessionmaker, share_savepoints
from test_framework.ssot.savepoint_hooks import begin_base, rollback_to_base
from test_framework.ssot.unanswered import (drop_now, no_answer, notice_closed_connections,
                                            report_abandoned, teardown_bound)

logger = get_logger(__name__)
TEST_SAVEPOINT = "tf_test"  # the savepoint every rollback-mode test of a class goes back to
# Per engine, then per model set: does the database have deferrable constraints?
_deferrable_answers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class RollbackIsolation(Isolation):
    """Every test inside the class's transaction, rolled back to its savepoint at teardown."""

    name = "rollback"
    supports_class_data = True
    holds_one_connection = True

    def __init__(self, engine: AsyncEngine, *, backend=None,
                 settings: IsolationSettings = IsolationSettings()) -> None:
        super().__init__(engine, backend=backend, settings=settings)
        self.class_data = settings.class_data
        self.reset_sequences = settings.reset_sequences and backend is not None
        self.check_deferred_constraints = (settings.check_deferred_constraints
                                           and backend is not None)
        self._deferrable: bool | None = None  # does the schema have any? Asked once.
        self.session_options = dict(settings.session_options)
        share_savepoints(engine)
        self.teardown_bound = teardown_bound(backend)
        # How long a task may wait for its turn on the connection (ssot/session_tasks.py).
        self.turn_bound = backend.timeouts.lock if backend is not None else Timeouts.lock
        self.aborts = backend is None or backend.failed_statement_aborts_transaction
        self._connection: AsyncConnection | None = None
        self._collect_before_connecting = False
        self._class_transaction: AsyncTransaction | None = None
        self._committed_outside = False  # a test ended the class's transaction (raw COMMIT)

    async def begin_test(self, **helper_options) -> TestSessions:
        """Give the test its sessions, beginning the class's transaction on the first test.

        A class connection the server closed since the last test (a restart) is
        replaced first; noticing that costs a poll of its socket, no round trip.
        """
        if self._connection_may_have_closed():
            await notice_closed_connections(lambda: not self._connection_usable())
        if not self._connection_usable():
            await self._connect()
        if self._class_transaction is None:
            await self._begin_class(helper_options)
        if self.reset_sequences:  # in the test's transaction, so a class's rows count too
            await self.backend.reset_sequences(self._connection)
        if self.check_deferred_constraints and self._deferrable is None:
            self._deferrable = await self._has_deferrable_constraints()
        return self._sessions(helper_options, base=TEST_SAVEPOINT)

    async def _has_deferrable_constraints(self) -> bool:
        """Asked once per engine and model set: the classes sharing an engine ask once,
        and another model set may have added tables to the database since."""
        metadata = self.settings.metadata
        if metadata is None:
            return await self.backend.has_deferrable_constraints(self._connection)
        answers = _deferrable_answers.setdefault(self.engine.sync_engine,
                                                 weakref.WeakKeyDictionary())
        if metadata not in answers:
            answers[metadata] = await self.backend.has_deferrable_constraints(self._connection)
        return answers[metadata]

    async def _connect(self) -> None:
        """Check out a connection; one the server closed while it sat in the pool (the
        classes before shared it) is noticed here, after a few loop passes, and replaced."""
        self._drop_connection()
        for _ in range(2):
            if self._collect_before_connecting:
                # A driver connection abandoned mid-statement (a cancelled task) can sit in
                # a reference cycle still holding its locks (aiosqlite keeps SQLite's file
                # lock until the sqlite3 object is freed): collect it before connecting.
                self._collect_before_connecting = False
                gc.collect()
            try:
                self._connection = await self.engine.connect()
            except (OSError, DBAPIError) as exc:
                raise DatabaseUnavailableError(
                    f"cannot connect to the test database {mask_url(self.engine.url)} for "
                    f"this test: {type(exc).__name__}: {exc}; "
                    f"{self.backend.explain_connect_error(exc) if self.backend else ''}"
                ) from last_cause(exc)
            if self._connection_may_have_closed():
                await notice_closed_connections(lambda: not self._connection_usable())
            if self._connection_usable():
                return
            self._drop_connection()
        raise DatabaseUnavailableError(
            f"the test database {mask_url(self.engine.url)} closed two new connections as "
            "they were made; check that the server is up and not ending sessions "
            "(pg_terminate_backend, a restart in a loop)")

    def _sessions(self, helper_options: dict, *, base: str | None,
                  label: str = "self.session", name: str = "self.db") -> TestSessions:
        """The test's factory and helper; its session is made when first used (a test
        whose helper calls all run alone on the connection never needs one)."""
        factory = RecordingSessionmaker(self._connection, shared=True, base=base,
                                        turn_bound=self.turn_bound, aborts=self.aborts,
                                        join_transaction_mode="create_savepoint",
                                        **self.session_options)
        db = AsyncTestDatabase(make_session=functools.partial(factory.labelled, label),
                               delete_rows_on_cleanup=False, hold_read_transactions=True,
                               connection=self._connection, name=name, **helper_options)
        return TestSessions(factory, db)

    async def _begin_class(self, helper_options: dict) -> None:
        """Begin the transaction that lasts for the class, and the savepoint each test undoes.

        A test then costs one ``ROLLBACK TO SAVEPOINT`` at its end, which keeps
        the savepoint for the next test: no BEGIN, no ROLLBACK, no new
        SAVEPOINT per test. The class's data (``asyncSetUpTestData``) goes in
        below the savepoint, so every test sees it and none can change it for
        the next. Redone when the connection was replaced or a test ended the
        transaction itself (a raw ``COMMIT``).
        """
        self._class_transaction = await self._connection.begin()
        if self.class_data is not None:
            sessions = self._sessions(helper_options, base=None,
                                      label="asyncSetUpTestData's session (its db)",
                                      name="asyncSetUpTestData's db")
            try:
                await self.class_data(sessions.db)
            finally:
                await sessions.session_factory.close_all()
        await self._connection.run_sync(begin_base, TEST_SAVEPOINT)

    async def end_test(self, sessions: TestSessions, *, keep: KeepState | None = None) -> None:
        """Roll back first: one round trip undoes every write and savepoint of the test.

        Sessions closed after that emit no SQL, so ``db.cleanup()`` finds
        nothing left to roll back. A broken connection is replaced. Before
        the rollback, ``keep`` copies what the test saw (a failed test, with
        ``TEST_FRAMEWORK_KEEP_FAILED``), and constraints that only a commit
        checks are checked (``check_deferred_constraints``).
        """
        if not self._connection_usable():
            # Lost mid-test (the test saw that error): nothing to undo on a dead connection.
            sessions.session_factory.forget()
            self._drop_connection()
            return
        violation = None
        try:
            async with asyncio.timeout(self.teardown_bound):
                if keep is not None:
                    await self._keep(keep, sessions)
                if self.check_deferred_constraints and self._deferrable:
                    violation = await self.backend.deferred_violation(self._connection)
                await self._undo_test(sessions)
        except TimeoutError as exc:
            self._drop_connection()
            raise no_answer("the test's rollback", "the class's database connection",
                            self.teardown_bound) from exc
        except Exception as exc:
            self._drop_connection()
            raise DatabaseUnavailableError(
                f"the test's database connection was lost or broken ({type(exc).__name__}: "
                f"{exc}); its work was not committed, and the next test gets a new "
                "connection") from exc
        if violation:
            raise DeferredConstraintError(
                f"{current_test_id.get()} left a constraint violated that the database checks "
                f"only at commit, so a real commit would fail: {violation}. Rollback isolation "
                "never commits; fix the rows the test (or the code under test) leaves, or set "
                "check_deferred_constraints = False on the class to skip this check")

    async def _keep(self, keep: KeepState, sessions: TestSessions) -> None:
        """Copy what the failed test saw, else what its sessions had committed.

        After a failed statement PostgreSQL refuses every other until a
        rollback: closing the sessions rolls back their savepoints (their
        uncommitted work with them), and the copy is tried once more.
        """
        if await keep(self._connection, final=False):
            return
        with contextlib.suppress(Exception):  # the copy's own error is what is reported
            await sessions.session_factory.close_all()
        await keep(self._connection)

    async def _undo_test(self, sessions: TestSessions) -> None:
        """Close the sessions (no SQL: all is undone anyway), then roll back to the savepoint.

        A savepoint the test made on the connection itself and left open is
        rolled back first, so SQLAlchemy's view of the connection starts the
        next test empty. A test that ended the class's transaction (a raw
        ``COMMIT``) has no savepoint left to go back to: what it committed
        stays, and the class's transaction begins again for the next test.
        """
        await self._close_sessions(sessions)
        connection = self._connection
        while connection.in_nested_transaction():
            await connection.get_nested_transaction().rollback()
        try:
            await connection.run_sync(rollback_to_base, TEST_SAVEPOINT)
        except Exception as exc:
            if not self._connection_usable():
                raise
            logger.warning("%s ended the class's transaction itself (%s), so what it "
                           "committed was not undone; the next test begins a new one",
                           current_test_id.get(), last_cause(exc))
            self._class_transaction = None
            self._committed_outside = True
            await connection.rollback()

    async def close(self, *, bound: float | None = None, occasion: str = "") -> None:
        """Return the class connection to the pool (its class transaction rolls back).

        The next class checks it out, so nothing of this class may stay on it.
        Settings a test changed inside the class's transaction are rolled back
        with it; what outlives a rollback is cleared (``Backend.reset_session``:
        PostgreSQL's session advisory locks). A connection on which a test
        ended the class's transaction (a raw ``COMMIT``) may carry committed
        session settings (``SET``, SQLite's pragmas): it is closed, not pooled.

        Waits at most ``bound`` (default ``teardown_bound``); a connection that
        cannot be closed in time, or fails to, is abandoned instead. ``occasion``
        starts the reason reported ("after Ctrl-C, ").
        """
        bound = self.teardown_bound if bound is None else bound
        connection = self._connection
        self._class_transaction = None
        if connection is None:
            return
        try:
            async with asyncio.timeout(bound):
                # Rolling back first: if that fails (a statement still running, a dead
                # socket), the connection is still ours to abandon, not back in the pool.
                await connection.rollback()
                if self._committed_outside:
                    await connection.invalidate()
                elif self.backend is not None:
                    await self.backend.reset_session(connection)
                await connection.close()
        except TimeoutError:
            self.abandon(f"{occasion}closing it got no answer within {bound:g}s")
        except Exception as exc:
            self.abandon(f"{occasion}closing it failed: {type(exc).__name__}: {exc}")
        finally:
            self._connection = None

    def abandon(self, why: str) -> None:
        """Drop the class connection now, without a word to the server; report it.

        For a server that stopped answering, and for Ctrl-C: nothing waits.
        The server rolls back the open transaction once it notices.
        """
        connection = self._connection
        held = connection is not None and not (connection.closed or connection.invalidated)
        self._drop_connection()
        if held:
            report_abandoned("the class's database connection", why)

    @staticmethod
    async def _close_sessions(sessions: TestSessions) -> None:
        await sessions.session_factory.close_all(undone=True)
        await sessions.db.cleanup()

    def _connection_may_have_closed(self) -> bool:
        """One poll of the socket: worth the loop passes that let the driver notice?"""
        connection = self._connection
        if connection is None or connection.closed or connection.invalidated \
                or self.backend is None:
            return connection is not None
        driver = connection.sync_connection.connection.driver_connection
        return self.backend.may_have_closed(driver)

    def _connection_usable(self) -> bool:
        """Cheap local checks: a connection the server closed (restart, kill) is replaced."""
        connection = self._connection
        if connection is None or connection.closed or connection.invalidated:
            return False
        driver = connection.sync_connection.connection.driver_connection
        return self.backend is None or not self.backend.connection_is_closed(driver)

    def _drop_connection(self) -> None:
        """Close the connection's socket at once, if any; the class transaction ends with it."""
        self._class_transaction = None
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if not connection.closed:
            drop_now(connection.sync_connection)
        self._collect_before_connecting = True
