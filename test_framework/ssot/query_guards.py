"""Checks on table names and WHERE fragments, applied before any SQL is built.

``count_records`` and friends accept a table name and a SQL condition as
strings, the way suites written for the original framework call them. A
name must look like an identifier (optionally ``schema.table``) and is then
quoted by SQLAlchemy; a condition may not end the statement, open a comment
or close the parentheses it is wrapped in. Values belong in bound
parameters, never in the string.
"""

from __future__ import annotations

import re

from test_framework.errors import QueryGuardError

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")
_LITERAL = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
_FORBIDDEN = {";": "ends the statement", "--": "starts a comment",
              "/*": "starts a comment", "*/": "ends a comment"}


def split_table_name(table_name: object) -> tuple[str | None, str]:
    """Return ``(schema, table)`` for ``"table"`` or ``"schema.table"``, or raise."""
    if not isinstance(table_name, str):
        raise QueryGuardError(
            f"table name {table_name!r} is a {type(table_name).__name__}, not a string; "
            "pass the table's name, e.g. 'users'")
    parts = table_name.split(".")
    if len(parts) > 2 or not all(IDENTIFIER.match(part) for part in parts):
        raise QueryGuardError(
            f"table name {table_name!r} is not a plain identifier; use letters, digits "
            "and underscores, optionally as 'schema.table'")
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def check_where_clause(where_clause: object) -> str:
    """Return the condition stripped, or raise if it could escape its WHERE."""
    if not isinstance(where_clause, str):
        raise QueryGuardError(
            f"where_clause {where_clause!r} is a {type(where_clause).__name__}, not a string; "
            "pass a SQL condition such as 'email = :email' with params={'email': ...}")
    clause = where_clause.strip()
    if clause.lower().startswith("where "):
        clause = clause[len("where "):].strip()
    outside_literals = _LITERAL.sub("''", clause)
    if outside_literals.count("'") % 2 or outside_literals.count('"') % 2:
        _reject(where_clause, "has an unterminated quote")
    for token, why in _FORBIDDEN.items():
        if token in outside_literals:
            _reject(where_clause, f"contains {token!r}, which {why}")
    depth = 0
    for char in outside_literals:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            _reject(where_clause, "closes a parenthesis it did not open")
    if depth:
        _reject(where_clause, "leaves a parenthesis open")
    return clause


def _reject(where_clause: str, why: str) -> None:
    raise QueryGuardError(
        f"where_clause {where_clause!r} {why}; pass one condition and put values in "
        "params, e.g. count_records('users', 'email = :email', {'email': email})")
