"""SSotAsyncTestCase: the same lifecycle as SSotBaseTestCase, awaited on the shared loop.

It is a real ``unittest.IsolatedAsyncioTestCase``: ``async def`` tests are
awaited, and ``asyncSetUp``/``asyncTearDown`` are called by the stdlib. Only
*how* steps are called changes, never which steps exist.
"""

from __future__ import annotations

import unittest

from test_framework.ssot.base_test_case import SSotBaseTestCase
from test_framework.ssot.class_loop import ClassLoopHooks

__unittest = True


class SSotAsyncTestCase(ClassLoopHooks, SSotBaseTestCase, unittest.IsolatedAsyncioTestCase):
    """Base class for ``async def`` database tests."""

    def setUp(self) -> None:
        """Nothing: ``IsolatedAsyncioTestCase`` awaits ``asyncSetUp`` itself."""

    def tearDown(self) -> None:
        """Nothing: ``IsolatedAsyncioTestCase`` awaits ``asyncTearDown`` itself."""

    def _ssot_after_run(self) -> None:
        """Nothing: ``ClassLoopHooks`` cancels leftover tasks after each test."""
