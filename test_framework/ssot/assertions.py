"""Assertions about rows that read like the sentence they check.

``await self.assertRowExists("users", email=email)`` says what a test means
where ``assertEqual(await self.db.count_records(...), 1)`` says how. Each
condition is ``column=value``: values go through bound parameters, the table
name through the same checks as ``count_records`` (``query_guards``), and an
unknown table or column is refused before any SQL runs. A failure shows what
the table does hold: the matching rows, or rows sharing one of the values.

Conditions can also come as a dict before the keywords, for a column whose
name is not a Python identifier or is ``msg``:
``assertRowExists("users", {"msg": "hi"}, is_active=True)``. ``None``
matches NULL. The look-ups are the framework's own statements, so an
enclosing ``assertNumQueries`` does not count them. A call that is never
awaited fails the test, naming the call and its line (``ssot/awaited.py``).
"""

from __future__ import annotations

from typing import Any, Mapping

from sqlalchemy import Table, func, or_, select
from sqlalchemy.engine import Row

from test_framework.errors import QueryGuardError
from test_framework.ssot.awaited import must_be_awaited
from test_framework.ssot.factories import column_value
from test_framework.ssot.query_capture import failure_message, framework_statements
from test_framework.ssot.query_guards import split_table_name
from test_framework.ssot.tables import column_conditions

__unittest = True  # a failed row assertion points at the test's line

SHOWN_ROWS = 5


class RowAssertions:
    """``assertRowExists`` / ``assertRowNotExists`` / ``assertRowCount`` / ``assertRowEqual``."""

    @must_be_awaited
    async def assertRowExists(self, table_name: str, values: Mapping[str, Any] | None = None,
                              /, *, msg: str | None = None, **columns: Any) -> Row:
        """Fail unless a row matches every condition; return the first match."""
        query = await self._ssot_row_query("assertRowExists", table_name, values, columns)
        found = await query.rows(limit=1)
        if not found:
            self.fail(failure_message(self, msg, f"no row in {table_name!r}{query.matching}; "
                                                 f"{await query.nearby()}"))
        return found[0]

    @must_be_awaited
    async def assertRowNotExists(self, table_name: str,
                                 values: Mapping[str, Any] | None = None, /, *,
                                 msg: str | None = None, **columns: Any) -> None:
        """Fail if any row matches every condition."""
        query = await self._ssot_row_query("assertRowNotExists", table_name, values, columns)
        count = await query.count()
        if count:
            self.fail(failure_message(self, msg, (
                f"{_rows(count)} in {table_name!r}{query.matching}, expected none:"
                f"{await query.shown(query.conditions)}")))

    @must_be_awaited
    async def assertRowCount(self, table_name: str, expected: int,
                             values: Mapping[str, Any] | None = None, /, *,
                             msg: str | None = None, **columns: Any) -> None:
        """Fail unless exactly ``expected`` rows match every condition."""
        query = await self._ssot_row_query("assertRowCount", table_name, values, columns)
        count = await query.count()
        if count != expected:
            found = (":" + await query.shown(query.conditions) if count
                     else "; " + await query.nearby())
            self.fail(failure_message(self, msg, (
                f"{table_name!r} has {_rows(count)}{query.matching}, expected "
                f"{expected}{found}")))

    def assertRowEqual(self, row: Any, expected: Mapping[str, Any], msg: str | None = None) -> None:
        """Fail unless the row has each expected column value (other columns are not compared).

        ``row`` may be a ``Row``, a mapping or an ORM object.
        """
        if row is None:
            self.fail(failure_message(self, msg,
                                      f"row is None, expected one with {dict(expected)!r}"))
        differences = []
        for name, value in expected.items():
            try:
                found = column_value(row, name)
            except KeyError:
                differences.append(f"  {name}: expected {value!r}, but the row has no such column")
                continue
            if found != value:
                differences.append(f"  {name}: expected {value!r}, found {found!r}")
        if differences:
            self.fail(failure_message(self, msg, (
                f"row differs in {len(differences)} column(s):\n" + "\n".join(differences)
                + f"\nrow: {_shown(row)}")))

    async def _ssot_row_query(self, caller: str, table_name: str,
                              values: Mapping[str, Any] | None,
                              columns: Mapping[str, Any]) -> RowQuery:
        split_table_name(table_name)
        conditions = dict(values or {})
        repeated = sorted(set(conditions) & set(columns))
        if repeated:
            raise QueryGuardError(
                f"{caller}({table_name!r}) got column(s) {repeated} both in the dict and as "
                "keywords; give each condition once")
        conditions.update(columns)
        table = await self.db.table(table_name, conditions.keys())
        return RowQuery(self.db, table, conditions, caller=f"{caller}({table_name!r})")


class RowQuery:
    """One table and its ``column == value`` conditions, and the look-ups failures need."""

    def __init__(self, db, table: Table, values: Mapping[str, Any], *,
                 caller: str = "RowQuery") -> None:
        self.db = db
        self.table = table
        self.values = dict(values)
        self.conditions = column_conditions(table, self.values, caller=caller,
                                            dialect=db.dialect)

    @property
    def matching(self) -> str:
        """`` with a=1, b='x'`` for messages, or nothing when there are no conditions."""
        described = ", ".join(f"{name}={value!r}" for name, value in self.values.items())
        return f" with {described}" if described else ""

    async def rows(self, conditions: list | None = None, *, limit: int) -> list[Row]:
        query = select(self.table).where(*(self.conditions if conditions is None else conditions))
        query = query.order_by(*self.table.primary_key.columns).limit(limit)
        with framework_statements():
            return await self.db.fetch_all(query)

    async def count(self, conditions: list | None = None) -> int:
        query = select(func.count()).select_from(self.table).where(
            *(self.conditions if conditions is None else conditions))
        with framework_statements():
            return (await self.db.fetch_one(query))[0]

    async def shown(self, conditions: list) -> str:
        """Render up to ``SHOWN_ROWS`` rows matching ``conditions``, one a line."""
        rows = await self.rows(conditions, limit=SHOWN_ROWS)
        more = await self.count(conditions) - len(rows)
        lines = [f"\n  {_shown(row)}" for row in rows]
        return "".join(lines) + (f"\n  ... and {more} more" if more > 0 else "")

    async def nearby(self) -> str:
        """Describe what the table holds: rows sharing a value with the conditions, or any."""
        total = await self.count([])
        if not total:
            return "the table is empty"
        if self.conditions:
            similar = or_(*self.conditions)
            if await self.count([similar]):
                return (f"the table has {_rows(total)}; those sharing a value:"
                        f"{await self.shown([similar])}")
        return f"the table has {_rows(total)}:{await self.shown([])}"


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _shown(row: Any) -> str:
    if isinstance(row, Row):
        return repr(dict(row._mapping))
    return repr(dict(row)) if isinstance(row, Mapping) else repr(row)
