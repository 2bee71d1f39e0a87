"""The base classes' lifecycle and helper surface, run as throwaway inner suites."""

import asyncio
import logging
import os
import unittest

from test_framework import AsyncTestDatabase, SSotAsyncTestCase, SSotBaseTestCase
from tests.support import problems, run_case


class TestSetUpThatFailsLate(unittest.TestCase):
    """An asyncSetUp that fails after super().asyncSetUp() wrote: its cleanup undoes it."""

    def _failing_then_counting(self, isolation: str):
        counts = []

        class FailsLate(SSotAsyncTestCase):
            async def asyncSetUp(self):
                await super().asyncSetUp()
                await self.db.create_test_user({"email": f"late-{isolation}@x.test"})
                if self._testMethodName == "test_1_set_up_fails":
                    raise RuntimeError("set-up failed after writing")

            async def test_1_set_up_fails(self):
                pass  # never runs

            async def test_2_counts(self):
                counts.append(await self.db.count_records(
                    "users", "email = :e", {"e": f"late-{isolation}@x.test"}))

        FailsLate.isolation = isolation
        result = run_case(FailsLate)
        self.assertEqual([test.id().rsplit(".", 1)[1] for test, _ in result.errors],
                         ["test_1_set_up_fails"], problems(result))
        self.assertIn("set-up failed after writing", problems(result))
        self.assertEqual(counts, [1], "only the second test's own row is there")

    def test_rollback_mode(self):
        self._failing_then_counting("rollback")

    def test_commit_mode_deletes_the_committed_row(self):
        self._failing_then_counting("commit")


class TestLifecycleOrder(unittest.TestCase):
    def test_async_case_steps_in_order_and_hooks_once(self):
        events = []

        class Ordered(SSotAsyncTestCase):
            def setup_method(self, method):
                events.append(("setup_method", method.__name__))

            def teardown_method(self, method):
                events.append(("teardown_method", method.__name__))

            async def asyncSetUp(self):
                await super().asyncSetUp()
                events.append(("asyncSetUp", isinstance(self.db, AsyncTestDatabase)))

            async def test_one(self):
                events.append(("test", await self.db.count_records("users")))
                self.add_cleanup(lambda: events.append(("sync cleanup",)))

                async def async_cleanup():
                    events.append(("async cleanup",))
                self.add_cleanup(async_cleanup)

            async def asyncTearDown(self):
                events.append(("asyncTearDown",))
                await super().asyncTearDown()

        result = run_case(Ordered)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(events, [
            ("setup_method", "test_one"), ("asyncSetUp", True), ("test", 0),
            ("asyncTearDown",), ("teardown_method", "test_one"),
            ("async cleanup",), ("sync cleanup",)])

    def test_sync_case_runs_the_same_steps(self):
        events = []

        class SyncOrdered(SSotBaseTestCase):
            def setup_method(self, method):
                events.append("setup_method")

            def setUp(self):
                super().setUp()
                events.append(("setUp", self.run_async(self.db.count_records("users"))))

            def test_one(self):
                user = self.run_async(self.db.create_test_user({"email": "s@x.test"}))
                events.append(("test", user.email))

            def tearDown(self):
                events.append("tearDown")
                super().tearDown()

            def teardown_method(self, method):
                events.append("teardown_method")

        result = run_case(SyncOrdered)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(events, ["setup_method", ("setUp", 0), ("test", "s@x.test"),
                                  "tearDown", "teardown_method"])

    def test_hooks_once_even_when_called_twice_like_pytest(self):
        calls = []

        class Base(SSotAsyncTestCase):
            def setup_method(self, method):
                calls.append("base")

        class Child(Base):
            def setup_method(self, method):
                calls.append("child")
                super().setup_method(method)

            async def test_x(self):
                self.setup_method(None)  # a second caller, as pytest would be

        result = run_case(Child)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(calls, ["child", "base"])

    def test_async_tests_are_really_awaited(self):
        class Fails(SSotAsyncTestCase):
            async def test_fails_after_await(self):
                await asyncio.sleep(0)
                self.fail("reached")

        result = run_case(Fails)
        self.assertEqual(len(result.failures), 1)
        self.assertIn("reached", problems(result))

    def test_subclass_relationship(self):
        self.assertTrue(issubclass(SSotAsyncTestCase, SSotBaseTestCase))
        self.assertTrue(issubclass(SSotAsyncTestCase, unittest.IsolatedAsyncioTestCase))

    def test_skip_and_subtest_untouched(self):
        class Mixed(SSotAsyncTestCase):
            async def test_skipped(self):
                self.skipTest("not today")

            async def test_subtests(self):
                for n in range(3):
                    with self.subTest(n=n):
                        self.assertLess(n, 2)

        result = run_case(Mixed)
        self.assertEqual(len(result.skipped), 1)
        self.assertEqual(len(result.failures), 1)
        self.assertIn("n=2", str(result.failures[0][0]))

    def test_run_async_inside_async_test_is_explained(self):
        class Misuse(SSotAsyncTestCase):
            async def test_misuse(self):
                self.run_async(asyncio.sleep(0))

        result = run_case(Misuse)
        self.assertIn("use 'await' on the coroutine instead", problems(result))


class TestHelperSurface(SSotAsyncTestCase):
    async def test_metrics_count_real_statements(self):
        before = self.get_all_metrics()["db_query_count"]
        await self.db.create_test_user({"email": "m@x.test"})
        await self.db.fetch_one("SELECT 1")
        metrics = self.get_all_metrics()
        self.assertEqual(metrics["db_query_count"] - before, 2)
        self.increment_db_query_count(3)
        self.assertEqual(self.get_metric("db_query_count") - before, 5)
        self.assertGreater(metrics["execution_time"], 0)

    async def test_custom_metrics(self):
        self.record_metric("users_made", 3)
        self.assertEqual(self.get_metric("users_made"), 3)
        self.assertEqual(self.get_metric("missing", "dflt"), "dflt")
        self.assertEqual(self.get_all_metrics()["users_made"], 3)

    async def test_test_context(self):
        context = self.get_test_context()
        self.assertEqual(context["test_id"], self.id())
        self.assertEqual(context["test_name"], "test_test_context")
        self.assertEqual(context["isolation"], "rollback")
        self.assertIn(context["backend"], {"sqlite", "postgresql"})
        self.assertIn("test_", context["database_url"])

    async def test_expect_exception(self):
        with self.expect_exception(ValueError, "bad .* value") as caught:
            raise ValueError("bad input value")
        self.assertEqual(str(caught.exception), "bad input value")
        with self.assertRaises(AssertionError):
            with self.expect_exception(KeyError):
                pass


class TestEnvironmentHelpers(unittest.TestCase):
    def test_every_change_undone_after_the_test(self):
        os.environ["TF_KEEP"] = "original"
        os.environ.pop("TF_NEW", None)
        seen = {}

        class EnvUser(SSotAsyncTestCase):
            async def test_env(self):
                self.set_env_var("TF_NEW", "1")
                self.set_env_var("TF_KEEP", "changed")
                self.assert_env_var_set("TF_NEW", "1")
                with self.temp_env_vars(TF_TEMP="t"):
                    seen["temp"] = self.get_env_var("TF_TEMP")
                self.assert_env_var_not_set("TF_TEMP")
                self.delete_env_var("TF_KEEP")
                self.assert_env_var_not_set("TF_KEEP")
                raise RuntimeError("even when the test errors")

        try:
            result = run_case(EnvUser)
            self.assertEqual(len(result.errors), 1)
            self.assertEqual(seen["temp"], "t")
            self.assertEqual(os.environ.get("TF_KEEP"), "original")
            self.assertNotIn("TF_NEW", os.environ)
        finally:
            os.environ.pop("TF_KEEP", None)

    def test_assertion_messages(self):
        class Asserts(SSotAsyncTestCase):
            async def test_unset(self):
                self.delete_env_var("TF_ABSENT")
                self.assert_env_var_set("TF_ABSENT")

        result = run_case(Asserts)
        self.assertIn("environment variable TF_ABSENT is not set", problems(result))


class TestLogging(unittest.TestCase):
    def test_records_carry_test_id_and_class_logger(self):
        records = []

        class Collect(logging.Handler):
            def emit(self, record):
                records.append(record)

        handler = Collect(level=logging.DEBUG)
        root = logging.getLogger("test_framework")
        old_level = root.level
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        try:
            class Logs(SSotAsyncTestCase):
                async def test_logs(self):
                    self.logger.info("hello from the test")
                    await self.db.fetch_one("SELECT 1")

            result = run_case(Logs)
        finally:
            root.removeHandler(handler)
            root.setLevel(old_level)
        self.assertTrue(result.wasSuccessful(), problems(result))
        mine = [r for r in records if r.getMessage() == "hello from the test"]
        self.assertEqual(len(mine), 1)
        self.assertTrue(mine[0].name.startswith("test_framework.cases."))
        self.assertTrue(mine[0].test_id.endswith("Logs.test_logs"))
        sql = [r for r in records if r.name == "test_framework.sql" and "SELECT 1" in r.getMessage()]
        self.assertTrue(sql and sql[0].test_id.endswith("Logs.test_logs"))
        lifecycle = [r.getMessage() for r in records if r.name == "test_framework.lifecycle"]
        self.assertTrue(any(m.startswith("end ") and m.endswith(" ms") for m in lifecycle))


    def test_a_class_that_never_logs_adds_no_logger(self):
        """Each logger there is costs every test under pytest's log capture."""
        class Quiet(SSotAsyncTestCase):
            async def test_quiet(self):
                await self.db.fetch_one("SELECT 1")

        class Talks(SSotAsyncTestCase):
            async def test_talks(self):
                self.logger.info("said once")

        for case in (Quiet, Talks):
            result = run_case(case)
            self.assertTrue(result.wasSuccessful(), problems(result))
        made = logging.Logger.manager.loggerDict
        prefix = f"test_framework.cases.{__name__}."
        self.assertNotIn(prefix + Quiet.__qualname__, made)
        self.assertIn(prefix + Talks.__qualname__, made)


class TestHelpersBeforeSetUp(unittest.TestCase):
    def test_env_and_metric_helpers_work_in_setup_method_called_first_like_pytest(self):
        seen = {}

        class EarlyHooks(SSotAsyncTestCase):
            def setup_method(self, method):
                self.set_env_var("TF_EARLY", "on")
                self.record_metric("early", 1)

            async def test_x(self):
                seen["env"] = self.get_env_var("TF_EARLY")
                seen["metric"] = self.get_metric("early")

        case = EarlyHooks("test_x")
        case.setup_method(None)  # what pytest does before running the test
        result = unittest.TestResult()
        unittest.TestSuite([unittest.TestSuite([case])]).run(result)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen, {"env": "on", "metric": 1})
        self.assertNotIn("TF_EARLY", os.environ)

    def test_forgotten_super_call_is_explained(self):
        class NoSuper(SSotAsyncTestCase):
            async def asyncSetUp(self):
                self.thing = 1

            async def test_x(self):
                await self.db.count_records("users")

        result = run_case(NoSuper)
        self.assertEqual(len(result.errors), 1, problems(result))
        self.assertIn("must call await super().asyncSetUp()", problems(result))
