"""The opt-in timing report: its arithmetic, its setting, and a real run's report at exit."""

import unittest

from test_framework.errors import ConfigurationError
from test_framework.timing import (NULL_TIMER, TimingReport, slowest_tests_setting,
                                   timer_for)
from tests.functional.example_runs import ROOT, run_suite

SCENARIO = "tests.functional.scenarios.timed"


class TestReport(unittest.TestCase):
    def test_totals_and_slowest_tests_in_order(self):
        report = TimingReport(slowest=2)
        for test_id, body in (("t.a", 0.5), ("t.b", 1.6), ("t.c", 0.1)):
            report.add(test_id, "setup", 0.25)
            report.add(test_id, "test body", body)
        report.add("t.a", "provisioning", 1.0)
        lines = report.render().splitlines()
        self.assertEqual(lines[0], "test_framework timing: 3 tests, 3.95 s in framework test cases")
        self.assertRegex(lines[1], r"^  provisioning and schema +1\.000 s +25\.3%$")
        self.assertRegex(lines[3], r"^  test bodies +2\.200 s +55\.7%$")
        self.assertEqual(lines[5], "2 slowest tests:")
        self.assertRegex(lines[6], r"^ +1\.850 s  t\.b  \(provisioning 0\.000, setup 0\.250, "
                                   r"test body 1\.600, teardown 0\.000\)$")
        self.assertIn("t.a", lines[7])
        self.assertEqual(len(lines), 8)

    def test_setting_values(self):
        self.assertIsNone(slowest_tests_setting(""))
        self.assertIsNone(slowest_tests_setting("off"))
        self.assertEqual(slowest_tests_setting("1"), 10)
        self.assertEqual(slowest_tests_setting(" 25 "), 25)
        with self.assertRaisesRegex(ConfigurationError, r"TEST_FRAMEWORK_TIMING \(environment\) "
                                                        r"is 'fast'; use 1 to report"):
            slowest_tests_setting("fast")

    def test_off_by_default_with_a_timer_that_does_nothing(self):
        self.assertIsNone(slowest_tests_setting())
        self.assertIs(timer_for("t.x"), NULL_TIMER)


class TestReportAtExit(unittest.TestCase):
    def test_report_printed_after_the_run(self):
        run = run_suite("-m", "unittest", SCENARIO, cwd=ROOT,
                        env_updates={"TEST_FRAMEWORK_TIMING": "2"})
        self.assertEqual(run.returncode, 0, run.describe())
        report = run.stderr[run.stderr.index("test_framework timing:"):]
        self.assertTrue(report.startswith("test_framework timing: 3 tests"), run.describe())
        for label in ("provisioning and schema", "per-test setup", "test bodies", "teardown"):
            self.assertIn(f"  {label} ", report)
        slowest = report.split("2 slowest tests:\n", 1)[1].splitlines()
        self.assertEqual(len(slowest), 2, report)
        self.assertIn("Timed.test_slow_body", slowest[0])
        self.assertEqual(run.leftover_databases, [])

    def test_nothing_printed_when_off(self):
        run = run_suite("-m", "unittest", SCENARIO, cwd=ROOT,
                        env_removals=("TEST_FRAMEWORK_TIMING",))
        self.assertEqual(run.returncode, 0, run.describe())
        self.assertNotIn("test_framework timing", run.stderr)
