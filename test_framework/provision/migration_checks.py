"""Check an Alembic project's migrations in a scratch database, fast enough for every run.

``MigrationTestCase`` (``ssot/migration_test_case.py``) asks for these
checks; they live here because they create and drop a database and run
Alembic, as templates do. ``MigrationProject`` reads the scripts once: the
revisions in order, the heads, and a fingerprint of everything a verdict
depends on (the cache's key, ``migration_cache.py``). ``check_migrations``
makes a database of its own, walks the revisions in it
(``migration_walk.py``), compares the schema at head with the models, and
drops the database.

The walk takes three steps per revision (upgrade, downgrade, upgrade again)
where ``alembic upgrade head`` plus ``alembic downgrade base`` take two, and
still takes less time than those two commands: it runs in this process, on
one connection, with the revision files read once, where each command of the
CLI starts a process, imports SQLAlchemy and Alembic, reads every revision
file and connects again.
"""

from __future__ import annotations

import hashlib
import inspect
import time
from pathlib import Path
from typing import Callable

from sqlalchemy import MetaData, inspect as inspect_schema
from sqlalchemy.engine import URL

from test_framework.backends import Backend
from test_framework.engines import create_engine
from test_framework.errors import ConfigurationError
from test_framework.log import get_logger
from test_framework.provision import (ProvisionedDatabase, drop_database,
                                      provisioned_database)
from test_framework.provision.migration_walk import DataHook, MigrationReport, Walk
from test_framework.provision.model_check import model_differences
from test_framework.provision.schema import ddl_digest

logger = get_logger(__name__)
CHECKS_VERSION = "1"  # part of every cache key: a change to what is checked re-checks


def import_alembic(test_class: type) -> None:
    """Import Alembic (a few hundred ms, once per process), or say how to install it."""
    try:
        import alembic.config  # noqa: F401
        import alembic.script  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            f"{test_class.__qualname__} checks migrations (alembic_ini is "
            f"{test_class.alembic_ini!r}), but alembic is not installed; run: "
            "pip install 'test_framework[alembic]'") from exc


class MigrationProject:
    """An Alembic project's scripts, read once: revisions in order, heads, fingerprint."""

    def __init__(self, ini_path: Path) -> None:
        from alembic.config import Config
        from alembic.script import ScriptDirectory
        self.ini_path = ini_path
        self.config = Config(str(ini_path))
        self.script = ScriptDirectory.from_config(self.config)
        # walk_revisions goes from the heads down; reversed, each revision follows its parents
        self.revisions = list(reversed(list(self.script.walk_revisions("base", "heads"))))
        self.heads = sorted(self.script.get_heads())
        self.env_py = Path(self.script.dir) / "env.py"
        self.takes_connection = "attributes" in self.env_py.read_text(encoding="utf-8")

    def describe(self, revision) -> str:
        """``0003 (0003_author_email.py)``: the id and the file to open."""
        return f"{revision.revision} ({Path(revision.path).name})"

    def fingerprint(self, backend: Backend, metadata: MetaData | None,
                    hook: Callable | None) -> str:
        """Hash all a check's verdict depends on: scripts, env.py, ini, models, hook, backend."""
        parts = [CHECKS_VERSION, backend.name, str(self.ini_path.resolve()),
                 _file_digest(self.ini_path), _file_digest(self.env_py)]
        parts += [f"{rev.revision}:{_file_digest(Path(rev.path))}" for rev in self.revisions]
        parts.append(ddl_digest(metadata, backend.dialect) if metadata is not None else "")
        parts.append(_source_of(hook))
        return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


async def check_migrations(project: MigrationProject, backend: Backend, *,
                           metadata: MetaData | None = None,
                           data_hook: DataHook | None = None,
                           keep: bool = False) -> MigrationReport:
    """Walk every revision in a scratch database of its own, dropped afterwards.

    With ``keep`` (the ``keep_database`` setting) and an env.py that takes our
    connection, the walk uses the run's kept database instead: the walk is
    one transaction, rolled back, so that database stays empty, and none is
    created or dropped (on PostgreSQL, DROP DATABASE makes the whole server
    write a checkpoint, often the slowest part of the check).
    """
    started = time.perf_counter()
    report = MigrationReport(revisions=len(project.revisions))
    database, ours = await _scratch_database(backend, keep=keep and project.takes_connection)
    try:
        engine = create_engine(backend, database.url, search_path=database.search_path)
        try:
            async with engine.connect() as connection:
                url = None if project.takes_connection else _url_for_env_py(database)
                walk = Walk(project, connection, report, url=url, hook=data_hook)
                if await walk.run() and metadata is not None:
                    report.model_differences = await connection.run_sync(
                        model_differences, metadata)
        finally:
            await engine.dispose()
    finally:
        if ours:
            await drop_database(database)
    report.seconds = time.perf_counter() - started
    logger.info("walked %d revisions of %s on %s in %.2f s", report.revisions,
                project.ini_path, backend.name, report.seconds)
    return report


async def _scratch_database(backend: Backend, *, keep: bool
                            ) -> tuple[ProvisionedDatabase, bool]:
    """The database to walk in, and whether it is the walk's own (to drop after)."""
    if keep:
        database = await provisioned_database(backend, None, keep=True)
        engine = create_engine(backend, database.url, search_path=database.search_path)
        try:
            async with engine.connect() as connection:
                tables = await connection.run_sync(
                    lambda sync: inspect_schema(sync).get_table_names())
        finally:
            await engine.dispose()
        if not tables:
            return database, False
        logger.warning("the kept database %s has tables (%s), so migrations are checked "
                       "in a database of their own", database.masked_url,
                       ", ".join(sorted(tables)[:5]))
    return await provisioned_database(backend, None, private=True), True


def _url_for_env_py(database) -> URL:
    """The scratch database's URL, for an env.py that connects by itself."""
    if database.search_path is not None:
        raise ConfigurationError(
            f"the test database is a schema ({database.masked_url}), because the role may "
            "not create databases, and env.py makes its own engine from sqlalchemy.url, "
            "which cannot choose a schema. Let env.py take the connection it is given "
            "(README: Alembic and env.py), or grant the role CREATEDB")
    return database.url


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _source_of(hook: Callable | None) -> str:
    """The hook's source, so editing the hook re-checks; its bytecode if there is none."""
    if hook is None:
        return ""
    function = getattr(hook, "__func__", hook)
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        code = getattr(function, "__code__", None)
        return code.co_code.hex() if code is not None else repr(function)
