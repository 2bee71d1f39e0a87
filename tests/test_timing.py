"""The opt-in timing report: its arithmetic, its setting, and a real run's report at exit."""

import re
import unittest

from test_framework.config import run_setting
from test_framework.errors import ConfigurationError
from test_framework.timing import NULL_TIMER, PHASES, TimingReport, slowest_tests, timer_for
from tests.functional.example_runs import ROOT, run_suite

SCENARIO = "tests.functional.scenarios.timed"
ROW = re.compile(r"^ +(\d+\.\d{3}) s  \S+\.(test_\w+)  \((.*)\)$")


def _row(line: str) -> tuple[str, float, dict[str, float]]:
    """Parse a slowest-tests line into (test name, total, seconds per phase)."""
    total, name, parts = ROW.match(line).groups()
    phases = dict(part.rsplit(" ", 1) for part in parts.split(", "))
    return name, float(total), {phase: float(seconds) for phase, seconds in phases.items()}


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
        def slowest(raw):
            return run_setting("timing", {"TEST_FRAMEWORK_TIMING": raw}).value

        self.assertIsNone(slowest(""))
        self.assertIsNone(slowest("off"))
        self.assertEqual(slowest("1"), 10)
        self.assertEqual(slowest(" 25 "), 25)
        self.assertEqual(run_setting("timing", {"TEST_FRAMEWORK_TIMING": "3"}).source,
                         "TEST_FRAMEWORK_TIMING (environment)")
        with self.assertRaisesRegex(ConfigurationError, r"TEST_FRAMEWORK_TIMING \(environment\) "
                                                        r"is 'fast'; use 1 to report"):
            slowest("fast")

    def test_off_by_default_with_a_timer_that_does_nothing(self):
        self.assertIsNone(slowest_tests())
        self.assertIs(timer_for("t.x"), NULL_TIMER)


class TestReportAtExit(unittest.TestCase):
    def test_report_printed_after_the_run(self):
        """Check what machine load cannot change: which tests, their order, the sums, a sleep.

        Which test is slowest is a race (the class's first test includes
        provisioning, which a loaded machine can make slower than any sleep),
        so every test is listed and the order is checked against the totals.
        """
        run = run_suite("-m", "unittest", SCENARIO, cwd=ROOT,
                        env_updates={"TEST_FRAMEWORK_TIMING": "3"})
        self.assertEqual(run.returncode, 0, run.describe())
        report = run.stderr[run.stderr.index("test_framework timing:"):]
        self.assertTrue(report.startswith("test_framework timing: 3 tests"), run.describe())
        phase_totals = {label: float(seconds) for label, seconds in re.findall(
            r"^  (\S.*?) +(\d+\.\d{3}) s +[\d.]+%$", report, re.MULTILINE)}
        self.assertEqual(list(phase_totals), list(PHASES.values()), report)
        rows = [_row(line) for line in report.split("3 slowest tests:\n", 1)[1].splitlines()
                if ROW.match(line)]
        self.assertEqual(sorted(name for name, _, _ in rows),
                         ["test_fast", "test_slow_body", "test_writes"], report)
        totals = [total for _, total, _ in rows]
        self.assertEqual(totals, sorted(totals, reverse=True), report)
        for name, total, phases in rows:
            self.assertAlmostEqual(total, sum(phases.values()), delta=0.003, msg=name)
        for phase, label in PHASES.items():
            self.assertAlmostEqual(phase_totals[label], sum(p[phase] for _, _, p in rows),
                                   delta=0.003, msg=label)
        slow_body = next(phases for name, _, phases in rows if name == "test_slow_body")
        self.assertGreaterEqual(slow_body["test body"], 0.29, "it sleeps 0.3 s")
        self.assertEqual(run.leftover_databases, [])

    def test_nothing_printed_when_off(self):
        run = run_suite("-m", "unittest", SCENARIO, cwd=ROOT,
                        env_removals=("TEST_FRAMEWORK_TIMING",))
        self.assertEqual(run.returncode, 0, run.describe())
        self.assertNotIn("test_framework timing", run.stderr)
