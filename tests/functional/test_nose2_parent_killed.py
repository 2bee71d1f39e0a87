"""nose2 killed (``kill -9`` or SIGTERM): its ``-N`` workers end and drop their databases.

A worker holds both ends of nose2's pipe, so it never sees nose2 go and would
wait forever, keeping its database. With the plugin it gets SIGTERM when its
parent dies and drops what it made. Leftovers are found by the worker pids:
SQLite folders ``test_framework_<pid>_*`` in the child's TMPDIR, PostgreSQL
databases whose names contain ``p<pid>_``.
"""

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

from tests.functional.example_runs import (ROOT, child_environment, database_url,
                                           server_test_databases)
from tests.functional.scenarios.parent_killed import MARKERS
from tests.functional.test_parallel import NOSE2_CONFIG

SCENARIO = "tests.functional.scenarios.parent_killed"
START_BOUND = 60  # nose2 and both workers inside their tests
END_BOUND = 10  # workers gone and databases dropped after the kill


class TestParentKilled(unittest.TestCase):
    def test_workers_end_and_drop_their_databases_after_kill_9(self):
        self.check_workers_end_after(signal.SIGKILL)

    def test_workers_end_and_drop_their_databases_after_sigterm(self):
        self.check_workers_end_after(signal.SIGTERM)

    def check_workers_end_after(self, signum: int) -> None:
        """Run two blocking workers, send nose2 ``signum``; check the workers and databases."""
        with tempfile.TemporaryDirectory(prefix="parent_killed_") as name:
            folder = Path(name)
            markers, tmp = folder / "markers", folder / "tmp"
            markers.mkdir()
            tmp.mkdir()
            (folder / "nose2.cfg").write_text(NOSE2_CONFIG)
            with open(folder / "output.txt", "w+") as output:
                process = subprocess.Popen(
                    [sys.executable, "-m", "nose2", "-c", str(folder / "nose2.cfg"), "-N", "2",
                     SCENARIO], cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
                    env=child_environment(str(tmp), {MARKERS: str(markers)}, ()),
                    start_new_session=True)
                try:
                    workers = self.wait_for_workers(process, markers, output)
                    process.send_signal(signum)
                    process.wait()
                    killed = time.monotonic()
                    _wait_until(lambda: not any(map(_alive, workers)), END_BOUND * 3)
                    elapsed = time.monotonic() - killed
                    still_running = [pid for pid in workers if _alive(pid)]
                finally:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the run
                    process.wait()
                output.seek(0)
                log = output.read()
            folders = [p.name for p in tmp.iterdir()
                       if any(p.name.startswith(f"test_framework_{pid}_") for pid in workers)]
        databases = [db for db in server_test_databases(database_url())
                     if any(f"p{pid}_" in db for pid in workers)]
        self.assertEqual(still_running, [], log)
        self.assertLess(elapsed, END_BOUND, log)
        self.assertEqual((folders, databases), ([], []), log)

    def wait_for_workers(self, process, markers: Path, output) -> list[int]:
        """Return the pids of both workers once each is inside its test."""
        _wait_until(lambda: process.poll() is not None or len(os.listdir(markers)) == 2,
                    START_BOUND)
        pids = [int(name) for name in os.listdir(markers)]
        if len(pids) != 2:
            output.seek(0)
            self.fail(f"workers inside tests: {pids} (nose2 exit {process.poll()})\n"
                      f"{output.read()}")
        return pids


def _wait_until(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
