"""test_framework: unittest base classes for tests against real databases via async SQLAlchemy.

The public names are imported on first use (PEP 562), so ``import
test_framework`` (as the pytest plugin does in every pytest run) loads neither
SQLAlchemy nor sqlglot until a test class or helper is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from test_framework.lazy_exports import lazy_exports
from test_framework.shuffle import install_for_unittest

# TEST_FRAMEWORK_SHUFFLE under python -m unittest and unittest.main(), which have no plugin
# hook: TestProgram imports the test modules, and so this package, before it calls runTests.
# Reads no setting here; idempotent; nose2 and pytest order tests through their plugins.
install_for_unittest()

__version__ = "0.1.0"
__all__ = ["AsyncTestDatabase", "MigrationTestCase", "SSotAsyncTestCase", "SSotBaseTestCase",
           "__version__", "skip_if_postgres", "skip_if_sqlite", "skip_unless_feature",
           "skip_unless_postgres", "skip_unless_sqlite"]
_HOMES = {"AsyncTestDatabase": "ssot.async_test_helpers", "MigrationTestCase":
          "ssot.migration_test_case", "SSotAsyncTestCase": "ssot.async_test_case",
          "SSotBaseTestCase": "ssot.base_test_case", **dict.fromkeys(
              ["skip_if_postgres", "skip_if_sqlite", "skip_unless_feature",
               "skip_unless_postgres", "skip_unless_sqlite"], "skips")}

if TYPE_CHECKING:
    from test_framework.skips import (skip_if_postgres, skip_if_sqlite, skip_unless_feature,
                                      skip_unless_postgres, skip_unless_sqlite)
    from test_framework.ssot.async_test_case import SSotAsyncTestCase
    from test_framework.ssot.async_test_helpers import AsyncTestDatabase
    from test_framework.ssot.base_test_case import SSotBaseTestCase
    from test_framework.ssot.migration_test_case import MigrationTestCase

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
