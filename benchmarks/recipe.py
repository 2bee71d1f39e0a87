"""Rows for the suites users write without the framework, and Django on SQLite.

``pytest-asyncio`` rows: the recipe people hand-roll instead of this
framework, as SQLAlchemy documents it ("Joining a Session into an External
Transaction"): a session-scoped event loop and engine (pytest-asyncio's
``loop_scope="session"``), the schema made once with ``create_all``, and per
test one pooled connection, an outer transaction on it and an
``AsyncSession(bind=connection, join_transaction_mode="create_savepoint")``,
rolled back after the test.  The body is the reference row's: insert a user,
commit (which releases the session's savepoint, as the application's commit
would), read it back -- raw SQL, as the framework's ``create_test_user`` sends
one INSERT.  On SQLite the engine gets SQLAlchemy's documented fix for the
``sqlite3`` module's own transaction handling (``isolation_level = None`` and
an explicit ``BEGIN``), without which savepoints do not work; the database is
a temporary file, like the framework's clone.  The framework's pytest plugin
is kept out (``-p no:test_framework``).

The Django SQLite row uses Django's default for a test database on SQLite:
in memory, shared by the whole run.
"""

import os

# PostgreSQL: made empty by the parent; tables by the suite. The run's number, as scenarios.py.
RECIPE_DB = f"bench_recipe_{os.environ.setdefault('BENCH_RUN', str(os.getpid()))}"

RECIPE_INI = """[pytest]
addopts = -p no:test_framework
asyncio_default_fixture_loop_scope = session
"""

RECIPE_CONFTEST = '''"""A session-scoped loop and engine; a session joined to a rolled-back transaction per test."""
import os
import tempfile

import pytest_asyncio
from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, String, Table, event
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

METADATA = MetaData()
Table("users", METADATA,
      Column("id", Integer, primary_key=True, autoincrement=True),
      Column("email", String(255), nullable=False, unique=True),
      Column("full_name", String(255)),
      Column("password_hash", String(255)),
      Column("is_active", Boolean, nullable=False, default=True),
      Column("created_at", DateTime(timezone=True)))


def sqlite_savepoints(engine):
    """SQLAlchemy's documented fix: let SQLAlchemy, not sqlite3, begin transactions."""
    @event.listens_for(engine.sync_engine, "connect")
    def _no_driver_transactions(dbapi_connection, record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def engine():
    with tempfile.TemporaryDirectory() as folder:
        url = os.environ.get("BENCH_RECIPE_URL") or f"sqlite+aiosqlite:///{folder}/test.db"
        engine = create_async_engine(url)
        if engine.dialect.name == "sqlite":
            sqlite_savepoints(engine)
        async with engine.begin() as connection:
            await connection.run_sync(METADATA.drop_all)
            await connection.run_sync(METADATA.create_all)
        yield engine
        async with engine.begin() as connection:
            await connection.run_sync(METADATA.drop_all)
        await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def session(engine):
    async with engine.connect() as connection:
        outer = await connection.begin()
        session = AsyncSession(bind=connection, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            await session.close()
            await outer.rollback()
'''

RECIPE_HEAD = '''from datetime import datetime, timezone

import pytest
from sqlalchemy import DateTime, bindparam, text

pytestmark = pytest.mark.asyncio(loop_scope="session")

INSERT = text("INSERT INTO users (email, full_name, password_hash, is_active, created_at) "
              "VALUES (:e, 'U', 'h', true, :t) RETURNING id").bindparams(
    bindparam("t", type_=DateTime(timezone=True)))
SELECT = text("SELECT id, email FROM users WHERE id = :id")
'''
RECIPE_CLASS = "\n\nclass TestRecipe{c:03d}:\n"
RECIPE_TEST = '''    async def test_{i:05d}(self, session):
        new_id = (await session.execute(
            INSERT, {{"e": "u{i}@example.com", "t": datetime.now(timezone.utc)}})).scalar_one()
        await session.commit()
        row = (await session.execute(SELECT, {{"id": new_id}})).one()
        assert row.email == "u{i}@example.com"
'''
RECIPE_FILES = {"pytest.ini": RECIPE_INI, "conftest.py": RECIPE_CONFTEST}


def recipe_env(ctx, postgres):
    """BENCH_RECIPE_URL: the parent's empty database, or unset for a temporary SQLite file."""
    return {"BENCH_RECIPE_URL": ctx.url(RECIPE_DB) if postgres else None}


def django_sqlite_database(ctx):
    """Django's SQLite settings; its test database is then in memory."""
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
