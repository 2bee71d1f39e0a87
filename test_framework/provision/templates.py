"""Schema templates: build a schema once, clone it for every test database.

A template's name carries its project and a fingerprint of its whole
content (``test_tpl_<name>_<project>_<hash>``), so an unchanged schema is
reused across runs (a warm start), and each distinct schema (two model sets
that share table names, two branches) keeps a template of its own. A
template goes when it has not been used for ``MAX_IDLE`` (last use, kept in
its label), or when more than ``MAX_TEMPLATES`` exist for one database name
(least recently used first). Building happens under a lock shared by every
process on the server, into a ``..._building`` database that is renamed only
when complete, so no process ever clones a half-built template.
"""

from __future__ import annotations

import time

from sqlalchemy.engine import URL

from test_framework.backends import Backend
from test_framework.engines import create_engine
from test_framework.errors import SchemaBuildError
from test_framework.log import get_logger
from test_framework.provision.ownership import template_label, template_of
from test_framework.provision.model_check import model_differences
from test_framework.provision.schema import SchemaSource

logger = get_logger(__name__)
TEMPLATE_PREFIX = "test_tpl_"
FINGERPRINT_LENGTH = 12
PROJECT_LENGTH = 6
MAX_TEMPLATES = 32  # per database name on a server
MAX_IDLE = 7 * 24 * 3600.0  # seconds since a template's last use
_marked_used: set[str] = set()


BUILDING = "_building"


def template_name(backend: Backend, schema: SchemaSource) -> str:
    """``test_tpl_<name>_<project>_<fingerprint>``: one template per project and content."""
    fingerprint = schema.fingerprint(backend.dialect)[:FINGERPRINT_LENGTH]
    return backend.test_database_name(schema.project[:PROJECT_LENGTH], fingerprint,
                                      prefix=TEMPLATE_PREFIX, reserve=len(BUILDING))


async def create_database(backend: Backend, schema: SchemaSource | None, url: URL, *,
                          label: str) -> None:
    """Create ``url`` with ``schema``, cloned from its template (built first if needed).

    The clone happens under a shared lock on the template, so pruning (which
    needs it alone) never drops a template a run is about to clone.
    """
    if schema is None:
        await backend.create_database(url, label=label)
        return
    name = template_name(backend, schema)
    template = backend.database_url(name, kept=True)
    while True:
        async with backend.shared(template_lock(name)):
            if await backend.database_exists(template):
                try:
                    await backend.create_database(url, template=template, label=label)
                except Exception as exc:
                    if not backend.clone_blocked(exc):
                        raise
                    await _build_in_place(backend, schema, url, label, template)
                await _mark_used(backend, template)
                return
        await build_template(backend, schema, name)


async def _mark_used(backend: Backend, template: URL) -> None:
    """Record the template's last use in its label, once per process (eviction reads it)."""
    if template.database in _marked_used:
        return
    _marked_used.add(template.database)
    try:
        await backend.relabel(template, template_label(backend.stem, time.time()))
    except Exception as exc:  # another role's template: its owner's runs keep it fresh
        logger.debug("could not record the use of %s: %s", template.database, exc)


async def _build_in_place(backend: Backend, schema: SchemaSource, url: URL, label: str,
                          template: URL) -> None:
    """Someone outside is connected to the template: build this run's schema directly."""
    holders = "; ".join(await backend.sessions_on(template.database)) or "none any more"
    logger.warning("template %s is in use by other sessions (%s), so it cannot be cloned; "
                   "building the schema directly into %s instead (slower). Close those "
                   "sessions to get fast clones again", template.database, holders,
                   backend.database_name(url))
    await backend.create_database(url, label=label)
    engine = create_engine(backend, url)
    try:
        await schema.build(engine, backend)
    finally:
        await engine.dispose()


async def ensure_template(backend: Backend, schema: SchemaSource) -> URL:
    """Return the URL of a complete template for ``schema``, building it if needed."""
    name = template_name(backend, schema)
    url = backend.database_url(name, kept=True)
    if not await backend.database_exists(url):
        await build_template(backend, schema, name)
    return url


def template_lock(name: str) -> str:
    return f"test_framework:template:{name}"


async def build_template(backend: Backend, schema: SchemaSource, name: str) -> None:
    """Build template ``name`` unless another process has (or is building it: then wait)."""
    url = backend.database_url(name, kept=True)
    async with backend.exclusive(f"test_framework:build:{name}"):
        if await backend.database_exists(url):  # another process built it meanwhile
            return
        started = time.perf_counter()
        building = backend.database_url(f"{name}{BUILDING}", kept=True)
        await backend.drop_database(building)  # a build that crashed half-way
        await backend.create_database(building, label=template_label(backend.stem, time.time()))
        engine = create_engine(backend, building)
        try:
            await schema.build(engine, backend)
            if schema.check_models:
                await _check_models(engine, schema)
        except Exception as exc:
            await engine.dispose()
            await backend.drop_database(building)  # never kept, never cloned
            if isinstance(exc, SchemaBuildError):
                raise
            raise SchemaBuildError(
                f"building the schema from {schema.description} failed: "
                f"{type(exc).__name__}: {exc}; fix the schema source, then run again") from exc
        finally:
            await engine.dispose()
        await backend.publish_template(await backend.rename_database(building, name))
        logger.info("built template %s from %s in %.0f ms", name, schema.description,
                    (time.perf_counter() - started) * 1000)
        await remove_stale_templates(backend, keep=name)


async def _check_models(engine, schema: SchemaSource) -> None:
    async with engine.connect() as connection:
        differences = await connection.run_sync(model_differences, schema.metadata)
    if differences:
        raise SchemaBuildError(
            f"the schema built from {schema.description} differs from the class's metadata "
            f"(check_models = True): {'; '.join(differences)}. Write the migration the "
            "models need (alembic revision --autogenerate), or fix the models")


async def remove_stale_templates(backend: Backend, *, keep: str, max_idle: float = MAX_IDLE,
                                 cap: int = MAX_TEMPLATES) -> list[str]:
    """Drop templates unused for ``max_idle`` seconds, and the least recently used beyond ``cap``.

    Only templates this framework labelled for exactly this database name
    are considered: a hand-made ``test_tpl_...`` or another name's never is.
    A template that some run is cloning (or holds) is skipped this time.
    """
    ours = []
    for record in await backend.list_databases():
        labelled = template_of(record)
        if labelled is not None and labelled[0] == backend.stem and record.name != keep \
                and not record.name.endswith(BUILDING):
            ours.append((labelled[1], record))
    recent_first = [(used, record) for used, record in sorted(ours, key=lambda o: -o[0])]
    now = time.time()
    stale = [record for index, (used, record) in enumerate(recent_first)
             if now - used > max_idle or index >= cap - 1]
    dropped = []
    for record in stale:
        async with backend.try_exclusive(template_lock(record.name)) as unused:
            if unused:
                await backend.drop_database(record.url)
                dropped.append(record.name)
                logger.info("dropped template %s (unused for a while, or beyond %d)",
                            record.name, cap)
    return dropped
