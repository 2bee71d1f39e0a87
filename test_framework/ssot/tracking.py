"""A transaction-aware record of the rows a test created, and their removal.

A row is "pending" until the session's outermost transaction commits; a
rollback of that transaction, or of any savepoint the row was created under,
forgets it. Only committed rows are deleted at cleanup, children before
parents by foreign-key order, so a rolled-back row whose primary key was
later reused by someone else is never deleted by mistake.

The session's own events (``after_soft_rollback``, ``after_commit``,
``after_transaction_end``) drive this, so rollbacks made directly on the
session, not only through ``AsyncTestDatabase``, keep the record right.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import Table, and_, bindparam, event, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.schema import sort_tables


DELETE_BATCH_PARAMETERS = 10_000


@dataclass(frozen=True)
class TrackedRow:
    """One created row: its table and primary-key values."""

    table: Table
    key: tuple


class RowTracker:
    """Remember created rows per transaction; delete the committed ones on request."""

    def __init__(self, session_of: Callable[[], AsyncSession]) -> None:
        self._session_of = session_of  # the helper's session, made when first needed
        self._pending: list[tuple[TrackedRow, tuple[SessionTransaction, ...]]] = []
        self._committed: list[TrackedRow] = []
        self._root_committed = False
        self._listening = False

    @property
    def committed_rows(self) -> list[TrackedRow]:
        return list(self._committed)

    @property
    def pending_rows(self) -> list[TrackedRow]:
        return [row for row, _ in self._pending]

    def track(self, table: Table, key: tuple, *, committed: bool = False) -> None:
        """Record a row just inserted in the session's current transaction, or one
        already ``committed`` (inserted outside any transaction): no rollback forgets it."""
        if committed:
            self._committed.append(TrackedRow(table, key))
            return
        self._listen()
        self._pending.append((TrackedRow(table, key), self._transaction_chain()))

    def forget_all(self) -> None:
        self._pending.clear()
        self._committed.clear()

    async def delete_all(self) -> None:
        """Delete every tracked row (committed or in the open transaction), children first.

        One DELETE per table and batch of keys (drivers cap bound parameters
        at 32,767 a statement; SQLite's at 32,766). The caller commits; pending rows are forgotten
        first so that commit cannot promote rows that are already gone.
        """
        by_table: dict[Table, list[tuple]] = defaultdict(list)
        for row in self._committed + self.pending_rows:
            by_table[row.table].append(row.key)
        self.forget_all()
        for table in reversed(sort_tables(by_table)):
            keys = by_table[table]
            step = _batch(table)
            for start in range(0, len(keys), step):
                await self._session_of().execute(*_deleting(table, keys[start:start + step]))

    def close(self) -> None:
        """Stop listening to the session's events (the record itself is kept)."""
        if self._listening:
            sync_session = self._session_of().sync_session
            event.remove(sync_session, "after_soft_rollback", self._after_soft_rollback)
            event.remove(sync_session, "after_commit", self._after_commit)
            event.remove(sync_session, "after_transaction_end", self._after_transaction_end)
            self._listening = False

    def _listen(self) -> None:
        if not self._listening:
            sync_session = self._session_of().sync_session
            event.listen(sync_session, "after_soft_rollback", self._after_soft_rollback)
            event.listen(sync_session, "after_commit", self._after_commit)
            event.listen(sync_session, "after_transaction_end", self._after_transaction_end)
            self._listening = True

    def _transaction_chain(self) -> tuple[SessionTransaction, ...]:
        sync_session = self._session_of().sync_session
        transaction = sync_session.get_nested_transaction() or sync_session.get_transaction()
        chain = []
        while transaction is not None:
            chain.append(transaction)
            transaction = transaction.parent
        return tuple(chain)

    def _after_soft_rollback(self, session: Session, previous: SessionTransaction) -> None:
        self._pending = [(row, chain) for row, chain in self._pending if previous not in chain]

    def _after_commit(self, session: Session) -> None:
        # Fires for savepoint releases too; only the outermost commit makes rows durable.
        if session.get_nested_transaction() is None:
            self._root_committed = True

    def _after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is not None:
            return
        ended = [(row, chain) for row, chain in self._pending if chain[-1] is transaction]
        self._pending = [(row, chain) for row, chain in self._pending if chain[-1] is not transaction]
        if self._root_committed:
            self._committed.extend(row for row, _ in ended)
        self._root_committed = False


def deletes_in_one_statement(rows: list[TrackedRow]) -> bool:
    """Whether ``delete_all`` deletes ``rows`` in one statement (or none): then it needs
    no transaction around it to be all or nothing."""
    tables = {row.table for row in rows}
    return not tables or (len(tables) == 1 and len(rows) <= _batch(rows[0].table))


def _batch(table: Table) -> int:
    """Keys one DELETE may name: drivers cap bound parameters at 32,767 a statement."""
    return max(1, DELETE_BATCH_PARAMETERS // len(table.primary_key.columns))


def _deleting(table: Table, keys: list[tuple]) -> tuple:
    """The DELETE of ``keys`` and its parameters: for a one-column key one statement per
    table, built once, its list of keys bound per call; an OR of ANDs for a composite key."""
    columns = list(table.primary_key.columns)
    if len(columns) == 1:
        return _delete_by_key(table), {"keys": [key[0] for key in keys]}
    return table.delete().where(or_(*(and_(*(column == value for column, value in
                                             zip(columns, key))) for key in keys))), None


@functools.lru_cache(maxsize=512)
def _delete_by_key(table: Table):
    """``DELETE ... WHERE pk IN (:keys)`` for a one-column key; ``keys`` expands per call."""
    column, = table.primary_key.columns
    return table.delete().where(column.in_(bindparam("keys", expanding=True)))
