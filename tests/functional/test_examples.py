"""The example suite passes under unittest, nose2, coverage and pytest, and leaves nothing.

Each test runs the whole of ``examples/tests`` in a subprocess on the
backend ``TEST_DATABASE_URL`` names (SQLite when unset) and checks the exit
status, how many tests ran, and that no test database outlived the run.
"""

import json
import tempfile
import unittest
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.functional.example_runs import (EXAMPLES, ROOT, database_url, marked_lines,
                                           pytest_count, run_python, run_suite, unittest_count)

EXAMPLE_TEST_COUNT = 28  # tests in examples/tests; update when adding one there
SERVICE = EXAMPLES / "app" / "service.py"
AFTER_AWAIT = "after await"
COVERAGE_CONFIG = ROOT / "setup.cfg"


class ExampleSuiteTest(unittest.TestCase):
    """Every runner finds and passes every example test, then cleans up."""

    maxDiff = None

    def assert_clean_run(self, run, count):
        self.assertEqual(run.returncode, 0, run.describe())
        self.assertEqual(count, EXAMPLE_TEST_COUNT, run.describe())
        self.assertEqual(run.leftover_files, [], "files left in TMPDIR" + run.describe())
        self.assertEqual(run.leftover_databases, [],
                         "test databases left on the server" + run.describe())

    def test_unittest_runs_the_suite_on_the_configured_backend(self):
        run = run_suite("-m", "unittest", "-v",
                        env_updates={"TEST_FRAMEWORK_LOG_LEVEL": "INFO"})

        self.assert_clean_run(run, unittest_count(run.stderr))
        created = [line.rsplit(" ", 1)[1] for line in run.stderr.splitlines()
                   if "created test database " in line]
        # One for the model classes, one for the schema built by migrations.
        self.assertEqual(len(created), 2, run.describe())
        expected = make_url(database_url() or "sqlite+aiosqlite://").get_backend_name()
        self.assertEqual({make_url(url).get_backend_name() for url in created}, {expected},
                         run.describe())
        self.assertIn(f"dropped test database {created[0]}", run.stderr, run.describe())

    def test_nose2_runs_the_suite(self):
        run = run_suite("-m", "nose2", "-v")

        self.assert_clean_run(run, unittest_count(run.stderr))

    def test_pytest_runs_the_suite(self):
        run = run_suite("-m", "pytest", "-q")

        self.assert_clean_run(run, pytest_count(run.stdout))
        self.assertNotIn("failed", run.stdout, run.describe())

    def test_coverage_reports_app_lines_after_await_as_run(self):
        """With the repo's [coverage:run] settings, lines resumed after an await count."""
        expected = marked_lines(SERVICE, AFTER_AWAIT)
        self.assertGreaterEqual(len(expected), 3, f"no '# {AFTER_AWAIT}' markers in {SERVICE}")
        with tempfile.TemporaryDirectory(prefix="example_coverage_") as data_dir:
            data_file = {"COVERAGE_FILE": str(Path(data_dir, ".coverage"))}
            run = run_suite("-m", "coverage", "run", f"--rcfile={COVERAGE_CONFIG}",
                            "--source=app", "-m", "unittest", env_updates=data_file,
                            env_removals=("COVERAGE_PROCESS_START", "COVERAGE_RCFILE"))
            self.assert_clean_run(run, unittest_count(run.stderr))
            report = Path(data_dir, "coverage.json")
            for args in (["combine", f"--rcfile={COVERAGE_CONFIG}"],
                         ["json", "-o", str(report)]):
                step = run_python("-m", "coverage", *args, env_updates=data_file)
                self.assertEqual(step.returncode, 0, step.stdout + step.stderr)
            files = json.loads(report.read_text())["files"]

        executed = set(files["app/service.py"]["executed_lines"])
        self.assertEqual(sorted(set(expected) - executed), [],
                         f"lines marked '# {AFTER_AWAIT}' in {SERVICE} reported as not run")
