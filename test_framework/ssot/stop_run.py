"""Stop the whole run at the first error that every later test would repeat.

A server that cannot be reached and a setting the framework cannot use (a
sync driver in the URL, a timeout that is not a number) fail every test in
the same way: 30 tests printed the same message 30 times, and a driver's
chained traceback buried it under a hundred lines. Here such an error is
reported once, on the test that met it, without the framework's inner frames
and with the driver's error reduced to its innermost cause; then the run
stops, as with ``failfast`` (unittest and nose2: ``result.stop()``; pytest:
``session.shouldstop``, set by ``test_framework.pytest_plugin``).

The settings and the URL are checked before unittest starts a class's first
test (``check_settings``), so a bad one is reported with its message alone,
not under the frames of the event loop that set-up runs on.
At ``TEST_FRAMEWORK_LOG_LEVEL=DEBUG`` the full traceback is logged first.
"""

from __future__ import annotations

import sys
import unittest

from test_framework.config import project_settings, run_setting
from test_framework.errors import (ConfigurationError, DatabaseUnavailableError, last_cause,
                                   shown_alone)
from test_framework.log import get_logger
from test_framework.sharding import current_shard
from test_framework.ssot.class_resources import checked_resources, settings_checked

__unittest = True  # frames here are never the user's problem

logger = get_logger(__name__)
STOPS_THE_RUN = (ConfigurationError, DatabaseUnavailableError)


def check_settings(test: unittest.TestCase) -> None:
    """Raise ``ConfigurationError`` for a bad setting or URL (once per run of a class)."""
    project_settings()
    run_setting("log_level")  # checked here; asyncSetUp configures the handler with it
    current_shard()
    test_class = type(test)
    if settings_checked(test_class):
        return
    method = getattr(test_class, test._testMethodName, None)
    if getattr(test_class, "__unittest_skip__", False) or getattr(method, "__unittest_skip__",
                                                                   False):
        return  # a skipped test needs no database: a bad URL is reported when one does
    checked_resources(test_class)  # reads and checks the class's URL and other settings


class stopping_the_run:
    """Stop the run after ``test`` if the block raises what every later test would repeat.

    A class, not ``contextlib.contextmanager``, which would give the error back
    the traceback ``trimmed`` took from it.
    """

    def __init__(self, test: unittest.TestCase) -> None:
        self.test = test

    def __enter__(self) -> None:
        pass

    def __exit__(self, kind, exc, traceback) -> None:
        if isinstance(exc, STOPS_THE_RUN):
            self.test._ssot_stops_run = True
            raise trimmed(exc)


def trimmed(exc: BaseException) -> BaseException:
    """Return ``exc`` without its traceback, chained only to its innermost cause."""
    logger.debug("the run stops: %s", exc, exc_info=exc)
    cause = exc.__cause__
    if cause is None and not exc.__suppress_context__:
        cause = exc.__context__
    if cause is not None:
        exc.__cause__ = last_cause(cause)
    exc.__suppress_context__ = True
    return shown_alone(exc.with_traceback(None))


def stop(result: unittest.TestResult | None) -> None:
    """Stop the run as ``failfast`` would; runners without ``stop`` run on."""
    if hasattr(result, "stop"):
        result.stop()


def report_before_start(test: unittest.TestCase, result: unittest.TestResult,
                        exc: BaseException) -> None:
    """Record ``exc`` as ``test``'s error when it stopped the test before unittest could start it.

    A bad setting read while the class's event loop is made would otherwise
    escape the test protocol and end the runner with its own traceback.
    """
    result.startTest(test)
    try:
        try:
            raise trimmed(exc)
        except type(exc):
            result.addError(test, sys.exc_info())  # one frame, of this module: hidden
    finally:
        result.stopTest(test)
    stop(result)


def summary(exc: BaseException) -> str:
    """The error's message first, then its cause in one line: the failure text for pytest."""
    text = f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
    cause = exc.__cause__
    if cause is not None:
        text += f"\n\ncaused by {type(cause).__module__}.{type(cause).__qualname__}: {cause}"
    return text
