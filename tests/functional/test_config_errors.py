"""A setting that cannot work stops the run once, message first, under every runner.

Each case runs ``scenarios/thirty_tests.py`` (30 tests, three classes) with one
bad setting under unittest, nose2 and pytest. Before, a sync URL printed the
same message 30 times (675 lines under unittest, 1,434 under pytest); now
one test fails, with the message and no framework frames, and the run stops.
"""

import unittest

from tests.functional.example_runs import ROOT, run_suite
from tests.support import postgres_url_from_env

MODULE = "tests.functional.scenarios.thirty_tests"
PATH = "tests/functional/scenarios/thirty_tests.py"
RUNNERS = {
    "unittest": ("-m", "unittest", MODULE),
    "nose2": ("-m", "nose2", MODULE),
    # -rN: no short summary, whose length depends on CI and the terminal's width.
    "pytest": ("-m", "pytest", "-q", "-rN", "-p", "no:cacheprovider", PATH),
}
BAD_SETTINGS = {
    "sync driver": ({"TEST_DATABASE_URL": "postgresql://app@db.invalid:5432/app"},
                    "TEST_DATABASE_URL (environment) is "
                    "'postgresql://app@db.invalid:5432/app', a sync driver"),
    "malformed timeout": ({"TEST_FRAMEWORK_LOCK_TIMEOUT": "soon"},
                          "TEST_FRAMEWORK_LOCK_TIMEOUT (environment) is 'soon', not a positive "
                          "number of seconds"),
    "bad log level": ({"TEST_FRAMEWORK_LOG_LEVEL": "loud"},
                      "TEST_FRAMEWORK_LOG_LEVEL (environment) is 'LOUD'"),
}
MOST_LINES = 12  # a header, the message (one or two lines) and the runner's summary


class TestConfigurationErrorsStopTheRun(unittest.TestCase):
    maxDiff = None

    def test_each_bad_setting_is_reported_once_with_the_message_first(self):
        for setting, (environment, message) in BAD_SETTINGS.items():
            for runner, args in RUNNERS.items():
                with self.subTest(setting=setting, runner=runner):
                    run = run_suite(*args, cwd=ROOT, env_updates=environment)
                    output = run.stdout + run.stderr
                    self.assertNotEqual(run.returncode, 0, run.describe())
                    self.assert_one_failure(runner, output, run)
                    self.assertNotIn("Traceback", output, "frames shown" + run.describe())
                    self.assertLessEqual(len(output.splitlines()), MOST_LINES, run.describe())
                    self.assertEqual(output.count(message), 1 if runner != "pytest" else 2,
                                     "the test's failure (pytest: also its stop reason)"
                                     + run.describe())
                    first = _first_failure_line(runner, output)
                    self.assertIn(f"ConfigurationError: {message}", first,
                                  "the message is not first" + run.describe())
                    self.assertEqual((run.leftover_files, run.leftover_databases), ([], []))

    def test_bad_shard_is_a_usage_error_under_pytest(self):
        run = run_suite(*RUNNERS["pytest"], cwd=ROOT, env_updates={"TEST_FRAMEWORK_SHARD": "5/4"})
        self.assertEqual(run.returncode, 4, run.describe())  # pytest's usage-error status
        self.assertIn("TEST_FRAMEWORK_SHARD (environment) is '5/4'", run.stderr, run.describe())
        self.assertNotIn("Traceback", run.stdout + run.stderr)

    @unittest.skipUnless(postgres_url_from_env(), "needs the PostgreSQL pass's server")
    def test_refused_login_shows_the_drivers_last_cause_only(self):
        url = postgres_url_from_env().replace("://postgres@", "://no_such_role_x:pw-s3cret@")
        for runner, args in RUNNERS.items():
            with self.subTest(runner=runner):
                run = run_suite(*args, cwd=ROOT, env_updates={"TEST_DATABASE_URL": url})
                output = run.stdout + run.stderr
                self.assert_one_failure(runner, output, run)
                first = _first_failure_line(runner, output)
                self.assertIn('role "no_such_role_x" does not exist', first, run.describe())
                for noise in ("site-packages/asyncpg", "site-packages/sqlalchemy",
                              "test_framework/provision", "pw-s3cret"):
                    self.assertNotIn(noise, output, run.describe())
                self.assertLessEqual(len(output.splitlines()), 30, run.describe())

    def assert_one_failure(self, runner: str, output: str, run) -> None:
        summary = "1 failed" if runner == "pytest" else "Ran 1 test in"
        self.assertIn(summary, output, "the run did not stop at the first error"
                      + run.describe())


def _first_failure_line(runner: str, output: str) -> str:
    """The first line under the failing test's header: where the message should be."""
    lines = output.splitlines()
    if runner == "pytest":
        header = next(i for i, line in enumerate(lines) if line.startswith("____"))
        return lines[header + 1]
    header = next(i for i, line in enumerate(lines) if line.startswith("ERROR: "))
    return lines[header + 2]  # after the dashed line
