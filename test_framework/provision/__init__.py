"""Throwaway test databases: cloned from a schema template, private to the process.

The framework never runs tests in the database a URL names. On first use in
a process it drops orphans left by dead runs, makes sure a template with the
class's schema exists (``provision.templates``), and clones it into a
database named ``test_<name>_<worker>_<random>``, labelled with its owner.
Each process (each nose2/pytest-xdist worker too) gets its own. Databases are
dropped at exit, by the nose2/pytest plugins in workers that skip ``atexit``,
or by the next run if the process was killed. With ``keep_database`` one
database per schema is kept between runs and only its rows are reset.

Nothing is created, dropped or emptied unless its name starts with ``test_``.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import secrets
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from sqlalchemy import MetaData, inspect
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from test_framework.backends import Backend, backend_class_for_url
from test_framework.engines import create_engine
from test_framework.errors import (ConfigurationError, DatabaseUnavailableError,
                                   SchemaBuildError, TestFrameworkError, UnsafeDatabaseError,
                                   last_cause)
from test_framework.log import get_logger, mask_url
from test_framework.provision.ownership import KEPT_LABEL, reap_orphans
from test_framework.provision.run_schemas import (create_run_schema, drop_run_schema,
                                                  reap_orphan_schemas)
from test_framework.provision.schema import MetadataSchema, SchemaSource, table_ddl
from test_framework.provision.templates import create_database

logger = get_logger(__name__)
TEST_PREFIX = "test_"
WORKER_ENVIRONMENT = "PYTEST_XDIST_WORKER"


@dataclass
class ProvisionedDatabase:
    """A test database this process uses, and whether it outlives the run."""

    backend: Backend
    url: URL
    kept: bool = False
    owner_pid: int = field(default_factory=os.getpid)
    search_path: str | None = None  # the run's schema, when the role may not create databases
    server: str = ""
    tables: dict[str, str] = field(default_factory=dict)  # built from metadata: name -> DDL

    @property
    def masked_url(self) -> str:
        shown = mask_url(self.url)
        return f"{shown} (schema {self.search_path})" if self.search_path else shown


_databases: dict[tuple, ProvisionedDatabase] = {}
_private: list[ProvisionedDatabase] = []
# Being made, not yet recorded above: dropped at exit too (a Ctrl-C just after CREATE DATABASE).
_being_made: list[ProvisionedDatabase] = []
_before_drop: list[Callable[[], None]] = []  # release hooks (the shared loop's engines)
_failures: dict[tuple | str, Exception] = {}
_reaped_servers: set[str] = set()
_may_create_databases: dict[str, bool] = {}
_exit_hook_registered = False


def require_test_database(url: URL, action: str) -> None:
    """Refuse ``action`` on any database whose name does not start with ``test_``."""
    name = backend_class_for_url(url).database_name(url)
    if not name.startswith(TEST_PREFIX):
        raise UnsafeDatabaseError(
            f"refusing to {action} database {name!r} ({mask_url(url)}): its name does not "
            f"start with {TEST_PREFIX!r}. The framework only touches databases made for "
            f"tests; point the URL at your application database and let the framework "
            f"create a {TEST_PREFIX}<name> database beside it")


async def provisioned_database(backend: Backend, schema: SchemaSource | None, *,
                               private: bool = False, keep: bool = False
                               ) -> ProvisionedDatabase:
    """Return this process's database for the server and schema, made on first use.

    ``private`` makes a fresh one for the caller alone (drop it with
    ``drop_database``). A failure is remembered, so later tests fail at once
    with the same message instead of each waiting for its own timeout.
    """
    server = backend.server_key
    key = (server, schema.fingerprint(backend.dialect) if schema else None, keep)
    for failed in (key, server):  # an unreachable server fails every schema at once
        if failed in _failures:
            raise DatabaseUnavailableError(_explain(backend, _failures[failed]))
    if key in _databases and not private:
        return _databases[key]
    try:
        shared = None if private or keep else _sharable(backend, schema, server)
        if shared is not None:
            database = await _add_tables(shared, schema)
        else:
            database = await _provision(backend, schema, server, keep=keep and not private)
            if isinstance(schema, MetadataSchema) and not private and not keep:
                database.server, database.tables = server, table_ddl(schema.metadata,
                                                                     backend.dialect)
    except Exception as exc:
        _failures[key if isinstance(exc, SchemaBuildError) else server] = exc
        raise DatabaseUnavailableError(_explain(backend, exc)) from last_cause(exc)
    if private:
        _private.append(database)
    else:
        _databases[key] = database
    if database in _being_made:
        _being_made.remove(database)
    _register_exit_hook()
    return database


def _sharable(backend: Backend, schema: SchemaSource | None,
              server: str) -> ProvisionedDatabase | None:
    """This process's database on ``server`` that ``schema``'s tables can join, if any.

    Several model sets are common in one suite; a database each would cost a
    clone (and a template) each. Tables of another ``metadata`` join a
    database built from metadata when no table name there has other DDL:
    building a few tables in place costs less than a clone.
    """
    if not isinstance(schema, MetadataSchema) or not backend.is_persistent(backend.url):
        return None
    wanted = table_ddl(schema.metadata, backend.dialect)
    for database in _databases.values():
        if database.server == server and database.tables and all(
                database.tables.get(name, ddl) == ddl for name, ddl in wanted.items()):
            return database
    return None


async def _add_tables(database: ProvisionedDatabase, schema: MetadataSchema
                      ) -> ProvisionedDatabase:
    """Create ``schema``'s missing tables in ``database`` (an existing one is left as is)."""
    backend = database.backend
    engine = create_engine(backend, database.url, search_path=database.search_path)
    try:
        await schema.build(engine, backend)
    finally:
        await engine.dispose()
    database.tables.update(table_ddl(schema.metadata, backend.dialect))
    logger.info("added %s to test database %s", schema.description, database.masked_url)
    return database


def _register_exit_hook() -> None:
    global _exit_hook_registered
    if not _exit_hook_registered:
        atexit.register(drop_databases_now)
        _exit_hook_registered = True


async def _provision(backend: Backend, schema: SchemaSource | None, server: str, *,
                     keep: bool) -> ProvisionedDatabase:
    if not backend.is_persistent(backend.url):
        return ProvisionedDatabase(backend, backend.url)  # in-memory: one per engine
    label = await backend.claim_run()  # before anything exists that a reaper could see
    if server not in _may_create_databases:
        _may_create_databases[server] = await backend.may_create_databases()
    if not _may_create_databases[server]:
        return await _run_schema(backend, schema, server, label)
    if server not in _reaped_servers:
        _reaped_servers.add(server)
        await reap_orphans(backend)
    if keep:
        kept = await _kept_database(backend, schema)
        if kept is not None:
            return kept
    worker = os.environ.get(WORKER_ENVIRONMENT) or f"p{os.getpid()}"
    url = backend.database_url(backend.test_database_name(worker, secrets.token_hex(3)))
    require_test_database(url, "create")
    database = await _made(ProvisionedDatabase(backend, url),
                           create_database(backend, schema, url, label=label))
    logger.info("created test database %s", mask_url(url))
    return database


async def _made(database: ProvisionedDatabase, making: Awaitable[None]) -> ProvisionedDatabase:
    """Make ``database`` (await ``making``), counting it as this process's from before it
    exists, so one that a Ctrl-C or an error catches half-made (or made, not yet
    recorded) is dropped at exit too: the drop does nothing where nothing was made.
    A name that was taken is another run's: it is never counted as ours."""
    _being_made.append(database)
    _register_exit_hook()
    try:
        await making
    except BaseException as exc:
        if database.backend.name_taken(exc):
            _being_made.remove(database)
        raise
    return database


async def _run_schema(backend: Backend, schema: SchemaSource | None, server: str,
                      label: str) -> ProvisionedDatabase:
    """Work in a schema of this run's own inside the URL's ``test_`` database."""
    url = backend.url
    database = backend.database_name(url)
    if not database.startswith(TEST_PREFIX):
        user = url.username or "the URL's user"
        raise ConfigurationError(
            f"the role {user!r} may not create databases, and the URL names {database!r}, "
            f"not a {TEST_PREFIX} database. Either grant it (as a superuser): ALTER ROLE "
            f'"{user}" CREATEDB; or give it a database of its own, CREATE DATABASE '
            f'"{TEST_PREFIX}{database}" OWNER "{user}", and name that in the URL: each run '
            "then works in a schema of its own there")
    if server not in _reaped_servers:
        _reaped_servers.add(server)
        await reap_orphan_schemas(backend, url)
    worker = os.environ.get(WORKER_ENVIRONMENT) or f"p{os.getpid()}"
    name = backend.test_database_name(worker, secrets.token_hex(3))
    return await _made(ProvisionedDatabase(backend, url, search_path=name),
                       create_run_schema(backend, url, name, schema, label=label))


async def _kept_database(backend: Backend, schema: SchemaSource | None
                         ) -> ProvisionedDatabase | None:
    """Reuse ``test_<name>_keep_<hash>`` between runs, emptying its tables first.

    The kept database belongs to one run at a time: the run holds its lock
    until it exits. A second run at the same moment gets a database of its
    own (None here), and says so once.
    """
    fingerprint = schema.fingerprint(backend.dialect)[:12] if schema else "none"
    worker = os.environ.get(WORKER_ENVIRONMENT, "main")
    url = backend.database_url(backend.test_database_name("keep", worker, fingerprint),
                               kept=True)
    require_test_database(url, "reuse")
    if not await backend.hold_for_run(f"test_framework:keep:{url.database}"):
        logger.warning("kept database %s is in use by another run; this run uses a database "
                       "of its own, dropped when it ends", mask_url(url))
        return None
    if await backend.database_exists(url):
        await empty_all_tables(backend, url)
        logger.info("reusing kept test database %s", mask_url(url))
    else:
        await create_database(backend, schema, url, label=KEPT_LABEL)
    return ProvisionedDatabase(backend, url, kept=True)


async def empty_all_tables(backend: Backend, url: URL) -> None:
    """Delete every row in every table of the database (its schema stays)."""
    require_test_database(url, "empty")
    engine = create_engine(backend, url)  # its connections are checked: see engines.py
    try:
        async with engine.begin() as connection:
            await backend.empty_tables(connection, await data_tables(connection))
    finally:
        await engine.dispose()


async def data_tables(connection) -> list:
    """The database's tables, reflected, except Alembic's record of the schema version."""
    metadata = MetaData()
    await connection.run_sync(metadata.reflect)
    return [table for table in metadata.sorted_tables if table.name != "alembic_version"]


async def data_table_names(connection) -> list[str]:
    """The names ``data_tables`` would reflect, from one catalog query: for callers that
    need no columns or keys (reflecting a schema's tables costs a query or more each)."""
    names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    return sorted(name for name in names if name != "alembic_version")


async def build_memory_schema(schema: SchemaSource | None, engine: AsyncEngine,
                              backend: Backend) -> None:
    """An in-memory SQLite database lives and dies with its engine: build it there."""
    if schema is not None:
        await schema.build(engine, backend)


async def drop_database(database: ProvisionedDatabase) -> None:
    """Drop one test database this process made; kept databases stay."""
    if database.kept or database.owner_pid != os.getpid():
        return
    require_test_database(database.url, "drop")
    if database.search_path is not None:
        await drop_run_schema(database.backend, database.url, database.search_path)
    else:
        await database.backend.drop_database(database.url)
    for registry in (_private, _being_made):
        if database in registry:
            registry.remove(database)
    logger.info("dropped test database %s", database.masked_url)


async def drop_databases() -> None:
    """Drop every database this process made; report failures, keep going."""
    databases = list({id(db): db for db in [*_databases.values(), *_private,
                                            *_being_made]}.values())
    _databases.clear()
    for database in databases:
        try:
            await drop_database(database)
        except Exception:
            logger.exception("could not drop test database %s", database.masked_url)


def release_before_dropping(hook: Callable[[], None]) -> None:
    """Have ``drop_databases_now`` call ``hook`` first: what holds connections lets go."""
    if hook not in _before_drop:
        _before_drop.append(hook)


def drop_databases_now() -> None:
    """Drop this process's databases from synchronous code (exit, runner plugins)."""
    for hook in list(_before_drop):
        try:
            hook()
        except Exception:
            logger.exception("could not release connections before dropping test databases")
    if any(db.owner_pid == os.getpid() and not db.kept
           for db in [*_databases.values(), *_private, *_being_made]):
        asyncio.run(drop_databases())
    else:
        _databases.clear()


def _explain(backend: Backend, exc: Exception) -> str:
    """Say where (this class's URL and its source) and why; remembered failures too."""
    where = f"{backend.masked_url} (from {backend.source})"
    if isinstance(exc, SchemaBuildError):
        return f"cannot prepare a test database on {where}: {exc}"
    if isinstance(exc, TestFrameworkError):  # says what to do itself
        return f"cannot create a test database on {where}: {exc}"
    return (f"cannot create a test database on {where}: {type(exc).__name__}: "
            f"{str(exc) or 'timed out'}; {backend.explain_provision_error(exc)}")
