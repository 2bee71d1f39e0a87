"""A test's database, set up on first use: a class that never touches it provisions nothing.

As Laravel's ``LazilyRefreshDatabase``: until a test reads ``self.db``,
``self.session``, ``self.session_factory``, ``self.engine`` or
``self.test_database_url`` (or asks for a query count), no database is made,
no connection is opened and nothing is rolled back. A class of pure-logic
tests on the framework's base classes costs what a plain ``TestCase`` does,
and runs with no server at all.

The first read is a plain attribute read, often in sync code inside an
``async def`` test, yet setting the database up means awaiting. Until a
class has set its database up, its tests' coroutines run with a greenback
portal (``ClassRunner.run``), through which that read awaits the set-up.
Once a class has set up, its later tests set up eagerly in ``asyncSetUp``:
they cost what they did before, with no portal.

The set-up a first use starts is one task per test (``TestScope.setting_up``),
awaited shielded: a timeout around the first read cannot cut it short, other
readers wait for it or get its error, and teardown waits for it, so what a
fire-and-forget task did after setting the database up is undone too.

A class sets up eagerly from its first test when the set-up must come first:
``asyncSetUpTestData`` (its rows go in below each test's savepoint), a
``sandbox`` (the app is patched before the test runs) and server conditions
(``skip_unless_feature`` on the class asks the server before the test).
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine

import greenback

from test_framework.config import ClassSettings
from test_framework.errors import TestFrameworkError
from test_framework.skips import needs_server
from test_framework.ssot.class_loop import shared_runner
from test_framework.ssot.class_resources import RESOURCES_ATTRIBUTE


def has_set_up(test_class: type) -> bool:
    """Has ``test_class`` set its database up (and not yet released it)?"""
    return RESOURCES_ATTRIBUTE in test_class.__dict__


def must_set_up_first(test_class: type) -> bool:
    """Does the class need its database before each test runs? (See the module docstring.)"""
    class_data = getattr(test_class, "asyncSetUpTestData", None)
    return (not getattr(class_data, "_ssot_default", False)
            or bool(ClassSettings(test_class).sandbox.value)
            or needs_server(test_class))


def may_wait_for_set_up() -> bool:
    """Can sync code here await the set-up? (A test coroutine with its portal, or no loop.)"""
    return asyncio._get_running_loop() is None or greenback.has_portal()


def running_task() -> asyncio.Task | None:
    """The task running here, if a loop runs in this thread."""
    return asyncio.current_task() if asyncio._get_running_loop() is not None else None


def set_up_now(start: Callable[[], Coroutine[Any, Any, Any]], *, first_use: str) -> Any:
    """Run the set-up coroutine ``start()`` makes, from the sync code that first used
    the database, and wait for it there.

    Outside the loop (a sync test's body) it runs on the shared loop; in a
    thread of the loop's executor while the loop runs a test, on that loop;
    inside a test's coroutine, through its portal. A task the test started
    with no portal (a task factory of the test's own) is told to let the test
    use the database first.
    """
    if asyncio._get_running_loop() is None:
        runner = shared_runner()
        if runner.get_loop().is_running():  # another thread: the loop runs the test
            return asyncio.run_coroutine_threadsafe(start(), runner.get_loop()).result()
        return runner.run(start())
    if greenback.has_portal():
        return greenback.await_(start())
    raise TestFrameworkError(
        f"{first_use} was first used in a task the test started ({asyncio.current_task()!r}), "
        "before the test itself used the database, which is set up on first use; use it "
        "once in the test (or in asyncSetUp) before starting the task")
