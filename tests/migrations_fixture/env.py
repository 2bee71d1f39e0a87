"""env.py as `alembic init -t async` writes it, taking a connection when it is given one.

The last lines are the recipe README "Alembic and env.py" shows: the
framework hands its connection over in ``config.attributes["connection"]``;
the Alembic command line (no connection) builds an engine from
``sqlalchemy.url``. No models are imported, so a copy in a temporary folder
runs as is.
"""

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import async_engine_from_config
from sqlalchemy.pool import NullPool

config = context.config


def do_run_migrations(connection) -> None:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = async_engine_from_config(config.get_section(config.config_ini_section, {}),
                                      prefix="sqlalchemy.", poolclass=NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
        await connection.commit()
    await engine.dispose()


connectable = config.attributes.get("connection")
if connectable is None:  # the alembic command line
    asyncio.run(run_async_migrations())
else:                    # test_framework, or another programmatic caller
    do_run_migrations(connectable)
