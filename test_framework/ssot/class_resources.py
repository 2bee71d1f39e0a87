"""What a test class shares across its tests: database, engine and isolation mode.

Made on the first test of a class, on the process's shared loop, and
released by a class cleanup after its last test. The test database is per
process and schema (per class with ``isolation = "database"``). The engine
is shared with the classes before and after that use the same database
(``shared_engines.py``), so a class's release hands its connection back to
the pool for the next class; an engine of the class's own is disposed.
"""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy.exc import DBAPIError, OperationalError

from test_framework.backends import backend_for
from test_framework.config import ClassSettings, project_settings
from test_framework.errors import (ConfigurationError, DatabaseUnavailableError,
                                   last_cause)
from test_framework.log import MaskedUrl, get_logger
from test_framework.provision import (build_memory_schema, drop_database,
                                      provisioned_database)
from test_framework.provision.schema import schema_from
from test_framework.ssot.class_loop import shared_runner
from test_framework.ssot.isolation import IsolationSettings, isolation_mode
from test_framework.ssot.sessions import session_options
from test_framework.ssot.shared_engines import (abandon_shared_engines, dispose_shared_engines,
                                                engine_for, hand_over)
from test_framework.ssot.unanswered import report_abandoned, teardown_bound

logger = get_logger(__name__)
RESOURCES_ATTRIBUTE = "_ssot_resources"
CHECKED_RESOURCES_ATTRIBUTE = "_ssot_checked_resources"  # made by the settings check
INTERRUPTED_BOUND = 2.0  # seconds each release step may wait after Ctrl-C


class ClassResources:
    """The engine, database and isolation strategy one test class's tests share.

    Made, the class's settings are read and checked; nothing touches a server
    before ``open``.
    """

    def __init__(self, test_class: type) -> None:
        self.test_class = test_class
        self.settings = settings = ClassSettings(test_class)
        self.url_setting = settings.database_url
        self.backend = backend_for(self.url_setting)  # checks the URL; no server is asked
        self.isolation_class = isolation_mode(settings.isolation)
        self.schema = schema_from(settings)
        self.class_data = self._class_data_hook()
        self.session_options = session_options(settings.session_options.value,
                                               where=settings.session_options.source)
        self.metadata = self.schema.metadata if self.schema else None
        self.isolation_settings = self._isolation_settings()
        self.isolation_class.check_settings(self.isolation_settings)
        self.database = None
        self.test_database_url: MaskedUrl | None = None
        self.engine = None
        self.engine_is_shared = False
        self.isolation = None

    async def open(self) -> None:
        """Provision the database and build the engine; idempotent."""
        if self.isolation is not None:
            return
        settings = project_settings()
        self.database = await provisioned_database(
            self.backend, self.schema, private=self.isolation_class.private_database,
            keep=settings.keep_database.value)
        self.test_database_url = MaskedUrl(self.database.url)  # each test's self.test_database_url
        self.engine, self.engine_is_shared = engine_for(
            self.backend, self.database.url, search_path=self.database.search_path,
            one_connection=self.isolation_class.holds_one_connection,
            private=self.isolation_class.private_database)
        try:
            if not self.backend.is_persistent(self.database.url):
                await build_memory_schema(self.schema, self.engine, self.backend)
        except (OperationalError, DBAPIError, OSError) as exc:
            await self.aclose()
            raise DatabaseUnavailableError(
                f"cannot connect to the test database {self.database.masked_url} (from "
                f"{self.url_setting.source}): {exc}; "
                f"{self.backend.explain_connect_error(exc)}") from last_cause(exc)
        self.isolation = self.isolation_class(self.engine, backend=self.backend,
                                              settings=self.isolation_settings)

    def _isolation_settings(self) -> IsolationSettings:
        """What the class asks of its isolation mode, each value read once here."""
        return IsolationSettings(
            metadata=self.metadata, class_data=self.class_data,
            leftover_rows=self.settings.leftover_rows.value,
            session_options=self.session_options,
            reset_sequences=self.settings.reset_sequences.value,
            check_deferred_constraints=self.settings.check_deferred_constraints.value)

    def _class_data_hook(self):
        """The class's ``asyncSetUpTestData``, if it overrides the framework's empty one."""
        hook = getattr(self.test_class, "asyncSetUpTestData", None)
        if hook is None or getattr(hook, "_ssot_default", False):
            return None
        if not self.isolation_class.supports_class_data:
            raise ConfigurationError(
                f"{self.test_class.__qualname__}.asyncSetUpTestData needs isolation = "
                f"'rollback' (a class transaction with a savepoint per test undoes each "
                f"test's changes); the class uses {self.isolation_class.name!r}. Create the "
                "rows in asyncSetUp instead, or switch modes")
        return hook

    async def aclose(self, *, bound: float | None = None, occasion: str = "",
                     interrupted: bool = False) -> None:
        """Release the class's connection, dispose of its own engine, drop a private database.

        A shared engine stays for the next class, except after Ctrl-C
        (``interrupted``), when the run is ending and its pool is closed too;
        after a mode that uses the whole pool its idle connections are reset first
        (``hand_over``).

        The connection and the engine's idle connections get at most ``bound``
        seconds each (default: statement_timeout plus a margin); what is not
        closed by then is abandoned and reported, so a server that stopped
        answering costs seconds, not the system's TCP timeout (many minutes).
        """
        bound = teardown_bound(self.backend) if bound is None else bound
        try:
            if self.isolation is not None:
                await self.isolation.close(bound=bound, occasion=occasion)
        finally:
            self.isolation = None
            try:
                if self.engine_is_shared and interrupted:
                    await dispose_shared_engines(bound)
                elif self.engine_is_shared and not self.isolation_class.holds_one_connection:
                    await hand_over(self.engine, self.backend, bound)
                elif self.engine is not None and not self.engine_is_shared:
                    await _dispose(self.engine, bound, occasion, self.test_class)
            finally:
                self.engine = None
            if self.database is not None and self.isolation_class.private_database:
                await drop_database(self.database)

    async def aclose_interrupted(self) -> None:
        """Release after Ctrl-C: nothing may wait on a server that is not answering.

        The interrupted test's task may still be inside a statement on the
        class's connection. It gets ``INTERRUPTED_BOUND`` to end (a SQLite
        statement interrupted by Ctrl-C does); if it is still waiting for the
        server then, its connections are abandoned. Then the usual release,
        each step bounded by ``INTERRUPTED_BOUND``.
        """
        current = asyncio.current_task()
        interrupted = [task for task in asyncio.all_tasks() if task is not current]
        if interrupted:
            _, waiting = await asyncio.wait(interrupted, timeout=INTERRUPTED_BOUND)
            if waiting and self.isolation is not None:
                self.isolation.abandon(f"after Ctrl-C, the interrupted test was still waiting "
                                       f"for the database {INTERRUPTED_BOUND:g}s later")
        await self.aclose(bound=INTERRUPTED_BOUND, occasion="after Ctrl-C, ", interrupted=True)

    def abandon(self, why: str) -> None:
        """Drop what a release in progress still holds, waiting on nothing; report it."""
        isolation, self.isolation = self.isolation, None
        engine, self.engine = self.engine, None
        if isolation is not None:
            isolation.abandon(why)
        if self.engine_is_shared:
            abandon_shared_engines(why)
        elif engine is not None and isolation is None:  # its pool was being closed
            engine.sync_engine.dispose(close=False)
            report_abandoned(f"the pooled connections of {self.test_class.__qualname__}'s "
                             "engine", why)


def checked_resources(test_class: type) -> None:
    """Read and check the class's settings before its first test, by making its resources.

    They are kept, unopened, for ``class_resources`` to take when the class
    first uses its database, so the settings are read once per run of the
    class; a class cleanup forgets them, so the next run reads them anew.
    """
    setattr(test_class, CHECKED_RESOURCES_ATTRIBUTE, ClassResources(test_class))
    test_class.addClassCleanup(_forget_checked, test_class)


def settings_checked(test_class: type) -> bool:
    """Whether this run of the class has checked its settings (and kept or opened them)."""
    return (CHECKED_RESOURCES_ATTRIBUTE in test_class.__dict__
            or RESOURCES_ATTRIBUTE in test_class.__dict__)


def _forget_checked(test_class: type) -> None:
    if CHECKED_RESOURCES_ATTRIBUTE in test_class.__dict__:
        delattr(test_class, CHECKED_RESOURCES_ATTRIBUTE)


def class_resources(test_class: type) -> ClassResources:
    """Return the class's shared resources, registering their release once."""
    resources = test_class.__dict__.get(RESOURCES_ATTRIBUTE)
    if resources is None:
        runner = shared_runner()
        resources = test_class.__dict__.get(CHECKED_RESOURCES_ATTRIBUTE)
        if resources is None:
            resources = ClassResources(test_class)
        else:
            delattr(test_class, CHECKED_RESOURCES_ATTRIBUTE)
        setattr(test_class, RESOURCES_ATTRIBUTE, resources)
        test_class.addClassCleanup(_release, test_class, runner)
    return resources


def _release(test_class: type, runner) -> None:
    """Release the class's resources on its loop; after Ctrl-C, within seconds.

    Ctrl-C during a test (or its teardown) gets here while ``KeyboardInterrupt``
    is being handled (``SSotBaseTestCase.run``): see ``aclose_interrupted``.
    Ctrl-C during this cleanup abandons what is left at once. A test database
    that cannot be dropped now goes to the next run's reaper.
    """
    resources = test_class.__dict__.get(RESOURCES_ATTRIBUTE)
    if resources is None:
        return
    delattr(test_class, RESOURCES_ATTRIBUTE)
    try:
        if isinstance(sys.exc_info()[1], KeyboardInterrupt):
            runner.run(resources.aclose_interrupted())
        else:
            runner.run(resources.aclose())
    except KeyboardInterrupt:
        resources.abandon("Ctrl-C during the class cleanup")
        raise


async def _dispose(engine, bound: float, occasion: str, test_class: type) -> None:
    """Close the engine's idle connections within ``bound``; past that, drop the pool."""
    try:
        async with asyncio.timeout(bound):
            await engine.dispose()
    except TimeoutError:
        await engine.dispose(close=False)
        report_abandoned(f"the idle connections of {test_class.__qualname__}'s engine",
                         f"{occasion}closing them got no answer within {bound:g}s")
