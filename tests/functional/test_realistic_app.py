"""A realistic application's suite passes unchanged under every runner, from another folder.

The suite (tests/functional/scenarios/realistic) uses ORM models with UUID
keys, an Enum, JSON, server defaults and relationships, a schema built by
Alembic migrations, and four workers claiming tasks in commit mode. Each
runner starts in a temporary folder, so nothing may be read from the
working directory; each run must pass all of it and leave nothing behind.
"""

import shutil
import tempfile
import unittest
from pathlib import Path

from tests.functional.example_runs import ROOT, pytest_count, run_suite, unittest_count
from tests.functional.test_parallel import NOSE2_CONFIG

SUITE = ROOT / "tests" / "functional" / "scenarios" / "realistic"
TESTS = 4


class TestRealisticAppUnderEveryRunner(unittest.TestCase):
    def setUp(self):
        self.elsewhere = Path(tempfile.mkdtemp(prefix="realistic_cwd_"))
        self.addCleanup(shutil.rmtree, self.elsewhere, ignore_errors=True)

    def check(self, run, count):
        self.assertEqual(run.returncode, 0, run.describe())
        self.assertEqual(count, TESTS, run.describe())
        self.assertEqual(run.leftover_databases, [], run.describe())

    def discover(self, *runner: str):
        return run_suite(*runner, "discover", "-s", str(SUITE), "-t", str(ROOT),
                         cwd=self.elsewhere)

    def test_unittest(self):
        run = self.discover("-m", "unittest")
        self.check(run, unittest_count(run.stderr))

    def test_coverage(self):
        run = run_suite("-m", "coverage", "run", f"--rcfile={ROOT / 'setup.cfg'}",
                        f"--data-file={self.elsewhere / '.coverage'}", "-m", "unittest",
                        "discover", "-s", str(SUITE), "-t", str(ROOT), cwd=self.elsewhere)
        self.check(run, unittest_count(run.stderr))

    def test_nose2_with_two_workers(self):
        config = self.elsewhere / "nose2.cfg"
        config.write_text(NOSE2_CONFIG)
        run = run_suite("-m", "nose2", "-c", str(config), "-N", "2", "-s", str(SUITE),
                        "-t", str(ROOT), cwd=self.elsewhere)
        self.check(run, unittest_count(run.stderr))

    def test_pytest_with_two_workers(self):
        run = run_suite("-m", "pytest", "-q", "-n", "2", "-p", "xdist", "-p",
                        "no:cacheprovider", str(SUITE), cwd=self.elsewhere)
        self.check(run, pytest_count(run.stdout))
