"""Schema templates: build a schema once, clone it for every test database.

The template's name carries the schema's fingerprint
(``test_tpl_<name>_<hash>``), so an unchanged schema is reused across runs
(a warm start) and a changed one gets a new template while stale ones are
removed. Building happens under a lock shared by every process on the
server, into a ``..._building`` database that is renamed only when complete,
so no process ever clones a half-built template.
"""

from __future__ import annotations

import time

from sqlalchemy.engine import URL

from test_framework.backends import Backend
from test_framework.engines import create_engine
from test_framework.errors import SchemaBuildError
from test_framework.log import get_logger
from test_framework.provision.ownership import template_label, template_of
from test_framework.provision.schema import SchemaSource

logger = get_logger(__name__)
TEMPLATE_PREFIX = "test_tpl_"
FINGERPRINT_LENGTH = 12
IDENTITY_LENGTH = 6
MAX_TEMPLATES = 8  # per database name on a server


BUILDING = "_building"


def template_name(backend: Backend, schema: SchemaSource) -> str:
    """``test_tpl_<name>_<identity>_<fingerprint>``: a family per schema, a member per version."""
    fingerprint = schema.fingerprint(backend.dialect)[:FINGERPRINT_LENGTH]
    return backend.test_database_name(schema.identity[:IDENTITY_LENGTH], fingerprint,
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
                return
        await build_template(backend, schema, name)


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


async def remove_stale_templates(backend: Backend, *, keep: str) -> list[str]:
    """Drop other versions of the same schema, and the oldest templates beyond a cap.

    Only templates this framework labelled for exactly this database name
    are considered: a hand-made ``test_tpl_...`` or another project's never
    is. Same family (identity) with another fingerprint is a stale version. A
    suite whose schemas come and go (branches, renamed tables, SQL files in
    other checkouts) would still pile up templates, so only the newest
    ``MAX_TEMPLATES`` for this database name are kept. A template that some
    run is cloning (or holds) is skipped this time.
    """
    family = keep[: -FINGERPRINT_LENGTH]
    siblings = []
    for record in await backend.list_databases():
        labelled = template_of(record)
        if labelled is not None and labelled[0] == backend.stem and record.name != keep \
                and not record.name.endswith(BUILDING):
            siblings.append((labelled[1], record))
    newest_first = [record for _, record in sorted(siblings, key=lambda s: s[0], reverse=True)]
    stale = [record for index, record in enumerate(newest_first)
             if record.name.startswith(family) or index >= MAX_TEMPLATES - 1]
    dropped = []
    for record in stale:
        async with backend.try_exclusive(template_lock(record.name)) as unused:
            if unused:
                await backend.drop_database(record.url)
                dropped.append(record.name)
                logger.info("dropped stale template %s", record.name)
    return dropped
