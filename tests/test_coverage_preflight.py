"""The warning for coverage without greenlet support: its text, once per real run, its claim."""

import tempfile
import unittest
from pathlib import Path

import coverage

from test_framework.coverage_preflight import CoverageConfigWarning, coverage_advice
from tests.functional.example_runs import ROOT, marked_lines, run_suite

SCENARIO = "tests.functional.scenarios.timed"
GREENLET_SCENARIO = ROOT / "tests" / "functional" / "scenarios" / "greenlet_code.py"
NEVER_RUN_LINES = 3000  # SQLAlchemy's line numbers recorded as the scenario's fall in here
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


class TestWhatGreenletSupportChanges(unittest.TestCase):
    """The warning's claim, measured on this pass's backend.

    The scenario's three sessions call the database at once, so SQLAlchemy
    switches greenlets while other code runs. Its copy here ends with a
    function that never runs, one statement per line for 3,000 lines. Without
    greenlet support coverage records lines that SQLAlchemy's own files ran as
    lines of the scenario (which line numbers varies from run to run), so some
    of those never-run statements are reported as run; with
    ``concurrency = greenlet, thread`` none is, and every marked line is run.
    (Without it, a marked line that ran, in ``count_users`` or right after an
    await in ``count_in_own_session``, was also reported as not run in about
    one run of three; not asserted, being random.)
    """

    maxDiff = None

    def test_without_greenlet_support_never_run_statements_look_run(self):
        source = GREENLET_SCENARIO.read_text(encoding="utf-8")
        body_from = len(source.splitlines()) + 3  # a blank line, the def, then the body
        with tempfile.TemporaryDirectory(prefix="greenlet_padded_") as folder:
            padded = Path(folder, "padded_greenlet_code.py")
            padded.write_text(source + "\ndef never_called():\n"
                              + "    never_run = 1\n" * NEVER_RUN_LINES, encoding="utf-8")
            never_run = set(range(body_from, body_from + NEVER_RUN_LINES))
            after_await = set(marked_lines(padded, "after await"))
            in_greenlet = set(marked_lines(padded, "in greenlet"))
            self.assertGreaterEqual((len(after_await), len(in_greenlet)), (4, 4), "markers?")
            thread_run = self.run_lines(padded, "thread")
            greenlet_run = self.run_lines(padded, "greenlet,thread")
        self.assertTrue(thread_run & never_run,
                        "without greenlet support, no never-run statement was reported as run")
        self.assertEqual(sorted(greenlet_run & never_run), [],
                         "with greenlet support a never-run statement was reported as run")
        self.assertEqual(sorted((after_await | in_greenlet) - greenlet_run), [],
                         "with greenlet support a line that ran was reported as not run")

    def run_lines(self, path: Path, concurrency: str) -> set[int]:
        """Run ``path``'s tests under coverage; return the statements its report calls run."""
        with tempfile.TemporaryDirectory(prefix="greenlet_coverage_") as folder:
            data_file, rcfile = Path(folder, ".coverage"), Path(folder, "empty.rc")
            rcfile.write_text("")
            run = run_suite("-m", "coverage", "run", f"--rcfile={rcfile}",
                            f"--concurrency={concurrency}", f"--include={path}",
                            "-m", "unittest", path.stem, cwd=path.parent,
                            env_updates={"COVERAGE_FILE": str(data_file)},
                            env_removals=("COVERAGE_PROCESS_START", "COVERAGE_RCFILE"))
            self.assertEqual(run.returncode, 0, run.describe())
            measured = coverage.Coverage(data_file=str(data_file), config_file=False)
            measured.load()
            _, statements, _, missing, _ = measured.analysis2(str(path))
            return set(statements) - set(missing)
