"""The names users' suites import, from every path they import them."""

import unittest


class TestImportPaths(unittest.TestCase):
    def test_compatibility_path_is_the_same_object(self):
        from test_framework.async_test_helpers import AsyncTestDatabase as compat
        from test_framework.ssot.async_test_helpers import AsyncTestDatabase as home
        from test_framework import AsyncTestDatabase as top
        self.assertIs(compat, home)
        self.assertIs(top, home)

    def test_base_classes_live_under_ssot(self):
        from test_framework import SSotAsyncTestCase, SSotBaseTestCase
        self.assertEqual(SSotAsyncTestCase.__module__, "test_framework.ssot.async_test_case")
        self.assertEqual(SSotBaseTestCase.__module__, "test_framework.ssot.base_test_case")

    def test_importing_configures_no_logging_output(self):
        import logging
        import test_framework  # noqa: F401
        handlers = logging.getLogger("test_framework").handlers
        self.assertTrue(all(isinstance(h, logging.NullHandler) for h in handlers), handlers)
