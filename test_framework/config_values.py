"""Check and convert one setting's raw value, keeping where it was set.

``config.py`` finds each value (class attribute, environment, ``setup.cfg``,
default); the functions here only judge it. Each takes a ``Setting`` and
returns a ``Setting`` with the converted value and the same source, or raises
a ``ConfigurationError`` that names the bad value, its source and what to
write instead. Nothing here reads the environment or a file.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from typing import Any

from test_framework.errors import ConfigurationError
from test_framework.log import mask_url

DEFAULT_SLOWEST = 10
N_PLUS_ONE_POLICIES = ("warn", "error", "ignore")
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class Setting:
    """A value and a human-readable description of where it was set."""

    value: Any
    source: str

    def __repr__(self) -> str:
        value = mask_url(self.value) if isinstance(self.value, str) and "://" in self.value \
            else self.value
        return f"Setting({value!r}, {self.source!r})"


def parse_bool(text: str) -> bool | None:
    """The one reading of a yes/no word: True, False, or None when ``text`` is neither."""
    word = text.strip().lower()
    return True if word in TRUE_WORDS else False if word in FALSE_WORDS else None


def as_bool(setting: Setting) -> Setting:
    """A yes/no value: a bool as given, a word as ``parse_bool`` reads it; None stays."""
    if setting.value is None or isinstance(setting.value, bool):
        return setting
    value = parse_bool(str(setting.value))
    if value is not None:
        return Setting(value, setting.source)
    raise ConfigurationError(
        f"{setting.source} is {setting.value!r}, not a boolean; use 1/0, true/false")


def as_slowest(setting: Setting) -> Setting:
    """Timing: off (None), on (the 10 slowest tests listed) or how many to list."""
    switch = parse_bool(setting.value)
    if switch is not None:
        return Setting(DEFAULT_SLOWEST if switch else None, setting.source)
    if setting.value.isdigit():
        return Setting(int(setting.value), setting.source)
    raise ConfigurationError(
        f"{setting.source} is {setting.value!r}; use 1 to report where time went at exit "
        f"(with the {DEFAULT_SLOWEST} slowest tests), a number such as 25 to list that many, "
        "or 0 for off")


def as_shard(setting: Setting) -> Setting:
    """A shard as ``(index, count)``, 1-based."""
    index, _, count = setting.value.partition("/")
    try:
        shard = (int(index), int(count))
    except ValueError:
        shard = (0, 0)
    if not 1 <= shard[0] <= shard[1]:
        raise ConfigurationError(
            f"{setting.source} is {setting.value!r}; use INDEX/COUNT with "
            "1 <= INDEX <= COUNT, e.g. 2/4 for the second of four machines")
    return Setting(shard, setting.source)


def as_log_level(setting: Setting) -> Setting:
    """A ``logging`` level's name, upper-cased, so the run's logging can be set by name."""
    name = setting.value.upper()
    if not isinstance(logging.getLevelName(name), int):
        raise ConfigurationError(
            f"{setting.source} is {name!r}, not a logging level; "
            "use DEBUG, INFO, WARNING or ERROR")
    return Setting(name, setting.source)


def as_seed(setting: Setting) -> Setting:
    """A shuffle seed: a whole number, ``"random"`` (picked when the run starts), or off."""
    text = setting.value.strip().lower()
    if text == "random" or text.isdigit():
        return Setting(text if text == "random" else int(text), setting.source)
    if text == "off":
        return Setting(None, setting.source)
    raise ConfigurationError(
        f"{setting.source} is {setting.value!r}, not a seed; use a whole number such as "
        "1234 to repeat an order, 'random' to pick one (it is printed), or 'off'")


def as_policy(setting: Setting) -> Setting:
    """What a query-count breach does: one of ``N_PLUS_ONE_POLICIES``; a typo gets a hint."""
    return _one_of(setting, N_PLUS_ONE_POLICIES,
                   f"use one of {', '.join(map(repr, N_PLUS_ONE_POLICIES))}")


SQLITE_DRIVERS = ("inline", "aiosqlite")


def as_sqlite_driver(setting: Setting) -> Setting:
    """The driver of rollback-mode SQLite engines: one of ``SQLITE_DRIVERS``."""
    return _one_of(setting, SQLITE_DRIVERS,
                   "use 'inline' (sqlite3 on the event loop's thread, the default) or "
                   "'aiosqlite' (a worker thread per connection)")


def _one_of(setting: Setting, choices: tuple[str, ...], advice: str) -> Setting:
    """A word out of ``choices`` (any case); else an error with ``advice`` and a close match."""
    value = str(setting.value).strip().lower()
    if value in choices:
        return Setting(value, setting.source)
    close = difflib.get_close_matches(value, choices, n=1)
    raise ConfigurationError(
        f"{setting.source} is {setting.value!r}; {advice}"
        + (f" (did you mean {close[0]!r}?)" if close else ""))


def as_count(setting: Setting) -> Setting:
    """A whole number of statements above 0 (a bool is refused, though it is an int)."""
    text = str(setting.value).strip()
    if isinstance(setting.value, bool) or not text.isdigit() or int(text) < 1:
        raise ConfigurationError(
            f"{setting.source} is {setting.value!r}, not a whole number of statements "
            "above 0; use e.g. 10")
    return Setting(int(text), setting.source)


def as_seconds(setting: Setting) -> Setting:
    """A positive number of seconds, as a float: a bound of 0 would fail every test."""
    try:
        seconds = float(setting.value)
    except (TypeError, ValueError):
        seconds = -1.0
    if seconds <= 0:
        raise ConfigurationError(
            f"{setting.source} is {setting.value!r}, not a positive number of seconds; "
            "use e.g. 4")
    return Setting(seconds, setting.source)
