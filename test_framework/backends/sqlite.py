"""SQLite through aiosqlite: the default, embedded backend (nothing to install or start).

A "database" is a file. Each process keeps its files in a private temporary
folder named ``test_framework_<pid>_<random>`` (so a later run can tell
whether its owner is still alive); schema templates and kept databases live
in a cache folder (``$XDG_CACHE_HOME/test_framework``) and are copied, not
rebuilt. Cross-process locks are ``flock`` on a file in that folder.

Two driver quirks are handled here and nowhere else:

* The sqlite3 driver's legacy transaction control does not emit ``BEGIN``
  before ``SAVEPOINT``, so savepoints would not join the enclosing
  transaction. We turn the driver's handling off and emit the BEGIN
  ourselves (SQLAlchemy's documented recipe; rollback isolation relies on
  it): ``BEGIN IMMEDIATE`` before a transaction's first statement that is not
  a ``SELECT``, so concurrent writers wait their turn instead of failing.
* Foreign keys are off by default in SQLite; every connection turns them on.

Commits do not wait for the disk (``synchronous=OFF``): the files are
throwaway, and a crash loses nothing a test needs.

Test engines drive sqlite3 on the event loop's thread instead
(``sqlite_inline.py``, about 3x faster per test);
``TEST_FRAMEWORK_SQLITE_DRIVER=aiosqlite`` keeps aiosqlite's worker thread.
On the loop's thread SQLite's own busy wait is short (``BUSY_WAIT``), and a
writer waiting for another connection's lock (in commit mode, perhaps a task
of the same test, on the same loop) waits on the loop instead, so the holder
can commit meanwhile.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, AsyncIterator

from sqlalchemy import Table, event, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.schema import sort_tables

from test_framework.backends import sqlite_begin, sqlite_inline, sqlite_interrupts
from test_framework.backends.base import Backend, DatabaseRecord
from test_framework.config import project_settings
from test_framework.config import cache_folder
from test_framework.interrupts import on_interrupt
from test_framework.log import get_logger

logger = get_logger(__name__)
sqlite_inline.register()

MEMORY_NAMES = {None, "", ":memory:"}
PRIVATE_PREFIX = "test_framework_"
SUFFIX = ".sqlite3"
LABEL_SUFFIX = ".label"
OWNER_LOCK = "owner.lock"
LOCK_POLL = 0.2
PROGRESS_EVERY = 10.0


@dataclass
class PrivateFolder:
    """This process's folder of database files, and the open lock file that proves it lives."""

    path: Path
    lock: IO
    pid: int


_private: PrivateFolder | None = None
_held_for_run: dict[str, tuple[int, IO]] = {}


def cache_dir() -> Path:
    """Where templates and kept databases live between runs."""
    folder = cache_folder().value / "sqlite"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def private_dir() -> Path:
    """Return this process's folder for its database files, made on first use.

    The folder holds ``owner.lock``, flocked for the life of the process: the
    kernel releases it when the process dies, in whatever PID namespace. The
    lock file appears already locked (renamed into place), so no reaper can
    ever find it free while its run is alive.
    """
    global _private
    if _private is None or _private.pid != os.getpid():
        path = Path(tempfile.mkdtemp(
            prefix=f"{PRIVATE_PREFIX}{os.getpid()}_{secrets.token_hex(2)}_"))
        staging = path / f".{OWNER_LOCK}"
        lock = open(staging, "w")
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(staging, path / OWNER_LOCK)
        _private = PrivateFolder(path, lock, os.getpid())
        atexit.register(_leave_private_dir, _private)  # after the databases' drop hook
    return _private.path


def _leave_private_dir(private: PrivateFolder) -> None:
    """At exit: remove the folder if no database is left in it (a run that kept its
    database in the cache never dropped one here), and release its lock. Only in the
    process that made it: a forked child inherits this hook, not the folder."""
    if private.pid == os.getpid():
        _remove_if_emptied(private.path)
    private.lock.close()


def _remove_if_emptied(folder: Path) -> None:
    """Remove a run's folder once only its lock file is left (ours: forget it too)."""
    global _private
    try:
        if any(p.name != OWNER_LOCK for p in folder.iterdir()):
            return
    except FileNotFoundError:  # another reaper of the same dead run removed it just now
        return
    (folder / OWNER_LOCK).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()
    if _private is not None and _private.path == folder and _private.pid == os.getpid():
        _private.lock.close()
        _private = None


def _lock_file(key: str) -> IO:
    folder = cache_dir() / "locks"
    folder.mkdir(exist_ok=True)
    return open(folder / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.lock", "a")


def _try_flock(handle: IO) -> bool:
    """Take ``handle``'s lock alone without waiting; False if another open file holds it."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


async def _flock_waiting(handle: IO, mode: int, key: str) -> None:
    """Wait for a flock as long as its holder lives, logging progress (never blocks the loop)."""
    started = reported = time.monotonic()
    while True:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() - reported >= PROGRESS_EVERY:
                reported = time.monotonic()
                logger.info("still waiting for %s, held by another run (%.0f s so far)",
                            key, reported - started)
            await asyncio.sleep(LOCK_POLL)


class SQLiteBackend(Backend):
    name = "sqlite"
    driver = "aiosqlite"
    engine_drivers = (sqlite_inline.DRIVER,)
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
        """Copy the template file, or start with an empty one.

        Files in the cache folder carry their label beside them (``<file>.label``);
        a file in a run's private folder is labelled by that folder.
        """
        if not self.is_persistent(url):
            return
        if template is not None:
            await asyncio.to_thread(shutil.copyfile, template.database, url.database)
        else:  # an empty file is an empty database, and shows in listings at once
            Path(url.database).touch()
        if label is not None:
            await self.relabel(url, label)

    async def relabel(self, url: URL, label: str) -> None:
        if Path(url.database).parent == cache_dir():
            Path(url.database + LABEL_SUFFIX).write_text(label, encoding="utf-8")

    async def drop_database(self, url: URL) -> None:
        if not self.is_persistent(url):
            return
        for suffix in ("", "-journal", "-wal", "-shm", LABEL_SUFFIX):
            Path(url.database + suffix).unlink(missing_ok=True)
        folder = Path(url.database).parent
        if folder.name.startswith(PRIVATE_PREFIX):
            _remove_if_emptied(folder)

    async def rename_database(self, url: URL, name: str) -> URL:
        renamed = url.set(database=str(Path(url.database).with_name(f"{name}{SUFFIX}")))
        if Path(url.database + LABEL_SUFFIX).exists():
            os.replace(url.database + LABEL_SUFFIX, renamed.database + LABEL_SUFFIX)
        os.replace(url.database, renamed.database)
        return renamed

    async def database_exists(self, url: URL) -> bool:
        return not self.is_persistent(url) or Path(url.database).exists()

    async def list_databases(self) -> list[DatabaseRecord]:
        """Files in every run's private folder (labelled with the run) and in the cache."""
        records = []
        for folder in sorted(Path(tempfile.gettempdir()).glob(f"{PRIVATE_PREFIX}*")):
            try:  # consumed here: another run may remove its folder while we look
                paths = sorted(folder.glob(f"test_*{SUFFIX}"))
            except (FileNotFoundError, NotADirectoryError):
                continue
            records.extend(DatabaseRecord(path.stem, self.url.set(database=str(path)),
                                          f"test_framework run={folder.name}") for path in paths)
        for path in sorted(cache_dir().glob(f"test_*{SUFFIX}")):
            try:
                label = Path(f"{path}{LABEL_SUFFIX}").read_text(encoding="utf-8")
            except FileNotFoundError:  # unlabelled, or renamed or dropped just now
                label = None
            if path.exists():
                records.append(DatabaseRecord(path.stem, self.url.set(database=str(path)), label))
        return records

    @contextlib.asynccontextmanager
    async def exclusive(self, key: str) -> AsyncIterator[None]:
        """``flock`` on a file in the cache folder; released when the file closes."""
        with _lock_file(key) as handle:
            await _flock_waiting(handle, fcntl.LOCK_EX, key)
            yield

    @contextlib.asynccontextmanager
    async def shared(self, key: str) -> AsyncIterator[None]:
        with _lock_file(key) as handle:
            await _flock_waiting(handle, fcntl.LOCK_SH, key)
            yield

    @contextlib.asynccontextmanager
    async def try_exclusive(self, key: str) -> AsyncIterator[bool]:
        with _lock_file(key) as handle:
            yield _try_flock(handle)

    async def hold_for_run(self, key: str) -> bool:
        """A flock kept open until the process exits (a forked child takes its own)."""
        held = _held_for_run.get(key)
        if held is not None and held[0] == os.getpid():
            return True
        handle = _lock_file(key)
        if not _try_flock(handle):
            handle.close()
            return False
        _held_for_run[key] = (os.getpid(), handle)
        return True

    async def claim_run(self) -> str:
        return f"test_framework run={private_dir().name}"

    @contextlib.asynccontextmanager
    async def claim_orphan(self, record: DatabaseRecord) -> AsyncIterator[bool]:
        """An orphan lies in a run's folder whose ``owner.lock`` nobody holds any more."""
        folder = Path(record.url.database).parent
        ours = _private is not None and _private.path == folder and _private.pid == os.getpid()
        try:
            handle = None if ours or not folder.name.startswith(PRIVATE_PREFIX) \
                else open(folder / OWNER_LOCK, "r")
        except FileNotFoundError:  # a folder made by an older version, or being removed
            handle = None
        if handle is None:
            yield False
            return
        with handle:
            free = _try_flock(handle)
            yield free
            if free:
                _remove_if_emptied(folder)

    @classmethod
    def connected_database(cls, dbapi_connection) -> str:
        """The main database's file, with symbolic links resolved (``""`` in memory)."""
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA database_list")
            path = next(row[2] for row in cursor.fetchall() if row[1] == "main")
        finally:
            cursor.close()
        if not path:
            return "test_memory"
        return Path(os.path.realpath(path)).name.removesuffix(SUFFIX)

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

    async def relax_foreign_keys(self, connection: AsyncConnection) -> None:
        """Turn the connection's foreign keys off, sent before its first transaction
        (SQLite ignores the pragma inside one), past the BEGIN this module adds."""
        def foreign_keys_off(sync_connection) -> None:
            cursor = sync_connection.connection.dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA foreign_keys=OFF")
            finally:
                cursor.close()
        await connection.run_sync(foreign_keys_off)

    async def reset_sequences(self, connection: AsyncConnection) -> None:
        """Bring ``sqlite_sequence`` back to each AUTOINCREMENT table's highest rowid.

        A plain ``INTEGER PRIMARY KEY`` takes the highest rowid + 1 already, and
        ``sqlite_sequence`` is a table like any other, undone by a rollback: only
        counters that committed work moved past the table's rows need this. It
        writes only then, so a test that needs nothing takes no write lock.
        """
        found = await connection.execute(text(
            "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'"))
        if found.first() is None:
            return
        quote = connection.dialect.identifier_preparer.quote
        for name, seq in (await connection.execute(text(
                "SELECT name, seq FROM sqlite_sequence"))).all():
            highest = (await connection.execute(text(
                f"SELECT coalesce(max(rowid), 0) FROM {quote(name)}"))).scalar_one()
            if seq > highest:
                await connection.execute(
                    text("UPDATE sqlite_sequence SET seq = :s WHERE name = :n"),
                    {"s": highest, "n": name})

    async def has_deferrable_constraints(self, connection: AsyncConnection) -> bool:
        """SQLite lists no key's deferrability: a table whose DDL says DEFERRABLE has one."""
        return (await connection.execute(text(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' "
            "AND upper(sql) LIKE '%DEFERRABLE%' LIMIT 1"))).first() is not None

    async def deferred_violation(self, connection: AsyncConnection) -> str | None:
        """``PRAGMA foreign_key_check``, as Django's ``check_constraints`` runs it.

        Only a transaction that wrote (its BEGIN was sent) can hold a violation;
        read on the driver's connection, past SQLAlchemy's statement events.
        """
        def check(sync_connection) -> str | None:
            if not sync_connection.connection.driver_connection.in_transaction:
                return None
            cursor = sync_connection.connection.dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA foreign_key_check")
                violations = cursor.fetchall()[:FOREIGN_KEYS_SHOWN]
                described = []
                for table, rowid, parent, key in violations:
                    cursor.execute(f"PRAGMA foreign_key_list({_quoted(table)})")
                    columns = [(row[3], row[4]) for row in cursor.fetchall() if row[0] == key]
                    pairs = ", ".join(f"{table}.{own} -> {parent}.{to or 'rowid'}"
                                      for own, to in columns)
                    described.append(f"{table} row {rowid} references a missing {parent} row "
                                     f"(foreign key {pairs})")
            finally:
                cursor.close()
            return "; ".join(described) or None
        return await connection.run_sync(check)

    def engine_url(self, url: URL) -> URL:
        """The inline driver for a test engine, unless aiosqlite is chosen."""
        if project_settings().sqlite_driver.value == sqlite_inline.DRIVER:
            return url.set(drivername=f"sqlite+{sqlite_inline.DRIVER}")
        return url

    def shared_engine_options(self) -> dict[str, Any]:
        """One idle connection kept for the next class (any number open meanwhile).

        Opening the file anew cost each class about a millisecond: the connect,
        the connect-time pragmas, SQLite reading the schema again, the close.
        A connection a test changed beyond what a rollback undoes (a pragma,
        a SQL function) is closed as it comes back instead (``_checked_in``).
        """
        return {"pool_size": 1, "max_overflow": -1}

    def can_share_engine(self, engine_url: URL, *, one_connection: bool) -> bool:
        """Only the inline driver (aiosqlite runs each connection on a non-daemon thread),
        and for one connection a class: other modes open connections test by test, which
        a pool of the class's own keeps open (the shared engine has none)."""
        return one_connection and self.is_persistent(engine_url) and \
            engine_url.drivername == f"sqlite+{sqlite_inline.DRIVER}"

    def engine_options(self, url: URL, *, test_database: bool = False) -> dict[str, Any]:
        """SQLite's ``timeout`` is how long a writer waits for a lock: our lock timeout.

        SQLite waits (its busy handler) only where waiting can succeed; see
        ``sqlite_begin.begin_before_write`` for how every write transaction gets there.
        On the loop's thread it waits ``sqlite_inline.BUSY_WAIT`` at most,
        and ``BEGIN IMMEDIATE`` waits the rest on the loop.
        """
        return {"connect_args": {"timeout": sqlite_begin.busy_wait(url, self.timeouts.lock)}}

    def prepare_engine(self, engine: AsyncEngine) -> None:
        statement_timeout = self.timeouts.statement
        lock_timeout = self.timeouts.lock
        busy_wait = sqlite_begin.busy_wait(engine.url, lock_timeout)

        def on_connect(dbapi_connection, connection_record) -> None:
            _on_connect(dbapi_connection, connection_record, statement_timeout=statement_timeout)

        def begin_before_write(connection, cursor, statement, parameters, context,
                               executemany) -> None:
            sqlite_begin.begin_before_write(connection, statement, context,
                                            lock_timeout=lock_timeout, busy_wait=busy_wait)

        sync_engine = engine.sync_engine
        event.listen(sync_engine, "do_connect", sqlite_interrupts.use_interruptible_connections)
        event.listen(sync_engine, "connect", on_connect)
        event.listen(sync_engine, "checkout", _checked_out)
        event.listen(sync_engine, "checkin", _checked_in)
        event.listen(sync_engine, "before_cursor_execute", begin_before_write)  # first: see there
        event.listen(sync_engine, "before_cursor_execute", sqlite_interrupts.statement_sent)
        event.listen(sync_engine, "after_cursor_execute", sqlite_interrupts.statement_done)
        event.listen(sync_engine, "handle_error", sqlite_interrupts.statement_failed)
        event.listen(sync_engine, "handle_error", _roll_back_failed_commit)
        on_interrupt(sqlite_interrupts.interrupt_all)

    def explain_statement_error(self, exc: BaseException, connection=None) -> str | None:
        if sqlite_interrupts.timed_out(exc, connection):
            return (f"test_framework: the statement ran longer than statement_timeout "
                    f"({self.timeouts.statement:g}s) and was stopped; raise the bound with "
                    "TEST_FRAMEWORK_STATEMENT_TIMEOUT if it is expected to be slow")
        return None

    def explain_connect_error(self, exc: BaseException) -> str:
        return "check that the folder of the SQLite file exists and is writable"


FOREIGN_KEYS_SHOWN = 5  # violations named in a deferred-constraint failure


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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
    if isinstance(dbapi_connection, sqlite_inline.InlineConnection):
        dbapi_connection.unchanged_from_here()


def _checked_out(dbapi_connection, connection_record, connection_proxy) -> None:
    if isinstance(dbapi_connection, sqlite_inline.InlineConnection):
        dbapi_connection.checked_out()


def _checked_in(dbapi_connection, connection_record) -> None:
    """Close, rather than pool, a connection a test changed beyond what a rollback undoes.

    A pragma it set or a function it registered would otherwise reach the
    next test or class that checks the connection out; the pool opens a new
    one for it instead. aiosqlite's connections do not say: they are pooled
    as before.
    """
    if isinstance(dbapi_connection, sqlite_inline.InlineConnection):
        dbapi_connection.checked_in()
        if dbapi_connection.session_changed:
            connection_record.invalidate()


def _roll_back_failed_commit(context) -> None:
    """End the transaction a COMMIT failed on, as PostgreSQL does.

    A COMMIT that breaks a deferred foreign key fails and leaves SQLite's
    transaction open, while SQLAlchemy counts it as ended: the statements
    that followed ran inside it, and each of their commits failed on the
    same row again. Only constraint failures: a busy COMMIT may be retried.
    """
    if context.statement is not None or not isinstance(context.sqlalchemy_exception,
                                                       IntegrityError):
        return
    with contextlib.suppress(Exception):
        context.connection.connection.dbapi_connection.rollback()
