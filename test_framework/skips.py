"""Skip tests by the database they run on: ``skip_unless_postgres`` and friends.

The backend is the one the base classes would use for the test's class: its
``database_url`` attribute, else ``TEST_DATABASE_URL``, else ``setup.cfg``,
else the SQLite default. It is resolved when the test is about to run, never
at import, so importing a test module reads no settings. The reason names
the backend and where it was configured, e.g. *needs postgresql; TestSearch
runs on sqlite (default)*.

Decorate a test method or a whole class. A skipped class or method of
``SSotAsyncTestCase``/``SSotBaseTestCase`` sets up no database.

``skip_unless_feature`` also asks the server: ``min_version=(14,)`` compares
the server's version, and ``check`` is called with a :class:`ServerInfo`
(``backend``, ``version``, ``engine``) and may be async. Those run after
``setUp``, on the test's own engine, so they need the framework's classes.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import unittest
from typing import Any, Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from test_framework.backends import ALIASES, BACKENDS, backend_for
from test_framework.config import Setting, database_url_for
from test_framework.errors import ConfigurationError, TestFrameworkError

__all__ = ["ServerInfo", "skip_if_postgres", "skip_if_sqlite", "skip_unless_feature",
           "skip_unless_postgres", "skip_unless_sqlite"]

CONDITIONS = "_ssot_skip_conditions"


@dataclasses.dataclass(frozen=True)
class ServerInfo:
    """What a ``check`` callable is told about the server the test runs on."""

    backend: str
    version: tuple[int, ...]
    engine: AsyncEngine


@dataclasses.dataclass(frozen=True)
class Condition:
    """Run only on ``backends`` (all when None), and only if the server passes the checks."""

    backends: frozenset[str] | None
    runs: bool = True  # False: skip *on* these backends instead
    min_version: tuple[int, ...] | None = None
    check: Callable[[ServerInfo], bool | Awaitable[bool]] | None = None
    reason: str | None = None

    @property
    def needs_server(self) -> bool:
        return self.min_version is not None or self.check is not None

    def backend_reason(self, test_class: type) -> str | None:
        """Return why ``test_class`` skips on its configured backend, or None to run."""
        resolved = _resolved_backend(test_class)
        if resolved is None or self.backends is None:
            return None
        name, source = resolved
        if (name in self.backends) == self.runs:
            return None
        wanted = " or ".join(sorted(self.backends))
        why = f"needs {wanted}" if self.runs else f"not for {wanted}"
        if self.reason:
            why += f" ({self.reason})"
        return f"{why}; {test_class.__name__} runs on {name} ({source})"

    async def server_reason(self, engine: AsyncEngine) -> str | None:
        """Return why the server lacks the feature, or None to run."""
        if not self.needs_server:
            return None
        server = await server_info(engine)
        shown = f"{server.backend} {'.'.join(map(str, server.version))}"
        if self.min_version is not None and server.version < self.min_version:
            needed = ".".join(map(str, self.min_version))
            return self.reason or f"needs {server.backend} {needed} or newer; the server is {shown}"
        if self.check is not None:
            passed = self.check(server)
            if inspect.isawaitable(passed):
                passed = await passed
            if not passed:
                name = getattr(self.check, "__name__", repr(self.check))
                return self.reason or f"{name}() is false for {shown}"
        return None


async def server_info(engine: AsyncEngine) -> ServerInfo:
    """Describe the engine's server; connects once if the engine never has."""
    if engine.dialect.server_version_info is None:
        async with engine.connect():
            pass
    return ServerInfo(engine.dialect.name, tuple(engine.dialect.server_version_info or ()),
                      engine)


def skip_unless_postgres(test: Any) -> Any:
    """Run the test (method or class) only on PostgreSQL."""
    return _apply(test, Condition(frozenset({"postgresql"})))


def skip_unless_sqlite(test: Any) -> Any:
    """Run the test (method or class) only on SQLite."""
    return _apply(test, Condition(frozenset({"sqlite"})))


def skip_if_postgres(test: Any) -> Any:
    """Skip the test (method or class) on PostgreSQL."""
    return _apply(test, Condition(frozenset({"postgresql"}), runs=False))


def skip_if_sqlite(test: Any) -> Any:
    """Skip the test (method or class) on SQLite."""
    return _apply(test, Condition(frozenset({"sqlite"}), runs=False))


def skip_unless_feature(backend: str | None = None, *, min_version: tuple[int, ...] | None = None,
                        check: Callable[[ServerInfo], Any] | None = None,
                        reason: str | None = None) -> Callable[[Any], Any]:
    """Run the test only on ``backend``, a server at least ``min_version``, passing ``check``."""
    if backend is None and min_version is not None:
        raise ConfigurationError(
            f"skip_unless_feature(min_version={min_version!r}) needs a backend, since versions "
            "differ per server: e.g. skip_unless_feature('postgresql', "
            f"min_version={min_version!r})")
    if min_version is not None and not (isinstance(min_version, tuple) and
                                        all(isinstance(part, int) for part in min_version)):
        raise ConfigurationError(
            f"skip_unless_feature(min_version={min_version!r}): use a tuple of integers, "
            "e.g. min_version=(14,) or (3, 35)")
    backends = None if backend is None else frozenset({_backend_name(backend)})
    condition = Condition(backends, min_version=min_version, check=check, reason=reason)
    return lambda test: _apply(test, condition)


def early_skip_reason(test: unittest.TestCase) -> str | None:
    """Why the test's own method skips on its backend (checked before any set-up), or None."""
    method = getattr(type(test), test._testMethodName, None)
    for condition in getattr(method, CONDITIONS, ()):
        reason = condition.backend_reason(type(test))
        if reason:
            return reason
    return None


def needs_server(test_class: type) -> bool:
    """Do the class's own conditions ask the server (a version or a check)?"""
    return any(condition.needs_server for condition in _inherited(test_class))


async def server_skip_reason(test_class: type, engine: AsyncEngine) -> str | None:
    """Why the class's server conditions skip its tests, or None (asked after set-up)."""
    for condition in _inherited(test_class):
        if condition.needs_server:
            reason = await condition.server_reason(engine)
            if reason:
                return reason
    return None


def _apply(test: Any, condition: Condition) -> Any:
    if isinstance(test, type):
        conditions = _inherited(test) + (condition,)
        setattr(test, CONDITIONS, conditions)
        skipped_by_hand = any(vars(klass).get("__unittest_skip__") is True
                              for klass in test.__mro__)
        if not skipped_by_hand:  # unittest.skip on the class or a base wins
            test.__unittest_skip__ = _ClassSkip(skipped=True)
            test.__unittest_skip_why__ = _ClassSkip(skipped=False)
        return test
    if not callable(test):
        raise ConfigurationError(
            f"a skip decorator was applied to {test!r}; decorate a test method or a test class")
    return _guarded(test, condition)


def _inherited(test_class: type) -> tuple[Condition, ...]:
    return getattr(test_class, CONDITIONS, ())


class _ClassSkip:
    """A class attribute unittest reads right before running: skip flag or reason."""

    def __init__(self, *, skipped: bool) -> None:
        self.skipped = skipped

    def __get__(self, instance: Any, owner: type) -> bool | str:
        for condition in getattr(owner, CONDITIONS, ()):
            reason = condition.backend_reason(owner)
            if reason:
                return True if self.skipped else reason
        return False if self.skipped else ""


def _guarded(function: Callable, condition: Condition) -> Callable:
    """Wrap a test method so its conditions are checked each time it runs."""
    conditions = getattr(function, CONDITIONS, ()) + (condition,)
    original = getattr(function, "_ssot_unguarded", function)

    if inspect.iscoroutinefunction(original):
        @functools.wraps(original)
        async def guarded(self, *args, **kwargs):
            _raise_if_wrong_backend(self, conditions)
            await _raise_if_server_lacks(self, conditions)
            return await original(self, *args, **kwargs)
    else:
        @functools.wraps(original)
        def guarded(self, *args, **kwargs):
            _raise_if_wrong_backend(self, conditions)
            if any(condition.needs_server for condition in conditions):
                _require_engine(self)
                self.run_async(_raise_if_server_lacks(self, conditions))
            return original(self, *args, **kwargs)
    setattr(guarded, CONDITIONS, conditions)
    guarded._ssot_unguarded = original
    return guarded


def _raise_if_wrong_backend(test: unittest.TestCase, conditions: tuple[Condition, ...]) -> None:
    for condition in conditions:
        reason = condition.backend_reason(type(test))
        if reason:
            raise unittest.SkipTest(reason)


async def _raise_if_server_lacks(test: unittest.TestCase,
                                 conditions: tuple[Condition, ...]) -> None:
    for condition in conditions:
        if condition.needs_server:
            reason = await condition.server_reason(_require_engine(test))
            if reason:
                raise unittest.SkipTest(reason)


def _require_engine(test: unittest.TestCase) -> AsyncEngine:
    engine = getattr(test, "engine", None)
    if engine is None:
        raise ConfigurationError(
            f"{test.id()}: skip_unless_feature with min_version or check reads the "
            "server through self.engine; use it on SSotAsyncTestCase or "
            "SSotBaseTestCase tests, or use skip_unless_postgres/skip_unless_sqlite")
    return engine


def _backend_name(name: str) -> str:
    canonical = ALIASES.get(name, name)
    if canonical not in BACKENDS:
        raise ConfigurationError(
            f"skip_unless_feature({name!r}): unknown backend; use one of {sorted(BACKENDS)}")
    return canonical


def _resolved_backend(test_class: type) -> tuple[str, str] | None:
    """Return (backend name, where it was set), or None if the URL is unusable."""
    return _backend_of(database_url_for(test_class))


@functools.lru_cache(maxsize=64)
def _backend_of(setting: Setting) -> tuple[str, str] | None:
    try:
        return backend_for(setting).name, setting.source
    except TestFrameworkError:
        return None  # setUp reports the bad URL with its fix; a skip must not hide it
