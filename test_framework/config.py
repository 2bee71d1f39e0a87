"""Where settings come from: class attribute > environment > setup.cfg > default.

The environment and ``setup.cfg`` are read once per process, on first use,
never at import time. Each value remembers its source so an error can say
where a bad value was set ("TEST_DATABASE_URL (environment)"). This module
finds the values; ``config_values.py`` checks and converts them.
"""

from __future__ import annotations

import configparser
import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from test_framework.config_values import (Setting, as_bool, as_count, as_log_level, as_policy,
                                         as_seconds, as_seed, as_shard, as_slowest,
                                         as_sqlite_driver)
from test_framework.config_values import DEFAULT_SLOWEST, parse_bool  # noqa: F401 (importers)
from test_framework.errors import ConfigurationError

SECTION = "test_framework"
DATABASE_URL_ENV = "TEST_DATABASE_URL"
CACHE_ENVIRONMENT = "XDG_CACHE_HOME"
ENVIRONMENT_KEYS = {
    "database_url": DATABASE_URL_ENV,
    "asyncio_debug": "TEST_FRAMEWORK_ASYNCIO_DEBUG",
    "connect_timeout": "TEST_FRAMEWORK_CONNECT_TIMEOUT",
    "lock_timeout": "TEST_FRAMEWORK_LOCK_TIMEOUT",
    "statement_timeout": "TEST_FRAMEWORK_STATEMENT_TIMEOUT",
    "leftover_rows": "TEST_FRAMEWORK_LEFTOVER_ROWS",
    "keep_database": "TEST_FRAMEWORK_KEEP_DATABASE",
    "keep_failed": "TEST_FRAMEWORK_KEEP_FAILED",
    "n_plus_one": "TEST_FRAMEWORK_N_PLUS_ONE",
    "n_plus_one_threshold": "TEST_FRAMEWORK_N_PLUS_ONE_THRESHOLD",
    "update_snapshots": "TEST_FRAMEWORK_UPDATE_SNAPSHOTS",
    "shard": "TEST_FRAMEWORK_SHARD",
    "timing": "TEST_FRAMEWORK_TIMING",
    "log_level": "TEST_FRAMEWORK_LOG_LEVEL",
    "shuffle": "TEST_FRAMEWORK_SHUFFLE",
    "sqlite_driver": "TEST_FRAMEWORK_SQLITE_DRIVER",
}
DEFAULTS = {"database_url": None, "asyncio_debug": None, "connect_timeout": 3.0,
            "lock_timeout": 10.0, "statement_timeout": 60.0, "leftover_rows": "warn",
            "keep_database": False, "keep_failed": False, "n_plus_one": "warn",
            "n_plus_one_threshold": 10,
            "update_snapshots": False, "shard": None, "timing": None, "log_level": None,
            "shuffle": None, "sqlite_driver": "inline"}
# Switches for one run on one machine: read from the environment alone (never setup.cfg),
# afresh on each call, so a test that sets one sees it (``run_setting``).
RUN_KEYS = ("shard", "timing", "log_level", "shuffle")
DEFAULT_SOURCE = "default"


@dataclass(frozen=True)
class ProjectSettings:
    """Settings shared by every test class in the process."""

    database_url: Setting
    asyncio_debug: Setting
    connect_timeout: Setting
    lock_timeout: Setting
    statement_timeout: Setting
    leftover_rows: Setting
    keep_database: Setting
    keep_failed: Setting
    n_plus_one: Setting
    n_plus_one_threshold: Setting
    update_snapshots: Setting
    sqlite_driver: Setting = Setting("inline", DEFAULT_SOURCE)

    @property
    def timeouts(self) -> "Timeouts":
        return Timeouts(self.connect_timeout.value, self.lock_timeout.value,
                        self.statement_timeout.value)


@dataclass(frozen=True)
class Timeouts:
    """Bounds, in seconds, so a test can fail but never hang."""

    connect: float = DEFAULTS["connect_timeout"]
    lock: float = DEFAULTS["lock_timeout"]
    statement: float = DEFAULTS["statement_timeout"]


def load_project_settings(environ: Mapping[str, str] = os.environ,
                          start: Path | None = None) -> ProjectSettings:
    """Read the environment and the nearest ``setup.cfg``; pure, for tests."""
    cfg_path, section = _read_setup_cfg(start or Path.cwd())
    values = {}
    for key, env_name in ENVIRONMENT_KEYS.items():
        if key in RUN_KEYS:
            continue
        if environ.get(env_name, "").strip():
            values[key] = Setting(environ[env_name].strip(), f"{env_name} (environment)")
        elif section.get(key, "").strip():
            values[key] = Setting(section[key].strip(), f"{key} in [{SECTION}] of {cfg_path}")
        else:
            values[key] = Setting(DEFAULTS[key], DEFAULT_SOURCE)
    return ProjectSettings(
        database_url=values["database_url"],
        asyncio_debug=as_bool(values["asyncio_debug"]),
        connect_timeout=as_seconds(values["connect_timeout"]),
        lock_timeout=as_seconds(values["lock_timeout"]),
        statement_timeout=as_seconds(values["statement_timeout"]),
        leftover_rows=values["leftover_rows"],
        keep_database=as_bool(values["keep_database"]),
        keep_failed=as_bool(values["keep_failed"]),
        n_plus_one=as_policy(values["n_plus_one"]),
        n_plus_one_threshold=as_count(values["n_plus_one_threshold"]),
        update_snapshots=as_bool(values["update_snapshots"]),
        sqlite_driver=as_sqlite_driver(values["sqlite_driver"]),
    )


@functools.cache
def project_settings() -> ProjectSettings:
    """Return the process-wide settings, read on first call."""
    return load_project_settings()


def run_setting(name: str, environ: Mapping[str, str] = os.environ) -> Setting:
    """Read one of ``RUN_KEYS`` from the environment now, checked: a shard as
    ``(index, count)``, timing as how many slowest tests to list, a log level's name;
    None when unset or off."""
    env_name = ENVIRONMENT_KEYS[name]
    raw = environ.get(env_name, "").strip()
    if not raw:
        return Setting(DEFAULTS[name], DEFAULT_SOURCE)
    parse = {"shard": as_shard, "timing": as_slowest, "log_level": as_log_level,
             "shuffle": as_seed}[name]
    return parse(Setting(raw, f"{env_name} (environment)"))


def cache_folder(environ: Mapping[str, str] = os.environ) -> Setting:
    """The framework's folder for files kept between runs (SQLite templates, kept databases,
    passed migration checks): ``$XDG_CACHE_HOME/test_framework``, else
    ``~/.cache/test_framework``. Read afresh on each call, like ``run_setting``; not made."""
    base = environ.get(CACHE_ENVIRONMENT)
    if base:
        return Setting(Path(base) / "test_framework", f"{CACHE_ENVIRONMENT} (environment)")
    return Setting(Path.home() / ".cache" / "test_framework", DEFAULT_SOURCE)


def attribute_source(test_class: type, name: str) -> str:
    """How an error names a class attribute: ``TestX.isolation (class attribute)``."""
    return f"{test_class.__qualname__}.{name} (class attribute)"


def class_value(test_class: type, name: str, default: Any = None) -> Setting:
    """Read a class attribute as it is, naming it as the source; ``default`` when it is
    absent or None. For values checked where they are used (``isolation`` in
    ``ssot/isolation``, ``sandbox`` in ``ssot/sandbox.py``): the check names the source."""
    value = getattr(test_class, name, None)
    if value is None:
        return Setting(default, DEFAULT_SOURCE)
    return Setting(value, attribute_source(test_class, name))


def database_url_for(test_class: type) -> Setting:
    """Resolve the database URL a test class runs against."""
    value = getattr(test_class, "database_url", None)
    if value:
        return Setting(str(value), attribute_source(test_class, "database_url"))
    return project_settings().database_url


def class_setting(test_class: type, name: str) -> Setting:
    """Resolve ``n_plus_one`` or ``n_plus_one_threshold`` for a class: its attribute, else the
    project's value (environment > setup.cfg > default)."""
    value = getattr(test_class, name, None)
    if value is None:
        return getattr(project_settings(), name)
    checks = {"n_plus_one": as_policy, "n_plus_one_threshold": as_count}
    return checks[name](Setting(value, attribute_source(test_class, name)))


def leftover_rows_for(test_class: type) -> Setting:
    """Resolve ``leftover_rows`` for a class: its attribute, else the project's value.
    Checked by ``ssot/leftovers.py`` when a commit-mode class starts."""
    value = getattr(test_class, "leftover_rows", None)
    if not value:
        return project_settings().leftover_rows
    return Setting(value, attribute_source(test_class, "leftover_rows"))


def class_switch(test_class: type, name: str, default: bool) -> Setting:
    """Resolve a yes/no class attribute (``reset_sequences``): its value, else ``default``."""
    value = getattr(test_class, name, None)
    if value is None:
        return Setting(default, DEFAULT_SOURCE)
    return as_bool(Setting(value, attribute_source(test_class, name)))


PROJECT_MARKERS = ("setup.cfg", "pyproject.toml")


def class_folder(test_class: type) -> Path:
    """The folder of the file that declares ``test_class`` (the working directory if none)."""
    module = sys.modules.get(test_class.__module__)
    file = getattr(module, "__file__", None)
    return _resolved_folder(file) if file else Path.cwd()


@functools.lru_cache(maxsize=256)
def _resolved_folder(file: str) -> Path:
    """The real folder of a module's file, resolved once per process: resolving walks the
    path a system call per part, and every test class asks."""
    return Path(file).resolve().parent


@functools.lru_cache(maxsize=256)
def project_root(folder: Path) -> Path:
    """The nearest folder at or above ``folder`` with setup.cfg or pyproject.toml (looked
    up once per folder and process: each test class asks)."""
    for candidate in (folder, *folder.parents):
        if any((candidate / marker).is_file() for marker in PROJECT_MARKERS):
            return candidate
    return folder


def class_file_setting(test_class: type, attribute: str) -> Path | None:
    """Resolve a file named by a class attribute, never from the working directory.

    A relative path is looked up beside the file that declares the class,
    then in each parent folder up to the project root, so ``pytest app/tests``
    from anywhere finds the same file. The error lists every place it looked.
    """
    value = getattr(test_class, attribute, None)
    if not value:
        return None
    path = Path(value)
    folder = class_folder(test_class)
    root = project_root(folder)
    folders = [folder]
    while folders[-1] != root and folders[-1] != folders[-1].parent:
        folders.append(folders[-1].parent)
    places = [path] if path.is_absolute() else [where / path for where in folders]
    for candidate in places:
        if candidate.is_file():
            return candidate
    raise ConfigurationError(
        f"{attribute_source(test_class, attribute)} is {str(value)!r}, which is "
        f"not a file; looked in: {', '.join(str(p) for p in places)}. Give a path relative "
        f"to the test file's folder or the project root ({root}), or an absolute one")


class ClassSettings:
    """What one test class asks for, each value a ``Setting`` with its source.

    Made once per class by what owns the class's resources, and handed on:
    ``schema_from(settings)``, ``isolation_mode(settings.isolation)``. Each value
    is read and checked on first use, not when the object is made, so a bad
    value fails where it is used and an attribute set in ``setUpClass`` is seen.
    Never cached across objects: tests change class attributes between runs.
    """

    def __init__(self, test_class: type) -> None:
        self.test_class = test_class

    def __repr__(self) -> str:
        return f"ClassSettings({self.test_class.__qualname__})"

    database_url = functools.cached_property(lambda self: database_url_for(self.test_class))
    isolation = functools.cached_property(
        lambda self: class_value(self.test_class, "isolation", "rollback"))
    leftover_rows = functools.cached_property(lambda self: leftover_rows_for(self.test_class))
    session_options = functools.cached_property(
        lambda self: class_value(self.test_class, "session_options"))
    sandbox = functools.cached_property(lambda self: class_value(self.test_class, "sandbox"))
    reset_sequences = functools.cached_property(
        lambda self: class_switch(self.test_class, "reset_sequences", False))
    check_deferred_constraints = functools.cached_property(
        lambda self: class_switch(self.test_class, "check_deferred_constraints", True))
    check_models = functools.cached_property(
        lambda self: class_switch(self.test_class, "check_models", False))
    query_snapshots = functools.cached_property(
        lambda self: class_switch(self.test_class, "query_snapshots", False))
    n_plus_one = functools.cached_property(
        lambda self: class_setting(self.test_class, "n_plus_one"))
    n_plus_one_threshold = functools.cached_property(
        lambda self: class_setting(self.test_class, "n_plus_one_threshold"))
    alembic_ini = functools.cached_property(
        lambda self: class_file_setting(self.test_class, "alembic_ini"))
    schema_sql = functools.cached_property(
        lambda self: class_file_setting(self.test_class, "schema_sql"))
    folder = functools.cached_property(lambda self: class_folder(self.test_class))

    @functools.cached_property
    def metadata(self) -> Setting | None:
        """The class's ``metadata`` (None there means no schema); None when the class has
        no such attribute, so the caller's default applies (the sample schema)."""
        if not hasattr(self.test_class, "metadata"):
            return None
        return Setting(self.test_class.metadata, attribute_source(self.test_class, "metadata"))


def _read_setup_cfg(start: Path) -> tuple[Path | None, Mapping[str, str]]:
    """Find the nearest setup.cfg upwards from ``start`` that has our section."""
    for folder in (start, *start.parents):
        candidate = folder / "setup.cfg"
        if candidate.is_file():
            parser = configparser.ConfigParser(interpolation=None)
            try:
                parser.read(candidate, encoding="utf-8")
            except configparser.Error as exc:
                raise ConfigurationError(
                    f"{candidate} cannot be parsed ({exc}); fix its syntax") from exc
            if parser.has_section(SECTION):
                return candidate, dict(parser.items(SECTION))
    return None, {}
