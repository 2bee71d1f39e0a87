"""Throwaway test databases: created on first use, schema built once, dropped at exit.

The framework never runs tests in the database a URL names. It makes a new
database on the same server whose name starts with ``test_`` and is unique to
the process, and drops it when the process ends, failing run or not. Nothing
is created, dropped or emptied unless its name starts with ``test_``.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import weakref
from dataclasses import dataclass, field

from sqlalchemy import MetaData
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from test_framework.backends import Backend, backend_class_for_url
from test_framework.errors import DatabaseUnavailableError, UnsafeDatabaseError
from test_framework.log import get_logger, mask_url

logger = get_logger(__name__)
TEST_PREFIX = "test_"


@dataclass
class ProvisionedDatabase:
    """A throwaway database this process made, and which schemas it holds."""

    backend: Backend
    url: URL
    schemas: set[int] = field(default_factory=set)
    owner_pid: int = field(default_factory=os.getpid)

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)


_databases: dict[str, ProvisionedDatabase] = {}
_failures: dict[str, str] = {}
_memory_schemas: "weakref.WeakKeyDictionary[object, set[int]]" = weakref.WeakKeyDictionary()


def require_test_database(url: URL, action: str) -> None:
    """Refuse ``action`` on any database whose name does not start with ``test_``."""
    name = backend_class_for_url(url).database_name(url)
    if not name.startswith(TEST_PREFIX):
        raise UnsafeDatabaseError(
            f"refusing to {action} database {name!r} ({mask_url(url)}): its name does not "
            f"start with {TEST_PREFIX!r}. The framework only touches databases made for "
            f"tests; point the URL at your application database and let the framework "
            f"create a {TEST_PREFIX}<name> database beside it")


async def provisioned_database(backend: Backend) -> ProvisionedDatabase:
    """Return this process's test database for ``backend``'s URL, creating it on first use.

    A failure is remembered, so later tests fail at once with the same message
    instead of each waiting for its own connect timeout.
    """
    key = backend.url.render_as_string(hide_password=False)
    if key not in _failures and key not in _databases:
        url = backend.test_database_url()
        require_test_database(url, "create")
        try:
            async with asyncio.timeout(backend.connect_timeout + 1):
                await backend.create_database(url)
        except Exception as exc:
            _failures[key] = (f"{type(exc).__name__}: {str(exc) or 'timed out'}; "
                              f"{backend.explain_connect_error(exc)}")
            raise DatabaseUnavailableError(_unavailable(backend, _failures[key])) from exc
        _databases[key] = ProvisionedDatabase(backend, url)
        logger.info("created test database %s", mask_url(url))
        if len(_databases) == 1:
            atexit.register(drop_databases_at_exit)
    if key in _failures:
        raise DatabaseUnavailableError(_unavailable(backend, _failures[key]))
    return _databases[key]


def _unavailable(backend: Backend, reason: str) -> str:
    return (f"cannot create a test database on {backend.masked_url} "
            f"(from {backend.source}): {reason}")


async def ensure_schema(database: ProvisionedDatabase, engine: AsyncEngine,
                        metadata: MetaData) -> None:
    """Create ``metadata``'s tables once per database (per engine for in-memory SQLite)."""
    if database.backend.is_persistent(database.url):
        created = database.schemas
    else:
        created = _memory_schemas.setdefault(engine.sync_engine, set())
    if id(metadata) in created:
        return
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    created.add(id(metadata))
    logger.debug("created %d tables in %s", len(metadata.tables), database.masked_url)


async def drop_database(database: ProvisionedDatabase) -> None:
    """Drop one test database; quiet when it is already gone."""
    require_test_database(database.url, "drop")
    await database.backend.drop_database(database.url)
    logger.info("dropped test database %s", database.masked_url)


async def drop_databases() -> None:
    """Drop every database this process created; report failures, keep going.

    A forked child inherits its parent's list; it drops only its own.
    """
    while _databases:
        _, database = _databases.popitem()
        if database.owner_pid != os.getpid():
            continue
        try:
            await drop_database(database)
        except Exception:
            logger.exception("could not drop test database %s", database.masked_url)


def drop_databases_at_exit() -> None:
    """Drop this process's databases at interpreter exit."""
    if _databases:
        asyncio.run(drop_databases())
