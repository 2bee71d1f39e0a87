"""What every isolation mode does, step by step: the protocol the test lifecycle calls.

A mode is made once per test class (open class: the class's engine, its
backend and its ``IsolationSettings``), then each test goes through
``begin_test`` and ``end_test``, and the class ends with ``close`` (or
``abandon``, after Ctrl-C or a server that stopped answering). Capability
flags, not mode names, tell the rest of the framework what a mode needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from test_framework.ssot.async_test_helpers import AsyncTestDatabase
from test_framework.ssot.sessions import DEFAULT_SESSION_OPTIONS, RecordingSessionmaker

# Copies the state a failed test saw, read on the connection given (ssot/kept_failures.py);
# False when it could not and may be asked again (``final=False``).
KeepState = Callable[..., Awaitable[bool]]


@dataclass(frozen=True)
class IsolationSettings:
    """What a test class asks of its mode; read from the class by ``class_resources.py``."""

    metadata: MetaData | None = None
    leftover_rows: str = "warn"
    class_data: Callable[..., Awaitable[None]] | None = None  # asyncSetUpTestData
    session_options: Mapping[str, Any] = field(
        default_factory=lambda: dict(DEFAULT_SESSION_OPTIONS))
    reset_sequences: bool = False
    check_deferred_constraints: bool = True


@dataclass
class TestSessions:
    """What one test gets: a session, a factory for more, the helper, and what undoes them."""

    __test__ = False

    session_factory: RecordingSessionmaker
    db: AsyncTestDatabase

    @property
    def session(self) -> AsyncSession:
        """``self.session``: the helper's, made on first use where the mode allows."""
        return self.db.session


class Isolation:
    """One way of keeping a class's tests apart. Subclasses implement the four steps."""

    name: str = ""
    private_database = False  # the class needs a database of its own
    supports_class_data = False  # asyncSetUpTestData can run once for the class
    holds_one_connection = False  # every session of a test shares one connection

    def __init__(self, engine: AsyncEngine, *, backend=None,
                 settings: IsolationSettings = IsolationSettings()) -> None:
        self.engine = engine
        self.backend = backend
        self.settings = settings

    @classmethod
    def check_settings(cls, settings: IsolationSettings) -> None:
        """Raise ``ConfigurationError`` for a setting the mode cannot use, before any server
        work (a class that never uses its database still hears of a typo)."""

    async def begin_test(self, **helper_options) -> TestSessions:
        """Give a test its sessions; ``helper_options`` go to its ``AsyncTestDatabase``."""
        raise NotImplementedError

    async def end_test(self, sessions: TestSessions, *, keep: KeepState | None = None) -> None:
        """Undo the test's work (``keep`` first copies what a failed test saw)."""
        raise NotImplementedError

    async def close(self, *, bound: float | None = None, occasion: str = "") -> None:
        """Release what the class holds, within ``bound`` seconds."""

    def abandon(self, why: str) -> None:
        """Drop what the class holds without waiting on the server; report it."""
