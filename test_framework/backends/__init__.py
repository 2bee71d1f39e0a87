"""Pick the backend for a database URL: the one table from backend name to class.

A backend module is imported on first use, so a driver is needed only when a
URL asks for it. Bad URLs fail here, before anything connects, with a message
that names the value, where it came from and the fix.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from test_framework.backends.base import Backend
from test_framework.config import Setting, Timeouts, project_settings
from test_framework.errors import ConfigurationError, UnsafeDatabaseError
from test_framework.log import mask_url

BACKENDS = {
    "sqlite": "test_framework.backends.sqlite:SQLiteBackend",
    "postgresql": "test_framework.backends.postgresql:PostgreSQLBackend",
}
ALIASES = {"postgres": "postgresql", "pgsql": "postgresql", "sqlite3": "sqlite"}
DEFAULT_URL = "sqlite+aiosqlite:///framework.sqlite3"
EXAMPLES = "'sqlite+aiosqlite:///app.db' or 'postgresql+asyncpg://user@localhost:5432/app'"

TEST_PREFIX = "test_"
CHECKED_DATABASE = "test_framework.database"

__all__ = ["Backend", "backend_for", "backend_class_for_url", "guard_connection",
           "require_test_connection"]


def backend_for(setting: Setting, *, timeouts: Timeouts | None = None) -> Backend:
    """Return the backend for a configured URL (``None`` means the SQLite default).

    Checks, in order: the URL parses, its backend is known, it names that
    backend's async driver, and the driver package is installed. A backend
    holds no state of its own, so each class with the same setting gets the
    same one (what a class reads of it, such as its dialect, is built once).
    """
    if timeouts is None:
        timeouts = project_settings().timeouts
    return _backend_for(setting.value, setting.source, timeouts)


@functools.lru_cache(maxsize=32)
def _backend_for(value: str | None, source: str, timeouts: Timeouts) -> Backend:
    where = f"{source} is {mask_url(str(value or DEFAULT_URL))!r}"
    try:  # no local variable holds the unmasked text: tracebacks with --locals show locals
        url = make_url(DEFAULT_URL if value is None else value)
    except (ArgumentError, ValueError) as exc:
        raise ConfigurationError(
            f"{where}, not a database URL; use a SQLAlchemy async URL such as {EXAMPLES}"
        ) from None  # the parser's message only repeats the URL, password and all
    url = _without_query_overrides(url, where)
    name = ALIASES.get(url.get_backend_name(), url.get_backend_name())
    if name not in BACKENDS:
        raise ConfigurationError(
            f"{where}: backend {url.get_backend_name()!r} is not supported; "
            f"use one of {sorted(BACKENDS)}, e.g. {EXAMPLES}")
    backend_class = _load(name)
    if url.get_backend_name() == name and url.get_driver_name() in backend_class.engine_drivers:
        url = url.set(drivername=f"{name}+{backend_class.driver}")  # an engine's, e.g. inline
    if url.get_backend_name() != name or url.get_driver_name() != backend_class.driver:
        kind = (f"driver {url.get_driver_name()!r}, not {name}'s async driver "
                f"{backend_class.driver!r}" if "+" in url.drivername else "a sync driver")
        fixed = mask_url(url.set(drivername=f"{name}+{backend_class.driver}"))
        raise ConfigurationError(
            f"{where}, {kind}; the framework runs on asyncio: use {fixed!r}")
    if not _installed(backend_class.driver):
        package = (f"'test_framework[{backend_class.extra}]'" if backend_class.extra
                   else backend_class.driver)
        raise ConfigurationError(
            f"{where}, which needs the {backend_class.driver!r} package, not installed; "
            f"run: pip install {package}")
    return backend_class(url, source=source, timeouts=timeouts)


# Query parameters the drivers read instead of the URL's own parts (asyncpg takes every
# query parameter as a connect argument), and SQLite's switch to URI filenames.
OVERRIDING_PARAMETERS = {"database": "database", "dbname": "database", "host": "host",
                         "port": "port", "user": "username", "username": "username"}
REFUSED_PARAMETERS = {"dsn": "it replaces the whole URL",
                      "uri": "it makes the driver read the path as a URI with options of its own"}


def _without_query_overrides(url: URL, where: str) -> URL:
    """Refuse query parameters that would point the driver elsewhere than the URL says.

    A parameter that repeats the URL's own part is dropped, one that fills a
    part the URL lacks moves there; one that conflicts is refused. A
    ``password`` moves into the URL, where every rendering masks it.
    """
    for key in list(url.query):
        value = url.query[key]
        if key in REFUSED_PARAMETERS:
            raise ConfigurationError(
                f"{where}: the query parameter {key!r} is not accepted, because "
                f"{REFUSED_PARAMETERS[key]}; put the database in the URL's own parts")
        part = "password" if key == "password" else OVERRIDING_PARAMETERS.get(key)
        if part is None:
            continue
        if isinstance(value, tuple):
            value = value[0] if len(set(value)) == 1 else value
        own = getattr(url, part)
        if own is not None and str(own) != str(value):
            shown = "***" if part == "password" else value
            raise ConfigurationError(
                f"{where}: the query parameter {key}={shown!r} conflicts with the URL's own "
                f"{part} {('***' if part == 'password' else own)!r}, and the driver would "
                f"use the query's; remove the parameter and keep the {part} in the URL")
        if own is None and part in ("host", "port") and url.get_backend_name() != "sqlite":
            continue  # e.g. ?host=/var/run/postgresql for a Unix socket: no conflict
        url = url.difference_update_query([key]).set(**{part: value if part != "port"
                                                        else int(value)})
    return url


def backend_class_for_url(url: URL) -> type[Backend]:
    """Return the backend class for an already-working URL (e.g. a session's engine)."""
    name = ALIASES.get(url.get_backend_name(), url.get_backend_name())
    if name not in BACKENDS:
        raise ConfigurationError(
            f"{mask_url(url)!r}: backend {name!r} is not supported; use one of {sorted(BACKENDS)}")
    return _load(name)


@functools.cache
def _load(name: str) -> type[Backend]:
    """The backend class for a name, its module imported on first use (asked per class)."""
    module_name, _, class_name = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


@functools.cache
def _installed(package: str) -> bool:
    """Whether ``package`` can be imported; asked once per process (each class asked twice)."""
    return importlib.util.find_spec(package) is not None


def guard_connection(backend_class: type[Backend], dbapi_connection, info: dict,
                     action: str) -> None:
    """Refuse to ``action`` unless the server says this connection is on a ``test_`` database.

    The URL is not trusted: its query string can send the driver elsewhere.
    The answer is remembered in the connection's ``info``, so a connection is
    asked once (engines made by the framework ask when they connect).
    """
    name = info.get(CHECKED_DATABASE)
    if name is None:
        name = backend_class.connected_database(dbapi_connection)
    if not name.startswith(TEST_PREFIX):
        raise UnsafeDatabaseError(
            f"refusing to {action} database {name!r}: the server says this connection is on "
            f"it, and its name does not start with {TEST_PREFIX!r}. The framework only "
            f"touches databases made for tests; point the URL at your application database "
            f"and let the framework create a {TEST_PREFIX}<name> database beside it")
    info[CHECKED_DATABASE] = name


async def require_test_connection(connection, action: str) -> None:
    """``guard_connection`` for an ``AsyncConnection`` (e.g. a user's own session's)."""
    def check(sync_connection) -> None:
        guard_connection(backend_class_for_url(sync_connection.engine.url),
                         sync_connection.connection.dbapi_connection, sync_connection.info,
                         action)
    await connection.run_sync(check)
