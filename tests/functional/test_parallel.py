"""Parallel and sharded runs: a private database per worker, all dropped afterwards."""

import re
import tempfile
import unittest
from pathlib import Path

from tests.functional.example_runs import pytest_count, run_suite, unittest_count

NOSE2_CONFIG = """
[unittest]
plugins = nose2.plugins.mp
          test_framework.nose2_plugin

[test-framework]
always-on = True
"""
from tests.functional.test_examples import EXAMPLE_TEST_COUNT as EXAMPLE_TESTS
CREATED = re.compile(r"created test database (\S+)")


def created_databases(output: str) -> set[str]:
    return set(CREATED.findall(output))


class TestWorkers(unittest.TestCase):
    def test_nose2_mp_workers_each_get_a_database_and_drop_it(self):
        with tempfile.TemporaryDirectory() as folder:
            config = Path(folder) / "nose2.cfg"
            config.write_text(NOSE2_CONFIG)
            run = run_suite("-m", "nose2", "-c", str(config), "-N", "2",
                            env_updates={"TEST_FRAMEWORK_LOG_LEVEL": "INFO"})
        self.assertEqual(run.returncode, 0, run.describe())
        self.assertEqual(unittest_count(run.stderr), EXAMPLE_TESTS, run.describe())
        created = created_databases(run.stderr)
        workers = {re.search(r"_(p\d+)_", name).group(1) for name in created}
        # A database per worker and schema: the examples have two (models, migrations).
        self.assertEqual(len(workers), 2, run.describe())
        self.assertLessEqual(len(created), 2 * len(workers), run.describe())
        self.assertEqual((run.leftover_files, run.leftover_databases), ([], []))

    def test_pytest_xdist_workers_each_get_a_database_and_drop_it(self):
        run = run_suite("-m", "pytest", "-q", "-n", "2", "-p", "xdist",
                        env_updates={"TEST_FRAMEWORK_LOG_LEVEL": "INFO"})
        self.assertEqual(run.returncode, 0, run.describe())
        self.assertEqual(pytest_count(run.stdout), EXAMPLE_TESTS, run.describe())
        names = created_databases(run.stdout + run.stderr)
        self.assertLessEqual(len(names), 4, "a database per worker and schema at most")
        self.assertTrue(all("_gw" in name for name in names), names)
        ours = [name for name in run.leftover_files if not name.startswith("pytest-of-")]
        self.assertEqual((ours, run.leftover_databases), ([], []))


class TestShards(unittest.TestCase):
    def test_shards_split_the_suite_without_overlap(self):
        counts = []
        for shard in ("1/2", "2/2"):
            run = run_suite("-m", "pytest", "-q", env_updates={"TEST_FRAMEWORK_SHARD": shard})
            self.assertEqual(run.returncode, 0, run.describe())
            counts.append(pytest_count(run.stdout) or 0)
        self.assertEqual(sum(counts), EXAMPLE_TESTS)
        self.assertTrue(all(counts), counts)


class TestInterruptedWorkers(unittest.TestCase):
    def test_ctrl_c_under_nose2_mp_drops_every_workers_database(self):
        import os
        import signal
        import subprocess
        import sys
        from tests.functional.example_runs import (ROOT, child_environment, orphaned_databases,
                                                   server_test_databases)
        url = os.environ.get("TEST_DATABASE_URL") or None
        before = server_test_databases(url)
        with tempfile.TemporaryDirectory() as folder:
            config = Path(folder) / "nose2.cfg"
            config.write_text(NOSE2_CONFIG)
            process = subprocess.Popen(
                [sys.executable, "-m", "nose2", "-c", str(config), "-N", "2",
                 "tests.functional.scenarios.interrupted"], cwd=ROOT,
                env=child_environment(folder, {}, ()), stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, start_new_session=True)
            try:
                line = process.stdout.readline()
                self.assertTrue(line.startswith("READY"), line)
                os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
                process.communicate(timeout=60)
            finally:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.communicate()
            leftover_files = [p.name for p in Path(folder).iterdir() if p.name != "nose2.cfg"]
        self.assertEqual(leftover_files, [])
        self.assertEqual((server_test_databases(url) - before) & orphaned_databases(url), set())
