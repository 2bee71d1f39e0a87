"""What every backend offers; subclasses override only backend-specific steps.

Core code asks a backend (a method or a capability flag) and never compares
URL strings, so a new backend is one new module plus one line in
``backends/__init__.py``.
"""

from __future__ import annotations

import os
import secrets
from typing import Any, ClassVar

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from test_framework.config import Timeouts
from test_framework.log import mask_url


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

    @property
    def connect_timeout(self) -> float:
        return self.timeouts.connect

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {mask_url(self.url)} from {self.source}>"

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    def test_database_name(self, base: str | None) -> str:
        """Return ``test_<base>_<pid>_<random>``: unique to this process, never reused."""
        unique = f"{os.getpid()}_{secrets.token_hex(3)}"
        stem = "".join(c if c.isalnum() else "_" for c in (base or "framework")).lower()
        room = self.max_identifier_length - len("test__") - len(unique)
        return f"test_{stem[:room]}_{unique}"

    @classmethod
    def database_name(cls, url: URL) -> str:
        """Return the name the safety guard checks: it must start with ``test_``."""
        return url.database or ""

    @classmethod
    def is_persistent(cls, url: URL) -> bool:
        """Return False for databases that vanish with their connection (SQLite memory)."""
        return True

    # -- steps each backend implements ------------------------------------------

    def test_database_url(self) -> URL:
        """Return the URL of a new throwaway database for this process."""
        raise NotImplementedError

    async def create_database(self, url: URL) -> None:
        raise NotImplementedError

    async def drop_database(self, url: URL) -> None:
        raise NotImplementedError

    def engine_options(self, url: URL) -> dict[str, Any]:
        """Return keyword arguments for ``create_async_engine``."""
        return {}

    def prepare_engine(self, engine: AsyncEngine) -> None:
        """Install the event hooks this backend needs on a new engine."""

    def connection_is_closed(self, driver_connection: Any) -> bool:
        """Return True if the driver already knows the connection is gone (no round trip)."""
        return False

    def explain_statement_error(self, exc: BaseException) -> str | None:
        """Return a note for errors whose driver message does not say what to do."""
        return None

    def explain_connect_error(self, exc: BaseException) -> str:
        """Return a hint for a failed connection, to append to the error."""
        return "check that the server is running and the URL is right"
