"""What every backend offers; subclasses override only backend-specific steps.

Core code asks a backend (a method or a capability flag) and never compares
URL strings, so a new backend is one new module plus one line in
``backends/__init__.py``. The provisioning steps (create from a template,
drop, rename, list, lock, empty tables) are plain async methods that
``test_framework.provision`` strings together.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import secrets
import socket
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
    schema: str | None = None  # a run's schema inside ``url`` (roles without CREATEDB)


RUN_LABEL = re.compile(r"^test_framework run=(\S+)$")
_run: tuple[int, str] | None = None


def run_id() -> str:
    """This process's run: host, pid and a random part (pids repeat across namespaces)."""
    global _run
    if _run is None or _run[0] != os.getpid():
        _run = (os.getpid(), f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}")
    return _run[1]


def run_label() -> str:
    """The label of this run's databases: says who made them, proves nothing by itself."""
    return f"test_framework run={run_id()}"


def run_lock_key(run: str) -> str:
    """The lock a live run holds; its release (at the run's death) is the proof it is gone."""
    return f"test_framework:run:{run}"


def run_of(label: str | None) -> str | None:
    match = RUN_LABEL.match(label or "")
    return match.group(1) if match else None


class Backend:
    """A database server kind: how to name, create, drop and connect to test databases."""

    name: ClassVar[str]
    driver: ClassVar[str]
    extra: ClassVar[str | None] = None
    # Drivers the backend picks itself for some engines (``engine_url``): a URL taken
    # from such an engine means the backend's own ``driver``.
    engine_drivers: ClassVar[tuple[str, ...]] = ()
    supports_schemas: ClassVar[bool] = False
    # After a failed statement the server refuses every other until a rollback
    # (PostgreSQL); else only the statement is undone (SQLite).
    failed_statement_aborts_transaction: ClassVar[bool] = False
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

    @functools.cached_property
    def server_key(self) -> str:
        """Identify this URL (server, role, database) without a readable password."""
        return hashlib.sha256(self.url.render_as_string(hide_password=False).encode()).hexdigest()

    @functools.cached_property
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
        """Return ``<prefix><stem>_<parts...>`` within the server's limit, in bytes.

        The parts (worker, random, fingerprint) are what makes a name unique,
        so they are kept whole; a stem that does not fit is cut on a character
        boundary and ends with a hash of itself. ``reserve`` keeps room for a
        suffix added later (``_building``).
        """
        suffix = "_".join(parts)
        room = (self.max_identifier_length - len(prefix.encode()) - 1
                - len(suffix.encode()) - reserve)
        stem = self.stem
        if len(stem.encode()) > room:
            digest = hashlib.sha256(stem.encode()).hexdigest()[:8]
            cut = stem.encode()[:max(room - len(digest) - 1, 0)].decode(errors="ignore")
            stem = f"{cut}_{digest}" if cut else digest[:max(room, 1)]
        return f"{prefix}{stem}_{suffix}"

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

    async def relabel(self, url: URL, label: str) -> None:
        """Replace the label of a database this framework made."""
        raise NotImplementedError

    async def publish_template(self, url: URL) -> None:
        """Make a finished template usable by every role that may clone it."""

    # -- a schema per run, for roles that may not create databases -----------------

    async def may_create_databases(self) -> bool:
        """Whether the URL's role may create databases (managed servers often refuse)."""
        return True

    def with_search_path(self, options: dict[str, Any], schema: str) -> dict[str, Any]:
        """Return engine options whose connections use ``schema`` first."""
        raise NotImplementedError(f"{self.name} has no schemas to run in")

    async def create_schema(self, connection: AsyncConnection, name: str, label: str) -> None:
        raise NotImplementedError

    async def drop_schema(self, connection: AsyncConnection, name: str) -> None:
        raise NotImplementedError

    async def list_run_schemas(self, connection: AsyncConnection) -> list[DatabaseRecord]:
        """Return the ``test_`` schemas in the connection's database, with their labels."""
        return []

    async def sessions_on(self, name: str) -> list[str]:
        """Describe the sessions connected to database ``name`` (none for embedded files)."""
        return []

    def clone_blocked(self, exc: BaseException) -> bool:
        """True when cloning failed only because the template is in use right now."""
        return False

    def name_taken(self, exc: BaseException) -> bool:
        """True when creating a database or schema failed because its name exists: it
        is someone else's (here: never, a run's files are in a folder of its own)."""
        return False

    def explain_provision_error(self, exc: BaseException) -> str:
        """Return a hint for a failed create/clone/drop: the real cause, not a guess."""
        return self.explain_connect_error(exc)

    async def database_exists(self, url: URL) -> bool:
        raise NotImplementedError

    async def list_databases(self) -> list[DatabaseRecord]:
        """Return the ``test_`` databases on this server, with their labels."""
        raise NotImplementedError

    # -- locks shared with every process using this server ------------------------
    # A lock is the only proof of life the framework trusts: a process that dies
    # (kill -9, power loss, another PID namespace) releases it, a label cannot.

    @contextlib.asynccontextmanager
    async def exclusive(self, key: str) -> AsyncIterator[None]:
        """Hold the lock named ``key`` alone, waiting as long as its holder lives."""
        raise NotImplementedError
        yield  # pragma: no cover

    @contextlib.asynccontextmanager
    async def shared(self, key: str) -> AsyncIterator[None]:
        """Hold ``key`` beside other sharers (e.g. runs cloning one template)."""
        raise NotImplementedError
        yield  # pragma: no cover

    @contextlib.asynccontextmanager
    async def try_exclusive(self, key: str) -> AsyncIterator[bool]:
        """Take ``key`` alone without waiting; yield whether nobody else held it."""
        raise NotImplementedError
        yield  # pragma: no cover

    async def hold_for_run(self, key: str) -> bool:
        """Take ``key`` until this process exits; False if another process holds it."""
        raise NotImplementedError

    async def claim_run(self) -> str:
        """Hold this run's proof of life on the server; return the label for its databases."""
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def claim_orphan(self, record: DatabaseRecord) -> AsyncIterator[bool]:
        """Yield True only for a per-run database whose run is provably gone.

        While the block runs, the dead run's lock is ours, so no second reaper
        drops the same database and no live run can be mistaken for dead.
        """
        raise NotImplementedError
        yield  # pragma: no cover

    @classmethod
    def connected_database(cls, dbapi_connection) -> str:
        """Return the name of the database the server says this connection is on.

        The safety guard checks this, not the URL: a URL's query string can
        point the driver somewhere else than ``url.database`` says.
        """
        raise NotImplementedError

    async def empty_tables(self, connection: AsyncConnection, tables: list[Table]) -> None:
        """Delete every row of ``tables`` as cheaply as the backend allows."""
        raise NotImplementedError

    async def execute_script(self, connection: AsyncConnection, script: str) -> None:
        """Run a SQL file's text (several statements) through the driver."""
        raise NotImplementedError

    async def relax_foreign_keys(self, connection: AsyncConnection) -> None:
        """Check foreign keys as late as the backend allows on this new connection
        (rows copied table by table into a failed test's kept state)."""

    # -- what rollback isolation adds to each test ------------------------------------

    async def reset_sequences(self, connection: AsyncConnection) -> None:
        """Make the next generated id of each table the one a fresh table would give.

        Runs in the test's transaction, before the test (``reset_sequences``).
        """

    async def has_deferrable_constraints(self, connection: AsyncConnection) -> bool:
        """Whether the schema declares any constraint a transaction may defer to its commit
        (without one, ``deferred_violation`` has nothing to find)."""
        return False

    async def deferred_violation(self, connection: AsyncConnection) -> str | None:
        """Describe a constraint the transaction violates that only a commit would check.

        Asked before a test's transaction is rolled back, so a violation that
        a real commit would raise fails the test (``check_deferred_constraints``).
        None when there is none, or the transaction cannot be checked (already
        failed: the test saw that error).
        """
        return None

    # -- connections ----------------------------------------------------------------

    def engine_url(self, url: URL) -> URL:
        """Return the URL to build a test engine on: ``url``, or another driver for it."""
        return url

    def engine_options(self, url: URL, *, test_database: bool = False) -> dict[str, Any]:
        """Return keyword arguments for ``create_async_engine`` (``test_database``: for the
        engines tests use, which may trade durability for speed)."""
        return {}

    def shared_engine_options(self) -> dict[str, Any]:
        """Pool options of an engine that serves class after class: hand on the connection
        returned last, so the next class finds it warm (a connect costs round trips)."""
        return {"pool_use_lifo": True}

    def can_share_engine(self, engine_url: URL, *, one_connection: bool) -> bool:
        """May one engine on ``engine_url`` serve test class after test class?
        (``one_connection``: each class holds one connection of it, rollback isolation.)

        Its database must outlive its connections, and its driver must start
        no thread that would keep the process alive until the engine is
        disposed (interpreters join such threads before ``atexit`` runs).
        """
        return self.is_persistent(engine_url)

    def prepare_engine(self, engine: AsyncEngine) -> None:
        """Install the event hooks this backend needs on a new engine."""

    def connection_is_closed(self, driver_connection: Any) -> bool:
        """Return True if the driver already knows the connection is gone (no round trip)."""
        return False

    async def reset_session(self, connection: AsyncConnection) -> None:
        """Clear what outlives a rollback on ``connection`` before another class gets it."""

    @contextlib.contextmanager
    def without_transaction(self, dbapi_connection: Any):
        """Run what follows on ``dbapi_connection`` (SQLAlchemy's adapter) with no
        transaction on the server, where that saves round trips; here, as it is.

        For a read the helper would otherwise wrap in a transaction of its own
        and commit at once: one statement, nothing to roll back.
        """
        yield

    def may_have_closed(self, driver_connection: Any) -> bool:
        """Could the server have closed this idle connection without the driver knowing yet?

        True sends the caller through a few loop passes, so the driver reads
        what waits on the socket (``unanswered.notice_closed_connections``).
        A local database never closes a connection on its own.
        """
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
