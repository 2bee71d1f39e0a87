"""The SSOT test-case classes and the AsyncTestDatabase helper.

Imported on first use (see ``test_framework/__init__.py``), so importing one
module of this package (``ssot.stop_run``) does not import all of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["AsyncTestDatabase", "SSotAsyncTestCase", "SSotBaseTestCase"]
_HOMES = {"AsyncTestDatabase": "async_test_helpers", "SSotAsyncTestCase": "async_test_case",
          "SSotBaseTestCase": "base_test_case"}

if TYPE_CHECKING:
    from test_framework.ssot.async_test_case import SSotAsyncTestCase
    from test_framework.ssot.async_test_helpers import AsyncTestDatabase
    from test_framework.ssot.base_test_case import SSotBaseTestCase


def __getattr__(name: str) -> Any:
    """Import a public name's module the first time the name is used."""
    if name not in _HOMES:
        raise AttributeError(f"module 'test_framework.ssot' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"test_framework.ssot.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
