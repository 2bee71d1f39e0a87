"""Query snapshots: the statements a test runs, kept in a file beside it and compared each run.

Opt in per class (``query_snapshots = True``) or per test (``@query_snapshot``).
What the test method runs is recorded: not its ``setUp``, not the
framework's own queries, no transaction bookkeeping. Each statement is
reduced to its shape (``ssot/query_shapes.py``: literals and parameters
``?``, ``IN`` lists and multi-row ``VALUES`` collapsed), and the file lists
each shape once, sorted, with how many times it ran. So neither the rows a
test happens to create nor the order statements ran in (lazy loads follow
the identity map) changes the file; a new statement, a lost one, or a shape
that now runs more often (an N+1) does.

The file is ``__query_snapshots__/<module>.<Class>.<test>.<backend>.sql`` in
the folder of the test module (one per backend: SQLAlchemy writes different
SQL for each). A missing file is written and the test passes with a
``QuerySnapshotWritten`` warning; a different one fails the test with a
diff. ``TEST_FRAMEWORK_UPDATE_SNAPSHOTS=1`` rewrites the files that differ.
A test that fails or raises records nothing.
"""

from __future__ import annotations

import collections
import difflib
import functools
import inspect
import os
import re
import sys
import unittest
import warnings
from pathlib import Path
from typing import Callable

from test_framework.config import ClassSettings, class_folder, project_settings
from test_framework.errors import TestFrameworkError
from test_framework.ssot.n_plus_one import shown_path

__unittest = True  # a snapshot failure points at the test, not at this module

FOLDER = "__query_snapshots__"
MARK = "_ssot_query_snapshot"
UPDATE_ENV = "TEST_FRAMEWORK_UPDATE_SNAPSHOTS"
UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class QuerySnapshotWritten(UserWarning):
    """A query snapshot was written (first run) or rewritten (TEST_FRAMEWORK_UPDATE_SNAPSHOTS)."""


def query_snapshot(test_method: Callable) -> Callable:
    """Decorate one test method: compare the statements it runs with its snapshot file."""
    return _recording(test_method, getattr(test_method, "__name__", None), always=True)


def snapshot_test_methods(test_class: type) -> None:
    """Record every test of a class with ``query_snapshots = True`` (inherited ones too)."""
    for name in unittest.TestLoader().getTestCaseNames(test_class):
        method = getattr(test_class, name)
        if not getattr(method, MARK, False):
            setattr(test_class, name, _recording(method, name, always=False))


def _recording(method: Callable, name: str | None, *, always: bool) -> Callable:
    """Wrap ``method`` so it runs inside a capture, then checks its snapshot.

    A wrapper made for ``query_snapshots = True`` asks the class at run time,
    so a subclass that sets it back to False records nothing.
    """
    if not inspect.isfunction(method) or not name:
        raise TestFrameworkError(
            f"@query_snapshot decorates a test method (def test_...), not {method!r}; put it "
            "directly above the method, below other decorators")

    def wanted(test) -> bool:
        return always or ClassSettings(type(test)).query_snapshots.value

    if inspect.iscoroutinefunction(method):
        @functools.wraps(method)
        async def recorded(self, *args, **kwargs):
            if not wanted(self):
                return await method(self, *args, **kwargs)
            with self.capture_queries() as queries:
                result = await method(self, *args, **kwargs)
            check_snapshot(self, method, name, queries.shapes)
            return result
    else:
        @functools.wraps(method)
        def recorded(self, *args, **kwargs):
            if not wanted(self):
                return method(self, *args, **kwargs)
            with self.capture_queries() as queries:
                result = method(self, *args, **kwargs)
            check_snapshot(self, method, name, queries.shapes)
            return result
    setattr(recorded, MARK, True)
    return recorded


def snapshot_path(test_class: type, name: str, backend: str) -> Path:
    """Where the snapshot of ``test_class.name`` on ``backend`` lives."""
    module = sys.modules.get(test_class.__module__)
    stem = Path(module.__file__).stem if getattr(module, "__file__", None) \
        else test_class.__module__.rpartition(".")[2]
    file_name = UNSAFE.sub("_", f"{stem}.{test_class.__qualname__}.{name}.{backend}") + ".sql"
    return class_folder(test_class) / FOLDER / file_name


def snapshot_lines(shapes: list[str]) -> list[str]:
    """One line per shape, sorted, with how many times it ran: order does not matter."""
    counts = collections.Counter(shapes)
    return [f"{counts[shape]} x {shape}" for shape in sorted(counts)]


def check_snapshot(test: unittest.TestCase, method: Callable, name: str,
                   shapes: list[str]) -> None:
    """Write a missing snapshot, rewrite a changed one on request, else fail with a diff."""
    backend = test.engine.dialect.name
    path = snapshot_path(type(test), name, backend)
    lines = snapshot_lines(shapes)
    stored = _read(path)
    if stored == lines:
        return
    if stored is None or project_settings().update_snapshots.value:
        _write(path, lines, f"{test.id()} on {backend}")
        done = "wrote" if stored is None else "rewrote"
        warnings.warn_explicit(
            f"{test.id()}: {done} its query snapshot {shown_path(str(path))} ({len(lines)} "
            f"statement shape(s)); commit it", QuerySnapshotWritten,
            inspect.getsourcefile(method) or "<unknown>", method.__code__.co_firstlineno)
        return
    diff = "\n".join(difflib.unified_diff(stored, lines, "snapshot", "this run", lineterm=""))
    test.fail(f"the queries of {test.id()} differ from its snapshot "
              f"{shown_path(str(path))}:\n{diff}\nIf the new queries are right, rewrite the "
              f"snapshot: run the test again with {UPDATE_ENV}=1, and commit the file")


def _read(path: Path) -> list[str] | None:
    """The shape lines of a snapshot file (comments and blank lines left out), or None."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return [line for line in text.splitlines() if line.strip() and not line.startswith("--")]


def _write(path: Path, lines: list[str], what: str) -> None:
    """Write atomically, so parallel workers writing the same snapshot never mix lines."""
    header = [f"-- Query snapshot of {what}, written by test_framework.",
              "-- One line per statement shape (literals and parameters as ?), sorted, with",
              "-- how many times it ran; the order statements ran in does not matter.",
              f"-- {UPDATE_ENV}=1 rewrites this file when the queries change."]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text("\n".join(header + lines) + "\n", encoding="utf-8")
    os.replace(temporary, path)
