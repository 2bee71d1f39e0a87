"""Capability skips, decided when each test runs, for the backend its class resolves to."""

import unittest

from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import test_framework
from test_framework import (SSotAsyncTestCase, SSotBaseTestCase, skip_if_postgres,
                            skip_if_sqlite, skip_unless_feature, skip_unless_postgres,
                            skip_unless_sqlite)
from test_framework.errors import ConfigurationError
from test_framework.skips import server_info
from test_framework.ssot.class_resources import RESOURCES_ATTRIBUTE
from tests.support import backend_name, problems, run_case

MEMORY = "sqlite+aiosqlite:///:memory:"
ONLY_HERE = {"sqlite": skip_unless_sqlite, "postgresql": skip_unless_postgres}
NOT_HERE = {"sqlite": skip_if_sqlite, "postgresql": skip_if_postgres}
OTHER = {"sqlite": "postgresql", "postgresql": "sqlite"}


def skip_reasons(result):
    return {test.id().rsplit(".", 1)[1]: reason for test, reason in result.skipped}


class TestBackendSkips(unittest.TestCase):
    def test_methods_run_or_skip_on_this_passes_backend(self):
        here, other = backend_name(), OTHER[backend_name()]
        ran = []

        class Methods(SSotAsyncTestCase):
            @ONLY_HERE[here]
            async def test_only_here(self):
                ran.append("only here")

            @ONLY_HERE[other]
            async def test_only_other(self):
                ran.append("only other")

            @NOT_HERE[other]
            async def test_not_other(self):
                ran.append("not other")

            @NOT_HERE[here]
            async def test_not_here(self):
                ran.append("not here")

            def setup_method(self, method):
                ran.append(f"setup {method.__name__}")

        result = run_case(Methods)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(sorted(ran), ["not other", "only here",
                                       "setup test_not_other", "setup test_only_here"],
                         "a skipped method sets nothing up")
        reasons = skip_reasons(result)
        self.assertEqual(set(reasons), {"test_only_other", "test_not_here"})
        self.assertTrue(reasons["test_only_other"].startswith(f"needs {other}; Methods runs on "
                                                              f"{here} ("), reasons)
        self.assertTrue(reasons["test_not_here"].startswith(f"not for {here}; "), reasons)

    def test_class_attribute_wins_and_is_read_at_run_time(self):
        class Decorated(SSotAsyncTestCase):
            async def test_x(self):
                pass

        skip_unless_postgres(Decorated)
        Decorated.database_url = MEMORY  # set after decorating: the skip must follow it
        result = run_case(Decorated)
        self.assertEqual(len(result.skipped), 1, problems(result))
        self.assertNotIn(RESOURCES_ATTRIBUTE, Decorated.__dict__, "a skipped class holds nothing")
        self.assertRegex(result.skipped[0][1],
                         r"^needs postgresql; Decorated runs on sqlite "
                         r"\(.*\.Decorated\.database_url \(class attribute\)\)$")

    def test_class_decorator_applies_to_each_subclass_by_its_own_url(self):
        @skip_unless_sqlite
        class Base(SSotAsyncTestCase):
            async def test_x(self):
                pass

        class OnMemory(Base):
            database_url = MEMORY

        self.assertEqual(len(run_case(OnMemory).skipped), 0)
        self.assertEqual(len(run_case(Base).skipped), 0 if backend_name() == "sqlite" else 1)

    def test_plain_testcase_and_unittest_skip_still_work(self):
        class Plain(unittest.TestCase):
            @ONLY_HERE[OTHER[backend_name()]]
            def test_other(self):
                pass

            @ONLY_HERE[backend_name()]
            def test_here(self):
                pass

        @unittest.skip("by hand")
        @skip_unless_sqlite
        class Both(SSotAsyncTestCase):
            async def test_x(self):
                pass

        @skip_unless_sqlite
        class ChildOfSkipped(Both):
            pass

        plain = run_case(Plain)
        self.assertEqual((plain.testsRun, len(plain.skipped)), (2, 1), problems(plain))
        self.assertEqual(run_case(Both).skipped[0][1], "by hand")
        self.assertNotIn(RESOURCES_ATTRIBUTE, Both.__dict__, "a skipped class holds nothing")
        self.assertEqual(run_case(ChildOfSkipped).skipped[0][1], "by hand")

    def test_a_bad_url_is_reported_not_hidden_by_a_skip(self):
        @skip_unless_postgres
        class BadUrl(SSotAsyncTestCase):
            database_url = "mysql://app@db/app"

            async def test_x(self):
                pass

        result = run_case(BadUrl)
        self.assertEqual(len(result.skipped), 0)
        self.assertIn("ConfigurationError", problems(result))


class TestFeatureSkips(unittest.TestCase):
    def test_min_version_and_checks_ask_the_server(self):
        here = backend_name()
        seen = {}

        def remember(server):
            seen["server"] = server
            return True

        async def async_no(server):
            return False

        class Features(SSotAsyncTestCase):
            @skip_unless_feature(here, min_version=(1,))
            async def test_old_enough(self):
                seen["old enough"] = True

            @skip_unless_feature(here, min_version=(999,))
            async def test_too_new(self):
                pass

            @skip_unless_feature(check=remember)
            async def test_check_sees_server(self):
                pass

            @skip_unless_feature(check=async_no, reason="no frobnication")
            async def test_async_check(self):
                pass

        result = run_case(Features)
        self.assertTrue(result.wasSuccessful(), problems(result))
        reasons = skip_reasons(result)
        self.assertEqual(set(reasons), {"test_too_new", "test_async_check"})
        self.assertRegex(reasons["test_too_new"],
                         rf"^needs {here} 999 or newer; the server is {here} \d+\.\d+")
        self.assertEqual(reasons["test_async_check"], "no frobnication")
        self.assertTrue(seen["old enough"])
        self.assertEqual(seen["server"].backend, here)
        self.assertGreaterEqual(len(seen["server"].version), 2)

    def test_class_level_feature_skips_after_set_up(self):
        ran = []

        @skip_unless_feature(check=lambda server: False)
        class NoFeature(SSotBaseTestCase):
            def test_x(self):
                ran.append("body")

        result = run_case(NoFeature)
        self.assertEqual(len(result.skipped), 1, problems(result))
        self.assertRegex(result.skipped[0][1], r"^<lambda>\(\) is false for ")
        self.assertEqual(ran, [])

    def test_sync_case_method_check(self):
        class Sync(SSotBaseTestCase):
            @skip_unless_feature(backend_name(), min_version=(999,))
            def test_x(self):
                pass

        self.assertEqual(len(run_case(Sync).skipped), 1)

    def test_misuse_is_explained(self):
        with self.assertRaisesRegex(ConfigurationError, r"needs a backend.*"
                                    r"skip_unless_feature\('postgresql', min_version=\(14,\)\)"):
            skip_unless_feature(min_version=(14,))
        with self.assertRaisesRegex(ConfigurationError, r"unknown backend; use one of"):
            skip_unless_feature("mysql")
        with self.assertRaisesRegex(ConfigurationError, "tuple of integers"):
            skip_unless_feature("postgresql", min_version="14")

        class Plain(unittest.TestCase):
            @skip_unless_feature(check=lambda server: True)
            def test_x(self):
                pass

        self.assertIn("use it on SSotAsyncTestCase", problems(run_case(Plain)))

    def test_exported_from_the_package(self):
        for name in ("skip_unless_postgres", "skip_unless_sqlite", "skip_if_postgres",
                     "skip_if_sqlite", "skip_unless_feature"):
            self.assertIn(name, test_framework.__all__)


class TestServerInfo(SSotAsyncTestCase):
    async def test_connects_once_when_the_engine_never_has(self):
        engine = create_async_engine(self.engine.url, poolclass=NullPool)
        try:
            self.assertIsNone(engine.dialect.server_version_info)
            server = await server_info(engine)
        finally:
            await engine.dispose()
        self.assertEqual(server.backend, backend_name())
        self.assertGreaterEqual(len(server.version), 2)
