"""Find rows a commit-mode test left behind, with one query after each test.

In commit mode only rows made through ``AsyncTestDatabase`` are removed.
Rows the application inserted itself stay, and would surprise the next test.
After each test we count every table of the database (listed from the
catalog once per class, so a schema from migrations or a SQL file is
covered too, and one query, not a reflection of every table) in a single statement
and compare with the counts before it; growth is reported with the id of
the test that left it (a warning by default, an error when configured).

The count runs on a connection the caller gives: commit mode runs it in the
transaction that deletes the test's rows, after the DELETEs, so it costs one
statement, not a connection and a transaction of its own.
"""

from __future__ import annotations

import warnings

from sqlalchemy import func, select, table
from sqlalchemy.ext.asyncio import AsyncConnection

from test_framework.errors import ConfigurationError, LeftoverRowsError
from test_framework.provision import data_table_names

POLICIES = ("warn", "error", "ignore")


class LeftoverRowsWarning(UserWarning):
    """A test left rows in the schema's tables that it did not clean up."""


class LeftoverRowDetector:
    """Count the schema's tables before and after each test; report growth."""

    @staticmethod
    def checked(policy: str) -> str:
        """Return ``policy`` if it is one of ``POLICIES``; else explain."""
        if policy not in POLICIES:
            raise ConfigurationError(
                f"leftover_rows is {policy!r}; use one of {list(POLICIES)}")
        return policy

    def __init__(self, policy: str) -> None:
        self.policy = self.checked(policy)
        self._query = None  # one scalar subquery per table, made once (None: no tables)
        self._listed = False
        self._before: dict[str, int] | None = None

    @property
    def needs_baseline(self) -> bool:
        """Whether ``start`` must run before the next test (the class's first)."""
        return self._before is None and self.policy != "ignore"

    @property
    def watching(self) -> bool:
        """Whether the end of each test must be counted (``count`` then ``check``)."""
        return self._before is not None

    async def count(self, connection: AsyncConnection) -> dict[str, int]:
        """Count every table's rows on ``connection``, in the transaction it is in."""
        if not self._listed:  # the database's real tables, whatever built them
            counts = [select(func.count()).select_from(table(name)).scalar_subquery()
                      .label(name) for name in await data_table_names(connection)]
            self._query = select(*counts) if counts else None
            self._listed = True
        if self._query is None:
            return {}
        return dict((await connection.execute(self._query)).one()._mapping)

    async def start(self, connection: AsyncConnection) -> None:
        """Take the baseline before the class's first test (once)."""
        if self.needs_baseline:
            self._before = await self.count(connection)

    def check(self, test_id: str, after: dict[str, int]) -> None:
        """Compare ``after`` with the counts before ``test_id``; remember it as the next base."""
        if self._before is None:
            return
        grown = {name: after[name] - self._before.get(name, 0)
                 for name in after if after[name] > self._before.get(name, 0)}
        self._before = after
        if grown:
            self._report(test_id, grown)

    def forget(self) -> None:
        """Take a new baseline before the next test (this test's end was not counted)."""
        self._before = None

    def _report(self, test_id: str, grown: dict[str, int]) -> None:
        rows = ", ".join(f"{name} +{count}" for name, count in sorted(grown.items()))
        message = (f"{test_id} left rows behind: {rows}. Only rows made "
                   "through self.db are removed; delete rows your code made in "
                   "asyncTearDown before super(), or use isolation = 'rollback'")
        if self.policy == "error":
            raise LeftoverRowsError(message)
        warnings.warn(message, LeftoverRowsWarning, stacklevel=2)
