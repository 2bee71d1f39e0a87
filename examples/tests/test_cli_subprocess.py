"""Another process of the app against the test database: commit mode and the test's URL.

A subprocess cannot join the test's transaction, so in rollback mode it would
see nothing the test wrote (and the test nothing it wrote until the test
ends). With ``isolation = "commit"`` both commit for real to the same test
database, and ``self.test_database_url`` (the test database's URL; its
``repr`` hides the password) is what the child is given as its
``DATABASE_URL``. Rows the app makes are the test's to delete.
"""

import os
import subprocess
import sys
from pathlib import Path

from test_framework import SSotAsyncTestCase

import app
from app.models import Base

EXAMPLES = Path(app.__file__).resolve().parents[1]
TIMEOUT = 60  # seconds; the child normally takes well under one


class ChatCliSubprocessTest(SSotAsyncTestCase):
    metadata = Base.metadata
    isolation = "commit"

    async def asyncTearDown(self):
        await self.db.execute_query("DELETE FROM users")  # made by the app, not by self.db
        await super().asyncTearDown()

    def run_cli(self, *args):
        return subprocess.run(
            [sys.executable, "-m", "app.cli", *args], cwd=EXAMPLES, capture_output=True,
            text=True, timeout=TIMEOUT,
            env=dict(os.environ, DATABASE_URL=str(self.test_database_url)))

    async def test_the_cli_registers_a_user_the_test_sees(self):
        await self.db.create_test_user({"email": "already@example.com"})

        run = self.run_cli("register", "cli@example.com", "From the CLI", "pw")

        self.assertEqual(run.returncode, 0, run.stderr)
        row = await self.db.fetch_one("SELECT id, full_name FROM users WHERE email = :e",
                                      {"e": "cli@example.com"})
        self.assertEqual((row.id, row.full_name), (int(run.stdout), "From the CLI"))

    async def test_the_cli_sees_what_the_test_committed(self):
        await self.db.create_test_user({"email": "taken@example.com"})

        run = self.run_cli("register", "taken@example.com", "Second", "pw")

        self.assertNotEqual(run.returncode, 0)
        self.assertIn("EmailTaken", run.stderr)
        self.assertEqual(await self.db.count_records("users"), 1)
