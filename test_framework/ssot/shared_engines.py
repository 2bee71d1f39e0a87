"""Engines that serve test class after test class, on the process's shared loop.

A new engine per class cost a connect and the dialect's first queries for
every class: a suite of 10-test classes paid about half again per test what
100-test classes paid. Classes that use the same database with the same
engine options now share one engine. On a server, the connection a class
returns to its pool is the one the next class checks out (one the server
closed meanwhile is replaced). On SQLite too, unless a test changed the
connection beyond what a rollback undoes (a pragma, a SQL function): the
backend closes such a connection as it comes back (``Backend.shared_engine_options``).

Engines are shared where the backend says they can outlive a class
(``Backend.can_share_engine``); a class with a private database, an
in-memory SQLite database or a threaded driver keeps an engine of its own.
Rollback isolation resets the one connection it held as it hands it back;
after a class of another mode, whose tests committed on any of the pool's
connections, ``hand_over`` resets every idle one (``Backend.reset_session``),
so no setting, lock or temporary table of one class meets the next.
The shared engines are disposed when the shared loop closes, as the process
ends (``class_loop.close_shared_runner``), each within a bound.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from test_framework.backends import Backend
from test_framework.engines import create_engine
from test_framework.ssot.class_loop import shared_runner
from test_framework.ssot.metrics import count_statement
from test_framework.ssot.unanswered import report_abandoned, teardown_bound

_engines: dict[tuple, tuple[AsyncEngine, Backend]] = {}
_engines_loop: asyncio.AbstractEventLoop | None = None  # the loop their connections are on


def engine_for(backend: Backend, url: URL, *, search_path: str | None,
               one_connection: bool, private: bool) -> tuple[AsyncEngine, bool]:
    """Return an engine for ``url`` and whether it is shared (the caller must not dispose it)."""
    engine_url = backend.engine_url(url)
    if private or not backend.can_share_engine(engine_url, one_connection=one_connection):
        return create_engine(backend, url, search_path=search_path,
                             on_statement=count_statement), False
    _forget_other_loops()
    key = (engine_url.render_as_string(hide_password=False), search_path, one_connection)
    if key in _engines:
        return _engines[key][0], True
    engine = create_engine(backend, url, search_path=search_path, on_statement=count_statement,
                           shared=True)
    _engines[key] = engine, backend
    if dispose_shared_engines not in shared_runner().closing:
        shared_runner().closing.append(dispose_shared_engines)
    return engine, True


async def dispose_shared_engines(bound: float | None = None) -> None:
    """Close every shared engine's pooled connections, each within ``bound`` seconds."""
    engines = list(_engines.values())
    _engines.clear()
    for engine, backend in engines:
        limit = teardown_bound(backend) if bound is None else bound
        try:
            async with asyncio.timeout(limit):
                await engine.dispose()
        except TimeoutError:
            await engine.dispose(close=False)
            report_abandoned(f"the pooled connections of the shared engine on "
                             f"{engine.url.render_as_string()}",
                             f"closing them got no answer within {limit:g}s")


async def hand_over(engine: AsyncEngine, backend: Backend, bound: float) -> None:
    """Reset each idle connection of a shared ``engine`` before the next class gets it.

    Each is checked out (all at once, so the pool hands out every idle one),
    reset, and returned; one that fails is closed instead. If the server
    cannot be reached, or does not answer within ``bound``, the pool is
    dropped and reported: the next class connects anew.
    """
    idle = getattr(engine.sync_engine.pool, "checkedin", None)  # a NullPool keeps none
    connections = []
    try:
        async with asyncio.timeout(bound):
            for _ in range(idle() if idle is not None else 0):
                connections.append(await engine.connect())
            for connection in connections:
                try:
                    await backend.reset_session(connection)
                except Exception:  # the driver's own errors too: the reset runs on it
                    await connection.invalidate()
            for connection in reversed(connections):  # the pool's order stays: warm first
                await connection.close()
    except (TimeoutError, DBAPIError, OSError) as exc:
        engine.sync_engine.dispose(close=False)
        why = (f"no answer within {bound:g}s" if isinstance(exc, TimeoutError)
               else f"{type(exc).__name__}: {exc}")
        report_abandoned(f"the pooled connections of the shared engine on "
                         f"{engine.url.render_as_string()}",
                         f"resetting them for the next class failed ({why})")


def abandon_shared_engines(why: str) -> None:
    """Drop every shared engine's pool at once, waiting on nothing (Ctrl-C); report it."""
    engines = list(_engines.values())
    _engines.clear()
    for engine, _ in engines:
        engine.sync_engine.dispose(close=False)
        report_abandoned(f"the pooled connections of the shared engine on "
                         f"{engine.url.render_as_string()}", why)


def _forget_other_loops() -> None:
    """Engines made on another loop (a forked worker's parent, a loop closed since) are
    dropped without a word to their server: their sockets are not this loop's to use."""
    global _engines_loop
    loop = shared_runner().get_loop()
    if _engines_loop is not loop:
        for engine, _ in _engines.values():
            engine.sync_engine.dispose(close=False)
        _engines.clear()
        _engines_loop = loop
