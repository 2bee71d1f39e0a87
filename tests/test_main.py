"""``python -m test_framework``: configuration with sources, server check, databases."""

import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from tests.support import backend_name

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "test_framework", *args], cwd=ROOT,
                          env=dict(os.environ, **env), capture_output=True, text=True,
                          timeout=60)


class TestCommandLine(unittest.TestCase):
    def test_config_shows_sources_and_masks_passwords(self):
        run = cli("config", TEST_DATABASE_URL="postgresql+asyncpg://u:s3cret@db:5432/app",
                  TEST_FRAMEWORK_LOCK_TIMEOUT="2")
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("postgresql+asyncpg://u:***@db:5432/app", run.stdout)
        self.assertIn("TEST_DATABASE_URL (environment)", run.stdout)
        self.assertRegex(run.stdout, r"lock_timeout\s+2.0\s+\(TEST_FRAMEWORK_LOCK_TIMEOUT")
        self.assertNotIn("s3cret", run.stdout + run.stderr)

    def test_password_in_the_query_is_never_printed(self):
        url = "postgresql+asyncpg://u@127.0.0.1:1/app?password=q-s3cret&ssl=disable"
        for command in ("config", "check"):
            with self.subTest(command):
                run = cli(command, TEST_DATABASE_URL=url)
                self.assertRegex(run.stdout + run.stderr, r"u(:\*\*\*)?@127.0.0.1:1/app")
                self.assertNotIn("q-s3cret", run.stdout + run.stderr)

    def test_check_reports_the_configured_server(self):
        run = cli("check")
        self.assertEqual(run.returncode, 0, run.stderr)
        if backend_name() == "postgresql":
            self.assertRegex(run.stdout, r"^reached postgresql\+asyncpg://\S+ in \d+ ms")
        else:  # no server: nothing to claim it reached, least of all a file never opened
            self.assertNotIn("reached", run.stdout)
            self.assertIn("no server to reach for sqlite+aiosqlite:///", run.stdout)
            self.assertIn("the framework never opens that file", run.stdout)

    def test_sqlite_file_url_is_not_reached_nor_created(self):
        with tempfile.TemporaryDirectory() as folder:
            named = Path(folder, "app.db")
            run = cli("check", TEST_DATABASE_URL=f"sqlite+aiosqlite:///{named}")
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertIn(f"no server to reach for sqlite+aiosqlite:///{named} (sqlite)",
                          run.stdout)
            self.assertFalse(named.exists())

    def test_databases_help_names_the_command_typed(self):
        for args in (("databases", "--help"), ("databases", "drop", "--help")):
            with self.subTest(args):
                run = cli(*args)
                self.assertEqual(run.returncode, 0, run.stderr)
                self.assertIn(f"usage: python -m test_framework {' '.join(args[:-1])}",
                              run.stdout)
                self.assertNotIn("test_framework.provision", run.stdout)

    def test_check_explains_an_unreachable_server(self):
        run = cli("check", TEST_DATABASE_URL="postgresql+asyncpg://u:s3cret@127.0.0.1:1/app")
        self.assertEqual(run.returncode, 1)
        self.assertIn("error: cannot reach postgresql+asyncpg://u:***@127.0.0.1:1/app", run.stderr)
        self.assertNotIn("Traceback", run.stderr)
        self.assertNotIn("s3cret", run.stderr)

    def test_bad_url_is_explained(self):
        run = cli("check", TEST_DATABASE_URL="postgresql://u@db/app")
        self.assertEqual(run.returncode, 2)
        self.assertIn("a sync driver", run.stderr)

    def test_databases_lists(self):
        run = cli("databases", "list")
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("test database(s) on", run.stdout)

    def test_config_flags_a_bad_url(self):
        run = cli("config", TEST_DATABASE_URL="postgresql://u@db/app")
        self.assertEqual(run.returncode, 1)
        self.assertIn("a sync driver", run.stderr)
        self.assertIn("shard", run.stdout)

    def test_config_shows_each_run_switch_with_its_source_and_flags_a_bad_one(self):
        run = cli("config", TEST_FRAMEWORK_SHARD="2/4", TEST_FRAMEWORK_TIMING="25",
                  TEST_FRAMEWORK_LOG_LEVEL="")
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertRegex(run.stdout, r"(?m)^shard +2/4 +\(TEST_FRAMEWORK_SHARD \(environment\)\)$")
        self.assertRegex(run.stdout, r"(?m)^timing +on, 25 slowest tests listed +"
                                     r"\(TEST_FRAMEWORK_TIMING \(environment\)\)$")
        self.assertRegex(run.stdout, r"(?m)^log_level +off +\(TEST_FRAMEWORK_LOG_LEVEL "
                                     r"\(environment\) if set\)$")
        bad = cli("config", TEST_FRAMEWORK_SHARD="5/4")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("error: TEST_FRAMEWORK_SHARD (environment) is '5/4'", bad.stderr)
        self.assertRegex(bad.stdout, r"(?m)^timing ")
