"""What every backend offers; subclasses override only backend-specific steps.

Core code asks a backend (a method or a capability flag) and never compares
URL strings, so a new backend is one new module plus one line in
``backends/__init__.py``. The provisioning steps (create from a template,
drop, rename, list, lock, empty tables) are plain async methods that
``test_framework.provision`` strings together.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, AsyncIterator, ClassVar

from sqlalchemy import Table
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from test_framework.config import Timeouts
from test_framework.log import mask_url


@dataclass(frozen=True)
class DatabaseRecord:
    """A ``test_`` database found on a server, with the label the framework gave it."""

    name: str
    url: URL
    label: str | None


class Backend:
    """A database server kind: how to name, create, drop and connect to test databases."""

    name: ClassVar[str]
    driver: ClassVar[str]
    extra: ClassVar[str | None] = None
    supports_schemas: ClassVar[bool] = False
    max_identifier_length: ClassVar[int] = 63

    def __init__(self, url: URL, *, source: str, timeouts: Timeouts = Timeouts()) -> None:
        self.url = url
        self.source = source
        self.timeouts = timeouts

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {mask_url(self.url)} from {self.source}>"

    @property
    def connect_timeout(self) -> float:
        return self.timeouts.connect

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    @property
    def dialect(self):
        """The SQLAlchemy dialect, for compiling DDL without a connection."""
        from sqlalchemy.dialects import registry
        return registry.load(f"{self.name}.{self.driver}")()

    @property
    def stem(self) -> str:
        """The configured database's name, made safe for use inside identifiers."""
        raw = self.database_name(self.url).rsplit(".", 1)[0] or "framework"
        return "".join(c if c.isalnum() else "_" for c in raw).lower()

    def test_database_name(self, *parts: str, prefix: str = "test_", reserve: int = 0) -> str:
        """Return ``<prefix><stem>_<parts...>`` cut to fit the identifier length.

        ``reserve`` keeps room for a suffix added later (``_building``).
        """
        suffix = "_".join(parts)
        room = self.max_identifier_length - len(prefix) - 1 - len(suffix) - reserve
        return f"{prefix}{self.stem[:max(room, 1)]}_{suffix}"

    @classmethod
    def database_name(cls, url: URL) -> str:
        """Return the name the safety guard checks: it must start with ``test_``."""
        return url.database or ""

    @classmethod
    def is_persistent(cls, url: URL) -> bool:
        """Return False for databases that vanish with their connection (SQLite memory)."""
        return True

    # -- provisioning steps each backend implements ----------------------------------

    def database_url(self, name: str, *, kept: bool = False) -> URL:
        """Return the URL of the database called ``name`` on this server.

        ``kept`` marks databases that outlive the process (templates, reused
        databases), which file-based backends store in a cache folder.
        """
        raise NotImplementedError

    async def create_database(self, url: URL, *, template: URL | None = None,
                              label: str | None = None) -> None:
        raise NotImplementedError

    async def drop_database(self, url: URL) -> None:
        """Drop the database; quiet when it is already gone."""
        raise NotImplementedError

    async def rename_database(self, url: URL, name: str) -> URL:
        raise NotImplementedError

    async def database_exists(self, url: URL) -> bool:
        raise NotImplementedError

    async def list_databases(self) -> list[DatabaseRecord]:
        """Return the ``test_`` databases on this server, with their labels."""
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def exclusive(self, key: str) -> AsyncIterator[None]:
        """Hold a lock named ``key`` shared with every process using this server."""
        raise NotImplementedError
        yield  # pragma: no cover

    async def empty_tables(self, connection: AsyncConnection, tables: list[Table]) -> None:
        """Delete every row of ``tables`` as cheaply as the backend allows."""
        raise NotImplementedError

    async def execute_script(self, connection: AsyncConnection, script: str) -> None:
        """Run a SQL file's text (several statements) through the driver."""
        raise NotImplementedError

    # -- connections ----------------------------------------------------------------

    def engine_options(self, url: URL) -> dict[str, Any]:
        """Return keyword arguments for ``create_async_engine``."""
        return {}

    def prepare_engine(self, engine: AsyncEngine) -> None:
        """Install the event hooks this backend needs on a new engine."""

    def connection_is_closed(self, driver_connection: Any) -> bool:
        """Return True if the driver already knows the connection is gone (no round trip)."""
        return False

    def explain_statement_error(self, exc: BaseException, connection=None) -> str | None:
        """Return a note for errors whose driver message does not say what to do.

        ``connection`` is the sync SQLAlchemy connection the statement failed on.
        """
        return None

    def explain_connect_error(self, exc: BaseException) -> str:
        """Return a hint for a failed connection, to append to the error."""
        return "check that the server is running and the URL is right"

    def describe_unreachable(self, exc: BaseException) -> str:
        """One line for a server we could not reach: where, why, and what to do."""
        return (f"cannot reach {self.masked_url} (from {self.source}): "
                f"{type(exc).__name__}: {str(exc) or 'timed out'}; "
                f"{self.explain_connect_error(exc)}")
