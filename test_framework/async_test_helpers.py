"""Compatibility import path: ``from test_framework.async_test_helpers import AsyncTestDatabase``.

The class lives in :mod:`test_framework.ssot.async_test_helpers`; this is the
very same object.
"""

from test_framework.ssot.async_test_helpers import AsyncTestDatabase

__all__ = ["AsyncTestDatabase"]
