"""Shared helpers for the project's own tests.

* ``run_case`` runs a throwaway test class through a real ``TestSuite`` (so
  class cleanups run) and returns its result: the pattern of CPython's own
  ``test_async_case``.
* ``separate_connection`` opens a brand-new engine on a database, so cleanup
  is checked from outside the session that did the work.
* ``backend_name`` / ``skip_unless_backend`` pick tests for the backend the
  current pass runs on (``scripts/test`` runs the suite once per backend).
* ``timeout`` bounds an async test, so a regression fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import unittest

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from test_framework.backends import backend_for
from test_framework.config import Setting, project_settings


def backend_name() -> str:
    """Return the backend this pass runs on: 'sqlite' or 'postgresql'."""
    return backend_for(project_settings().database_url).name


def skip_unless_backend(name: str):
    return unittest.skipUnless(backend_name() == name, f"needs the {name} backend "
                               f"(this pass runs on {backend_name()})")


def run_case(test_class: type, *names: str) -> unittest.TestResult:
    """Run some (default: all) tests of ``test_class`` as unittest would; return the result."""
    loader = unittest.TestLoader()
    if names:
        suite = unittest.TestSuite(test_class(name) for name in names)
    else:
        suite = loader.loadTestsFromTestCase(test_class)
    result = unittest.TestResult()
    unittest.TestSuite([suite]).run(result)
    return result


def problems(result: unittest.TestResult) -> str:
    """Render a result's errors and failures, for assertion messages."""
    return "\n".join(trace for _, trace in result.errors + result.failures)


@contextlib.asynccontextmanager
async def separate_connection(url: URL):
    """Yield an AUTOCOMMIT connection from a brand-new engine on ``url``."""
    backend = backend_for(Setting(url.render_as_string(hide_password=False), "test"))
    engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
                                 **backend.engine_options(url))
    try:
        async with engine.connect() as connection:
            yield connection
    finally:
        await engine.dispose()


async def count_rows(url: URL, table: str, where: str = "", params: dict | None = None) -> int:
    """Count rows in ``table`` as another connection sees them."""
    async with separate_connection(url) as connection:
        query = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
        return (await connection.execute(text(query), params or {})).scalar_one()


def count_rows_sync(url: URL, table: str, where: str = "", params: dict | None = None) -> int:
    """``count_rows`` for code outside any event loop (after an inner suite ran)."""
    return asyncio.run(count_rows(url, table, where, params))


def timeout(seconds: float):
    """Fail an ``async def`` test that runs longer than ``seconds``."""
    def decorate(test):
        @functools.wraps(test)
        async def bounded(self, *args, **kwargs):
            async with asyncio.timeout(seconds):
                return await test(self, *args, **kwargs)
        return bounded
    return decorate


def postgres_url_from_env() -> str | None:
    """The PostgreSQL server URL this pass uses, or None on the SQLite pass."""
    url = os.environ.get("TEST_DATABASE_URL", "")
    return url if url.startswith("postgresql") else None
