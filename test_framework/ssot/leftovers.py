"""Find rows a commit-mode test left behind, with one query after each test.

In commit mode only rows made through ``AsyncTestDatabase`` are removed.
Rows the application inserted itself stay, and would surprise the next test.
After each test we count every table of the database (reflected once, so a
schema from migrations or a SQL file is covered too) in a single statement
and compare with the counts before it; growth is reported with the id of
the test that left it (a warning by default, an error when configured).
"""

from __future__ import annotations

import warnings

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from test_framework.errors import ConfigurationError, LeftoverRowsError
from test_framework.provision import data_tables

POLICIES = ("warn", "error", "ignore")


class LeftoverRowsWarning(UserWarning):
    """A test left rows in the schema's tables that it did not clean up."""


class LeftoverRowDetector:
    """Count the schema's tables before and after each test; report growth."""

    def __init__(self, engine: AsyncEngine, policy: str) -> None:
        if policy not in POLICIES:
            raise ConfigurationError(
                f"leftover_rows is {policy!r}; use one of {list(POLICIES)}")
        self.engine = engine
        self.policy = policy
        self._counts: list | None = None  # one scalar subquery per table, made once
        self._before: dict[str, int] | None = None

    async def counts(self) -> dict[str, int]:
        async with self.engine.connect() as connection:
            if self._counts is None:  # the database's real tables, whatever built them
                self._counts = [select(func.count()).select_from(table).scalar_subquery()
                                .label(table.fullname)
                                for table in await data_tables(connection)]
            if not self._counts:
                return {}
            return dict((await connection.execute(select(*self._counts))).one()._mapping)

    async def check(self, test_id: str) -> None:
        """Compare with the counts before ``test_id``; remember the new counts."""
        if self._before is None:
            return
        after = await self.counts()
        grown = {name: after[name] - self._before.get(name, 0)
                 for name in after if after[name] > self._before.get(name, 0)}
        self._before = after
        if grown:
            self._report(test_id, grown)

    async def start(self) -> None:
        """Take the baseline before the class's first test (once)."""
        if self._before is None and self.policy != "ignore":
            self._before = await self.counts()

    def _report(self, test_id: str, grown: dict[str, int]) -> None:
        rows = ", ".join(f"{name} +{count}" for name, count in sorted(grown.items()))
        message = (f"{test_id} left rows behind: {rows}. Only rows made "
                   "through self.db are removed; delete rows your code made in "
                   "asyncTearDown before super(), or use isolation = 'rollback'")
        if self.policy == "error":
            raise LeftoverRowsError(message)
        warnings.warn(message, LeftoverRowsWarning, stacklevel=2)
