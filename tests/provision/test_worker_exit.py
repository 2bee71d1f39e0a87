"""A forked worker drops its test database as it ends, also when terminated, with no plugin.

Each case runs ``scenarios/forked_worker.py`` in a subprocess: multiprocessing
forks a worker (which never runs ``atexit``), the worker runs a framework
test, then returns or is terminated. Its database must be gone afterwards,
and a terminated worker must still die of SIGTERM, as it would have.
"""

import signal
import unittest

from tests.functional.example_runs import ROOT, database_url, run_suite, server_test_databases


class TestForkedWorker(unittest.TestCase):
    def test_returning_worker_drops_its_database(self):
        self.check_worker("return", expected_exit=0)

    def test_terminated_worker_drops_its_database_and_dies_of_sigterm(self):
        self.check_worker("terminate", expected_exit=-signal.SIGTERM)

    def check_worker(self, mode: str, *, expected_exit: int) -> None:
        run = run_suite("-m", "tests.functional.scenarios.forked_worker", mode, cwd=ROOT,
                        env_updates={"TEST_FRAMEWORK_LOG_LEVEL": "INFO"})
        self.assertEqual(run.returncode, 0, run.describe())
        lines = dict(line.split(" ", 1) for line in run.stdout.splitlines() if " " in line)
        pid, passed = lines["WORKER"].split()
        self.assertEqual(passed, "True", run.describe())
        self.assertEqual(int(lines["EXIT"]), expected_exit, run.describe())
        self.assertIn("created test database", run.stderr, run.describe())
        self.assertIn("dropped test database", run.stderr, run.describe())
        self.assertEqual(run.leftover_files, [], run.describe())
        self.assertEqual([db for db in server_test_databases(database_url())
                          if f"p{pid}_" in db], [], run.describe())
