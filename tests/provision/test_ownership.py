"""Crash safety: databases of killed runs are reaped by the next run; live runs' never."""

import asyncio
import contextlib
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from test_framework.backends import backend_for
from test_framework.config import project_settings
from test_framework.provision.__main__ import main as provision_cli
from tests.provision.test_templates import DropsNewTemplates, finish, start_child

ROOT = Path(__file__).resolve().parents[2]


def started_url(process: subprocess.Popen) -> str:
    line = process.stdout.readline()
    assert line.startswith("URL "), line + process.stderr.read()
    return line.split(" ", 1)[1].strip()


class TestOrphans(DropsNewTemplates):
    def exists(self, url: str) -> bool:
        return asyncio.run(self.backend.database_exists(make_url(url)))

    def test_kill_9_leftover_reaped_by_next_run_live_run_untouched(self):
        killed = start_child(self.table, "--hold", "60")
        live = start_child(self.table, "--hold", "60")
        try:
            killed_url, live_url = started_url(killed), started_url(live)
            killed.send_signal(signal.SIGKILL)
            killed.communicate(timeout=10)
            self.assertTrue(self.exists(killed_url), "kill -9 leaves the database behind")
            _, stderr = finish(start_child(self.table))
            self.assertFalse(self.exists(killed_url), "the next run reaped it")
            self.assertIn("left by a run that no longer exists", stderr)
            self.assertTrue(self.exists(live_url), "a live run's database is never touched")
        finally:
            for process in (killed, live):
                if process.poll() is None:
                    process.send_signal(signal.SIGINT)
                    process.communicate(timeout=30)
        self.assertFalse(self.exists(live_url), "dropped when its own run ended")

    def test_command_lists_and_drops_only_orphans(self):
        killed = start_child(self.table, "--hold", "60")
        url = started_url(killed)
        killed.send_signal(signal.SIGKILL)
        killed.communicate(timeout=10)
        name = self.backend.database_name(make_url(url))
        listing = subprocess.run([sys.executable, "-m", "test_framework.provision", "list"],
                                 cwd=ROOT, capture_output=True, text=True, timeout=60)
        dropped = subprocess.run([sys.executable, "-m", "test_framework.provision", "drop"],
                                 cwd=ROOT, capture_output=True, text=True, timeout=60)
        if name in listing.stdout:  # else a run started meanwhile has already reaped it
            self.assertIn(f"{name}\torphan", listing.stdout)
            self.assertIn(f"dropped {name}", dropped.stdout)
        self.assertFalse(self.exists(url))

    def test_command_refuses_names_without_test_prefix(self):
        output = io.StringIO()
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            self.assertEqual(provision_cli(["drop", "postgres", "app"]), 1)
        self.assertIn("not found (or not a test_ database): app", output.getvalue())


class TestKeepDatabase(DropsNewTemplates):
    def test_kept_database_reused_and_emptied_between_runs(self):
        table = self.table
        env = {"TEST_FRAMEWORK_KEEP_DATABASE": "1"}
        backend = backend_for(project_settings().database_url)

        def run():
            child = subprocess.run([sys.executable, "-m", "tests.provision.child", table],
                                   cwd=ROOT, env=dict(os.environ, **env), capture_output=True,
                                   text=True, timeout=120)
            self.assertEqual(child.returncode, 0, child.stderr)
            return make_url(child.stdout.split("URL ", 1)[1].split()[0])

        first = run()
        self.addCleanup(asyncio.run, backend.drop_database(first))
        asyncio.run(insert_row(backend, first, table))
        second = run()
        self.assertEqual(first, second)
        self.assertTrue(asyncio.run(backend.database_exists(second)), "kept after exit")
        self.assertEqual(asyncio.run(count(backend, second, table)), 0, "rows reset")


async def insert_row(backend, url, table):
    from tests.support import separate_connection
    from sqlalchemy import text
    async with separate_connection(url) as connection:
        await connection.execute(text(f"INSERT INTO {table} (id, name) VALUES (1, 'x')"))


async def count(backend, url, table):
    from tests.support import count_rows
    return await count_rows(url, table)
