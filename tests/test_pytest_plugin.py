"""Loading the pytest plugin (every pytest run does) and the package imports no database code."""

import json
import subprocess
import sys
import unittest

HEAVY = ("sqlalchemy", "sqlalchemy.orm", "sqlglot", "alembic", "asyncpg", "aiosqlite",
         "test_framework.provision", "test_framework.ssot.base_test_case")


def loaded_after(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; return which of HEAVY it left imported."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60)
    if run.returncode:
        raise AssertionError(run.stderr)
    return json.loads(run.stdout.splitlines()[-1])


class TestLightImports(unittest.TestCase):
    def test_plugin_import_loads_no_database_code(self):
        self.assertEqual(loaded_after("import test_framework.pytest_plugin"), [])

    def test_package_import_loads_no_database_code(self):
        self.assertEqual(loaded_after("import test_framework"), [])

    def test_public_names_import_on_first_use(self):
        loaded = loaded_after("from test_framework import SSotAsyncTestCase, skip_if_sqlite\n"
                              "assert SSotAsyncTestCase.__name__ == 'SSotAsyncTestCase'")
        self.assertIn("test_framework.ssot.base_test_case", loaded)
        self.assertNotIn("alembic", loaded)

    def test_every_public_name_resolves_and_a_wrong_one_is_an_attribute_error(self):
        import test_framework

        for name in test_framework.__all__:
            with self.subTest(name):
                self.assertIsNotNone(getattr(test_framework, name))
        self.assertLessEqual(set(test_framework.__all__), set(dir(test_framework)))
        with self.assertRaisesRegex(AttributeError, "has no attribute 'SSotTestCase'"):
            test_framework.SSotTestCase
