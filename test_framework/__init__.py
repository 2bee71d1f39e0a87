"""test_framework: unittest base classes for tests against real databases via async SQLAlchemy."""

from test_framework.skips import (skip_if_postgres, skip_if_sqlite, skip_unless_feature,
                                  skip_unless_postgres, skip_unless_sqlite)
from test_framework.ssot.async_test_case import SSotAsyncTestCase
from test_framework.ssot.async_test_helpers import AsyncTestDatabase
from test_framework.ssot.base_test_case import SSotBaseTestCase
from test_framework.ssot.migration_test_case import MigrationTestCase

__version__ = "0.1.0"
__all__ = ["AsyncTestDatabase", "MigrationTestCase", "SSotAsyncTestCase", "SSotBaseTestCase",
           "__version__", "skip_if_postgres", "skip_if_sqlite", "skip_unless_feature",
           "skip_unless_postgres", "skip_unless_sqlite"]
