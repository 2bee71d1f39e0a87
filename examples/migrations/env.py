"""Alembic's async env.py, made as `alembic init -t async` does, plus the two lines
that let programmatic callers (test_framework's schema templates) hand it a connection."""

import asyncio
import os

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from app.models import Base

target_metadata = Base.metadata


def do_run_migrations(connection):
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations():
    url = os.environ.get("APP_DATABASE_URL") or context.config.get_main_option("sqlalchemy.url")
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
        await connection.commit()
    await engine.dispose()


connectable = context.config.attributes.get("connection")
if connectable is None:  # the alembic command line
    asyncio.run(run_async_migrations())
else:                    # test_framework, or any other programmatic caller
    do_run_migrations(connectable)
