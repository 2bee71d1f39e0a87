"""Keep what a failed test saw: a database of its own, with the test's rows copied in.

With ``TEST_FRAMEWORK_KEEP_FAILED`` a failed test's rows are copied, before
its teardown undoes them, into a new database cloned from the class's schema
template (``test_<name>_failed_<random>``), labelled with the test's id so
no reaper ever touches it. ``python -m test_framework databases drop
--kept-failed`` removes them.

A copy, not the test's own database, in every isolation mode: in rollback
mode the rows are uncommitted, visible only on the test's connection, and in
the other modes the database goes on serving the tests after it (their
cleanup or a TRUNCATE would change what the failed test left, and its rows
would collide with theirs). The rows are read on the connection the test
used, through the driver (no SQLAlchemy statement events: the sessions'
bookkeeping and the query counters never see them), and written table by
table, parents first, with foreign keys checked as late as the backend allows.
"""

from __future__ import annotations

import secrets

from sqlalchemy import column, insert, select, table
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from test_framework.backends import Backend
from test_framework.engines import create_engine
from test_framework.log import get_logger, mask_url
from test_framework.provision import data_tables, require_test_database
from test_framework.provision.ownership import kept_failed_label, kept_failed_test
from test_framework.provision.schema import SchemaSource
from test_framework.provision.templates import create_database

logger = get_logger(__name__)


async def keep_state(backend: Backend, schema: SchemaSource | None, source: AsyncConnection,
                     *, test_id: str) -> URL:
    """Copy the rows ``source`` sees into a new kept database; return its URL.

    A copy that fails half-way is dropped, and the error raised.
    """
    url = backend.database_url(backend.test_database_name("failed", secrets.token_hex(3)),
                               kept=True)
    require_test_database(url, "create")
    await create_database(backend, schema, url, label=kept_failed_label(test_id))
    try:
        copied = await _copy_rows(backend, source, url)
    except BaseException:
        await backend.drop_database(url)
        raise
    logger.warning("kept the state %s saw (%d rows) in %s", test_id, copied, mask_url(url))
    return url


async def _copy_rows(backend: Backend, source: AsyncConnection, url: URL) -> int:
    engine = create_engine(backend, url)
    copied = 0
    try:
        async with engine.connect() as target:
            await backend.relax_foreign_keys(target)
            for kept_table in await data_tables(target):  # parents before children
                plain = table(kept_table.name, *(column(c.name) for c in kept_table.columns),
                              schema=kept_table.schema)
                order = [plain.c[c.name] for c in kept_table.primary_key.columns]
                rows = await source.run_sync(_read_rows, plain, order)
                if rows:
                    await target.execute(insert(plain), rows)
                    copied += len(rows)
            await target.commit()
    finally:
        await engine.dispose()
    return copied


def _read_rows(sync_connection, plain, order) -> list[dict]:
    """Every row of ``plain``, in key order, read through the driver's own cursor."""
    query = select(*plain.columns).order_by(*order)
    sql = str(query.compile(dialect=sync_connection.dialect))
    cursor = sync_connection.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql)
        names = [c.name for c in plain.columns]
        return [dict(zip(names, row)) for row in cursor.fetchall()]
    finally:
        cursor.close()


async def drop_kept_failed(backend: Backend) -> list[str]:
    """Drop every kept failed-test state on ``backend``'s server; return their names."""
    dropped = []
    for record in await backend.list_databases():
        if kept_failed_test(record) is not None:
            require_test_database(record.url, "drop")
            await backend.drop_database(record.url)
            dropped.append(record.name)
    return dropped
