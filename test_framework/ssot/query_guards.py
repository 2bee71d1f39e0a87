"""Checks on table names and WHERE conditions, applied before any SQL is built.

``count_records`` takes both as strings, as suites written for the original
framework call it. A table name must be an identifier (or ``schema.table``).

A condition is parsed with sqlglot in the server's dialect, because no
string heuristic can tell a column from ``pg_terminate_backend(...)`` or see
where a ``$$...$$`` or ``E'...'`` string ends. Every node of the tree must be
on a short allow-list of what a row condition needs; anything else is
refused before SQL runs. What runs is SQL regenerated from the checked tree,
never the caller's string, so where sqlglot and the server would tokenize the
text differently nothing unchecked can slip through. Values go in ``:name`` params.
"""

from __future__ import annotations

import re
import secrets
import string

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect, NormalizationStrategy
from sqlglot.errors import ErrorLevel, SqlglotError
from sqlglot.tokens import TokenType

from test_framework.errors import QueryGuardError

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")
PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\Z")
ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
EXAMPLE = "count_records('users', 'email = :email', {'email': email})"

# Exact classes (not subclasses): each renders only its operands and keywords.
OPERATORS = {exp.Column, exp.Identifier, exp.Literal, exp.Boolean, exp.Null, exp.Placeholder,
             exp.Paren, exp.Neg, exp.Not, exp.And, exp.Or, exp.EQ, exp.NEQ, exp.GT, exp.GTE,
             exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ, exp.Is, exp.In, exp.Between,
             exp.Like, exp.ILike, exp.Escape, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod,
             exp.DPipe, exp.Case, exp.If, exp.Cast, exp.DataType, exp.DataTypeParam}
FUNCTIONS = {exp.Lower, exp.Upper, exp.Length, exp.Coalesce, exp.Abs, exp.Trim, exp.Round,
             exp.Extract, exp.Date, exp.TimeToStr, exp.TsOrDsToTimestamp, exp.CurrentDate,
             exp.CurrentTimestamp}
ALLOWED_TEXT = ("columns, :name parameters, literals, operators, IN (...), BETWEEN, LIKE, "
                "IS [NOT] NULL, CASE, CAST, lower, upper, length, coalesce, abs, trim, round, "
                "extract, date, to_char (PostgreSQL), strftime (SQLite)")
SQLGLOT_DIALECTS = {"postgresql": "postgres"}  # SQLAlchemy's name -> sqlglot's
# PostgreSQL reads '\' by standard_conforming_strings, which a server may turn off, so
# there a literal with a backslash is written as E'...', where sqlglot escapes it.
E_STRINGS = {"Postgres"}
NODE_NAMES = {"rawstring": "dollar-quoted string", "bytestring": "E'...' string"}


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


def check_where_clause(where_clause: object, *, dialect: str) -> str:
    """Return the condition rebuilt from its checked parse tree, as SQL for ``text()``.

    ``dialect`` is the SQLAlchemy dialect name of the connection it will run on. A
    leading ``WHERE`` is dropped; the first node a row condition does not need is refused.
    """
    if not isinstance(where_clause, str):
        raise QueryGuardError(
            f"where_clause {where_clause!r} is a {type(where_clause).__name__}, not a string; "
            f"pass a SQL condition with its values in params, e.g. {EXAMPLE}")
    clause = re.sub(r"\A\s*where\s+", "", where_clause, flags=re.IGNORECASE).strip()
    try:
        reader = Dialect.get_or_raise(SQLGLOT_DIALECTS.get(dialect, dialect))
    except ValueError as exc:  # sqlglot cannot read this server's SQL
        raise QueryGuardError(f"cannot check a where_clause for dialect {dialect!r}") from exc
    tree = _parse(reader, clause, where_clause)
    for node in tree.walk():
        why = _refusal(node, reader, clause)
        if why:
            raise _refused(where_clause, f"{why} is not allowed in a where_clause")
    return _regenerate(reader, tree, where_clause)


def _parse(reader: Dialect, clause: str, where_clause: str) -> exp.Expression:
    """Parse ``clause`` as one condition (an expression, never a statement), or refuse it."""
    try:
        tokens = reader.tokenize(clause)
        if any(token.comments for token in tokens):
            raise _refused(where_clause, "a comment is not allowed in a where_clause")
        if any(token.token_type == TokenType.SEMICOLON for token in tokens):
            raise _refused(where_clause, "';' ends the statement, which a where_clause may not do")
        if not tokens:
            raise _refused(where_clause, "the condition is empty")
        trees = reader.parser().parse_into(exp.Condition, tokens, clause)
    except SqlglotError as exc:
        first = (getattr(exc, "errors", None) or [{}])[0]  # a TokenError has no errors
        reason = f"{first['description']} at {first['highlight']!r}" if first else str(exc)
        raise _refused(where_clause, f"it does not parse as one condition ({reason})") from exc
    if len(trees) != 1 or trees[0] is None:
        raise _refused(where_clause, "it does not parse as one condition")
    return trees[0]


def _refusal(node: exp.Expression, reader: Dialect, clause: str) -> str | None:
    """Describe ``node`` if a row condition may not contain it, else None."""
    kind = type(node)
    if kind is exp.Var and type(node.parent) is exp.Extract and node.arg_key == "this" \
            and node.name.isalpha():
        return None  # the unit in EXTRACT(YEAR FROM ...)
    if kind is exp.Placeholder and not PLAIN_NAME.match(node.name or ""):
        return f"parameter {node.sql(reader)!r} (name it, e.g. :email)"
    if kind is exp.Literal and not node.is_string and not NUMBER.match(node.name):
        return f"number {node.name!r}"
    if kind is exp.Column and not all(type(part) is exp.Identifier for part in node.parts):
        return f"column {node.sql(reader)}"  # users.'a' or users.1: only names name a column
    if kind is exp.DataType and node.this == exp.DataType.Type.USERDEFINED:
        return f"type {node.sql(reader)}"
    if kind in OPERATORS or kind in FUNCTIONS:
        return None
    if isinstance(node, (exp.Query, exp.Subquery, exp.Exists)):
        return f"a subquery ({node.sql(reader)[:60]})"
    if isinstance(node, exp.Func):  # named as written: sqlglot calls random() "rand"
        written = clause[node.meta.get("start", 0):node.meta.get("end", -1) + 1].strip('"')
        return f"function {written if written.isidentifier() else node.sql_name().lower()}"
    return f"{NODE_NAMES.get(node.key, node.key)} {node.sql(reader)[:60]}"


def _regenerate(reader: Dialect, tree: exp.Expression, where_clause: str) -> str:
    """Render the checked tree, with ``:name`` binds and every other ':' escaped for text().

    PostgreSQL reads some bare words (``user``) as functions, so there names are folded
    as it folds them (ASCII letters only) and quoted. SQLite reads an unknown quoted
    name as a string, hiding a typo, so there plain names stay bare.
    """
    folds = reader.normalization_strategy is NormalizationStrategy.LOWERCASE
    for name in tree.find_all(exp.Identifier):
        if folds and not name.quoted:
            name.set("this", name.name.translate(ASCII_LOWER))
        name.set("quoted", name.quoted or folds or not PLAIN_NAME.match(name.name))
    marker, e_strings = f"ssot{secrets.token_hex(8)}", type(reader).__name__ in E_STRINGS

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder):  # becomes :name again below
            return exp.var(f"{marker}{node.name}{marker}")
        if e_strings and type(node) is exp.Literal and node.is_string and "\\" in node.name:
            return exp.ByteString(this=node.name)
        return node
    tree = tree.transform(rewrite)
    try:
        sql = tree.sql(dialect=reader, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as exc:
        raise _refused(where_clause, f"it cannot be written for this database ({exc})") from exc
    sql = sql.replace(":", "\\:")  # a ':' in a literal or quoted name is not a bind
    return re.sub(rf"{marker}(\w+?){marker}", r":\1", sql)


def _refused(where_clause: str, why: str) -> QueryGuardError:
    return QueryGuardError(
        f"where_clause {where_clause!r}: {why}; pass one condition using {ALLOWED_TEXT}, "
        f"with values in params, e.g. {EXAMPLE}")
