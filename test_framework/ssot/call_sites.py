"""Call sites: the innermost frames of the user's code behind a statement or a wait.

Frames of test_framework, the standard library and installed packages
(SQLAlchemy, drivers, runners) are skipped, and the walk crosses from the
greenlet SQLAlchemy runs sync code in to the coroutine that awaited it, so
``await book.awaitable_attrs.author`` is found in the test itself. A task
that is suspended is described by the frames its coroutines wait in.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import linecache
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

try:  # SQLAlchemy's asyncio extension needs greenlet; without it there is nothing to cross
    import greenlet
except ImportError:  # pragma: no cover
    greenlet = None

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
    """Return up to ``limit`` frames of the user's code on the stack, innermost first.

    The walk goes outwards, continuing in the greenlet (and coroutine) that
    started this one, and ends at the event loop that runs the task: what
    called the loop (the runner, or a test running a suite) did not send the
    statement. One loop, not a generator: it runs for every statement the
    N+1 detector sees, and a generator costs a resumption per frame.
    """
    found: list[CallSite] = []
    frame = inspect.currentframe()
    current = greenlet.getcurrent() if greenlet is not None else None
    while True:
        while frame is not None and frame.f_code is not EVENT_LOOP_STEP:
            code = frame.f_code
            if _is_user_file(code.co_filename):
                found.append(CallSite(code.co_filename, frame.f_lineno, code.co_name))
                if len(found) == limit:
                    return tuple(found)
            frame = frame.f_back
        current = getattr(current, "parent", None) if frame is None else None
        if current is None:
            return tuple(found)
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


def task_call_site(task: asyncio.Task) -> CallSite | None:
    """Where a suspended task waits: the innermost frame of the user's code in its stack."""
    for frame in reversed(task.get_stack()):
        if _is_user_file(frame.f_code.co_filename):
            return CallSite(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)
    return None
