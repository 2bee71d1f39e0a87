"""Errors every later test would repeat stop the run at the first, shown without our frames."""

import unittest

from test_framework import SSotAsyncTestCase, SSotBaseTestCase
from test_framework.errors import ConfigurationError, DatabaseUnavailableError
from test_framework.ssot.stop_run import STOPS_THE_RUN, summary, trimmed
from tests.support import problems, run_case

SYNC_URL = "postgresql://app@db.invalid:5432/app"


class TestBadSettingStopsTheRun(unittest.TestCase):
    def test_sync_url_is_reported_once_with_the_message_alone(self):
        for base in (SSotAsyncTestCase, SSotBaseTestCase):
            with self.subTest(base.__name__):
                class SyncDriver(base):
                    database_url = SYNC_URL

                    def test_a(self):
                        pass

                    def test_b(self):
                        pass

                result = run_case(SyncDriver)
                self.assertEqual((result.testsRun, len(result.errors)), (1, 1), problems(result))
                self.assertTrue(result.shouldStop)
                text = problems(result)
                self.assertTrue(text.startswith("test_framework.errors.ConfigurationError: "),
                                text)
                self.assertIn(f"SyncDriver.database_url (class attribute) is '{SYNC_URL}', a "
                              "sync driver", text.splitlines()[0])
                self.assertNotIn("Traceback", text)

    def test_error_in_set_up_stops_the_run_without_the_framework_frames(self):
        class Typo(SSotAsyncTestCase):
            isolation = "rollbak"

            async def test_a(self):
                pass

            async def test_b(self):
                pass

        result = run_case(Typo)
        text = problems(result)
        self.assertEqual((result.testsRun, len(result.errors)), (1, 1), text)
        self.assertTrue(result.shouldStop)
        self.assertIn("ConfigurationError: ", text)
        self.assertIn("'rollbak'", text)
        for inner in ("class_resources.py", "ssot/isolation", "config.py"):
            self.assertNotIn(inner, text, "framework frames shown")

    def test_skipped_class_with_a_bad_url_is_skipped(self):
        @unittest.skip("not today")
        class Skipped(SSotAsyncTestCase):
            database_url = SYNC_URL

            async def test_a(self):
                pass

        result = run_case(Skipped)
        self.assertEqual((len(result.skipped), len(result.errors)), (1, 0), problems(result))
        self.assertFalse(result.shouldStop)

    def test_good_classes_keep_running(self):
        class Fine(SSotAsyncTestCase):
            async def test_a(self):
                self.assertEqual(await self.db.count_records("users"), 0)

            async def test_b(self):
                self.assertEqual(await self.db.count_records("users"), 0)

        result = run_case(Fine)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(result.testsRun, 2)
        self.assertFalse(result.shouldStop)


class TestTrimmed(unittest.TestCase):
    def test_chain_is_reduced_to_the_innermost_cause_without_tracebacks(self):
        def driver():
            try:
                raise OSError("connection refused")
            except OSError as inner:
                raise RuntimeError("wrapped by the pool") from inner

        try:
            try:
                driver()
            except RuntimeError as exc:
                raise DatabaseUnavailableError("cannot reach the server") from exc
        except DatabaseUnavailableError as caught:
            error = trimmed(caught)
        self.assertIsNone(error.__traceback__)
        self.assertIsInstance(error.__cause__, OSError)
        self.assertIsNone(error.__cause__.__traceback__)
        self.assertEqual(summary(error),
                         "test_framework.errors.DatabaseUnavailableError: cannot reach the "
                         "server\n\ncaused by builtins.OSError: connection refused")

    def test_implicit_context_counts_as_the_cause(self):
        try:
            try:
                raise KeyError("deep")
            except KeyError:
                raise ConfigurationError("bad value")
        except ConfigurationError as caught:
            error = trimmed(caught)
        self.assertIsInstance(error.__cause__, KeyError)
        self.assertTrue(error.__suppress_context__)

    def test_only_errors_every_test_would_repeat_stop_the_run(self):
        self.assertEqual(STOPS_THE_RUN, (ConfigurationError, DatabaseUnavailableError))
