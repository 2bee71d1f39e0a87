"""SQLite through aiosqlite: the default, embedded backend (nothing to install or start).

Two quirks are handled here and nowhere else:

* The sqlite3 driver's legacy transaction control does not emit ``BEGIN``
  before ``SAVEPOINT`` or a ``SELECT``, so savepoints would not join the
  enclosing transaction. We turn the driver's handling off and emit ``BEGIN``
  ourselves (SQLAlchemy's documented recipe), which the rollback isolation
  mode relies on.
* Foreign keys are off by default in SQLite; every connection turns them on.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from test_framework.backends.base import Backend

MEMORY_NAMES = {None, "", ":memory:"}
_temp_dir: Path | None = None


def _private_temp_dir() -> Path:
    """Return a directory only this process uses, made on first call."""
    global _temp_dir
    if _temp_dir is None:
        _temp_dir = Path(tempfile.mkdtemp(prefix="test_framework_"))
    return _temp_dir


class SQLiteBackend(Backend):
    name = "sqlite"
    driver = "aiosqlite"
    max_identifier_length = 120

    @classmethod
    def is_persistent(cls, url: URL) -> bool:
        return url.database not in MEMORY_NAMES

    @classmethod
    def database_name(cls, url: URL) -> str:
        if not cls.is_persistent(url):
            return "test_memory"
        return Path(url.database).name

    def test_database_url(self) -> URL:
        if not self.is_persistent(self.url):
            return self.url
        name = self.test_database_name(Path(self.url.database).stem)
        return self.url.set(database=str(_private_temp_dir() / f"{name}.sqlite3"))

    async def create_database(self, url: URL) -> None:
        """Nothing to do: SQLite creates the file on first connect."""

    async def drop_database(self, url: URL) -> None:
        if not self.is_persistent(url):
            return
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(url.database + suffix).unlink(missing_ok=True)
        folder = Path(url.database).parent
        if folder == _temp_dir and not any(folder.iterdir()):
            folder.rmdir()

    def engine_options(self, url: URL) -> dict[str, Any]:
        """SQLite's ``timeout`` is how long a writer waits for a lock: our lock timeout."""
        return {"connect_args": {"timeout": self.timeouts.lock}}

    def prepare_engine(self, engine: AsyncEngine) -> None:
        event.listen(engine.sync_engine, "connect", _on_connect)
        event.listen(engine.sync_engine, "begin", _on_begin)

    def explain_connect_error(self, exc: BaseException) -> str:
        return "check that the folder of the SQLite file exists and is writable"


def _on_connect(dbapi_connection, connection_record) -> None:
    """Disable the driver's own BEGIN handling and enforce foreign keys."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _on_begin(connection) -> None:
    """Emit BEGIN ourselves so savepoints and reads join the transaction."""
    connection.exec_driver_sql("BEGIN")
