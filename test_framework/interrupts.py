"""Stop the framework's running statements when the user presses Ctrl-C.

Ctrl-C raises ``KeyboardInterrupt`` on the main thread, but a driver that
runs statements on a worker thread (aiosqlite) keeps going: the statement
never ends, the worker thread is not a daemon, and the process cannot exit.
A backend registers a callback here that stops its statements; the class
event loop calls them when ``KeyboardInterrupt`` leaves a test. This module
knows no backend, so the loop need not either.
"""

from __future__ import annotations

from typing import Callable

from test_framework.log import get_logger

logger = get_logger(__name__)
_callbacks: list[Callable[[], None]] = []


def on_interrupt(callback: Callable[[], None]) -> None:
    """Call ``callback`` (from the main thread) on Ctrl-C; registering it twice is a no-op."""
    if callback not in _callbacks:
        _callbacks.append(callback)


def interrupt_running_statements() -> None:
    """Call every registered callback; one that fails is logged, the others still run."""
    for callback in list(_callbacks):
        try:
            callback()
        except Exception:
            logger.exception("test_framework: interrupt callback %r failed", callback)
