"""A forgotten ``await`` fails the test that forgot it, naming the call and its line."""

import gc
import sys
import unittest
import warnings

from test_framework import SSotAsyncTestCase, SSotBaseTestCase
from test_framework.ssot.awaited import PRUNE_AT
from tests.support import problems, run_case

THIS_FILE = __file__


def line_of(text: str) -> int:
    """The line of this file that holds ``text`` (a marker at the end of a line)."""
    with open(THIS_FILE, encoding="utf-8") as source:
        lines = [number for number, line in enumerate(source, start=1)
                 if line.rstrip().endswith(text)]
    assert len(lines) == 1, (text, lines)
    return lines[0]


class TestFrameworkCoroutines(unittest.TestCase):
    def test_unawaited_assertion_fails_naming_call_and_line(self):
        class Forgets(SSotAsyncTestCase):
            async def test_forgets(self):
                self.assertRowCount("users", 5)  # forgot await: async

        result = run_case(Forgets)
        self.assertEqual(len(result.failures), 1, problems(result))
        message = problems(result)
        self.assertIn("assertRowCount('users', 5)", message)
        self.assertIn(f"{THIS_FILE}:{line_of('# forgot await: async')}", message)
        self.assertIn("put 'await' before each call", message)

    def test_sync_class_names_each_call(self):
        class ForgetsSync(SSotBaseTestCase):
            def test_forgets(self):
                self.assertRowExists("users", email="a@x.test")  # forgot: sync one
                self.assertRowNotExists("users", {"email": "b@x.test"})  # forgot: sync two
                self.run_async(self.assertRowCount("users", 0))  # run: not reported

        result = run_case(ForgetsSync)
        message = problems(result)
        self.assertEqual(len(result.failures), 1, message)
        self.assertIn("2 coroutine(s) were never awaited", message)
        self.assertIn(f":{line_of('# forgot: sync one')}: ", message)
        self.assertIn(f":{line_of('# forgot: sync two')}: ", message)
        self.assertNotIn("assertRowCount", message)

    def test_awaited_calls_pass_and_many_of_them_are_forgotten(self):
        class Awaits(SSotAsyncTestCase):
            async def test_awaits(self):
                for _ in range(PRUNE_AT * 2 + 1):
                    await self.assertRowCount("users", 0)
                self.assertLessEqual(len(self._ssot_unawaited.handed_out), PRUNE_AT)

        result = run_case(Awaits)
        self.assertTrue(result.wasSuccessful(), problems(result))

    def test_failure_still_reported_after_the_test_failed_and_no_warning_follows(self):
        class FailsToo(SSotAsyncTestCase):
            fail_on_unawaited_coroutines = False  # Python's own warning would show here

            async def test_fails(self):
                self.assertRowExists("users", email="x@x.test")
                self.fail("the test's own failure")

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_case(FailsToo)
            gc.collect()
        self.assertEqual(len(result.failures), 2, problems(result))
        self.assertIn("the test's own failure", problems(result))
        self.assertIn("assertRowExists('users', email='x@x.test')", problems(result))
        self.assertEqual([str(w.message) for w in caught if "never awaited" in str(w.message)],
                         [], "the coroutine was closed, so Python does not warn again")


class TestNeverAwaitedWarnings(unittest.TestCase):
    def test_dropped_helper_coroutine_fails_the_test(self):
        class DropsHelper(SSotAsyncTestCase):
            async def test_drops(self):
                self.db.create_test_user()  # dropped helper

            async def test_next_is_unaffected(self):
                self.assertEqual(await self.db.count_records("users"), 0)

        result = run_case(DropsHelper)
        message = problems(result)
        self.assertEqual(len(result.failures), 1, message)
        self.assertIn("test_drops", str(result.failures[0][0]))
        self.assertIn("AsyncTestDatabase.create_test_user(...) dropped without await", message)
        self.assertIn(f"{THIS_FILE}:{line_of('# dropped helper')}", message)

    def test_class_can_turn_the_warning_check_off(self):
        class Tolerant(SSotBaseTestCase):
            fail_on_unawaited_coroutines = False

            def test_drops(self):
                self.db.create_test_user()  # tolerated

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_case(Tolerant)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertIn("coroutine 'AsyncTestDatabase.create_test_user' was never awaited",
                      [str(w.message) for w in caught])

    def test_other_unraisable_errors_and_warnings_pass_through(self):
        seen = []

        class Noisy:
            def __del__(self):
                raise ValueError("from __del__")

        class Other(SSotAsyncTestCase):
            async def test_other(self):
                Noisy()
                warnings.warn("unrelated", UserWarning)

        previous = sys.unraisablehook
        sys.unraisablehook = seen.append
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = run_case(Other)
        finally:
            sys.unraisablehook = previous
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual([type(report.exc_value) for report in seen], [ValueError])
        self.assertIn("unrelated", [str(w.message) for w in caught])
        self.assertIs(sys.unraisablehook, previous)
