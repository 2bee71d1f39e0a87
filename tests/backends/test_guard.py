"""A non-test database is never touched: not through URL tricks, in no mode, not by the CLI.

Each test makes a real database whose name does not start with ``test_``,
puts rows in it, aims the framework at it, and checks from another
connection that its content is byte-for-byte what it was.
"""

import asyncio
import hashlib
import os
import secrets
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from test_framework import SSotAsyncTestCase
from test_framework.backends import backend_for
from test_framework.config import Setting, Timeouts
from test_framework.engines import create_engine
from test_framework.errors import ConfigurationError, UnsafeDatabaseError
from test_framework.ssot.async_test_helpers import AsyncTestDatabase
from tests.support import postgres_url_from_env, problems, run_case, separate_connection

ROOT = Path(__file__).resolve().parents[2]
MODES = ("rollback", "commit", "truncate", "database")


def check(url: str):
    return backend_for(Setting(url, "TEST_DATABASE_URL (environment)"),
                       timeouts=Timeouts(connect=3))


class TestQueryParametersThatRedirect(unittest.TestCase):
    def test_conflicting_database_in_query_is_refused_naming_it(self):
        with self.assertRaises(ConfigurationError) as caught:
            check("postgresql+asyncpg://postgres@127.0.0.1:5432/app?database=prod")
        message = str(caught.exception)
        self.assertIn("database='prod'", message)
        self.assertIn("TEST_DATABASE_URL (environment)", message)
        self.assertIn("remove the parameter", message)

    def test_host_port_user_conflicts_and_dsn_are_refused(self):
        for query in ("host=elsewhere", "port=5433", "user=admin", "username=admin",
                      "dbname=prod", "dsn=postgresql%3A%2F%2Fx%40y%2Fprod"):
            with self.subTest(query), self.assertRaises(ConfigurationError) as caught:
                check(f"postgresql+asyncpg://postgres@127.0.0.1:5432/app?{query}")
            self.assertIn(repr(query.split("=")[0]) if query.startswith("dsn")
                          else query.split("=")[0], str(caught.exception))

    def test_sqlite_uri_mode_is_refused(self):
        with self.assertRaises(ConfigurationError) as caught:
            check("sqlite+aiosqlite:///file:prod.db?uri=true")
        self.assertIn("'uri'", str(caught.exception))

    def test_repeated_parts_are_dropped_and_a_socket_host_kept(self):
        backend = check("postgresql+asyncpg://postgres@127.0.0.1:5432/app?database=app&port=5432")
        self.assertEqual(dict(backend.url.query), {})
        socket_url = check("postgresql+asyncpg://postgres@/app?host=/var/run/postgresql").url
        self.assertEqual(socket_url.query["host"], "/var/run/postgresql")

    def test_password_in_query_moves_into_the_url_and_is_masked(self):
        backend = check("postgresql+asyncpg://postgres@127.0.0.1/app?password=hunter2&ssl=disable")
        self.assertEqual(backend.url.password, "hunter2")
        for shown in (repr(backend), backend.masked_url, repr(backend.url)):
            self.assertNotIn("hunter2", shown)


class NonTestDatabase:
    """A real database (or file) named ``guard_<random>`` holding rows, and its fingerprint."""

    def __init__(self):
        server = postgres_url_from_env()
        self.name = f"guard_{secrets.token_hex(4)}"
        if server:
            self.admin = make_url(server).set(database="postgres")
            self.url = make_url(server).set(database=self.name)
        else:
            self.folder = tempfile.mkdtemp()
            self.url = make_url(f"sqlite+aiosqlite:///{self.folder}/{self.name}.sqlite3")

    async def create(self):
        if self.url.get_backend_name() == "postgresql":
            async with separate_connection(self.admin) as admin:
                await admin.execute(text(f'CREATE DATABASE "{self.name}"'))
        async with separate_connection(self.url) as connection:
            await connection.execute(text("CREATE TABLE users (id integer PRIMARY KEY, "
                                          "email varchar(100), is_active boolean)"))
            await connection.execute(text("INSERT INTO users VALUES (1, 'real@x', true), "
                                          "(2, 'data@x', false)"))

    async def fingerprint(self) -> str:
        """Every row and every table, read from a new connection."""
        if self.url.get_backend_name() == "sqlite":
            return hashlib.sha256(Path(self.url.database).read_bytes()).hexdigest()
        async with separate_connection(self.url) as connection:
            rows = (await connection.execute(text("SELECT * FROM users ORDER BY id"))).all()
            tables = (await connection.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"))).all()
        return repr((rows, tables))

    async def drop(self):
        if self.url.get_backend_name() == "postgresql":
            async with separate_connection(self.admin) as admin:
                await admin.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        else:
            import shutil
            shutil.rmtree(self.folder, ignore_errors=True)


class TestRealDatabaseUntouched(unittest.TestCase):
    def setUp(self):
        self.real = NonTestDatabase()
        asyncio.run(self.real.create())
        self.addCleanup(lambda: asyncio.run(self.real.drop()))
        self.before = asyncio.run(self.real.fingerprint())

    def assertUnchanged(self):
        self.assertEqual(asyncio.run(self.real.fingerprint()), self.before,
                         "the non-test database changed")

    def redirecting_url(self) -> str:
        """A URL whose own database is a test name but whose query names the real one."""
        if self.real.url.get_backend_name() == "sqlite":
            link = Path(self.real.folder) / "test_evil.sqlite3"
            link.symlink_to(self.real.url.database)
            return f"sqlite+aiosqlite:///{link}"
        base = self.real.url.set(database="test_app").render_as_string(hide_password=False)
        return f"{base}?database={self.real.name}"

    def test_every_mode_refuses_it(self):
        url = self.redirecting_url()
        for mode in MODES:
            class Aimed(SSotAsyncTestCase):
                database_url = url
                isolation = mode

                async def test_work(self):
                    await self.db.create_test_user({"email": "new@x"})

            with self.subTest(mode):
                result = run_case(Aimed)
                if self.real.url.get_backend_name() == "postgresql":
                    self.assertFalse(result.wasSuccessful(), f"{mode} ran against it")
                    self.assertIn(f"database='{self.real.name}'", problems(result))
                else:  # the run used a test_ file of its own, never the linked one
                    self.assertTrue(result.wasSuccessful(), problems(result))
                self.assertUnchanged()

    def test_keep_database_refuses_it(self):
        cache = tempfile.TemporaryDirectory()  # a kept SQLite file goes there, not to ~/.cache
        self.addCleanup(cache.cleanup)
        env = dict(os.environ, TEST_DATABASE_URL=self.redirecting_url(),
                   TEST_FRAMEWORK_KEEP_DATABASE="1", XDG_CACHE_HOME=cache.name)
        run = subprocess.run([sys.executable, "-m", "tests.provision.child", "users"],
                             cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
        if self.real.url.get_backend_name() == "postgresql":
            self.assertNotEqual(run.returncode, 0, run.stdout)
            self.assertIn(f"database='{self.real.name}'", run.stderr)
        self.assertUnchanged()

    def test_framework_engine_refuses_a_connection_on_it(self):
        url = self.redirecting_url()

        async def connect():
            if self.real.url.get_backend_name() == "postgresql":
                backend, target = check(postgres_url_from_env()), self.real.url
            else:  # the file is called test_evil, but the server opens the real one
                backend = check(url)
                target = backend.url
            engine = create_engine(backend, target)
            try:
                async with engine.connect() as connection:
                    await connection.execute(text("DELETE FROM users"))
            finally:
                await engine.dispose()

        with self.assertRaises(UnsafeDatabaseError) as caught:
            asyncio.run(connect())
        self.assertIn(self.real.name, str(caught.exception))
        self.assertUnchanged()

    def test_helper_cleanup_on_a_users_own_session_refuses_to_delete(self):
        from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

        async def standalone():
            engine = create_async_engine(self.real.url)
            try:
                async with AsyncSession(engine, expire_on_commit=False) as session:
                    db = AsyncTestDatabase(session)
                    await db.create("users", {"id": 3, "email": "made@x", "is_active": True})
                    await db.cleanup()
            finally:
                await engine.dispose()

        with self.assertRaises(Exception) as caught:
            asyncio.run(standalone())
        self.assertIn("refusing to delete rows from database", str(caught.exception))
        async def count():
            async with separate_connection(self.real.url) as connection:
                return (await connection.execute(text(
                    "SELECT count(*) FROM users WHERE id IN (1, 2)"))).scalar_one()
        self.assertEqual(asyncio.run(count()), 2, "the rows that were there stay")

    def test_command_line_refuses_it(self):
        url = self.redirecting_url()
        # On SQLite, "drop --all" drops every test_ file in the temp and cache folders, where
        # suites running at the same time keep their templates: give it folders of its own.
        folders = tempfile.TemporaryDirectory()
        self.addCleanup(folders.cleanup)
        for name in ("tmp", "cache"):
            Path(folders.name, name).mkdir()
        env = dict(os.environ, TEST_DATABASE_URL=url, TMPDIR=f"{folders.name}/tmp",
                   XDG_CACHE_HOME=f"{folders.name}/cache")
        for command in (["check"], ["databases", "list"], ["databases", "drop", "--all"]):
            with self.subTest(command):
                run = subprocess.run([sys.executable, "-m", "test_framework", *command],
                                     cwd=ROOT, capture_output=True, text=True, timeout=60,
                                     env=env)
                if self.real.url.get_backend_name() == "postgresql":
                    self.assertNotEqual(run.returncode, 0, run.stdout)
                    self.assertIn("database=", run.stderr)
                self.assertUnchanged()


if __name__ == "__main__":
    unittest.main()
