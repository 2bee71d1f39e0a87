"""Throwaway databases: unique per process, dropped at exit, never a non-test_ name."""

import asyncio
import json
import os
import secrets
import subprocess
import sys
import textwrap
import time
import unittest
from pathlib import Path

from sqlalchemy.engine import make_url

from test_framework import provision
from test_framework.backends import backend_for
from test_framework.config import Setting, Timeouts, project_settings
from test_framework.errors import DatabaseUnavailableError, UnsafeDatabaseError
from tests.support import postgres_url_from_env, skip_unless_backend

ROOT = Path(__file__).resolve().parents[1]
PROVISION_AND_EXIT = textwrap.dedent("""
    import asyncio, json, sys
    from test_framework import sample_schema
    from test_framework.backends import backend_for
    from test_framework.config import project_settings
    from test_framework.provision import provisioned_database
    from test_framework.provision.schema import MetadataSchema
    backend = backend_for(project_settings().database_url)
    database = asyncio.run(provisioned_database(backend, MetadataSchema(sample_schema.metadata)))
    print(json.dumps(database.url.render_as_string(hide_password=False)), flush=True)
    sys.exit(int(sys.argv[1]))
""")


def provision_in_subprocesses(count: int, exit_code: int) -> list[str]:
    """Start ``count`` processes at once; each provisions, prints its URL and exits."""
    processes = [subprocess.Popen([sys.executable, "-c", PROVISION_AND_EXIT, str(exit_code)],
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(count)]
    urls = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == exit_code, err
        urls.append(json.loads(out.strip().splitlines()[-1]))
    return urls


class TestSafetyGuard(unittest.TestCase):
    def test_refuses_non_test_names_on_every_backend(self):
        for url in ("postgresql+asyncpg://u:pw@h/app", "sqlite+aiosqlite:///data/app.db",
                    "postgresql+asyncpg://u@h/testing"):
            with self.subTest(url=url), self.assertRaises(UnsafeDatabaseError) as caught:
                provision.require_test_database(make_url(url), "drop")
            self.assertIn("does not start with 'test_'", str(caught.exception))
            self.assertNotIn(":pw@", str(caught.exception))

    def test_accepts_test_names_and_memory(self):
        for url in ("postgresql+asyncpg://u@h/test_app_1", "sqlite+aiosqlite:////tmp/test_x.sqlite3",
                    "sqlite+aiosqlite:///:memory:"):
            provision.require_test_database(make_url(url), "drop")

    def test_test_database_names_fit_and_differ(self):
        backend = backend_for(Setting("postgresql+asyncpg://u@h/" + "a" * 80, "test"))
        name = backend.test_database_name("p123", "abcdef")
        self.assertTrue(name.startswith("test_aaa"), name)
        self.assertTrue(name.endswith("_p123_abcdef"), name)
        self.assertEqual(len(name), 63)


class TestLifetime(unittest.TestCase):
    def test_concurrent_processes_get_distinct_databases_all_dropped(self):
        urls = provision_in_subprocesses(3, exit_code=1)
        self.assertEqual(len(set(urls)), 3, urls)
        for url in map(make_url, urls):
            self.assertTrue(Path(url.database).name.startswith("test_") or
                            url.database.startswith("test_"))
            self.assertFalse(asyncio.run(database_exists(url)), f"{url.database} left behind")


async def database_exists(url) -> bool:
    backend = backend_for(Setting(url.render_as_string(hide_password=False), "test"))
    if backend.name == "sqlite":
        return Path(url.database).exists()
    from tests.support import separate_connection
    from sqlalchemy import text
    async with separate_connection(url.set(database="postgres")) as connection:
        found = await connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                         {"n": url.database})
        return found.first() is not None


@skip_unless_backend("postgresql")
class TestUnreachableServer(unittest.TestCase):
    def provision(self, url: str) -> tuple[str, float]:
        backend = backend_for(Setting(url, "TEST_DATABASE_URL (environment)"), timeouts=Timeouts(connect=3))
        started = time.monotonic()
        with self.assertRaises(DatabaseUnavailableError) as caught:
            asyncio.run(asyncio.wait_for(provision.provisioned_database(backend, None), 10))
        return str(caught.exception), time.monotonic() - started

    def test_refused_port_fails_fast_with_masked_url_and_fix(self):
        message, elapsed = self.provision("postgresql+asyncpg://postgres:s3cret@127.0.0.1:1/app")
        self.assertLess(elapsed, 5)
        self.assertIn("postgresql+asyncpg://postgres:***@127.0.0.1:1/app", message)
        self.assertIn("TEST_DATABASE_URL (environment)", message)
        self.assertIn("check that PostgreSQL is running", message)
        self.assertNotIn("s3cret", message)

    def test_unroutable_host_times_out_within_five_seconds(self):
        message, elapsed = self.provision("postgresql+asyncpg://postgres@10.255.255.1:5432/app")
        self.assertLess(elapsed, 5)
        self.assertIn("10.255.255.1", message)

    def test_failure_is_remembered_so_later_tests_fail_at_once(self):
        self.provision("postgresql+asyncpg://postgres@127.0.0.1:2/app")
        _, elapsed = self.provision("postgresql+asyncpg://postgres@127.0.0.1:2/app")
        self.assertLess(elapsed, 0.5)

    def test_wrong_database_user_is_explained(self):
        message, _ = self.provision("postgresql+asyncpg://no_such_role@127.0.0.1:5432/app")
        self.assertIn("no_such_role", message)
        self.assertIn("user, password and database", message)


class TestNamedFromUrl(unittest.TestCase):
    @skip_unless_backend("postgresql")
    def test_postgres_database_named_after_the_app_database(self):
        url = make_url(provision_in_subprocesses(1, exit_code=0)[0])
        configured = make_url(postgres_url_from_env()).database
        self.assertTrue(url.database.startswith(f"test_{configured}_"), url.database)


class TestDatabasePerClass(unittest.TestCase):
    def test_three_database_mode_classes_in_a_row_each_get_and_drop_their_own(self):
        """Dropping a class's database once removed the run's folder for good (SQLite)."""
        from test_framework import SSotAsyncTestCase
        from tests.support import problems, run_case
        seen = []

        def make(index):
            class OwnDatabase(SSotAsyncTestCase):
                isolation = "database"

                async def test_write(self):
                    await self.db.create_test_user({"email": f"{index}@x.test"})
                    seen.append((self.engine.url, await self.db.count_records("users")))

            OwnDatabase.__qualname__ = f"OwnDatabase{index}"
            return OwnDatabase

        for index in range(3):
            result = run_case(make(index))
            self.assertTrue(result.wasSuccessful(), problems(result))
        urls = [url for url, _ in seen]
        self.assertEqual([count for _, count in seen], [1, 1, 1])
        self.assertEqual(len(set(urls)), 3, "a database of its own per class")
        backend = backend_for(project_settings().database_url)
        for url in urls:
            self.assertFalse(asyncio.run(backend.database_exists(url)), f"{url} dropped")


TAKEN_NAME_CHILD = textwrap.dedent("""
    import asyncio, secrets
    from test_framework import sample_schema
    from test_framework.backends import backend_for
    from test_framework.config import project_settings
    from test_framework.errors import DatabaseUnavailableError
    from test_framework.provision import provisioned_database
    from test_framework.provision.schema import MetadataSchema
    secrets.token_hex = lambda nbytes=None: "7a4e11"  # the name another run already has
    backend = backend_for(project_settings().database_url)
    try:
        database = asyncio.run(provisioned_database(backend,
                                                    MetadataSchema(sample_schema.metadata)))
        print("MADE", database.url.database, flush=True)
    except DatabaseUnavailableError as exc:
        print("REFUSED", exc, flush=True)
""")


@skip_unless_backend("postgresql")  # SQLite's run files live in a folder of the run's own
class TestNameTaken(unittest.TestCase):
    def test_a_database_whose_name_another_run_has_is_never_dropped(self):
        """A run counts the database it makes as its own from before CREATE DATABASE;
        if the name turns out taken (another PID namespace, the same pid and random
        part), the database is the other run's, and this run's exit leaves it."""
        backend = backend_for(project_settings().database_url)
        worker = f"taken{secrets.token_hex(3)}"
        url = backend.database_url(backend.test_database_name(worker, "7a4e11"))
        asyncio.run(backend.create_database(url, label="another suite's"))  # never reaped
        try:
            child = subprocess.run([sys.executable, "-c", TAKEN_NAME_CHILD], cwd=ROOT,
                                   env={**os.environ, "PYTEST_XDIST_WORKER": worker},
                                   capture_output=True, text=True, timeout=120)
            self.assertIn("REFUSED", child.stdout, child.stdout + child.stderr)
            self.assertIn("already exists", child.stdout)
            self.assertTrue(asyncio.run(backend.database_exists(url)),
                            f"{url.database}, another suite's, was dropped")
        finally:
            asyncio.run(backend.drop_database(url))


class TestModelSetsShareADatabase(unittest.TestCase):
    """Three model sets in one suite: one database, not three clones and three templates."""

    def make(self, tables: dict[str, list[str]]):
        from sqlalchemy import Column, Integer, MetaData, String, Table
        from test_framework import SSotAsyncTestCase
        metadata = MetaData()
        for name, columns in tables.items():
            Table(name, metadata, Column("id", Integer, primary_key=True),
                  *(Column(column, String(20)) for column in columns))
        seen = self.seen

        class UsesModels(SSotAsyncTestCase):
            async def test_write(self):
                name = next(iter(tables))
                await self.db.create(name, {"id": 1})
                seen.append((self.engine.url.database, name,
                             await self.db.count_records(name)))

        UsesModels.metadata = metadata
        return UsesModels

    def test_sets_without_conflicts_share_and_a_conflicting_one_gets_its_own(self):
        from tests.support import problems, run_case
        self.seen = []
        token = secrets.token_hex(3)
        sets = [{f"a_{token}": ["x"]}, {f"b_{token}": ["y"], f"c_{token}": []},
                {f"d_{token}": []}, {f"a_{token}": ["other"]}]  # the last conflicts with the first
        for tables in sets:
            result = run_case(self.make(tables))
            self.assertTrue(result.wasSuccessful(), problems(result))
        databases = [database for database, _, _ in self.seen]
        self.assertEqual(len(set(databases[:3])), 1, self.seen)
        self.assertNotEqual(databases[3], databases[0], "same table name, other columns")
        self.assertEqual([count for _, _, count in self.seen], [1, 1, 1, 1])
