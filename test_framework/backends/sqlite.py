"""SQLite through aiosqlite: the default, embedded backend (nothing to install or start).

A "database" is a file. Each process keeps its files in a private temporary
folder named ``test_framework_<pid>_<random>`` (so a later run can tell
whether its owner is still alive); schema templates and kept databases live
in a cache folder (``$XDG_CACHE_HOME/test_framework``) and are copied, not
rebuilt. Cross-process locks are ``flock`` on a file in that folder.

Two driver quirks are handled here and nowhere else:

* The sqlite3 driver's legacy transaction control does not emit ``BEGIN``
  before ``SAVEPOINT`` or a ``SELECT``, so savepoints would not join the
  enclosing transaction. We turn the driver's handling off and emit ``BEGIN``
  ourselves (SQLAlchemy's documented recipe); rollback isolation relies on it.
* Foreign keys are off by default in SQLite; every connection turns them on.

Commits do not wait for the disk (``synchronous=OFF``): the files are
throwaway, and a crash loses nothing a test needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator

from sqlalchemy import Table, event, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.schema import sort_tables

from test_framework.backends import sqlite_interrupts
from test_framework.backends.base import Backend, DatabaseRecord
from test_framework.interrupts import on_interrupt

MEMORY_NAMES = {None, "", ":memory:"}
PRIVATE_PREFIX = "test_framework_"
SUFFIX = ".sqlite3"
_private_dir: Path | None = None


def cache_dir() -> Path:
    """Where templates and kept databases live between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    folder = Path(base) / "test_framework" / "sqlite"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def private_dir() -> Path:
    """Return this process's folder for its database files, made on first use."""
    global _private_dir
    if _private_dir is None or _private_dir.name.split("_")[2] != str(os.getpid()):
        _private_dir = Path(tempfile.mkdtemp(
            prefix=f"{PRIVATE_PREFIX}{os.getpid()}_{secrets.token_hex(2)}_"))
    return _private_dir


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
        return Path(url.database).name.removesuffix(SUFFIX)

    def database_url(self, name: str, *, kept: bool = False) -> URL:
        folder = cache_dir() if kept else private_dir()
        return self.url.set(database=str(folder / f"{name}{SUFFIX}"))

    async def create_database(self, url: URL, *, template: URL | None = None,
                              label: str | None = None) -> None:
        """Copy the template file, or start empty (SQLite creates files on connect)."""
        if template is not None and self.is_persistent(url):
            await asyncio.to_thread(shutil.copyfile, template.database, url.database)

    async def drop_database(self, url: URL) -> None:
        if not self.is_persistent(url):
            return
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(url.database + suffix).unlink(missing_ok=True)
        folder = Path(url.database).parent
        if folder.name.startswith(PRIVATE_PREFIX) and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()

    async def rename_database(self, url: URL, name: str) -> URL:
        renamed = url.set(database=str(Path(url.database).with_name(f"{name}{SUFFIX}")))
        os.replace(url.database, renamed.database)
        return renamed

    async def database_exists(self, url: URL) -> bool:
        return not self.is_persistent(url) or Path(url.database).exists()

    async def list_databases(self) -> list[DatabaseRecord]:
        """Files in every process's private folder (labelled with its pid) and the cache."""
        records = []
        for path in sorted(Path(tempfile.gettempdir()).glob(f"{PRIVATE_PREFIX}*/test_*{SUFFIX}")):
            pid = path.parent.name.split("_")[2]
            label = f"test_framework pid={pid} host={socket.gethostname()}"
            records.append(DatabaseRecord(path.stem, self.url.set(database=str(path)), label))
        for path in sorted(cache_dir().glob(f"test_*{SUFFIX}")):
            try:
                built = path.stat().st_mtime
            except FileNotFoundError:  # renamed or dropped by another process just now
                continue
            records.append(DatabaseRecord(path.stem, self.url.set(database=str(path)),
                                          f"test_framework cache built={built:.0f}"))
        return records

    @contextlib.asynccontextmanager
    async def exclusive(self, key: str) -> AsyncIterator[None]:
        """``flock`` on a file in the cache folder; released when the file closes."""
        lock_file = cache_dir() / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.lock"
        with open(lock_file, "w") as handle:
            await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    async def empty_tables(self, connection: AsyncConnection, tables: list[Table]) -> None:
        """DELETE children before parents (no TRUNCATE here), and restart AUTOINCREMENT."""
        for table in reversed(sort_tables(tables)):
            await connection.execute(table.delete())
        has_sequences = await connection.execute(text(
            "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'"))
        if has_sequences.first():
            await connection.execute(text("DELETE FROM sqlite_sequence"))

    async def execute_script(self, connection: AsyncConnection, script: str) -> None:
        raw = await connection.get_raw_connection()
        await raw.driver_connection.executescript(script)

    def engine_options(self, url: URL) -> dict[str, Any]:
        """SQLite's ``timeout`` is how long a writer waits for a lock: our lock timeout."""
        return {"connect_args": {"timeout": self.timeouts.lock}}

    def prepare_engine(self, engine: AsyncEngine) -> None:
        statement_timeout = self.timeouts.statement

        def on_connect(dbapi_connection, connection_record) -> None:
            _on_connect(dbapi_connection, connection_record, statement_timeout=statement_timeout)

        sync_engine = engine.sync_engine
        event.listen(sync_engine, "do_connect", sqlite_interrupts.use_interruptible_connections)
        event.listen(sync_engine, "connect", on_connect)
        event.listen(sync_engine, "begin", _on_begin)
        event.listen(sync_engine, "before_cursor_execute", sqlite_interrupts.statement_sent)
        event.listen(sync_engine, "after_cursor_execute", sqlite_interrupts.statement_done)
        event.listen(sync_engine, "handle_error", sqlite_interrupts.statement_failed)
        on_interrupt(sqlite_interrupts.interrupt_all)

    def explain_statement_error(self, exc: BaseException, connection=None) -> str | None:
        if sqlite_interrupts.timed_out(exc, connection):
            return (f"test_framework: the statement ran longer than statement_timeout "
                    f"({self.timeouts.statement:g}s) and was stopped; raise the bound with "
                    "TEST_FRAMEWORK_STATEMENT_TIMEOUT if it is expected to be slow")
        return None

    def explain_connect_error(self, exc: BaseException) -> str:
        return "check that the folder of the SQLite file exists and is writable"


def _on_connect(dbapi_connection, connection_record, *, statement_timeout: float) -> None:
    """Disable the driver's own BEGIN handling, enforce foreign keys, skip fsync, bound statements.

    Test databases are throwaway files: waiting for the disk on every commit
    (``synchronous=FULL``) made each commit-mode test about 3x slower.
    """
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()
    sqlite_interrupts.install_statement_clock(dbapi_connection, connection_record,
                                              timeout=statement_timeout)


def _on_begin(connection) -> None:
    """Emit BEGIN ourselves so savepoints and reads join the transaction."""
    connection.exec_driver_sql("BEGIN")
