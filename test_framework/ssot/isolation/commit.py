"""Commit isolation and its heavier variants: real commits, undone by deleting.

``"commit"``: sessions use the engine's pool and commit for real, so other
connections see the rows; ``AsyncTestDatabase`` deletes what it created.
``self.session`` keeps one pooled connection for the whole test (idle, and
so holding no lock, between its transactions): its statements, the
deletion of the test's rows and the leftover count then check out and reset
one connection per test, not one per statement. The count runs in the
deletion's transaction, so cleanup is one transaction per test.
``"truncate"`` empties every table after each test instead; ``"database"``
gives the class a database of its own. Each bounds its teardown steps and
abandons what does not answer in time (``ssot/unanswered.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import warnings

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

from test_framework.backends import require_test_connection
from test_framework.log import current_test_id
from test_framework.provision import data_tables
from test_framework.ssot.async_test_helpers import AsyncTestDatabase
from test_framework.ssot.isolation.protocol import (Isolation, IsolationSettings, KeepState,
                                                    TestSessions)
from test_framework.ssot.leftovers import LeftoverRowDetector
from test_framework.ssot.sessions import RecordingSessionmaker
from test_framework.ssot.unanswered import (drop_now, no_answer, notice_closed_connections,
                                            report_abandoned, teardown_bound)


class CommitIsolation(Isolation):
    """Real commits on pooled connections; tracked rows are deleted at teardown."""

    name = "commit"

    def __init__(self, engine: AsyncEngine, *, backend=None,
                 settings: IsolationSettings = IsolationSettings()) -> None:
        super().__init__(engine, backend=backend, settings=settings)
        self.reset_sequences = settings.reset_sequences and backend is not None
        self.session_options = dict(settings.session_options)
        self.teardown_bound = teardown_bound(backend)
        # Pool events, so a connection a test leaves checked out can be closed for it.
        self.checkouts: dict = {}
        event.listen(engine.sync_engine.pool, "checkout", self._on_checkout)
        event.listen(engine.sync_engine.pool, "checkin", self._on_checkin)
        self.leftovers = LeftoverRowDetector(settings.leftover_rows)

    @classmethod
    def check_settings(cls, settings: IsolationSettings) -> None:
        LeftoverRowDetector.checked(settings.leftover_rows)

    def _on_checkout(self, dbapi_connection, record, proxy) -> None:
        """Note the checkout (one the server closed was refused before this: engines.py)."""
        self.checkouts[record] = proxy

    def _on_checkin(self, dbapi_connection, record) -> None:
        self.checkouts.pop(record, None)

    async def begin_test(self, **helper_options) -> TestSessions:
        await notice_closed_connections()
        connection = await self.engine.connect()  # self.session's, until end_test closes it
        try:
            if self.leftovers.needs_baseline or self.reset_sequences:
                async with connection.begin():  # ended: the session begins its own
                    await self.leftovers.start(connection)
                    if self.reset_sequences:
                        await self.backend.reset_sequences(connection)
            factory = RecordingSessionmaker(self.engine, **self.session_options)
            session = factory.labelled("self.session", bind=connection)
        except BaseException:
            await connection.close()
            raise
        if self.backend is not None:  # a lone helper read: no BEGIN and COMMIT round trips
            helper_options.setdefault("without_transaction", self.backend.without_transaction)
        return TestSessions(factory, AsyncTestDatabase(session, connection=connection,
                                                       **helper_options))

    async def end_test(self, sessions: TestSessions, *, keep: KeepState | None = None) -> None:
        """Close the app's sessions, delete the rows the test made, look for leftovers.

        The app's sessions go first: one left open may hold locks on the very
        rows cleanup deletes (its uncommitted work is rolled back). ``keep``
        first copies what the test committed (a failed test, with
        ``TEST_FRAMEWORK_KEEP_FAILED``). The leftover count runs in the
        deletion's transaction, after its DELETEs; a leftover error is raised
        only once every connection of the test is back in the pool.
        """
        if keep is not None:
            async with self.bounded("keeping the failed test's state"), \
                    self.engine.connect() as connection:
                await keep(connection)
        counted: dict[str, int] = {}

        async def count_leftovers(connection) -> None:
            counted.update(await self.leftovers.count(connection))

        watching = self.leftovers.watching
        async with self.bounded("the test's cleanup"):
            try:
                await sessions.session_factory.close_all(keep=sessions.session)
                await sessions.db.cleanup(before_commit=count_leftovers if watching else None)
            except BaseException:
                self.leftovers.forget()  # not counted: a new baseline before the next test
                raise
            finally:
                try:
                    await sessions.session_factory.close_all()
                finally:
                    await self._release_connection(sessions)
        test_id = current_test_id.get()
        if self.checkouts:
            leftovers = list(self.checkouts.values())
            self.checkouts.clear()
            warnings.warn(f"{test_id} left {len(leftovers)} connection(s) checked out of the "
                          "engine; they were closed. Close what you open "
                          "(async with engine.connect() ...)", ResourceWarning, stacklevel=2)
            for connection in leftovers:
                await greenlet_spawn(connection.invalidate)
        if watching:
            self.leftovers.check(test_id, counted)

    async def _release_connection(self, sessions: TestSessions) -> None:
        """Return the test's connection to the pool; ``self.session`` and ``self.db`` fall
        back to the engine, so a cleanup that runs after teardown (``addCleanup``) can
        still use them."""
        session = sessions.session
        connection = session.bind
        sessions.db.connection_released()
        if isinstance(connection, AsyncConnection):
            session.bind = self.engine
            await connection.close()

    async def close(self, *, bound: float | None = None, occasion: str = "") -> None:
        """Nothing held between tests; stop watching the pool, whose engine may outlive us."""
        pool = self.engine.sync_engine.pool
        for name, listener in (("checkout", self._on_checkout), ("checkin", self._on_checkin)):
            if event.contains(pool, name, listener):
                event.remove(pool, name, listener)

    def abandon(self, why: str) -> None:
        """Drop every connection a session still has checked out, without waiting (Ctrl-C)."""
        dropped = self._drop_checkouts()
        if dropped:
            report_abandoned(f"{dropped} database connection(s) of the test's sessions", why)

    @contextlib.asynccontextmanager
    async def bounded(self, step: str):
        """Give ``step`` at most ``teardown_bound``; past that, abandon what it holds."""
        try:
            async with asyncio.timeout(self.teardown_bound):
                yield
        except TimeoutError as exc:
            self._drop_checkouts()
            raise no_answer(step, "the database connection(s) it used",
                            self.teardown_bound) from exc

    def _drop_checkouts(self) -> int:
        leftovers = list(self.checkouts.values())
        self.checkouts.clear()
        for connection in leftovers:
            drop_now(connection)
        return len(leftovers)


class TruncateIsolation(CommitIsolation):
    """Real commits; after each test every table of the schema is emptied at once.

    For code that commits rows the test cannot track (bulk loads, other
    processes). One TRUNCATE on PostgreSQL; DELETEs in foreign-key order on
    SQLite.
    """

    name = "truncate"

    def __init__(self, engine: AsyncEngine, *, backend=None,
                 settings: IsolationSettings = IsolationSettings()) -> None:
        # Nothing can be left over: every table is emptied anyway.
        super().__init__(engine, backend=backend,
                         settings=dataclasses.replace(settings, leftover_rows="ignore"))
        self.tables = None  # reflected on first use: the database's real tables

    async def begin_test(self, **helper_options) -> TestSessions:
        return await super().begin_test(delete_rows_on_cleanup=False, **helper_options)

    async def end_test(self, sessions: TestSessions, *, keep: KeepState | None = None) -> None:
        try:
            await super().end_test(sessions, keep=keep)
        finally:
            async with self.bounded("emptying the tables"), self.engine.begin() as connection:
                await require_test_connection(connection, "truncate")
                if self.tables is None:
                    self.tables = await data_tables(connection)
                await self.backend.empty_tables(connection, self.tables)


class DatabaseIsolation(CommitIsolation):
    """A fresh database for the class, cloned from the template and dropped after it.

    Tests inside the class commit for real and their tracked rows are deleted,
    as in commit mode; nothing the class does can reach another class.
    """

    name = "database"
    private_database = True
