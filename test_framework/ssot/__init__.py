"""The SSOT test-case classes and the AsyncTestDatabase helper.

Imported on first use (see ``test_framework/__init__.py``), so importing one
module of this package (``ssot.stop_run``) does not import all of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from test_framework.lazy_exports import lazy_exports

__all__ = ["AsyncTestDatabase", "SSotAsyncTestCase", "SSotBaseTestCase"]
_HOMES = {"AsyncTestDatabase": "async_test_helpers", "SSotAsyncTestCase": "async_test_case",
          "SSotBaseTestCase": "base_test_case"}

if TYPE_CHECKING:
    from test_framework.ssot.async_test_case import SSotAsyncTestCase
    from test_framework.ssot.async_test_helpers import AsyncTestDatabase
    from test_framework.ssot.base_test_case import SSotBaseTestCase

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
