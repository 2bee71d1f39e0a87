"""The warning for coverage without greenlet support: its text, and once per real run."""

import tempfile
import unittest
from pathlib import Path

import coverage

from test_framework.coverage_preflight import CoverageConfigWarning, coverage_advice
from tests.functional.example_runs import ROOT, run_suite

SCENARIO = "tests.functional.scenarios.timed"
LINES = "[coverage:run]\nconcurrency = greenlet, thread"


class TestAdvice(unittest.TestCase):
    def test_advice_names_the_setting_and_the_exact_lines(self):
        advice = coverage_advice(coverage.Coverage(config_file=False))
        self.assertIn("concurrency = thread (from no configuration file)", advice)
        self.assertIn(f"Add to setup.cfg:\n\n{LINES}\n\n", advice)

    def test_no_advice_when_greenlet_is_on_or_coverage_is_off(self):
        configured = coverage.Coverage(config_file=False, concurrency=["greenlet", "thread"])
        self.assertIsNone(coverage_advice(configured))
        self.assertIsNone(coverage_advice(None))


class TestUnderCoverage(unittest.TestCase):
    def run_under_coverage(self, *options):
        with tempfile.TemporaryDirectory(prefix="preflight_") as folder:
            rcfile = Path(folder, "empty.rc")
            rcfile.write_text("")
            return run_suite("-m", "coverage", "run", f"--rcfile={rcfile}", *options,
                             "-m", "unittest", SCENARIO, cwd=ROOT,
                             env_updates={"COVERAGE_FILE": str(Path(folder, ".coverage"))},
                             env_removals=("COVERAGE_PROCESS_START", "COVERAGE_RCFILE"))

    def test_warns_once_without_greenlet(self):
        run = self.run_under_coverage()
        self.assertEqual(run.returncode, 0, run.describe())
        self.assertEqual(run.stderr.count(CoverageConfigWarning.__name__), 1, run.describe())
        self.assertIn(LINES, run.stderr)

    def test_silent_with_greenlet(self):
        run = self.run_under_coverage("--concurrency=greenlet,thread")
        self.assertEqual(run.returncode, 0, run.describe())
        self.assertNotIn(CoverageConfigWarning.__name__, run.stderr, run.describe())
