"""PostgreSQL advisory locks: waiting for one, and holding this run's for its whole life.

``PostgreSQLBackend`` takes short locks (a template build, a kept database)
on its admin connections with the statements here. The run's own locks, the
proof that its databases' owner is alive, need a connection that outlives
every test class's event loop: ``RunLocks`` keeps one on a thread of its own.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import threading
import time
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from test_framework.backends.base import run_label
from test_framework.log import get_logger

if TYPE_CHECKING:
    from test_framework.backends.postgresql import PostgreSQLBackend

logger = get_logger(__name__)

# Two-key advisory locks: a namespace of our own, then a hash of the lock's name.
LOCK_NAMESPACE = 0x54465257
TRY_LOCK = text("SELECT pg_try_advisory_lock(:namespace, hashtext(:key))")
TRY_LOCK_SHARED = text("SELECT pg_try_advisory_lock_shared(:namespace, hashtext(:key))")
UNLOCK = text("SELECT pg_advisory_unlock(:namespace, hashtext(:key))")
UNLOCK_SHARED = text("SELECT pg_advisory_unlock_shared(:namespace, hashtext(:key))")
LOCK_POLL = 0.2
PROGRESS_EVERY = 10.0


class RunLocks:
    """One connection, on a thread of its own, holding this process's run locks.

    Each test class runs on its own event loop, and a connection dies with its
    loop; this one lives on a loop that lasts as long as the process, so the
    server releases its locks exactly when the process ends (``kill -9``
    included), whatever PID namespace or host name the process has.
    """

    def __init__(self, backend: PostgreSQLBackend) -> None:
        self.backend = backend
        self.pid = os.getpid()
        self.keys: set[str] = set()
        self.connection: AsyncConnection | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="test_framework-run-locks")
        self.thread.start()
        # Registered before the databases' own exit hook, so it runs after it: the
        # run's databases are dropped while the run still visibly holds them.
        atexit.register(self.close)

    def close(self) -> None:
        """Close the connection (releasing the locks) and stop the thread's loop."""
        if self.pid != os.getpid() or self.loop.is_closed():
            return
        if self.connection is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.connection.close(), self.loop).result(
                    timeout=self.backend.connect_timeout + 2)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=2)
        if not self.thread.is_alive():
            self.loop.close()

    async def hold(self, key: str) -> bool:
        future = asyncio.run_coroutine_threadsafe(self._hold(key), self.loop)
        return await asyncio.wrap_future(future)

    async def _hold(self, key: str) -> bool:
        if self.connection is None or self.connection.closed or \
                self.connection.sync_connection.connection.driver_connection.is_closed():
            await self._reconnect()
        if key not in self.keys:
            if not (await self.connection.execute(TRY_LOCK, lock_parameters(key))).scalar_one():
                return False
            self.keys.add(key)
        return True

    async def _reconnect(self) -> None:
        """Connect (again, after a server restart) and take back the locks held before."""
        url = self.backend.maintenance_url
        options = self.backend.engine_options(url)
        options["connect_args"]["server_settings"]["application_name"] = run_label()[:63]
        engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
                                     **options)
        async with asyncio.timeout(self.backend.connect_timeout + 1):
            self.connection = await engine.connect()
        held, self.keys = self.keys, set()
        for key in held:
            if (await self.connection.execute(TRY_LOCK, lock_parameters(key))).scalar_one():
                self.keys.add(key)


_run_locks: dict[str, RunLocks] = {}


def run_locks(backend: PostgreSQLBackend) -> RunLocks:
    """This process's lock holder for the backend's server (a new one after a fork).

    One per server address, whatever role a class connects as: a run is one
    process, and its proof of life is one lock.
    """
    server = f"{backend.url.host}:{backend.url.port}:{sorted(backend.url.query.items())}"
    holder = _run_locks.get(server)
    if holder is None or holder.pid != os.getpid():
        holder = _run_locks[server] = RunLocks(backend)
    return holder


async def wait_for_lock(admin: AsyncConnection, key: str, statement) -> None:
    """Poll ``statement`` (a try-lock) until it takes ``key``, logging progress now and then."""
    started = time.monotonic()
    reported = started
    while not (await admin.execute(statement, lock_parameters(key))).scalar_one():
        if time.monotonic() - reported >= PROGRESS_EVERY:
            reported = time.monotonic()
            logger.info("still waiting for %s, held by another run (%.0f s so far)",
                        key, reported - started)
        await asyncio.sleep(LOCK_POLL)


def lock_parameters(key: str) -> dict:
    """Bind parameters of the lock statements: our namespace, then the key (hashed by SQL)."""
    return {"namespace": LOCK_NAMESPACE, "key": key}
