"""SSotBaseTestCase: a ``unittest.TestCase`` with a real test database.

The lifecycle is ``asyncSetUp`` / ``asyncTearDown``, run on the process's
shared event loop. The synchronous class calls them from ``setUp`` /
``tearDown`` and offers ``run_async(coro)``; ``SSotAsyncTestCase`` keeps the
same steps and lets ``IsolatedAsyncioTestCase`` await them. Until a class
has used its database, a test sets it up on first use instead of in
``asyncSetUp`` (``ssot/lazy_database.py``).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import sys
import time
import unittest
from typing import Any, Awaitable, Callable, Mapping

from sqlalchemy import MetaData

from test_framework import sample_schema
from test_framework.coverage_preflight import check_coverage_concurrency
from test_framework.config import project_settings, run_setting
from test_framework.errors import ConfigurationError
from test_framework.log import configure_stderr_handler, current_test_id, get_logger
from test_framework.provision import drop_databases_now
from test_framework.provision.worker_exit import watch_forked_workers
from test_framework.sharding import shard_skip_reason
from test_framework.skips import early_skip_reason, server_skip_reason
from test_framework.ssot.assertions import RowAssertions
from test_framework.ssot.awaited import UnawaitedCalls, watching
from test_framework.ssot.class_loop import (cancel_leftover_tasks, current_runner,
                                           shared_runner)
from test_framework.ssot.kept_failures import FailureWatch
from test_framework.ssot.lazy_database import (has_set_up, may_wait_for_set_up,
                                               must_set_up_first, running_task, set_up_now)
from test_framework.ssot.legacy_helpers import LegacyHelpers
from test_framework.ssot.query_capture import QueryAssertions
from test_framework.ssot.sandbox import sandbox_for
from test_framework.ssot.scope import TestScope
from test_framework.ssot.stop_run import (check_settings, report_before_start, stop,
                                          stopping_the_run)
from test_framework.timing import NULL_TIMER, timer_for

__unittest = True  # keep these frames out of users' failure tracebacks

framework_logger = get_logger("test_framework.lifecycle")
XUNIT_HOOKS = ("setup_method", "teardown_method")
SET_UP_ATTRIBUTES = {"db", "session", "session_factory", "engine", "test_database_url"}


class SSotBaseTestCase(LegacyHelpers, RowAssertions, QueryAssertions, unittest.TestCase):
    """Base class for database tests; see README.rst for the settings below."""

    database_url: str | None = None
    isolation: str = "rollback"
    metadata: MetaData | None = sample_schema.metadata
    tables: Mapping[str, str] | None = None
    fail_on_unawaited_coroutines: bool = True
    _ssot_timer = NULL_TIMER
    _ssot_lazy = False  # set up on first use (set by run(); debug() sets up in asyncSetUp)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Make ``setup_method``/``teardown_method`` run once per test, whoever calls them.

        pytest calls these hooks on unittest classes too; the framework calls
        them for unittest and nose2. A per-test flag keeps it to exactly once.
        Defining a class also arms the workers multiprocessing forks later
        (nose2 ``-N``), so each drops its databases as it ends.
        """
        super().__init_subclass__(**kwargs)
        watch_forked_workers()
        for name in XUNIT_HOOKS:
            hook = cls.__dict__.get(name)
            if hook is not None and not getattr(hook, "_ssot_once", False):
                setattr(cls, name, _once_per_test(name, hook))

    # -- lifecycle ----------------------------------------------------------------

    @classmethod
    def tearDownClass(cls) -> None:
        """Nothing of ours: the class's connection goes back in a class cleanup.

        Defining it tells runners the class has class fixtures, so nose2's
        ``mp`` plugin sends the whole class to one worker (one connection)
        instead of each test on its own.
        """
        super().tearDownClass()

    def run(self, result=None):
        token = current_test_id.set(self.id())
        try:
            check_settings(self)  # a bad value stops the run with its message alone
        except ConfigurationError as exc:
            current_test_id.reset(token)
            if result is None:
                raise
            report_before_start(self, result, exc)
            return result
        self._ssot_unawaited = UnawaitedCalls(warnings_fail=self.fail_on_unawaited_coroutines)
        # Until the class has set its database up, it is set up on first use (a portal
        # lets that first use, a plain attribute read, await it: ssot/lazy_database.py).
        lazy = self._ssot_lazy = not has_set_up(type(self)) and not must_set_up_first(type(self))
        if lazy:
            shared_runner().with_portal = True
        # TEST_FRAMEWORK_KEEP_FAILED: teardown must know whether the test failed.
        watch = self._ssot_failures = FailureWatch(result) if (
            result is not None and project_settings().keep_failed.value) else None
        try:
            with watching(self._ssot_unawaited), shared_runner().signals_wake_loop:
                ran = super().run(result if watch is None else watch)
                return ran if watch is None else result
        except KeyboardInterrupt:
            # Ctrl-C skips the suite's class teardown: release the loop, engine and
            # connection now, and drop the databases (a nose2 worker never runs atexit).
            type(self).doClassCleanups()
            drop_databases_now()
            raise
        finally:
            if lazy and current_runner() is not None:
                current_runner().with_portal = False
            current_test_id.reset(token)
            self._ssot_after_run()
            if getattr(self, "_ssot_stops_run", False):
                stop(result)  # every later test would fail the same way (ssot/stop_run.py)

    def _ssot_after_run(self) -> None:
        """Cancel tasks the test left on the shared loop (the async class does it itself)."""
        runner = current_runner()
        if runner is not None and not isinstance(sys.exc_info()[1], KeyboardInterrupt):
            cancel_leftover_tasks(runner, self.id())

    def setUp(self) -> None:
        self.run_async(self.asyncSetUp())

    def tearDown(self) -> None:
        self.run_async(self.asyncTearDown())

    async def asyncSetUp(self) -> None:
        """Build ``self.db``, ``self.session`` and ``self.session_factory`` for this test,
        here or on the test's first use of them (``ssot/lazy_database.py``).

        An unreachable server stops the run where the database is set up
        (``ssot/stop_run.py``).
        """
        current_test_id.set(self.id())
        unawaited = getattr(self, "_ssot_unawaited", None)
        if unawaited is not None:  # first cleanup registered, so the last to run
            self.addCleanup(unawaited.check, self)
        with stopping_the_run(self):
            await self._ssot_set_up()

    async def _ssot_set_up(self) -> None:
        configure_stderr_handler(run_setting("log_level").value)
        skip_reason = early_skip_reason(self) or shard_skip_reason(type(self))
        if skip_reason:
            raise unittest.SkipTest(skip_reason)
        check_coverage_concurrency()
        self._ssot_timer = timer_for(self.id())
        self._ssot_started = time.perf_counter()
        framework_logger.debug("start %s", self.id())
        self.setup_method(getattr(self, self._testMethodName, None))
        self._ssot_timer.lap("setup")
        self._ssot_scope = TestScope(self.id(), type(self), self._ssot_metrics)
        if not (self._ssot_lazy and may_wait_for_set_up()):
            await self._ssot_set_up_database()
        self._ssot_timer.lap("setup")

    async def _ssot_set_up_database(self) -> None:
        """Provision (once per class), begin the test's isolation, make ``self.db`` and the rest.

        In ``asyncSetUp``, or on the test's first use of its database (``__getattr__``).
        """
        if self._ssot_lazy:  # the class sets up now: its later tests do it in asyncSetUp
            shared_runner().with_portal = False
        scope = self._ssot_scope
        sessions = await scope.open(
            tables=self.tables, provisioned=lambda: self._ssot_timer.lap("provisioning"),
            on_hold=lambda: self.addCleanup(self._ssot_release_left_open))
        resources = scope.resources
        self.engine = resources.engine
        self.session_factory = sessions.session_factory  # self.session: made on first use
        self.db = sessions.db
        self.test_database_url = resources.test_database_url
        sandbox = sandbox_for(type(self), resources, self.session_factory)  # ssot/sandbox.py
        self.addCleanup(sandbox.restore)
        sandbox.apply()
        self._ssot_watch_queries()  # the N+1 detector (ssot/query_capture.py)
        skip_reason = await server_skip_reason(type(self), self.engine)
        if skip_reason:
            raise unittest.SkipTest(skip_reason)

    def _ssot_set_up_on_first_use(self, first_use: str) -> None:
        """Set the test's database up now, if it waits for its first use (``first_use``).

        The set-up runs as a task of its own, shielded: a timeout or a
        cancelled task around the first use does not cut it short, teardown
        waits for it, and a second reader (another task, or a retry after an
        error) waits for the same set-up or gets its error again.
        """
        scope = self.__dict__.get("_ssot_scope")
        if scope is None or not scope.awaits_first_use:
            return
        if scope.setting_up is not None and scope.setting_up is running_task():
            return  # the set-up reading what it has made so far
        with stopping_the_run(self):
            set_up_now(lambda: self._ssot_await_set_up(scope), first_use=first_use)

    async def _ssot_await_set_up(self, scope: TestScope) -> None:
        """Await the test's one set-up task, starting it unless one ran or runs."""
        if scope.setting_up is None or scope.setting_up.cancelled():
            scope.setting_up = asyncio.get_running_loop().create_task(
                self._ssot_set_up_database(), name=f"set-up of {self.id()}")
        await asyncio.shield(scope.setting_up)

    async def asyncTearDown(self) -> None:
        """Clean the test's data, release its sessions, then call ``teardown_method``."""
        self._ssot_timer.lap("test body")
        try:
            await self._ssot_release()
        finally:
            self.teardown_method(getattr(self, self._testMethodName, None))
            framework_logger.debug("end %s in %.2f ms", self.id(),
                                   (time.perf_counter() - getattr(self, "_ssot_started", 0))
                                   * 1000)
            self._ssot_timer.lap("teardown")

    async def _ssot_release(self) -> None:
        """Undo the test's database work as its isolation mode says (``db.cleanup()``
        included); idempotent, so a failure half-way through setUp is safe too."""
        scope = getattr(self, "_ssot_scope", None)
        if scope is not None:
            watch = getattr(self, "_ssot_failures", None)
            await scope.close(failed=watch is not None and watch.failed)

    def _ssot_release_left_open(self) -> None:
        """The cleanup for a set-up or tear-down that failed before the release: only then
        is there anything to do, so a passing test costs no extra pass of the loop."""
        scope = getattr(self, "_ssot_scope", None)
        if scope is not None and scope.is_open:
            self.run_async(self._ssot_release())

    def __getattr__(self, name: str):
        """Set the database up on the test's first use; explain the attributes asyncSetUp
        makes, when it did not run."""
        if name in SET_UP_ATTRIBUTES:
            self._ssot_set_up_on_first_use(f"self.{name}")
            if name in self.__dict__:
                return self.__dict__[name]
            if name == "session" and "db" in self.__dict__:  # made when first asked for
                session = self.__dict__["session"] = self.db.session
                return session
            raise AttributeError(
                f"self.{name} is made by the framework's asyncSetUp, which did not run for "
                f"{self.id()}: an overriding asyncSetUp (or setUp in a sync class) must call "
                "await super().asyncSetUp() (or super().setUp()) first")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @functools.cached_property
    def logger(self) -> logging.Logger:
        """The class's logger, ``test_framework.cases.<module>.<Class>``, made on first use.

        A class that never logs adds no logger: pytest's log capture sets the
        root level six times a test, and each time Python clears the cache of
        every logger there is, so a logger per class made big suites slower
        test by test.
        """
        return get_logger(f"test_framework.cases.{type(self).__module__}."
                          f"{type(self).__qualname__}")

    # -- class-level shared data (Django's setUpTestData) -------------------------

    @classmethod
    async def asyncSetUpTestData(cls, db) -> None:
        """Override to create rows once per class; ``db`` is an ``AsyncTestDatabase``.

        Every test sees the rows and may change them; each test's changes are
        undone (a savepoint per test on top of a class transaction), and the
        rows are gone after the class. Rollback isolation only. Keep what you
        need on ``cls`` (rows are immutable, so tests cannot share mutations).
        """

    asyncSetUpTestData.__func__._ssot_default = True

    # -- xunit-style hooks, as in the original framework --------------------------

    def setup_method(self, method: Callable | None = None) -> None:
        """Override to prepare each test; called exactly once per test, before ``self.db``."""

    def teardown_method(self, method: Callable | None = None) -> None:
        """Override to tidy up after each test; called exactly once per test."""

    # -- running coroutines from synchronous code ---------------------------------

    def run_async(self, coroutine: Awaitable[Any]) -> Any:
        """Run a coroutine on the shared event loop and return its result."""
        runner = shared_runner()
        try:
            return runner.run(coroutine)
        except RuntimeError as exc:
            if "running event loop" not in str(exc):
                raise
            if inspect.iscoroutine(coroutine):
                coroutine.close()
            raise RuntimeError(
                "run_async() was called while the event loop is running (inside an async "
                "test or hook); use 'await' on the coroutine instead") from exc

    def _ssot_call(self, function: Callable, *args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        return self.run_async(result) if inspect.isawaitable(result) else result

    def add_cleanup(self, function: Callable, *args: Any, **kwargs: Any) -> None:
        """Register a sync or async cleanup, run after ``tearDown`` (last added, first run)."""
        self.addCleanup(self._ssot_call, function, *args, **kwargs)


def _once_per_test(name: str, hook: Callable) -> Callable:
    # One flag per wrapped function, so super() chains through several classes still run.
    flag = f"_ssot_{name}_{id(hook)}_done"

    @functools.wraps(hook)
    def once(self, *args: Any, **kwargs: Any) -> Any:
        if self.__dict__.get(flag):
            return None
        self.__dict__[flag] = True
        return hook(self, *args, **kwargs)

    once._ssot_once = True
    return once


SSotBaseTestCase.setup_method = _once_per_test("setup_method", SSotBaseTestCase.setup_method)
SSotBaseTestCase.teardown_method = _once_per_test("teardown_method",
                                                  SSotBaseTestCase.teardown_method)
