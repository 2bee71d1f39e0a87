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
LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"


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
        """Bound connects, lock waits and statements, so no test can hang the run."""
        milliseconds = lambda seconds: f"{int(seconds * 1000)}ms"  # noqa: E731
        return {"connect_args": {"timeout": self.timeouts.connect, "server_settings": {
            "lock_timeout": milliseconds(self.timeouts.lock),
            "statement_timeout": milliseconds(self.timeouts.statement)}}}

    def explain_connect_error(self, exc: BaseException) -> str:
        return ("check that PostgreSQL is running and accepts connections at that host and "
                "port (on Debian: pg_ctlcluster --skip-systemctl-redirect <version> main "
                "start), and that the user, password and database in the URL are right")

    def connection_is_closed(self, driver_connection: Any) -> bool:
        """asyncpg notices a server-side close (restart, termination) between tests."""
        return driver_connection.is_closed()

    def explain_statement_error(self, exc: BaseException) -> str | None:
        sqlstate = getattr(exc, "sqlstate", None)
        if sqlstate == LOCK_NOT_AVAILABLE:
            return (f"test_framework: waited lock_timeout ({self.timeouts.lock:g}s) for a lock "
                    "another session holds: often a second session of the same test that has "
                    "not committed (in rollback mode all sessions share one transaction, so "
                    "this cannot happen there). Find it with SELECT pid, state, query FROM "
                    "pg_stat_activity WHERE datname = current_database(); raise the bound "
                    "with TEST_FRAMEWORK_LOCK_TIMEOUT")
        if sqlstate == QUERY_CANCELED:
            return (f"test_framework: the statement ran longer than statement_timeout "
                    f"({self.timeouts.statement:g}s) and was cancelled; raise the bound with "
                    "TEST_FRAMEWORK_STATEMENT_TIMEOUT if it is expected to be slow")
        return None

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
