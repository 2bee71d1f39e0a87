"""What a column's CHECK constraints allow, for values made up to satisfy them.

On SQLite a reflected ``Enum`` is a ``VARCHAR`` whose allowed values live
only in a CHECK constraint, and a range such as ``priority BETWEEN 1 AND 5``
is written nowhere else in any schema. Each CHECK that names only the one
column is parsed with sqlglot in the server's dialect (a reflected one is
the server's own rewriting: PostgreSQL turns ``IN`` into ``= ANY (ARRAY[...])``
and ``BETWEEN`` into two comparisons), and its ``IN`` lists, ranges,
``=``/``<>`` and ``length()`` bounds are kept. A constraint it cannot read
is skipped: the database still enforces it, and its error names it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Column
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import TextClause
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError

from test_framework.ssot.query_guards import SQLGLOT_DIALECTS

MIRRORED = {exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.LTE: exp.GTE,
            exp.EQ: exp.EQ, exp.NEQ: exp.NEQ}
MISSING = object()


@dataclass
class Allowed:
    """What a column's CHECK constraints allow, as far as they could be read."""

    values: list = field(default_factory=list)
    excluded: list = field(default_factory=list)
    low: Any = None
    high: Any = None
    low_open: bool = False
    high_open: bool = False
    min_length: int | None = None
    max_length: int | None = None


def check_allowed(column: Column, dialect) -> Allowed:
    """Read what the CHECK constraints naming only this column allow."""
    allowed = Allowed()
    constraints = {id(c): c for c in (*column.table.constraints, *column.constraints)
                   if isinstance(c, CheckConstraint)}
    for constraint in constraints.values():
        tree = _parsed(_check_sql(constraint, dialect), dialect.name)
        if tree is not None and {c.name.lower() for c in tree.find_all(exp.Column)} == {
                column.name.lower()}:
            _read(tree, allowed)
    return allowed


def _check_sql(constraint: CheckConstraint, dialect) -> str | None:
    if isinstance(constraint.sqltext, TextClause):
        return constraint.sqltext.text
    try:  # an Enum's or Boolean's own constraint: an expression
        return str(constraint.sqltext.compile(dialect=dialect,
                                              compile_kwargs={"literal_binds": True}))
    except (SQLAlchemyError, NotImplementedError):  # unreadable: the database enforces it
        return None


@functools.lru_cache(maxsize=256)
def _parsed(sql: str | None, dialect_name: str) -> exp.Expression | None:
    if not sql:
        return None
    try:
        reader = Dialect.get_or_raise(SQLGLOT_DIALECTS.get(dialect_name, dialect_name))
        trees = reader.parse_into(exp.Condition, sql)
    except (SqlglotError, ValueError):
        return None
    return trees[0] if len(trees) == 1 else None


def _read(node: exp.Expression, allowed: Allowed) -> None:
    """Narrow ``allowed`` by one condition on the column; ignore what it cannot read."""
    node = _bare(node)
    if isinstance(node, exp.And):
        _read(node.this, allowed)
        _read(node.expression, allowed)
    elif isinstance(node, exp.Or):  # satisfying one branch satisfies the OR
        branches = [b for b in (node.this, node.expression) if not isinstance(_bare(b), exp.Is)]
        if branches:
            _read(branches[0], allowed)
    elif isinstance(node, exp.In):
        values = [_literal(item) for item in node.expressions]
        if values and MISSING not in values:
            allowed.values = values
    elif isinstance(node, exp.Between):
        low, high = _literal(node.args["low"]), _literal(node.args["high"])
        if MISSING not in (low, high):
            allowed.low, allowed.high = low, high
    elif type(node) in MIRRORED:
        _read_comparison(node, allowed)


def _read_comparison(node: exp.Expression, allowed: Allowed) -> None:
    subject, other, kind = _bare(node.this), _bare(node.expression), type(node)
    if _literal(subject) is not MISSING:
        subject, other, kind = other, subject, MIRRORED[kind]
    if isinstance(other, exp.Any):  # PostgreSQL writes IN (...) as = ANY (ARRAY[...])
        items = _bare(other.this)
        values = [_literal(item) for item in getattr(items, "expressions", [])]
        if kind is exp.EQ and values and MISSING not in values:
            allowed.values = values
        return
    value = _literal(other)
    if value is MISSING or not isinstance(subject, (exp.Column, exp.Length)):
        return
    if isinstance(subject, exp.Length):
        if kind in (exp.GT, exp.GTE, exp.EQ):
            allowed.min_length = value + (kind is exp.GT)
        if kind in (exp.LT, exp.LTE, exp.EQ):
            allowed.max_length = value - (kind is exp.LT)
    elif kind is exp.EQ:
        allowed.values = [value]
    elif kind is exp.NEQ:
        allowed.excluded.append(value)
    elif kind in (exp.GT, exp.GTE):
        allowed.low, allowed.low_open = value, kind is exp.GT
    else:
        allowed.high, allowed.high_open = value, kind is exp.LT


def _bare(node):
    while isinstance(node, (exp.Paren, exp.Cast)):
        node = node.this
    return node


def _literal(node) -> Any:
    node = _bare(node)
    if isinstance(node, exp.Neg):
        value = _literal(node.this)
        return MISSING if value is MISSING or isinstance(value, str) else -value
    if isinstance(node, exp.Boolean):
        return node.this
    if not isinstance(node, exp.Literal):
        return MISSING
    if node.is_string:
        return node.name
    return int(node.name) if node.name.isdigit() else Decimal(node.name)
