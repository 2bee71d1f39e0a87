"""Provision a database for a generated schema in a fresh process, as a test run would.

    python -m tests.provision.child TABLE [--extra-column] [--exit N] [--hold SECONDS]

Prints ``URL <url>`` (password included: the tests need to connect) and, with
TEST_FRAMEWORK_LOG_LEVEL=INFO, the framework's "built template" lines on
stderr. ``--hold`` keeps the process alive (for kill -9 tests).
"""

import argparse
import asyncio
import sys
import time

from sqlalchemy import Column, Integer, MetaData, String, Table, inspect

from test_framework.backends import backend_for
from test_framework.config import project_settings, run_setting
from test_framework.engines import create_engine
from test_framework.log import configure_stderr_handler
from test_framework.provision import provisioned_database
from test_framework.provision.schema import MetadataSchema


def schema(table: str, extra_column: bool) -> MetadataSchema:
    metadata = MetaData()
    columns = [Column("id", Integer, primary_key=True), Column("name", String(50))]
    if extra_column:
        columns.append(Column("extra", String(50)))
    Table(table, metadata, *columns)
    return MetadataSchema(metadata)


async def table_names(backend, url) -> list[str]:
    engine = create_engine(backend, url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("table")
    parser.add_argument("--extra-column", action="store_true")
    parser.add_argument("--exit", type=int, default=0)
    parser.add_argument("--hold", type=float, default=0)
    args = parser.parse_args()
    configure_stderr_handler(run_setting("log_level").value)
    backend = backend_for(project_settings().database_url)
    database = asyncio.run(provisioned_database(
        backend, schema(args.table, args.extra_column),
        keep=project_settings().keep_database.value))
    print("URL", database.url.render_as_string(hide_password=False), flush=True)
    print("TABLES", " ".join(asyncio.run(table_names(backend, database.url))), flush=True)
    time.sleep(args.hold)
    return args.exit


if __name__ == "__main__":
    sys.exit(main())
