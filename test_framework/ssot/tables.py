"""Which table a name means, and whether row data fits it, before any SQL runs.

A name is looked up in the test class's ``metadata`` first and reflected
from the database otherwise (once per test); existence checks ask the
database through SQLAlchemy's inspector. Lookups are marked as framework
statements, so query assertions do not count them.
"""

from __future__ import annotations

from typing import Any, Mapping

from sqlalchemy import Column, MetaData, Table, inspect
from sqlalchemy.exc import NoSuchTableError
from sqlalchemy.ext.asyncio import AsyncSession

from test_framework.errors import ConfigurationError, QueryGuardError
from test_framework.ssot.query_capture import framework_statements
from test_framework.ssot.query_guards import split_table_name

DEFAULT_TABLES = {"user": "users", "thread": "threads", "message": "messages"}


class TableLookup:
    """Resolve table names for one session: metadata first, else reflection."""

    def __init__(self, session: AsyncSession, metadata: MetaData | None) -> None:
        self.session = session
        self.metadata = metadata
        self._reflected: dict[str, Table] = {}
        self._existing: set[str] = set()

    async def get(self, table_name: str, columns=()) -> Table:
        """Return the Table for a name: from ``metadata`` if it has it, else reflected.

        When ``metadata``'s version lacks some of ``columns`` (a test altered the
        table), the reflected columns are added to a copy of it, so the declared
        ones keep their Python-side defaults.
        """
        declared = self.metadata.tables.get(table_name) if self.metadata is not None else None
        if declared is not None and set(columns) <= set(declared.columns.keys()):
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
            connection = await self.session.connection()
            try:
                with framework_statements():
                    self._reflected[table_name] = await connection.run_sync(
                        lambda sync: Table(name, MetaData(), schema=schema, autoload_with=sync))
            except NoSuchTableError:
                raise QueryGuardError(await self._missing(table_name)) from None
        return self._reflected[table_name]

    async def exists(self, table_name: str) -> bool:
        """Ask the database (SQLAlchemy's inspector) whether the table is there."""
        schema, name = split_table_name(table_name)
        connection = await self.session.connection()
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
        connection = await self.session.connection()
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
    unknown = sorted(set(data) - set(target.columns.keys()))
    if unknown:
        raise QueryGuardError(
            f"table {target.fullname!r} has no column(s) {unknown}; its columns are "
            f"{[c.name for c in target.columns]}")
    return dict(data)


def require_primary_key(target: Table) -> None:
    if not target.primary_key.columns:
        raise QueryGuardError(
            f"table {target.fullname!r} has no primary key, so its rows cannot be found again "
            "for cleanup; add a primary key, or use isolation = 'rollback'")
