"""Which table a name means, and whether row data fits it, before any SQL runs.

A name is looked up in the test class's ``metadata`` first and reflected
from the database otherwise (once per test); existence checks ask the
database through SQLAlchemy's inspector. Lookups are marked as framework
statements, so query assertions do not count them.

Values compared with a table's columns bind through those columns' types,
so a ``uuid.UUID`` or a ``datetime`` means the same on every backend: the
``column=value`` filters of ``count_records`` and the row assertions, and
each ``:param`` of a ``count_records`` condition that is compared with a
column (``id = :id``, ``:since <= created_at``, ``id IN (:a, :b)``) or is
named after one. A reflected ``CHAR(32)``/``CHAR(36)`` on a database without
a UUID type is read as the UUID column it almost always is (typed_values).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, Mapping

from sqlalchemy import Column, MetaData, Table, bindparam, event, inspect
from sqlalchemy.exc import NoSuchTableError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from test_framework.errors import ConfigurationError, QueryGuardError
from test_framework.ssot.query_capture import framework_statements
from test_framework.ssot.query_guards import SQLGLOT_DIALECTS, split_table_name
from test_framework.ssot.typed_values import bindable, read_uuid_text

DEFAULT_TABLES = {"user": "users", "thread": "threads", "message": "messages"}


class TableLookup:
    """Resolve table names for one helper: metadata first, else reflection.

    It asks on ``connection`` when given and in a transaction (rollback
    isolation's one connection), else on the connection of ``session_of()``,
    the helper's session (made only then).
    """

    def __init__(self, session_of: Callable[[], AsyncSession], metadata: MetaData | None,
                 *, connection: AsyncConnection | None = None) -> None:
        self._session_of = session_of
        self.metadata = metadata
        self._direct = connection
        self._reflected: dict[str, Table] = {}
        self._existing: set[str] = set()

    def connection_released(self) -> None:
        """Ask through the session from now on (``AsyncTestDatabase.connection_released``)."""
        self._direct = None

    @functools.cached_property
    def dialect(self):
        """The SQLAlchemy dialect of the connection the helper runs on (it is fixed)."""
        if self._direct is not None:
            return self._direct.dialect
        return self._session_of().get_bind().dialect

    async def _connection(self) -> AsyncConnection:
        """The given connection while a transaction is open on it (always, in rollback
        isolation). Else the session's: asked directly, the connection would begin a
        transaction that a session bound to it later joins and never commits."""
        if self._direct is not None and self._direct.in_transaction():
            return self._direct
        return await self._session_of().connection()

    async def get(self, table_name: str, columns=()) -> Table:
        """Return the Table for a name: from ``metadata`` if it has it, else reflected.

        When ``metadata``'s version lacks some of ``columns`` (a test altered the
        table), the reflected columns are added to a copy of it, so the declared
        ones keep their Python-side defaults.
        """
        declared = self.metadata.tables.get(table_name) if self.metadata is not None else None
        if declared is not None and all(isinstance(name, str) and name in declared.c
                                        for name in columns):
            return declared
        live = await self._reflect(table_name)
        if declared is None:
            return live
        merged = declared.to_metadata(MetaData())
        for column in live.columns:
            if column.name not in merged.columns:
                merged.append_column(Column(column.name, column.type, nullable=column.nullable))
        return merged

    async def _reflect(self, table_name: str) -> Table:
        if table_name not in self._reflected:
            schema, name = split_table_name(table_name)
            connection = await self._connection()
            metadata = MetaData()  # its hook covers the tables that foreign keys pull in too
            event.listen(metadata, "column_reflect", read_uuid_text)
            try:
                with framework_statements():
                    self._reflected[table_name] = await connection.run_sync(
                        lambda sync: Table(name, metadata, schema=schema, autoload_with=sync))
            except NoSuchTableError:
                raise QueryGuardError(await self._missing(table_name)) from None
        return self._reflected[table_name]

    async def exists(self, table_name: str) -> bool:
        """Ask the database (SQLAlchemy's inspector) whether the table is there."""
        schema, name = split_table_name(table_name)
        connection = await self._connection()
        return await connection.run_sync(lambda sync: inspect(sync).has_table(name, schema=schema))

    async def require(self, table_name: str) -> None:
        """Raise, naming the tables that do exist, unless ``table_name`` is a real table."""
        if table_name in self._existing:
            return
        with framework_statements():
            exists = await self.exists(table_name)
        if not exists:
            raise QueryGuardError(await self._missing(table_name))
        self._existing.add(table_name)

    async def _missing(self, table_name: str) -> str:
        schema, _ = split_table_name(table_name)
        connection = await self._connection()
        with framework_statements():
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names(schema))
        return (f"table {table_name!r} does not exist in the test database; existing tables: "
                f"{sorted(names) or 'none'}. Check the name, or add the table to the test "
                "class's metadata so the framework creates it")


def table_mapping(tables: Mapping[str, str] | None) -> dict[str, str]:
    mapping = dict(DEFAULT_TABLES)
    for kind, name in (tables or {}).items():
        if kind not in DEFAULT_TABLES:
            raise ConfigurationError(
                f"tables has key {kind!r}; the keys are {sorted(DEFAULT_TABLES)}, "
                "e.g. tables={'user': 'accounts'}")
        split_table_name(name)
        mapping[kind] = name
    return mapping


def checked_values(target: Table, data: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise QueryGuardError(
            f"row data for {target.fullname!r} is a {type(data).__name__}; pass a dict of "
            f"column values, columns: {[c.name for c in target.columns]}")
    columns = target.c
    if not all(isinstance(name, str) and name in columns for name in data):
        unknown = sorted(set(data) - set(columns.keys()), key=str)
        raise QueryGuardError(
            f"table {target.fullname!r} has no column(s) {unknown}; its columns are "
            f"{[c.name for c in target.columns]}")
    return dict(data)


def require_primary_key(target: Table) -> None:
    if not target.primary_key.columns:
        raise QueryGuardError(
            f"table {target.fullname!r} has no primary key, so its rows cannot be found again "
            "for cleanup; add a primary key, or use isolation = 'rollback'")


def column_conditions(target: Table, filters: Mapping[str, Any], *, caller: str,
                      dialect) -> list:
    """Return ``column == value`` for each filter (``IS NULL`` for None), typed by the column."""
    unknown = sorted(set(filters) - set(target.columns.keys()))
    if unknown:
        raise QueryGuardError(
            f"{caller} got column(s) {unknown} that the table does not have; its columns "
            f"are {list(target.columns.keys())}")
    return [target.c[name] == bindable(target.c[name], value, dialect=dialect)
            for name, value in filters.items()]


def typed_parameters(where_clause: str, params: Mapping[str, Any], target: Table,
                     dialect) -> tuple[list, dict[str, Any]]:
    """Return typed ``bindparam``s for a checked condition's ``:params``, and their values.

    A param gets the type of the column it is compared with, else of the column it is
    named after. A ``str`` for a column whose Python type is not ``str`` keeps binding
    as text, as it did before types were used (``id = :id`` with a hex string).
    """
    columns = {column.name.lower(): column for column in target.columns}
    tree = _tree(where_clause, dialect.name)
    compared = _compared_columns(tree)
    binds, values = [], dict(params)
    for name in sorted({node.name for node in tree.find_all(exp.Placeholder)} & set(params)):
        column = columns.get(compared.get(name, name).lower())
        value = params[name]
        if column is None or value is None or (
                isinstance(value, str) and _python_type(column) not in (str, None)):
            continue
        values[name] = bindable(column, value, dialect=dialect)
        binds.append(bindparam(name, type_=column.type))
    return binds, values


COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ,
               exp.NullSafeNEQ, exp.In, exp.Between, exp.Like, exp.ILike)
OPERANDS = ("this", "expression", "expressions", "low", "high")


def _compared_columns(tree: exp.Expression) -> dict[str, str]:
    """Map each ``:param`` compared with exactly one column to that column's name."""
    compared: dict[str, str] = {}
    for node in tree.find_all(*COMPARISONS):
        operands = []
        for key in OPERANDS:
            value = node.args.get(key)
            operands.extend(_unwrapped(item) for item in
                            (value if isinstance(value, list) else [value]) if item is not None)
        names = {item.name for item in operands if isinstance(item, exp.Column)}
        if len(names) == 1:
            for item in operands:
                if isinstance(item, exp.Placeholder):
                    compared.setdefault(item.name, next(iter(names)))
    return compared


def _tree(where_clause: str, dialect_name: str) -> exp.Expression:
    """Parse a condition ``check_where_clause`` has already accepted."""
    clause = re.sub(r"\A\s*where\s+", "", where_clause, flags=re.IGNORECASE).strip()
    reader = Dialect.get_or_raise(SQLGLOT_DIALECTS.get(dialect_name, dialect_name))
    return reader.parse_into(exp.Condition, clause)[0]


def _unwrapped(value):
    while isinstance(value, exp.Paren):
        value = value.this
    return value


def _python_type(column: Column) -> type | None:
    try:
        return column.type.python_type
    except NotImplementedError:
        return None
