"""One test's hold on the database, from ``asyncSetUp`` to ``asyncTearDown``.

``asyncSetUp`` opens a ``TestScope`` and registers its close as soon as it
holds something, so a set-up that fails half-way is undone too;
``asyncTearDown`` closes it, and closing twice does nothing. The scope is the
one owner of what a test holds: its class's resources, its sessions, and the
metrics the engines count its statements into while it is open. The case's
other helpers (query assertions, ``get_test_context``) read the scope.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from test_framework.ssot.class_loop import cancel_other_tasks
from test_framework.ssot.class_resources import ClassResources, class_resources
from test_framework.ssot.isolation import TestSessions
from test_framework.ssot.kept_failures import keeper
from test_framework.ssot.metrics import TestMetrics, set_running_metrics


class TestScope:
    """What one test holds, and the order in which it lets go of it."""

    __test__ = False

    def __init__(self, test_id: str, test_class: type, metrics: TestMetrics) -> None:
        self.test_id = test_id
        self.test_class = test_class
        self.metrics = metrics
        self.resources: ClassResources | None = None
        self.sessions: TestSessions | None = None
        self._metrics_before: TestMetrics | None = None
        self.opened = False  # the test has used its database (set up in full)
        # The set-up a first use started in a task of its own (ssot/lazy_database.py).
        self.setting_up: asyncio.Task | None = None

    @property
    def is_open(self) -> bool:
        return self.sessions is not None

    @property
    def awaits_first_use(self) -> bool:
        """The test has not used its database yet (or its set-up has not ended)."""
        return not self.opened

    async def open(self, *, tables, on_hold: Callable[[], None],
                   provisioned: Callable[[], None] = lambda: None) -> TestSessions:
        """Provision (once per class), begin the test's isolation, count its statements.

        ``on_hold`` is called once the test holds sessions, to register
        ``close`` as a cleanup; ``provisioned`` marks the end of provisioning
        for the timer.
        """
        resources = self.resources = class_resources(self.test_class)
        await resources.open()
        provisioned()
        self.sessions = await resources.isolation.begin_test(tables=tables,
                                                             metadata=resources.metadata)
        on_hold()
        self._metrics_before = set_running_metrics(self.metrics)
        self.opened = True
        return self.sessions

    async def close(self, *, failed: bool = False) -> None:
        """Undo the test's database work as its isolation mode says; idempotent.

        A set-up a task of the test started on first use is waited for (its
        steps are bounded), so what that task does is undone too. Then tasks
        the test started get their grace and are cancelled, since they use its
        sessions; a test that never used its database gives them the same grace.
        ``failed`` (with ``TEST_FRAMEWORK_KEEP_FAILED``) first copies what the
        test saw.
        """
        if self.setting_up is not None and not self.setting_up.done():
            await asyncio.wait([self.setting_up])
        await cancel_other_tasks(self.test_id)
        sessions, self.sessions = self.sessions, None
        if sessions is None:
            return
        set_running_metrics(self._metrics_before)
        keep = keeper(self.test_id, self.resources) if failed else None
        await self.resources.isolation.end_test(sessions, keep=keep)
