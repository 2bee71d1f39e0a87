"""The pytest plugin: loading it imports no database code; it runs the xunit hooks once."""

import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from tests.functional.example_runs import run_suite

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


HOOKS_SUITE = """import asyncio, json, os

from test_framework import SSotAsyncTestCase


def note(*event):
    try:
        asyncio.get_running_loop()
        event += ("on the loop",)
    except RuntimeError:
        event += ("off the loop",)
    with open(os.environ["HOOK_EVENTS"], "a") as out:
        out.write(json.dumps(event) + "\\n")


class TestHooks(SSotAsyncTestCase):
    def setup_method(self, method):
        note("setup_method", method.__name__)

    def teardown_method(self, method):
        note("teardown_method", method.__name__)

    async def test_one(self):
        note("test_one")

    async def test_two(self):
        note("test_two")
"""


class TestXunitHooksUnderPytest(unittest.TestCase):
    def test_framework_calls_the_hooks_on_the_class_loop_as_under_unittest(self):
        # pytest's own setup_method fixture used to call the hook first, off the loop,
        # at the cost of a fixture per test; now the framework's asyncSetUp calls it.
        with tempfile.TemporaryDirectory(prefix="pytest_hooks_") as tmp:
            Path(tmp, "pytest.ini").write_text("[pytest]\n")
            Path(tmp, "test_hooks.py").write_text(HOOKS_SUITE)
            events = Path(tmp, "events.jsonl")
            run = run_suite("-m", "pytest", "-q", "-p", "no:cacheprovider", "test_hooks.py",
                            cwd=Path(tmp), env_updates={"HOOK_EVENTS": str(events)})
            self.assertEqual(run.returncode, 0, run.describe())
            seen = [tuple(json.loads(line)) for line in events.read_text().splitlines()]
        expected = []
        for name in ("test_one", "test_two"):
            expected += [("setup_method", name, "on the loop"), (name, "on the loop"),
                         ("teardown_method", name, "on the loop")]
        self.assertEqual(seen, expected)
        self.assertEqual((run.leftover_files, run.leftover_databases), ([], []))
