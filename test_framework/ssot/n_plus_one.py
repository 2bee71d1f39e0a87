"""The N+1 detector: how often each statement shape ran, and where it first came from.

A *call site* is the innermost frame of the user's code that led to a
statement: frames of test_framework, the standard library and installed
packages (SQLAlchemy, drivers, runners) are skipped, and the walk crosses
from the greenlet SQLAlchemy runs sync code in to the coroutine that awaited
it, so ``await book.awaitable_attrs.author`` is found in the test itself.
The stack is walked only the first time a counter sees a shape, so a test
that repeats a statement pays for one walk, not one per statement.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import linecache
import os
import sysconfig
import unittest
import warnings
from dataclasses import dataclass
from pathlib import Path

from test_framework.config import Setting

try:  # SQLAlchemy's asyncio extension needs greenlet; without it there is nothing to cross
    import greenlet
except ImportError:  # pragma: no cover
    greenlet = None

__unittest = True  # an N+1 failure points at the test, not at this module

# Where every task's frames begin. A private name, compared only: if a Python lacks it, the
# walk goes on to the end of the stack and may name a frame of the runner's caller as well.
EVENT_LOOP_STEP = getattr(getattr(asyncio.Handle, "_run", None), "__code__", None)


@dataclass(frozen=True)
class CallSite:
    """One frame of the user's code: file, line and function."""

    filename: str
    lineno: int
    function: str

    def __str__(self) -> str:
        source = linecache.getline(self.filename, self.lineno).strip()
        where = f"{shown_path(self.filename)}:{self.lineno} in {self.function}"
        return f"{where}: {source}" if source else where


def call_sites(limit: int = 3) -> tuple[CallSite, ...]:
    """Return up to ``limit`` frames of the user's code on the stack, innermost first."""
    found: list[CallSite] = []
    for frame in _frames(inspect.currentframe()):
        code = frame.f_code
        if _is_user_file(code.co_filename):
            found.append(CallSite(code.co_filename, frame.f_lineno, code.co_name))
            if len(found) == limit:
                break
    return tuple(found)


def _frames(frame):
    """Yield frames outwards, continuing in the greenlet (and coroutine) that started this one.

    The walk ends at the event loop that runs the task: what called the loop
    (the runner, or a test running a suite) did not send the statement.
    """
    current = greenlet.getcurrent() if greenlet is not None else None
    while True:
        while frame is not None and frame.f_code is not EVENT_LOOP_STEP:
            yield frame
            frame = frame.f_back
        if frame is not None:
            return
        current = getattr(current, "parent", None)
        if current is None:
            return
        frame = current.gr_frame


LIBRARY_FOLDERS = tuple(sorted({os.path.join(os.path.realpath(folder), "")
                                for name, folder in sysconfig.get_paths().items()
                                if name in ("stdlib", "platstdlib", "purelib", "platlib")}))
FRAMEWORK_FOLDER = os.path.join(str(Path(__file__).resolve().parents[1]), "")


@functools.lru_cache(maxsize=4096)
def _is_user_file(filename: str) -> bool:
    """Not generated code, the standard library, an installed package or test_framework."""
    if filename.startswith("<"):
        return False
    path = os.path.join(os.path.realpath(filename), "")
    return not path.startswith(LIBRARY_FOLDERS + (FRAMEWORK_FOLDER,))


def shown_path(filename: str) -> str:
    """The path relative to the working directory when under it, else as it is."""
    try:
        return os.path.relpath(filename) if Path(filename).resolve().is_relative_to(
            Path.cwd()) else filename
    except (OSError, ValueError):
        return filename


@dataclass(frozen=True)
class Repeat:
    """A shape that ran more often than allowed, with the sites of its first run."""

    shape: str
    count: int
    sites: tuple[CallSite, ...]

    def describe(self) -> str:
        first = ("\n     first from " + "\n       called from ".join(map(str, self.sites))
                 if self.sites else "\n     (no frame of your code was on the stack)")
        return f"  {self.count} x {self.shape}{first}"


class ShapeCounter:
    """How often each shape ran, and the call sites of its first run."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.sites: dict[str, tuple[CallSite, ...]] = {}

    def add(self, shape: str, sites: tuple[CallSite, ...] | None) -> tuple[CallSite, ...] | None:
        """Count ``shape``; return the call sites, found now if this is its first run."""
        count = self.counts.get(shape)
        if count is None:
            if sites is None:
                sites = call_sites()
            self.sites[shape] = sites
            self.counts[shape] = 1
        else:
            self.counts[shape] = count + 1
        return sites

    def repeats(self, threshold: int) -> list[Repeat]:
        """The shapes that ran more than ``threshold`` times, most frequent first."""
        over = [Repeat(shape, count, self.sites[shape])
                for shape, count in self.counts.items() if count > threshold]
        return sorted(over, key=lambda repeat: -repeat.count)


class NPlusOneWarning(UserWarning):
    """One statement shape ran more than ``n_plus_one_threshold`` times in a test."""


def describe_repeats(repeats: list[Repeat], *, where: str, threshold: Setting,
                     intended: str) -> str:
    """The N+1 report: each shape, its count, its first call site, and what to do."""
    shapes = "shape" if len(repeats) == 1 else "shapes"
    listed = "\n".join(repeat.describe() for repeat in repeats)
    return (f"N+1 queries in {where}: {len(repeats)} statement {shapes} ran more than "
            f"{threshold.value} times (the threshold, from {threshold.source}):\n{listed}\n"
            "Load the related rows with the query that fetched the parents (selectinload "
            f"or joinedload), or fetch the whole set in one query. {intended}")


def report_repeats(test: unittest.TestCase, counter: ShapeCounter, *, policy: Setting,
                   threshold: Setting) -> None:
    """At the end of a test: warn, or fail it, for each reading shape that ran too often.

    The warning is issued at the first call site, so every runner prints the
    line of the user's code that sent the statement, not a line of ours.
    """
    repeats = counter.repeats(threshold.value)
    if not repeats:
        return
    message = describe_repeats(
        repeats, where=test.id(), threshold=threshold,
        intended=f"If the repetition is intended, raise n_plus_one_threshold, or set "
                 f"n_plus_one = 'ignore' on the class (n_plus_one is {policy.value!r}, "
                 f"from {policy.source})")
    if policy.value == "error":
        test.fail(message)
    sites = repeats[0].sites
    if sites:
        warnings.warn_explicit(message, NPlusOneWarning, sites[0].filename, sites[0].lineno)
    else:
        warnings.warn(message, NPlusOneWarning, stacklevel=2)
