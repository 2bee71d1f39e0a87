"""A schema per run, for a role that may not create databases.

Managed PostgreSQL servers often give the test role one database and no
``CREATEDB``. When the URL names a ``test_`` database, each run then works in
a schema of its own inside it, ``test_<name>_<worker>_<random>``, reached
through ``search_path``: the class's schema is built there (no template can
be cloned), the schema carries the run's label, it is dropped when the run
ends, and a dead run's schema is reaped exactly as a dead run's database is.
Every connection used here is a framework engine's, so the server is asked
which database it is on before anything is created or dropped.
"""

from __future__ import annotations

from sqlalchemy.engine import URL

from test_framework.backends import Backend
from test_framework.engines import create_engine
from test_framework.log import get_logger
from test_framework.provision.schema import SchemaSource

logger = get_logger(__name__)


async def create_run_schema(backend: Backend, url: URL, name: str,
                            schema: SchemaSource | None, *, label: str) -> None:
    """Create schema ``name`` in the database at ``url`` and build ``schema`` into it."""
    engine = create_engine(backend, url)
    try:
        async with engine.begin() as connection:
            await backend.create_schema(connection, name, label)
    finally:
        await engine.dispose()
    if schema is not None:
        engine = create_engine(backend, url, search_path=name)
        try:
            await schema.build(engine, backend)
        finally:
            await engine.dispose()
    logger.info("created test schema %s in %s (the role may not create databases)",
                name, backend.masked_url)


async def drop_run_schema(backend: Backend, url: URL, name: str) -> None:
    engine = create_engine(backend, url)
    try:
        async with engine.begin() as connection:
            await backend.drop_schema(connection, name)
    finally:
        await engine.dispose()


async def reap_orphan_schemas(backend: Backend, url: URL) -> list[str]:
    """Drop the schemas in ``url``'s database whose runs are provably gone."""
    engine = create_engine(backend, url)
    reaped = []
    try:
        async with engine.connect() as connection:
            records = await backend.list_run_schemas(connection)
        for record in records:
            async with backend.claim_orphan(record) as orphan:
                if orphan:
                    await drop_run_schema(backend, url, record.schema)
                    reaped.append(record.name)
                    logger.warning("dropped schema %s, left by a run that no longer exists",
                                   record.name)
    finally:
        await engine.dispose()
    return reaped
