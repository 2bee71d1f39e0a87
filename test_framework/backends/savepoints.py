"""Reuse savepoint names by depth, so a driver's prepared-statement cache can hit.

SQLAlchemy names savepoints ``sa_savepoint_<n>`` with a counter that only
grows on a connection. A class's connection lives for all its tests, so
every SAVEPOINT / RELEASE / ROLLBACK TO is new SQL text; asyncpg prepares
each statement it has not seen, which costs a round trip more. Naming a
savepoint by its nesting depth (``tf_sp_1``, ``tf_sp_2``…) makes the text
repeat. PostgreSQL resolves a savepoint name to the newest savepoint of that
name, and savepoints nest, so depth names address the same savepoints.

This uses the dialect's documented savepoint hooks on our own engine's
dialect instance; nothing global changes.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

STACK = "test_framework_savepoints"


def name_savepoints_by_depth(engine: AsyncEngine) -> None:
    dialect = engine.dialect
    savepoint = dialect.do_savepoint
    release = dialect.do_release_savepoint
    rollback_to = dialect.do_rollback_to_savepoint

    def do_savepoint(connection, name):
        names = connection.info.setdefault(STACK, [])
        names.append(name)
        savepoint(connection, f"tf_sp_{len(names)}")

    def do_release_savepoint(connection, name):
        release(connection, f"tf_sp_{_end(connection, name)}")

    def do_rollback_to_savepoint(connection, name):
        rollback_to(connection, f"tf_sp_{_end(connection, name)}")

    dialect.do_savepoint = do_savepoint
    dialect.do_release_savepoint = do_release_savepoint
    dialect.do_rollback_to_savepoint = do_rollback_to_savepoint
    for transaction_end in ("commit", "rollback"):
        event.listen(engine.sync_engine, transaction_end, _forget)


def _end(connection, name: str) -> int:
    """Return the depth of savepoint ``name`` and forget it and every savepoint above it."""
    names = connection.info.setdefault(STACK, [])
    depth = names.index(name) + 1 if name in names else max(len(names), 1)
    del names[depth - 1:]
    return depth


def _forget(connection) -> None:
    connection.info.pop(STACK, None)
