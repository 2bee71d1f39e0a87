"""Crash safety: databases of killed runs are reaped by the next run; live runs' never."""

import asyncio
import contextlib
import fcntl
import io
import os
import secrets
import signal
import socket
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from sqlalchemy.engine import make_url

from test_framework.backends import backend_for
from test_framework.config import project_settings
from test_framework.provision.__main__ import main as provision_cli
from test_framework.provision.ownership import reap_orphans
from tests.provision.test_templates import DropsNewTemplates, finish, start_child
from tests.support import separate_connection

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "test_framework.provision", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def stop(process: subprocess.Popen) -> None:
    """Ctrl-C the run (``unshare`` ignores it while it waits: the run is its child)."""
    if process.poll() is None:
        for pid in descendants(process.pid) if process.args[0] == "unshare" else [process.pid]:
            os.kill(pid, signal.SIGINT)
        process.communicate(timeout=30)


def descendants(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children] + \
        [grandchild for child in children for grandchild in descendants(int(child))]


def in_new_pid_namespace_as_a_pid_dead_here() -> list[str]:
    """Run the child in a PID namespace where its pid is one no process has here.

    Numbers are handed out in order in a new namespace (sh is 1), so starting
    ``n`` short processes first makes the run pid ``n + 2``.
    """
    dead_here = next(pid for pid in range(200, 30000) if not Path(f"/proc/{pid}").exists())
    script = f'i=0; while [ $i -lt {dead_here - 2} ]; do /bin/true; i=$((i+1)); done; "$@"'
    return ["unshare", "--pid", "--fork", "sh", "-c", script, "sh"]


def started_url(process: subprocess.Popen) -> str:
    line = process.stdout.readline()
    assert line.startswith("URL "), line + process.stderr.read()
    return line.split(" ", 1)[1].strip()


class Exists(DropsNewTemplates):
    def exists(self, url: str) -> bool:
        return asyncio.run(self.backend.database_exists(make_url(url)))


class TestOrphans(Exists):
    def wait_until_released(self, url: str) -> None:
        """The server ends a killed client's session (and its run lock) a moment later."""
        from test_framework.provision.ownership import describe

        async def released():
            async with asyncio.timeout(30):
                while True:
                    records = {r.name: r for r in await self.backend.list_databases()}
                    record = records.get(self.backend.database_name(make_url(url)))
                    if record is None or await describe(self.backend, record) == "orphan":
                        return
                    await asyncio.sleep(0.1)

        asyncio.run(released())

    def test_kill_9_leftover_reaped_by_next_run_live_run_untouched(self):
        killed = start_child(self.table, "--hold", "60")
        live = start_child(self.table, "--hold", "60")
        try:
            killed_url, live_url = started_url(killed), started_url(live)
            killed.send_signal(signal.SIGKILL)
            killed.communicate(timeout=10)
            self.assertTrue(self.exists(killed_url), "kill -9 leaves the database behind")
            finish(start_child(self.table))
            # Reaped by that run, or by another suite's run on this server just before it.
            self.assertFalse(self.exists(killed_url), "the next run reaped it")
            self.assertTrue(self.exists(live_url), "a live run's database is never touched")
        finally:
            for process in (killed, live):
                if process.poll() is None:
                    process.send_signal(signal.SIGINT)
                    process.communicate(timeout=30)
        self.assertFalse(self.exists(live_url), "dropped when its own run ended")

    def test_command_lists_and_drops_only_orphans(self):
        """Another suite's run may reap the planted orphan first: then it is gone either way."""
        killed = start_child(self.table, "--hold", "60")
        live = start_child(self.table, "--hold", "60")
        try:
            url, live_url = started_url(killed), started_url(live)
            killed.send_signal(signal.SIGKILL)
            killed.communicate(timeout=10)
            name = self.backend.database_name(make_url(url))
            live_name = self.backend.database_name(make_url(live_url))
            self.wait_until_released(url)
            listing = cli("list")
            dropped = cli("drop")
            if name in listing.stdout:
                self.assertIn(f"{name}\torphan", listing.stdout)
            self.assertIn(f"{live_name}\tlive (test_framework run=", listing.stdout)
            self.assertNotIn(f"dropped {live_name}", dropped.stdout)
            self.assertFalse(self.exists(url))
            self.assertTrue(self.exists(live_url))
        finally:
            stop(live)

    def test_command_drops_a_live_runs_database_only_with_force(self):
        live = start_child(self.table, "--hold", "60")
        try:
            url = started_url(live)
            name = self.backend.database_name(make_url(url))
            refused = cli("drop", name)
            self.assertIn(f"not dropped: {name} is held by a live run", refused.stderr)
            self.assertTrue(self.exists(url))
            forced = cli("drop", "--force", name)
            self.assertIn(f"dropped {name}", forced.stdout)
            self.assertFalse(self.exists(url))
        finally:
            stop(live)

    @unittest.skipUnless(shutil.which("unshare") and subprocess.run(
        ["unshare", "--pid", "--fork", "true"], capture_output=True).returncode == 0,
        "needs unshare --pid (Linux, root or user namespaces)")
    def test_live_run_in_another_pid_namespace_is_never_reaped(self):
        """Its pid means nothing here; only its lock says whether it lives."""
        other = start_child(self.table, "--hold", "60",
                            prefix=in_new_pid_namespace_as_a_pid_dead_here())
        try:
            url = started_url(other)
            pid = int(self.backend.database_name(make_url(url)).split("_p")[-1].split("_")[0])
            self.assertFalse(Path(f"/proc/{pid}").exists(), "its pid means no process here")
            asyncio.run(reap_orphans(self.backend))
            finish(start_child(self.table))  # a whole run starts, reaps and ends
            self.assertTrue(self.exists(url), "a live run's database is never touched")
        finally:
            stop(other)
        asyncio.run(reap_orphans(self.backend))
        self.assertFalse(self.exists(url), "gone once its run ended")

    def test_command_refuses_names_without_test_prefix(self):
        """Only names the server lists as test_ databases can be dropped."""
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
        self.addCleanup(lambda: asyncio.run(backend.drop_database(first)))
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


class TestKeptDatabaseOneRunAtATime(Exists):
    def test_second_concurrent_run_gets_its_own_database_and_says_so(self):
        env = dict(os.environ, TEST_FRAMEWORK_KEEP_DATABASE="1", TEST_FRAMEWORK_LOG_LEVEL="INFO")
        runs, urls = [], []
        try:
            for _ in range(2):
                runs.append(subprocess.Popen(
                    [sys.executable, "-m", "tests.provision.child", self.table, "--hold", "60"],
                    cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True))
                urls.append(started_url(runs[-1]))  # the first holds it before the second asks
        finally:
            errors = [stop_and_read_stderr(run) for run in runs]
        kept = make_url(urls[0])
        self.addCleanup(lambda: asyncio.run(self.backend.drop_database(kept)))
        self.assertIn("_keep_", urls[0])
        self.assertNotEqual(urls[0], urls[1])
        self.assertEqual(errors[1].count("is in use by another run"), 1, errors[1])
        self.assertNotIn("is in use by another run", errors[0])
        self.assertFalse(self.exists(urls[1]), "the second run's own database was dropped")


def stop_and_read_stderr(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    return process.communicate(timeout=30)[1]


class TestForgedLabels(unittest.TestCase):
    """A label says who made a database; only a free lock (and no session) proves it dead."""

    def setUp(self):
        self.backend = backend_for(project_settings().database_url)
        self.name = f"test_forged_{secrets.token_hex(4)}"

    def exists(self, url) -> bool:
        return asyncio.run(self.backend.database_exists(url))

    def test_forged_run_label_does_not_drop_a_database_still_in_use(self):
        if self.backend.name == "sqlite":
            self.skipTest("SQLite labels are the run's folder, tested below")
        url = self.backend.database_url(self.name)
        label = f"test_framework run={socket.gethostname()}.424242.forged"
        asyncio.run(self.backend.create_database(url, label=label))
        self.addCleanup(lambda: asyncio.run(self.backend.drop_database(url)))

        async def reap_while_connected():
            async with separate_connection(url):
                await reap_orphans(self.backend)
            return await self.backend.database_exists(url)

        self.assertTrue(asyncio.run(reap_while_connected()), "someone is connected to it")

        async def reap_once_the_session_is_gone():  # a server process ends a moment later
            async with asyncio.timeout(30):  # (another suite's reaper may hold it meanwhile)
                while await self.backend.database_exists(url):
                    await reap_orphans(self.backend)
                    await asyncio.sleep(0.1)

        asyncio.run(reap_once_the_session_is_gone())
        self.assertFalse(self.exists(url), "nothing holds it any more: an orphan")

    def test_run_folder_reaped_only_when_its_lock_is_free(self):
        if self.backend.name != "sqlite":
            self.skipTest("run folders are SQLite's")
        folder = Path(tempfile.mkdtemp(prefix="test_framework_424242_ab_"))
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        url = self.backend.url.set(database=str(folder / f"{self.name}.sqlite3"))
        Path(url.database).touch()
        with open(folder / "owner.lock", "w") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # the run is alive (another open file here)
            asyncio.run(reap_orphans(self.backend))
            self.assertTrue(self.exists(url), "its run holds the lock")
        asyncio.run(reap_orphans(self.backend))
        self.assertFalse(self.exists(url))
        self.assertFalse(folder.exists(), "the emptied folder goes too")

    def test_folder_without_a_lock_file_is_never_reaped(self):
        if self.backend.name != "sqlite":
            self.skipTest("run folders are SQLite's")
        folder = Path(tempfile.mkdtemp(prefix="test_framework_424242_cd_"))
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        url = self.backend.url.set(database=str(folder / f"{self.name}.sqlite3"))
        Path(url.database).touch()
        asyncio.run(reap_orphans(self.backend))
        self.assertTrue(self.exists(url), "no proof either way: left for a person to drop")


class TestPrivateFolderAtExit(unittest.TestCase):
    """A SQLite run's private folder goes at exit once no database is left in it (a run
    that kept its database in the cache never dropped one there), and stays otherwise."""

    def _child_folder(self, leave_a_file: bool) -> Path:
        code = ("import pathlib\n"
                "from test_framework.backends.sqlite import private_dir\n"
                "folder = private_dir()\n"
                "print(folder)\n"
                + ("(folder / 'test_left.sqlite3').touch()\n" if leave_a_file else ""))
        run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                             text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        self.assertEqual(run.returncode, 0, run.stderr)
        folder = Path(run.stdout.strip())
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        return folder

    def test_an_emptied_folder_is_removed(self):
        self.assertFalse(self._child_folder(leave_a_file=False).exists())

    def test_a_folder_still_holding_a_database_stays_for_the_reaper(self):
        folder = self._child_folder(leave_a_file=True)
        self.assertTrue((folder / "test_left.sqlite3").exists())
