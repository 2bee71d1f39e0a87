"""Statement shapes: the SQL of a statement without what varies from run to run.

A *shape* is a statement with what varies between runs taken out, so the
same query written for different rows compares equal: literals and bound
parameters become ``?`` (a PostgreSQL cast on a parameter, ``$1::INTEGER``,
goes with it), an ``IN`` list of values becomes ``IN (...)``, the rows of a
multi-row ``VALUES`` collapse to one, savepoint names and comments go,
whitespace becomes single spaces, SQL keywords are upper case and other
words lower case. The text is split with sqlglot's tokenizer in the
server's dialect, so strings (``'it''s'``, ``E'...'``, ``$$...$$``) and
quoted names are never mistaken for SQL; shapes are cached by statement, so
a statement SQLAlchemy sends again costs a dictionary look-up.
"""

from __future__ import annotations

import functools
import re

from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.tokens import Token, TokenType

from test_framework.log import mask_secrets
from test_framework.ssot.query_guards import SQLGLOT_DIALECTS

LITERALS = {TokenType.STRING, TokenType.NUMBER, TokenType.BIT_STRING, TokenType.HEX_STRING,
            TokenType.BYTE_STRING, TokenType.NATIONAL_STRING, TokenType.RAW_STRING,
            TokenType.HEREDOC_STRING, TokenType.UNICODE_STRING, TokenType.TRUE,
            TokenType.FALSE}
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")
# Upper-cased in shapes; every other unquoted word (tables, columns, functions) is lower-cased.
KEYWORDS = frozenset("""
    ALL ALTER AND ANY AS ASC BEGIN BETWEEN BY CASE CAST CHECK COMMIT CONFLICT CONSTRAINT
    CREATE CROSS DEFAULT DELETE DESC DISTINCT DO DROP ELSE END EXCEPT EXISTS FALSE FETCH FIRST
    FOR FOREIGN FROM FULL GROUP HAVING IF ILIKE IN INDEX INNER INSERT INTERSECT INTO IS JOIN
    KEY LAST LATERAL LEFT LIKE LIMIT LOCKED NOT NOTHING NOWAIT NULL NULLS OF OFFSET ON ONLY OR
    ORDER OUTER OVER PARTITION PRAGMA PRIMARY RECURSIVE REFERENCES RELEASE RETURNING RIGHT
    ROLLBACK ROW ROWS SAVEPOINT SELECT SET SHARE SKIP TABLE THEN TO TRUE TRUNCATE UNION UNIQUE
    UPDATE USING VALUES WHEN WHERE WINDOW WITH""".split())
NO_SPACE_BEFORE = {",", ")", "]", ".", "::", ";"}
NO_SPACE_AFTER = {"(", "[", ".", "::"}
READS = ("SELECT", "WITH")


def reads(statement: str) -> bool:
    """Tell whether a statement reads rows (SELECT or WITH), cheaply, without parsing it."""
    return statement.lstrip(" \t\r\n(")[:6].upper().startswith(READS)


@functools.lru_cache(maxsize=4096)
def statement_shape(statement: str, dialect: str = "") -> str:
    """Return the shape of ``statement`` (module docstring); ``dialect`` is SQLAlchemy's name."""
    try:
        tokenizer = _tokenizer_class(SQLGLOT_DIALECTS.get(dialect, dialect))()  # holds state
        tokens = tokenizer.tokenize(statement)
        return _render(_collapse_values(_collapse_in_lists(_words(tokens))))
    except (SqlglotError, ValueError, IndexError):  # not SQL we can split: whitespace at least
        # (this runs inside the statement listener: it must never fail the user's query)
        return mask_secrets(" ".join(statement.split()))


@functools.lru_cache(maxsize=None)
def _tokenizer_class(dialect: str) -> type:
    try:
        return Dialect.get_or_raise(dialect).tokenizer_class
    except ValueError:  # a backend sqlglot does not know: its generic SQL
        return Dialect.get_or_raise("").tokenizer_class


def _words(tokens: list[Token]) -> list[str]:
    """Turn tokens into the shape's words: parameters and literals ``?``, names in one case."""
    words: list[str] = []
    position = 0
    while position < len(tokens):
        token = tokens[position]
        position += 1
        kind, text = token.token_type, token.text
        if kind in LITERALS and not (kind in (TokenType.TRUE, TokenType.FALSE)
                                     and words[-1:] in (["IS"], ["NOT"])):
            words.append("?")
        elif _is_parameter(tokens, position - 1):
            words.append("?")
            position = _skip_parameter(tokens, position - 1)
        elif kind is TokenType.SEMICOLON or (words[-1:] == ["SAVEPOINT"] and (
                kind is TokenType.IDENTIFIER or WORD.match(text))):
            continue  # a savepoint's name is a counter, different in every run
        elif kind is TokenType.IDENTIFIER:
            words.append('"' + text.replace('"', '""') + '"')
        elif WORD.match(text):
            keyword = text.upper() in KEYWORDS and words[-1:] != ["."]  # t.key is a column
            words.append(text.upper() if keyword else text.lower())
        else:
            words.append(text)
    return words


def _is_parameter(tokens: list[Token], at: int) -> bool:
    """``?``, ``$1`` (asyncpg), ``:name``, ``%s`` and ``%(name)s`` (pyformat drivers)."""
    kind = tokens[at].token_type
    if kind is TokenType.PLACEHOLDER:
        return True
    if kind not in (TokenType.PARAMETER, TokenType.COLON, TokenType.MOD):
        return False
    following = [token.text for token in tokens[at + 1:at + 5]]
    if kind is TokenType.PARAMETER:
        return following[:1] != [] and following[0].isdigit()
    if kind is TokenType.COLON:
        return following[:1] != [] and bool(WORD.match(following[0]))
    return following[:1] == ["s"] or (following[:1] == ["("] and following[2:4] == [")", "s"])


def _skip_parameter(tokens: list[Token], at: int) -> int:
    """Return the position after the parameter at ``at`` and any ``::TYPE`` cast on it."""
    kind = tokens[at].token_type
    if kind is TokenType.PLACEHOLDER:
        position = at + 1
    elif kind is TokenType.MOD and tokens[at + 1].text == "(":
        position = at + 5
    else:
        position = at + 2
    if position < len(tokens) and tokens[position].token_type is TokenType.DCOLON:
        position += 2  # the type's first word
        position = _skip_brackets(tokens, position, TokenType.L_PAREN, TokenType.R_PAREN)
        while position + 1 < len(tokens) and tokens[position].token_type is TokenType.L_BRACKET:
            position += 2
        upcoming = [token.text.upper() for token in tokens[position:position + 3]]
        if upcoming in (["WITH", "TIME", "ZONE"], ["WITHOUT", "TIME", "ZONE"]):
            position += 3
        elif upcoming[:1] in (["PRECISION"], ["VARYING"]):
            position += 1
    return position


def _skip_brackets(tokens: list[Token], position: int, opening, closing) -> int:
    if position >= len(tokens) or tokens[position].token_type is not opening:
        return position
    depth = 0
    for index in range(position, len(tokens)):
        depth += {opening: 1, closing: -1}.get(tokens[index].token_type, 0)
        if depth == 0:
            return index + 1
    return len(tokens)


def _collapse_in_lists(words: list[str]) -> list[str]:
    """``IN (?, ?, ?)`` -> ``IN (...)``: a list of values is one shape, whatever its length."""
    out: list[str] = []
    position = 0
    while position < len(words):
        if words[position] == "IN" and words[position + 1:position + 2] == ["("]:
            end = _closing(words, position + 1)
            inside = words[position + 2:end]
            if inside and all(word in ("?", ",") for word in inside):
                out += ["IN", "(", "...", ")"]
                position = end + 1
                continue
        out.append(words[position])
        position += 1
    return out


def _collapse_values(words: list[str]) -> list[str]:
    """``VALUES (?, ?), (?, ?)`` -> ``VALUES (?, ?)``: the rows of one insert are one shape."""
    out: list[str] = []
    position = 0
    while position < len(words):
        out.append(words[position])
        if words[position] == "VALUES" and words[position + 1:position + 2] == ["("]:
            end = _closing(words, position + 1)
            row = words[position + 1:end + 1]
            out += row
            position = end + 1
            while words[position:position + 1] == [","] and \
                    words[position + 1:position + 1 + len(row)] == row:
                position += 1 + len(row)
            continue
        position += 1
    return out


def _closing(words: list[str], opening: int) -> int:
    depth = 0
    for index in range(opening, len(words)):
        depth += {"(": 1, ")": -1}.get(words[index], 0)
        if depth == 0:
            return index
    return len(words) - 1


def _render(words: list[str]) -> str:
    """Join words with single spaces, as SQLAlchemy writes SQL: ``f(x)``, ``INTO t (a)``."""
    parts: list[str] = []
    for index, word in enumerate(words):
        previous = words[index - 1] if index else None
        glued = previous is None or word in NO_SPACE_BEFORE or previous in NO_SPACE_AFTER
        if word == "(" and not glued:  # a call, unless a keyword or a table's name precedes
            named = previous[:1] == '"' or (WORD.match(previous) and previous not in KEYWORDS)
            glued = named and words[index - 2:index - 1] not in (["INTO"], ["TABLE"])
        parts.append(word if glued else " " + word)
    return "".join(parts)
