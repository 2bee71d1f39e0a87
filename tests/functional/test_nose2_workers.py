"""nose2 ``-N`` as users type it: config in ``unittest.cfg``, nothing left, plugin or not.

nose2 reads ``unittest.cfg`` from the directory it starts in, so each run
here starts in a temporary folder holding one, with this checkout on
``PYTHONPATH``. Leftovers are found by the workers' pids: SQLite folders
``test_framework_<pid>_*`` in the run's TMPDIR, PostgreSQL databases whose
names contain ``p<pid>_``.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

from tests.functional.example_runs import (child_environment, database_url, run_suite,
                                           server_test_databases, unittest_count)
from tests.functional.scenarios.parent_killed import MARKERS

MP_ONLY = "[unittest]\nplugins = nose2.plugins.mp\n"
WITH_PLUGIN = """[unittest]
plugins = nose2.plugins.mp
          test_framework.nose2_plugin

[test-framework]
always-on = True
"""
CONFIGS = {"without the plugin": MP_ONLY, "with the plugin": WITH_PLUGIN}
CTRL_C_TRIES = 10
START_BOUND = 60  # both workers inside their tests
CREATED = re.compile(r"created test database (\S+)")
DROPPED = re.compile(r"dropped test database (\S+)")


class TestNose2AsTyped(unittest.TestCase):
    def test_dash_n_reads_unittest_cfg_logs_once_and_leaves_nothing(self):
        for name, config in CONFIGS.items():
            with self.subTest(name), tempfile.TemporaryDirectory(prefix="nose2_cfg_") as folder:
                Path(folder, "unittest.cfg").write_text(config)
                run = run_suite("-m", "nose2", "-N", "2", "tests.functional.scenarios.thirty_tests",
                                cwd=Path(folder),
                                env_updates={"TEST_FRAMEWORK_LOG_LEVEL": "INFO"})
                self.assertEqual(run.returncode, 0, run.describe())
                self.assertEqual(unittest_count(run.stderr), 30, run.describe())
                created = CREATED.findall(run.stderr)
                self.assertTrue(created, run.describe())
                self.assertEqual(len(created), len(set(created)), "a log line twice"
                                 + run.describe())
                self.assertEqual(sorted(DROPPED.findall(run.stderr)), sorted(created))
                self.assertNotIn("INFO:test_framework", run.stderr, run.describe())
                self.assertEqual((run.leftover_files, run.leftover_databases), ([], []))


class TestCtrlC(unittest.TestCase):
    def test_ctrl_c_leaves_nothing_ten_times_in_ten(self):
        """Alternate the two configurations; every try must leave nothing behind."""
        outcomes = []
        for attempt in range(CTRL_C_TRIES):
            name = list(CONFIGS)[attempt % 2]
            outcomes.append((name, self.interrupt_once(CONFIGS[name])))
        left = [(name, leftovers) for name, leftovers in outcomes if leftovers != ([], [])]
        self.assertEqual(left, [], f"{CTRL_C_TRIES - len(left)} of {CTRL_C_TRIES} tries clean")

    def interrupt_once(self, config: str) -> tuple[list[str], list[str]]:
        """Start two blocked workers, press Ctrl-C; return their leftover folders and databases."""
        with tempfile.TemporaryDirectory(prefix="nose2_ctrl_c_") as name:
            folder = Path(name)
            markers, tmp = folder / "markers", folder / "tmp"
            markers.mkdir()
            tmp.mkdir()
            (folder / "unittest.cfg").write_text(config)
            process = subprocess.Popen(
                [sys.executable, "-m", "nose2", "-N", "2",
                 "tests.functional.scenarios.parent_killed"], cwd=folder,
                env=child_environment(str(tmp), {MARKERS: str(markers)}, ()),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                start_new_session=True)
            try:
                deadline = time.monotonic() + START_BOUND
                while (len(os.listdir(markers)) < 2 and process.poll() is None
                       and time.monotonic() < deadline):
                    time.sleep(0.05)
                workers = [int(pid) for pid in os.listdir(markers)]
                os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
                output, _ = process.communicate(timeout=60)
            finally:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.communicate()
            self.assertEqual(len(workers), 2, output)
            folders = [path.name for path in tmp.iterdir()
                       if any(path.name.startswith(f"test_framework_{pid}_") for pid in workers)]
        databases = [db for db in server_test_databases(database_url())
                     if any(f"p{pid}_" in db for pid in workers)]
        return folders, databases
