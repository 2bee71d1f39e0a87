"""The test's session factory: sessions are remembered (teardown closes them) and, on
a shared rollback-mode connection, used by one task at a time.

In rollback mode every session joins one connection through savepoints.
Savepoints nest: when two tasks run sessions at once, one task's RELEASE or
ROLLBACK TO also ends the other's savepoint, and the driver then reports a
savepoint that "does not exist". We catch the overlap when the second
task's session begins and say what to do instead.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from test_framework.errors import TestFrameworkError

TASK_KEY = "test_framework_task"


class ConcurrentSessionsError(TestFrameworkError):
    """Two tasks used sessions on the one rollback-mode connection at the same time."""


class RecordingSessionmaker(async_sessionmaker):
    """An ``async_sessionmaker`` that remembers its sessions so teardown can close them."""

    def __init__(self, *args, one_task_at_a_time: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: list[AsyncSession] = []
        self.one_task_at_a_time = one_task_at_a_time

    def __call__(self, **local_kw) -> AsyncSession:
        session = super().__call__(**local_kw)
        if self.one_task_at_a_time:
            event.listen(session.sync_session, "after_begin", self._check_one_task)
            event.listen(session.sync_session, "after_transaction_end", _forget_task)
        self.sessions.append(session)
        return session

    async def close_all(self, *, keep: AsyncSession | None = None) -> None:
        """Close every session made here (but ``keep``), newest first."""
        for session in reversed(list(self.sessions)):
            if session is not keep:
                self.sessions.remove(session)
                await session.close()

    def _check_one_task(self, session, transaction, connection) -> None:
        task = asyncio.current_task()
        session.info[TASK_KEY] = task
        for other in self.sessions:
            other_task = other.sync_session.info.get(TASK_KEY)
            if other_task not in (None, task) and not other_task.done():
                raise ConcurrentSessionsError(
                    f"two tasks use sessions at once ({_name(other_task)} and {_name(task)}), "
                    "but in rollback isolation every session shares one connection and "
                    "their savepoints would interleave. Give this test class "
                    "isolation = 'commit', which gives each session its own connection")


def _forget_task(session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(TASK_KEY, None)


def _name(task: asyncio.Task | None) -> str:
    return task.get_name() if task is not None else "no task"
