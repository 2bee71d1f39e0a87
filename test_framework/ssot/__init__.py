"""The SSOT test-case classes and the AsyncTestDatabase helper."""

from test_framework.ssot.async_test_case import SSotAsyncTestCase
from test_framework.ssot.async_test_helpers import AsyncTestDatabase
from test_framework.ssot.base_test_case import SSotBaseTestCase

__all__ = ["AsyncTestDatabase", "SSotAsyncTestCase", "SSotBaseTestCase"]
