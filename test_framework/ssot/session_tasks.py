"""Which task may use rollback isolation's one connection, and when.

All of a test's sessions share one connection in rollback isolation, so two
tasks running statements in turns would interleave their sessions' savepoints.
Yet handing work to a task and waiting for it is sequential, and common:
``await asyncio.create_task(app())``, ``asyncio.wait_for`` (a task of its own
before Python 3.12), ``asyncio.gather`` of one coroutine, a TaskGroup with one
child. So a task may run a statement while another task, still running, has a
session open only if it descends from that task (started by it, directly or
not), which is then presumably waiting for it. Anything else raises
``ConcurrentSessionsError`` naming both tasks: two tasks that did not start
each other (two ``gather``-ed writers), or a task that goes on using the
database while one it started still runs with a session open. A session a
finished task left open blocks nobody.

Asyncio records no parent of a task, but a task starts with a copy of its
starter's context: each task adds itself to the lineage it inherited (a
context variable) the first time it makes a session or runs a statement, so
tasks it starts afterwards know their ancestry.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from dataclasses import dataclass
from typing import Iterable

from test_framework.errors import TestFrameworkError

_LINEAGE: contextvars.ContextVar[tuple] = contextvars.ContextVar("test_framework_tasks",
                                                                default=())


class ConcurrentSessionsError(TestFrameworkError):
    """Two tasks used sessions on the one rollback-mode connection at the same time."""


@dataclass(frozen=True, eq=False)
class SessionTask:
    """A task, and the tasks it descends from (weakly: a done task may hold a connection)."""

    task: asyncio.Task | None
    lineage: tuple

    @classmethod
    def current(cls) -> SessionTask:
        """The running task, noted in its lineage for the tasks it starts from now on."""
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no running loop
            task = None
        lineage = _LINEAGE.get()
        if task is not None and not (lineage and lineage[-1]() is task):
            lineage += (weakref.ref(task),)
            _LINEAGE.set(lineage)
        return cls(task, lineage)

    def descends_from(self, task: asyncio.Task) -> bool:
        return any(ancestor() is task for ancestor in self.lineage)

    def name(self) -> str:
        return repr(self.task.get_name()) if self.task is not None else "no task"


def check_overlap(holders: Iterable[tuple[SessionTask, str]]) -> None:
    """Refuse the running task if a task it does not descend from holds a session open.

    ``holders``: the task that began each open session, and the session's name.
    """
    me = SessionTask.current()
    for holder, session in holders:
        other = holder.task
        if other is not None and other is not me.task and not other.done() \
                and not me.descends_from(other):
            raise ConcurrentSessionsError(_overlap(me, holder, session))


def _overlap(me: SessionTask, holder: SessionTask, session: str) -> str:
    if me.task is not None and holder.descends_from(me.task):
        what = (f"task {me.name()} ran a statement while task {holder.name()}, which it "
                f"started, still runs with {session} open")
    else:
        what = (f"two tasks use sessions at once: task {holder.name()} has {session} open "
                f"and task {me.name()} ran a statement")
    return (f"{what}. In rollback isolation every session is a savepoint on the test's one "
            "connection, so their statements would interleave. Let one task finish before the "
            "other uses the database (await it, asyncio.wait_for, asyncio.gather, a "
            "TaskGroup), or give this test class isolation = 'commit', which gives each "
            "session its own connection")
