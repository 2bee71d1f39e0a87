"""The test's sessions: made with the class's options, remembered so teardown can
close them, and in rollback isolation kept from undoing each other's work.

Every session a class makes (``self.session``, the class-data helper's, those of
``self.session_factory``) gets ``session_options``: ``DEFAULT_SESSION_OPTIONS``
updated with the class attribute. ``expire_on_commit`` is off by default, so a
test reads objects after a commit without an ``await``; a class whose app's own
sessions expire on commit should say so, or its tests pass where the app fails.
The isolation mode sets ``bind`` and ``join_transaction_mode``; nothing else is
the framework's.

In rollback isolation the sessions share one connection, each a savepoint:
``shared_savepoints.py`` decides what each one's commit, rollback or close
sends, so sessions may open and close in any order; ``session_tasks.py`` which
task may use them when.
"""

from __future__ import annotations

import difflib
import inspect
import os
import sys
from collections.abc import Mapping
from typing import Any

import sqlalchemy
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from test_framework.config import Timeouts
from test_framework.errors import ConfigurationError
from test_framework.ssot.session_tasks import ConcurrentSessionsError
from test_framework.ssot.savepoint_hooks import share_savepoints
from test_framework.ssot.shared_savepoints import (LABEL_KEY, RollbackConflictError,
                                                   SharedSavepoints)

__all__ = ["ConcurrentSessionsError", "DEFAULT_SESSION_OPTIONS", "RecordingSessionmaker",
           "RollbackConflictError", "session_options", "share_savepoints"]

DEFAULT_SESSION_OPTIONS: Mapping[str, Any] = {"expire_on_commit": False}
FRAMEWORK_OPTIONS = ("bind", "binds", "join_transaction_mode")  # the isolation mode's
SESSION_OPTIONS = sorted((set(inspect.signature(Session.__init__).parameters) - {"self"}
                          | {"class_", "sync_session_class"}) - set(FRAMEWORK_OPTIONS))
_NOT_CALLERS = (os.path.dirname(sqlalchemy.__file__),
                os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def session_options(value: Any, *, where: str) -> dict[str, Any]:
    """Return what every session of a class gets: the defaults updated with ``value``.

    ``where`` names the setting in errors ("TestX.session_options (class attribute)").
    """
    if value is None:
        return dict(DEFAULT_SESSION_OPTIONS)
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{where} is {value!r}; use a dict of AsyncSession options, "
                                 "such as {'expire_on_commit': True}")
    for name in value:
        if name in FRAMEWORK_OPTIONS:
            raise ConfigurationError(
                f"{where} sets {name!r}; the isolation mode sets it (which connection each "
                "session uses and how it joins the test's transaction): leave it out")
        if name not in SESSION_OPTIONS:
            close = difflib.get_close_matches(str(name), SESSION_OPTIONS, n=1)
            raise ConfigurationError(
                f"{where} has {name!r}, not an AsyncSession option; "
                + (f"did you mean {close[0]!r}? " if close else "")
                + f"the options are {SESSION_OPTIONS}")
    return {**DEFAULT_SESSION_OPTIONS, **value}


class RecordingSessionmaker(async_sessionmaker):
    """An ``async_sessionmaker`` that remembers its sessions so teardown can close them.

    ``shared``: ``bind`` is rollback isolation's one connection, and the
    sessions' savepoints go through a ``SharedSavepoints`` on it.
    """

    def __init__(self, bind, *, shared: bool = False, turn_bound: float = Timeouts.lock,
                 base: str | None = None, aborts: bool = True, **options) -> None:
        super().__init__(bind, **options)
        self.sessions: list[AsyncSession] = []
        self.savepoints = (SharedSavepoints(bind.sync_connection, turn_bound=turn_bound,
                                            base=base, aborts=aborts) if shared else None)

    def __call__(self, **local_kw) -> AsyncSession:
        return self.labelled(None, **local_kw)

    def labelled(self, label: str | None, **local_kw) -> AsyncSession:
        """Make a session named ``label`` in errors; ``None``: by the line that asked for it
        (a walk up the stack, which the framework's own sessions skip)."""
        session = super().__call__(**local_kw)
        session.sync_session.info[LABEL_KEY] = label or f"the session made in {_call_site()}"
        if self.savepoints is not None:
            self.savepoints.watch(session.sync_session)
        self.sessions.append(session)
        return session

    async def close_all(self, *, keep: AsyncSession | None = None, undone: bool = False) -> None:
        """Close every session made here (but ``keep``), newest first; raise the first failure.

        ``undone``: the test's transaction is being undone anyway, so the
        sessions' savepoints end without a word to the server, in any order.
        """
        if self.savepoints is not None:
            self.savepoints.discarding = undone
        failure = None
        for session in reversed(list(self.sessions)):
            if session is not keep:
                self.sessions.remove(session)
                try:
                    if session.in_transaction():
                        await session.close()
                    elif session.identity_map:  # nothing to end: no SQL, no greenlet needed
                        session.sync_session.close()
                except Exception as exc:
                    failure = failure or exc
        if keep is None:
            self.forget()
        if failure is not None:
            raise failure

    def forget(self) -> None:
        """Drop the sessions unclosed (their connection is gone) and what was kept of them."""
        self.sessions.clear()
        if self.savepoints is not None:
            self.savepoints.detach()


def _call_site() -> str:
    """Where the code that asked for a session is: the first frame outside SQLAlchemy and us."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_NOT_CALLERS):
        frame = frame.f_back
    if frame is None:
        return "an unknown place"
    path = os.path.relpath(frame.f_code.co_filename)
    if path.startswith(".."):
        path = frame.f_code.co_filename
    return f"{frame.f_code.co_name}() at {path}:{frame.f_lineno}"
