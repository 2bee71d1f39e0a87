"""Keep what a failed test saw (``TEST_FRAMEWORK_KEEP_FAILED=1``), and say where at the end.

How teardown knows the test failed: ``FailureWatch`` stands in for the
runner's result while the test runs (``SSotBaseTestCase.run``) and notes
every error, failure and failed subtest reported for it. Since Python 3.11
unittest reports each as it happens, so by ``asyncTearDown`` (or the cleanup
that releases the test's sessions) the test body's failure is known. This is
the one place that knows it; unittest's own record (``_outcome``) is private.

The copy itself is ``provision/kept_states.py``; the isolation mode hands it
the connection that sees the test's rows (``ssot/isolation/rollback.py``). When the
process ends, every kept state is listed on stderr with the test's id and
where to open it (a masked URL, or the SQLite file's path), because a person
must find it whether or not logging is configured.
"""

from __future__ import annotations

import atexit
import os
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from test_framework.log import get_logger, mask_url
from test_framework.provision.kept_states import keep_state

logger = get_logger(__name__)
FAILURE_REPORTS = frozenset({"addError", "addFailure", "addSubTest"})  # the error comes last


class FailureWatch:
    """The runner's result, passed through, noting whether the test failed."""

    def __init__(self, result: Any) -> None:
        self._result = result
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._result, name)  # a result without it stays without it
        if name not in FAILURE_REPORTS:
            return attribute

        def noting(test, *args):
            if args and args[-1] is not None:  # a subtest that passed reports None
                self.failed = True
            return attribute(test, *args)
        return noting


@dataclass(frozen=True)
class KeptState:
    """Where a failed test's state was kept, or why it could not be."""

    test_id: str
    where: str | None  # what the report shows: a masked URL, or a SQLite file's path
    not_kept: str | None = None
    url: URL | None = field(default=None, repr=False)


_kept: list[KeptState] = []
_report_pid: int | None = None


def keeper(test_id: str, resources) -> Any:
    """Return the step that copies ``test_id``'s state, for the isolation mode's ``end_test``.

    ``resources`` is the class's ``ClassResources``. The step never raises:
    it returns False when the copy failed and ``final`` is False (the caller
    may make the transaction readable and ask again); otherwise a failure is
    logged and listed at the end, and the test's own failure stands.
    """
    database, backend = resources.database, resources.backend
    reason = None
    if not backend.is_persistent(database.url):
        reason = "an in-memory SQLite database cannot be kept; use a file URL"
    elif database.search_path is not None:
        reason = ("the role may not create databases (the run works in a schema of its "
                  "own); keeping a failed test's state needs CREATEDB")

    async def keep(connection: AsyncConnection, *, final: bool = True) -> bool:
        if reason is not None:
            _remember(KeptState(test_id, None, reason))
            return True
        try:
            url = await keep_state(backend, resources.schema, connection, test_id=test_id)
        except Exception as exc:
            if not final:
                return False
            logger.warning("could not keep the state %s saw: %s: %s", test_id,
                           type(exc).__name__, exc)
            _remember(KeptState(test_id, None, f"{type(exc).__name__}: {exc}"))
            return True
        where = url.database if backend.name == "sqlite" else mask_url(url)
        _remember(KeptState(test_id, where, url=url))
        return True
    return keep


def kept_states() -> list[KeptState]:
    """What this process kept so far (or failed to), in order."""
    return list(_kept)


def forget_kept(state: KeptState) -> None:
    """Leave ``state`` out of the report at exit (its database was dropped)."""
    if state in _kept:
        _kept.remove(state)


def _remember(state: KeptState) -> None:
    global _report_pid
    _kept.append(state)
    if _report_pid != os.getpid():
        _report_pid = os.getpid()
        atexit.register(report_kept_states)


def report_kept_states(stream: TextIO | None = None) -> None:
    """Write the kept states: the test's id and where to open what it saw."""
    if not _kept or _report_pid != os.getpid():
        return
    stream = stream or sys.stderr
    kept = [state for state in _kept if state.where is not None]
    lines = [f"test_framework kept the database state of {len(kept)} failed test(s) "
             "(TEST_FRAMEWORK_KEEP_FAILED):"]
    lines += [f"  {state.test_id}: {state.where}" for state in kept]
    lines += [f"  {state.test_id}: not kept: {state.not_kept}"
              for state in _kept if state.where is None]
    if kept:
        lines.append("List them with: python -m test_framework databases list; remove them "
                     "with: python -m test_framework databases drop --kept-failed")
    stream.write("\n".join(lines) + "\n")
    stream.flush()
