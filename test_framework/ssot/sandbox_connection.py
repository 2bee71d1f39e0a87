"""The connection a sandboxed engine hands out in rollback isolation.

``engine.connect()`` and ``engine.begin()`` on an engine listed in a class's
``sandbox`` return a ``SandboxConnection``: the test's own connection behind a
framework session, so the app's commit releases a savepoint and its rollback
or close undoes only its own work. Kept apart from ``sandbox.py``, which
decides what to patch and restores it; this module only behaves like an
``AsyncConnection``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from test_framework.errors import SandboxError
from test_framework.ssot.shared_savepoints import LABEL_KEY

if TYPE_CHECKING:
    from test_framework.ssot.sandbox import Sandbox


class SandboxConnection(AsyncConnection):
    """``engine.connect()`` in rollback isolation: the test's connection behind a session.

    Its ``commit()`` releases the session's savepoint, ``rollback()`` and
    ``close()`` undo what it wrote since, as an app session's would; ``begin()``
    starts nothing new on the server (the savepoint is the transaction).
    Statements go through the session, so ``SharedSavepoints`` credits them.
    """

    def __init__(self, engine: AsyncEngine, sandbox: Sandbox) -> None:
        super().__init__(engine)
        self._sandbox = sandbox
        self._session = None
        self._closed = False

    async def start(self, is_ctxmanager: bool = False) -> SandboxConnection:
        if self._session is not None:
            raise SandboxError("this sandboxed connection is already started")
        self._sandbox.check_loop("the sandboxed engine's connection")
        self._session = self._sandbox.factory()
        self._session.sync_session.info[LABEL_KEY] = "a connection of the sandboxed engine"
        # Assigned, not registered as the sync connection's proxy: the framework's
        # own AsyncConnection stays the one SQLAlchemy hands out for it.
        self.sync_connection = (await self._session.connection()).sync_connection
        return self

    async def _begun(self) -> None:
        if self._closed or self._session is None:
            self._raise_for_not_started()
        await self._session.connection()

    async def execute(self, statement, parameters=None, *, execution_options=None):
        await self._begun()
        return await self._session.execute(statement, parameters,
                                           execution_options=execution_options or {})

    async def exec_driver_sql(self, *args, **kwargs):
        await self._begun()
        return await super().exec_driver_sql(*args, **kwargs)

    async def run_sync(self, *args, **kwargs):
        await self._begun()
        return await super().run_sync(*args, **kwargs)

    async def execution_options(self, **options) -> SandboxConnection:
        if "isolation_level" in options:
            raise SandboxError(
                f"execution_options(isolation_level={options['isolation_level']!r}) on a "
                "connection of a sandboxed engine: in rollback isolation it is the test's "
                "connection, inside the test's transaction. Give the class isolation = "
                "'commit' to test code that changes isolation levels")
        await super().execution_options(**options)
        return self

    def begin(self) -> SandboxTransaction:
        return SandboxTransaction(self)

    def get_transaction(self):
        return SandboxTransaction(self) if self.in_transaction() else None

    def in_transaction(self) -> bool:
        return self._session is not None and self._session.in_transaction()

    async def commit(self) -> None:
        await self._session.commit()

    async def rollback(self) -> None:
        await self._session.rollback()

    async def close(self) -> None:
        if self._session is not None and not self._closed:
            self._closed = True
            await self._session.close()

    async def invalidate(self, exception=None) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._closed


class SandboxTransaction:
    """``conn.begin()`` on a ``SandboxConnection``: commit on success, roll back on error."""

    def __init__(self, connection: SandboxConnection) -> None:
        self.connection = connection
        self.is_active = False

    async def start(self, is_ctxmanager: bool = False) -> SandboxTransaction:
        await self.connection._begun()
        self.is_active = True
        return self

    def __await__(self):
        return self.start().__await__()

    async def __aenter__(self) -> SandboxTransaction:
        return await self.start(is_ctxmanager=True)

    async def __aexit__(self, type_, value, traceback) -> None:
        if type_ is None and self.is_active:
            await self.commit()
        elif self.is_active:
            await self.rollback()

    async def commit(self) -> None:
        self.is_active = False
        await self.connection.commit()

    async def rollback(self) -> None:
        self.is_active = False
        await self.connection.rollback()

    async def close(self) -> None:
        if self.is_active:
            await self.rollback()

