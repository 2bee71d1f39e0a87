"""A role without CREATEDB runs in a schema of its own per run, dropped and reaped like a database."""

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import unittest
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.support import postgres_url_from_env, separate_connection, skip_unless_backend

ROOT = Path(__file__).resolve().parents[2]


@skip_unless_backend("postgresql")
class TestRoleWithoutCreatedb(unittest.TestCase):
    def setUp(self):
        server = make_url(postgres_url_from_env())
        suffix = secrets.token_hex(3)
        self.role, self.database = f"tf_nocreate_{suffix}", f"test_managed_{suffix}"
        self.admin = server.set(database="postgres")
        self.owned = server.set(database=self.database)
        self.url = server.set(username=self.role, database=self.database)
        asyncio.run(self.execute(f'CREATE ROLE "{self.role}" LOGIN',
                                 f'CREATE DATABASE "{self.database}" OWNER "{self.role}"'))
        self.addCleanup(lambda: asyncio.run(self.execute(
            f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)',
            f'DROP ROLE IF EXISTS "{self.role}"')))

    async def execute(self, *statements: str):
        async with separate_connection(self.admin) as connection:
            for statement in statements:
                await connection.execute(text(statement))

    def schemas(self) -> set[str]:
        async def query():
            async with separate_connection(self.owned) as connection:
                return {name for (name,) in await connection.execute(text(
                    "SELECT nspname FROM pg_namespace WHERE left(nspname, 5) = 'test_'"))}
        return asyncio.run(query())

    def run_suite(self, *args: str, **kwargs) -> subprocess.Popen:
        env = dict(os.environ, TEST_DATABASE_URL=self.url.render_as_string(hide_password=False))
        return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def test_suite_passes_in_its_own_schema_which_is_dropped_at_exit(self):
        run = self.run_suite("unittest", "tests.functional.scenarios.run_schema")
        out, err = run.communicate(timeout=120)
        self.assertEqual(run.returncode, 0, err)
        self.assertIn("SCHEMA test_", out)
        self.assertEqual(self.schemas(), set(), "every run schema dropped when the run ended")

    def test_killed_runs_schema_is_reaped_by_the_next_run(self):
        killed = self.run_suite("tests.provision.child", "users", "--hold", "60")
        try:
            self.assertTrue(killed.stdout.readline().startswith("URL "))
            left = self.schemas()
            self.assertEqual(len(left), 1)
        finally:
            killed.send_signal(signal.SIGKILL)
            killed.communicate(timeout=30)
        self.assertEqual(self.schemas(), left, "kill -9 leaves the schema")
        live = self.run_suite("tests.provision.child", "users", "--hold", "60")
        try:
            self.assertTrue(live.stdout.readline().startswith("URL "))
            now = self.schemas()
            self.assertFalse(left & now, "the dead run's schema was reaped")
            self.assertEqual(len(now), 1, "the live run's own schema")
        finally:
            live.send_signal(signal.SIGINT)
            live.communicate(timeout=30)
        self.assertEqual(self.schemas(), set())
