"""What a column accepts: made-up values from its real type, and Python values it can bind.

A factory that writes ``'user-2'`` into a UUID key, ``'user'`` where only
``member``/``admin`` are allowed, or ``7`` where a CHECK says 1 to 5 fails a
test for a reason the test is not about. So a made-up value follows the
column's type: the declared one when the test class gives ``metadata``, else
the reflected one. A reflected type says less (on SQLite a ``Uuid`` reads
back as ``CHAR(32)``, an ``Enum`` as ``VARCHAR`` plus a CHECK constraint),
so what the column's CHECK constraints allow counts too (check_constraints.py).

* UUID columns (``Uuid``, PostgreSQL ``UUID``, and, where the database has no
  UUID type, ``CHAR(32)``/``CHAR(36)``: how ``Uuid`` and the GUID recipes
  store one) get a random ``uuid.UUID``; enums their first member; a CHECK
  ``IN`` list its first value;
* text ``"<kind>-<n>"`` (e-mail columns ``"<kind>-<n>@example.test"``,
  ``role`` ``"user"``), shortened to the column's length keeping ``n``;
* numbers ``n``, moved inside the CHECK range and the column's precision;
  booleans ``False``, dates and times now (UTC), JSON ``{}``.
"""

from __future__ import annotations

import enum
import math
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import CHAR, JSON, Column, Enum, Float, Numeric, String, Uuid
from sqlalchemy.types import TypeDecorator

from test_framework.errors import QueryGuardError
from test_framework.ssot.check_constraints import Allowed, check_allowed

EMAIL_DOMAIN = "example.test"
NAMED_VALUES = {"role": "user"}
UUID_TEXT_LENGTHS = (32, 36)  # Uuid's hex on SQLite; str(uuid) in CHAR(36) GUID types


class UuidText(TypeDecorator):
    """A reflected ``CHAR(32)``/``CHAR(36)`` on a database without a UUID type, used as one.

    A ``uuid.UUID`` binds as the text that column holds (hex for 32, dashed for 36), and
    text of that form reads back as ``uuid.UUID``, as it does through ``Uuid``.
    """

    impl = CHAR
    cache_ok = True
    python_type = uuid.UUID

    def process_bind_param(self, value, dialect):
        if isinstance(value, uuid.UUID):
            return value.hex if self.impl_instance.length == 32 else str(value)
        return value

    def process_result_value(self, value, dialect):
        if isinstance(value, str) and len(value) == self.impl_instance.length:
            try:
                return uuid.UUID(value)
            except ValueError:
                return value
        return value


def read_uuid_text(inspector, table, column_info: dict) -> None:
    """``column_reflect`` hook: make a GUID-shaped CHAR column a ``UuidText``."""
    reflected = column_info["type"]
    if (not inspector.dialect.supports_native_uuid and isinstance(reflected, CHAR)
            and reflected.length in UUID_TEXT_LENGTHS):
        column_info["type"] = UuidText(reflected.length)


def made_up_value(column: Column, kind: str, number: int, *, dialect,
                  caller: str = "create_test_user()") -> Any:
    """Return a value of the column's type that its CHECKs allow, unique per ``number``
    where the type allows."""
    storage = storage_type(column.type, dialect)
    allowed = check_allowed(column, dialect)
    python_type = _python_type(column.type)
    if isinstance(storage, Enum) and (storage.enum_class is not None or storage.enums):
        return next(iter(storage.enum_class)) if storage.enum_class else storage.enums[0]
    if is_uuid_column(column.type, dialect):
        made = uuid.uuid4()
        return str(made) if isinstance(storage, Uuid) and not storage.as_uuid else made
    if python_type is bool:  # before CHECKs: a Boolean's own is "IN (0, 1)"
        return False
    if allowed.values:
        return allowed.values[0]
    if isinstance(storage, JSON):
        return {}
    if python_type is str:
        return _text(column, storage, kind, number, allowed)
    if python_type in (int, float, Decimal):
        return python_type(_number(storage, number, allowed))
    now = datetime.now(timezone.utc)
    if not getattr(storage, "timezone", False):
        now = now.replace(tzinfo=None)
    simple = {datetime: now, date: now.date(), time: now.time(), timedelta: timedelta(0),
              list: [], bytes: f"{kind}-{number}".encode()}
    if python_type in simple:
        return simple[python_type]
    raise QueryGuardError(
        f"{caller} cannot make up a value for the required column "
        f"{column.table.fullname}.{column.name} (type {column.type}); pass it in the row "
        f"data, e.g. {call_with(caller, f'{{{column.key!r}: ...}}')}")


def call_with(caller: str, argument: str) -> str:
    """``call_with("create('tasks')", "x=1")`` is ``"create('tasks', x=1)"``, for messages."""
    return f"{caller[:-1]}{', ' if caller[-2] != '(' else ''}{argument})"


def bindable(column: Column, value: Any, *, dialect) -> Any:
    """Return ``value`` as the column stores it, when its type would not bind it as given.

    An enum member goes into a plain text or enum column as its name (what ``Enum``
    stores), or its value when only that is allowed; a ``uuid.UUID`` into a text
    column as hex (``CHAR(32)``) or dashed text. A ``TypeDecorator`` binds its own.
    """
    column_type = column.type
    if isinstance(column_type, TypeDecorator):
        return value
    if isinstance(value, enum.Enum) and not isinstance(value, (str, int)) and not (
            isinstance(column_type, Enum) and column_type.enum_class is not None):
        choices = (column_type.enums if isinstance(column_type, Enum)
                   else check_allowed(column, dialect).values)
        only_the_value = value.name not in choices and value.value in choices
        return value.value if only_the_value else value.name
    if isinstance(value, uuid.UUID) and isinstance(column_type, String):
        return value.hex if column_type.length == 32 else str(value)
    return value


def storage_type(column_type, dialect):
    """Return the type the database stores, looking through ``TypeDecorator``s."""
    for _ in range(8):
        if not isinstance(column_type, TypeDecorator):
            break
        column_type = column_type.load_dialect_impl(dialect)
    return column_type


def is_uuid_column(column_type, dialect) -> bool:
    storage = storage_type(column_type, dialect)
    return isinstance(storage, Uuid) or (
        not dialect.supports_native_uuid and isinstance(storage, CHAR)
        and storage.length in UUID_TEXT_LENGTHS)


def _text(column: Column, storage, kind: str, number: int, allowed: Allowed) -> str:
    name = column.name.lower()
    value = (f"{kind}-{number}@{EMAIL_DOMAIN}" if "email" in name
             else NAMED_VALUES.get(name, f"{kind}-{number}"))
    if allowed.min_length and len(value) < allowed.min_length:
        value = value.ljust(allowed.min_length, "x")
    limits = [limit for limit in (getattr(storage, "length", None), allowed.max_length) if limit]
    length = min(limits) if limits else None
    if length and len(value) > length:  # keep the number, so values stay distinct
        digits = str(number)
        value = digits[-length:] if len(digits) >= length else value[:length - len(digits)] + digits
    return value


def _number(storage, number: int, allowed: Allowed):
    """Return ``number``, or an integer inside the CHECK range and the column's precision."""
    low, high = allowed.low, allowed.high
    if isinstance(storage, Numeric) and not isinstance(storage, Float) and storage.precision:
        limit = 10 ** (storage.precision - (storage.scale or 0)) - 1
        if low is None:  # made-up numbers stay positive unless the CHECK wants negatives
            low = 0 if high is None or high >= 0 else -limit
        low, high = max(low, -limit), limit if high is None else min(high, limit)
    first = _whole(low, allowed.low_open, math.floor, +1)
    last = _whole(high, allowed.high_open, math.ceil, -1)
    if first is not None and last is not None and first > last:  # no integer fits
        return (Decimal(str(low)) + Decimal(str(high))) / 2
    value = number
    if first is not None and last is not None and not first <= number <= last:
        value = first + (number - first) % (last - first + 1)
    elif first is not None and number < first:
        value = first + number
    elif last is not None and number > last:
        value = last
    for _ in allowed.excluded:
        if value not in allowed.excluded:
            break
        value = value + 1 if last is None or value < last else value - 1
    return value


def _whole(bound, is_open: bool, rounding, step: int) -> int | None:
    """The nearest integer inside a bound: 2.5 -> 3 as a low, 2 -> 3 when open."""
    if bound is None:
        return None
    return rounding(bound) + step if is_open or bound % 1 else int(bound)


def _python_type(column_type) -> type | None:
    try:
        return column_type.python_type
    except NotImplementedError:
        return None
