"""Fail a test that forgot ``await``, instead of letting it pass having checked nothing.

``self.assertRowCount("accounts", 5)`` without ``await`` makes a coroutine
and drops it: no query runs, the test reports ok, and Python says at most
``RuntimeWarning: coroutine ... was never awaited``, which most runners
print far from the test or not at all. Two checks close that hole, both
reported as a failure of the test that made the mistake:

* Coroutines the framework hands out (the row assertions, through
  ``must_be_awaited``) are remembered with the line that asked for them. A
  test whose coroutine was never started fails, naming each call and its
  line; the coroutine is closed, so no warning follows later.
* Any other coroutine dropped un-awaited while the test runs (``self.db``
  helpers, the application's own) raises Python's warning; during the test
  it is turned into an error and collected from ``sys.unraisablehook``,
  with the line that dropped it. A class turns this off with
  ``fail_on_unawaited_coroutines = False``: the warning is then Python's
  usual one.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import linecache
import reprlib
import sys
import warnings
from types import CoroutineType, FrameType
from typing import Any, Callable, Iterator

__unittest = True  # the failure points at the test, not at this module

NEVER_AWAITED = r"coroutine '.*' was never awaited"
PRUNE_AT = 256  # remembered coroutines before the awaited ones are forgotten
_shown = reprlib.Repr()
_shown.maxstring = _shown.maxother = 40


class UnawaitedCalls:
    """What one test left un-awaited: framework calls it made, coroutines Python warned about."""

    def __init__(self, *, warnings_fail: bool) -> None:
        self.warnings_fail = warnings_fail
        self.handed_out: list[tuple[CoroutineType, str]] = []
        self.warned: list[str] = []

    def remember(self, coroutine: CoroutineType, call: str, caller: FrameType | None) -> None:
        """Keep ``coroutine`` and where it was asked for, until the test's check."""
        self.handed_out.append((coroutine, f"{call} at {_where(caller)}"))
        if len(self.handed_out) >= PRUNE_AT:
            self.handed_out = [entry for entry in self.handed_out if _never_started(entry[0])]

    def problems(self) -> list[str]:
        """Describe each un-awaited call; close those coroutines so Python will not warn too."""
        found = []
        for coroutine, call in self.handed_out:
            if _never_started(coroutine):
                coroutine.close()
                found.append(call)
        self.handed_out.clear()
        found.extend(self.warned)
        self.warned.clear()
        return found

    def check(self, test) -> None:
        """Fail ``test`` if it left anything un-awaited (a cleanup: it runs after teardown)."""
        found = self.problems()
        if found:
            test.fail(f"{len(found)} coroutine(s) were never awaited, so they never ran "
                      "and checked nothing:\n" + "\n".join(f"  {line}" for line in found)
                      + "\nput 'await' before each call (in a synchronous test: "
                      "self.run_async(...))")

    def _unraisable(self, previous: Callable, report) -> None:
        """Collect the 'never awaited' error the filter made; hand anything else on."""
        if (isinstance(report.exc_value, RuntimeWarning) and inspect.iscoroutine(report.object)
                and "was never awaited" in str(report.exc_value)):
            self.warned.append(f"{report.object.__qualname__}(...) dropped without await at "
                               f"{_where(sys._getframe(1))}")
        else:
            previous(report)


_active: UnawaitedCalls | None = None


@contextlib.contextmanager
def watching(calls: UnawaitedCalls) -> Iterator[UnawaitedCalls]:
    """Make ``calls`` the running test's record; restore everything on the way out."""
    global _active
    outer, _active = _active, calls
    try:
        if not calls.warnings_fail:
            yield calls
            return
        previous = sys.unraisablehook
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=NEVER_AWAITED, category=RuntimeWarning)
            sys.unraisablehook = functools.partial(calls._unraisable, previous)
            try:
                yield calls
            finally:
                sys.unraisablehook = previous
    finally:
        _active = outer


def must_be_awaited(function: Callable) -> Callable:
    """Wrap an ``async def`` so a test that never awaits its coroutine fails, naming the call."""
    @functools.wraps(function)
    def remembered(*args: Any, **kwargs: Any) -> CoroutineType:
        coroutine = function(*args, **kwargs)
        if _active is not None:
            _active.remember(coroutine, _call(function.__name__, args[1:], kwargs),
                             sys._getframe(1))
        return coroutine

    if hasattr(inspect, "markcoroutinefunction"):  # Python 3.12+: still looks async
        inspect.markcoroutinefunction(remembered)
    return remembered


def _never_started(coroutine: CoroutineType) -> bool:
    return inspect.getcoroutinestate(coroutine) == inspect.CORO_CREATED


def _call(name: str, args: tuple, kwargs: dict) -> str:
    shown = [_shown.repr(value) for value in args]
    shown += [f"{key}={_shown.repr(value)}" for key, value in kwargs.items()]
    return f"{name}({', '.join(shown)})"


def _where(frame: FrameType | None) -> str:
    """``file:line: source`` of a frame, or '(unknown line)'."""
    if frame is None:
        return "(unknown line)"
    filename, line = frame.f_code.co_filename, frame.f_lineno
    source = linecache.getline(filename, line).strip()
    return f"{filename}:{line}" + (f": {source}" if source else "")
