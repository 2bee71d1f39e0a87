"""PostgreSQL through asyncpg: the real server serious suites run against.

Databases are created and dropped over a short-lived AUTOCOMMIT connection to
the server's maintenance database (``postgres``), because ``CREATE DATABASE``
cannot run inside a transaction. Names are quoted by the dialect's identifier
preparer, never formatted into SQL by hand.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from test_framework.backends.base import Backend

MAINTENANCE_DATABASE = "postgres"


class PostgreSQLBackend(Backend):
    name = "postgresql"
    driver = "asyncpg"
    extra = "postgres"
    supports_schemas = True

    def test_database_url(self) -> URL:
        return self.url.set(database=self.test_database_name(self.url.database))

    async def create_database(self, url: URL) -> None:
        await self._admin(f"CREATE DATABASE {self._quoted(url.database)}")

    async def drop_database(self, url: URL) -> None:
        """Drop the database, ending other sessions first (PostgreSQL 13+)."""
        await self._admin(f"DROP DATABASE IF EXISTS {self._quoted(url.database)} WITH (FORCE)")

    def engine_options(self, url: URL) -> dict[str, Any]:
        return {"connect_args": {"timeout": self.connect_timeout}}

    def explain_connect_error(self, exc: BaseException) -> str:
        return ("check that PostgreSQL is running and accepts connections at that host and "
                "port (on Debian: pg_ctlcluster --skip-systemctl-redirect <version> main "
                "start), and that the user, password and database in the URL are right")

    def _quoted(self, name: str) -> str:
        from sqlalchemy.dialects.postgresql import dialect
        return dialect().identifier_preparer.quote_identifier(name)

    async def _admin(self, statement: str) -> None:
        """Run one statement on an AUTOCOMMIT connection to the maintenance database."""
        engine = create_async_engine(
            self.url.set(database=MAINTENANCE_DATABASE), poolclass=NullPool,
            isolation_level="AUTOCOMMIT", **self.engine_options(self.url))
        try:
            async with asyncio.timeout(self.connect_timeout + 30):
                async with engine.connect() as connection:
                    await connection.execute(text(statement))
        finally:
            await engine.dispose()
