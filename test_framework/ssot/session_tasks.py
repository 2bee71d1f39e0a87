"""Which task may use rollback isolation's one connection, and when: turns.

All of a test's sessions share one connection in rollback isolation, so two
tasks running statements in turns would interleave their sessions'
savepoints. So a task *holds* the connection from its session's first
statement (the ``SAVEPOINT`` that begins it) until that session commits,
rolls back or closes, and every other task that wants the connection then
waits for its turn, first come first served: ``asyncio.gather`` of three
service calls, each opening its own session, runs them one session after
another, as a database would serialise three transactions on one row.

Handing work to a task and waiting for it does not wait: a task may use the
connection while a task it descends from (started by it, directly or not)
holds it, since that one is presumably waiting for it
(``await asyncio.create_task(app())``, ``asyncio.wait_for``, a TaskGroup).
A session a finished task left open blocks nobody.

A wait is bounded by ``lock_timeout``: a holder that waits for the waiter
(a deadlock no one can break) fails the waiter with an error naming both
tasks and the line each is waiting on, never a hang. One session used by two
tasks at the same moment fails at once, naming both: a session is not safe to
share between concurrent tasks.

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
from typing import Any, Callable, Iterable, NamedTuple

from test_framework.errors import ConcurrentSessionsError
from test_framework.ssot.call_sites import call_sites, task_call_site

_LINEAGE: contextvars.ContextVar[tuple] = contextvars.ContextVar("test_framework_tasks",
                                                                default=())
_ONE_CONNECTION = ("In rollback isolation every session is a savepoint on the test's one "
                   "connection, so sessions of different tasks take turns on it")


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

    def live(self) -> bool:
        return self.task is not None and not self.task.done()


class Holder(NamedTuple):
    """A task holding the connection through an open session (``None``: entering one)."""

    task: SessionTask
    session: Any
    label: str


class ConnectionTurns:
    """The queue of tasks waiting for the one connection (module docstring).

    ``holders`` is called whenever the answer is needed: it yields each open
    session's task, session and label, as ``SharedSavepoints`` knows them.
    """

    def __init__(self, holders: Callable[[], Iterable[Holder]], *, bound: float) -> None:
        self.holders = holders
        self.bound = bound  # seconds a task may wait for its turn
        self.entering: dict[asyncio.Task, SessionTask] = {}  # granted, savepoint not yet made
        self.waiters: list[asyncio.Future] = []

    def take(self, *, session: Any, opening: bool, wait: Callable) -> None:
        """Return when the running task may send a statement, waiting its turn if need be.

        ``session``: the session running the statement (None: none of the
        test's); ``opening``: the statement begins a session's savepoint;
        ``wait``: runs a coroutine from the sync code SQLAlchemy calls us in.
        """
        me = SessionTask.current()
        blocking = self.blocking(me)
        if blocking:
            shared = next((holder for holder in blocking if holder.session is session
                           and session is not None), None)
            if shared is not None:
                raise ConcurrentSessionsError(shared_session(me, shared))
            wait(self._wait(me))
        if opening and me.task is not None \
                and not any(holder.task.task is me.task for holder in self.holders()):
            self.entering[me.task] = me  # holds from now; its savepoint is on the way

    def changed(self) -> None:
        """A session began, ended or failed to begin: whoever waits looks again, in order."""
        task = asyncio.current_task()
        if task is not None:
            self.entering.pop(task, None)  # its session holds by its savepoint now, if at all
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def blocking(self, me: SessionTask) -> list[Holder]:
        """The holders the running task must wait for: live, not itself, not its ancestors."""
        entering = [Holder(task, None, "a session it is opening")
                    for task in self.entering.values()]
        return [holder for holder in [*self.holders(), *entering]
                if holder.task.live() and holder.task.task is not me.task
                and not me.descends_from(holder.task.task)]

    async def _wait(self, me: SessionTask) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.bound
        while blocking := self.blocking(me):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ConcurrentSessionsError(_timed_out(me, blocking[0], self.bound))
            turn = loop.create_future()
            self.waiters.append(turn)
            try:
                await asyncio.wait([turn, *(holder.task.task for holder in blocking)],
                                   timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if turn in self.waiters:
                    self.waiters.remove(turn)


def _where(task: SessionTask) -> str:
    site = task_call_site(task.task) if task.live() else None
    return f"waits at {site}" if site else "is not waiting in your code"


def _timed_out(me: SessionTask, holder: Holder, bound: float) -> str:
    here = call_sites(1)
    started = (f"task {holder.task.name()}, which it started," if holder.task.descends_from(
        me.task) else f"task {holder.task.name()}") if me.task is not None else "another task"
    return (f"task {me.name()} waited lock_timeout ({bound:g}s) for the test's connection, "
            f"held by {started} with {holder.label} open. Task {holder.task.name()} "
            f"{_where(holder.task)}; task {me.name()} waits at "
            f"{here[0] if here else 'a statement outside your code'}. {_ONE_CONNECTION}: a "
            "session holds it from its first statement until it commits, rolls back or "
            "closes. If the holder waits for the waiter, neither can go on: end the first "
            "session before waiting, or give this test class isolation = 'commit', which gives "
            "each session its own connection (raise TEST_FRAMEWORK_LOCK_TIMEOUT if the holder "
            "is merely slow)")


def shared_session(me: SessionTask, holder: Holder) -> str:
    return used_by_two_tasks(holder.label, holder.task.name(), me.name())


def used_by_two_tasks(label: str, first: str, second: str) -> str:
    """Why a session (``label``) may not serve two tasks at once, ``first`` and ``second``."""
    return (f"two tasks use {label} at once: task {first} and task "
            f"{second}. A session runs one statement at a time and is not safe to share "
            "between concurrent tasks: give each task its own session from "
            "self.session_factory (in rollback isolation they then take turns on the test's "
            "connection), or await one task before the other uses the session")
