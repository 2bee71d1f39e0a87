"""Awaiting from the sync code async SQLAlchemy runs in its greenlets.

Event listeners, dialect hooks and ``run_sync`` functions are plain
functions, yet some must wait on the event loop (a lock, a signal, a turn on
the connection). SQLAlchemy's bridge does that; its name changed in 2.1.
"""

from __future__ import annotations

from typing import Any, Awaitable


def await_from_sync(awaitable: Awaitable) -> Any:
    """Await ``awaitable`` from sync code inside SQLAlchemy's ``greenlet_spawn``."""
    from sqlalchemy import util
    return (getattr(util, "await_", None) or util.await_only)(awaitable)
