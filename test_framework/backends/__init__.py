"""Pick the backend for a database URL: the one table from backend name to class.

A backend module is imported on first use, so a driver is needed only when a
URL asks for it. Bad URLs fail here, before anything connects, with a message
that names the value, where it came from and the fix.
"""

from __future__ import annotations

import importlib
import importlib.util

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from test_framework.backends.base import Backend
from test_framework.config import Setting, Timeouts, project_settings
from test_framework.errors import ConfigurationError
from test_framework.log import mask_url

BACKENDS = {
    "sqlite": "test_framework.backends.sqlite:SQLiteBackend",
    "postgresql": "test_framework.backends.postgresql:PostgreSQLBackend",
}
ALIASES = {"postgres": "postgresql", "pgsql": "postgresql", "sqlite3": "sqlite"}
DEFAULT_URL = "sqlite+aiosqlite:///framework.sqlite3"
EXAMPLES = "'sqlite+aiosqlite:///app.db' or 'postgresql+asyncpg://user@localhost:5432/app'"

__all__ = ["Backend", "backend_for", "backend_class_for_url"]


def backend_for(setting: Setting, *, timeouts: Timeouts | None = None) -> Backend:
    """Return the backend for a configured URL (``None`` means the SQLite default).

    Checks, in order: the URL parses, its backend is known, it names that
    backend's async driver, and the driver package is installed.
    """
    raw = DEFAULT_URL if setting.value is None else setting.value
    where = f"{setting.source} is {mask_url(str(raw))!r}"
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError) as exc:
        raise ConfigurationError(
            f"{where}, not a database URL; use a SQLAlchemy async URL such as {EXAMPLES}"
        ) from exc
    name = ALIASES.get(url.get_backend_name(), url.get_backend_name())
    if name not in BACKENDS:
        raise ConfigurationError(
            f"{where}: backend {url.get_backend_name()!r} is not supported; "
            f"use one of {sorted(BACKENDS)}, e.g. {EXAMPLES}")
    backend_class = _load(name)
    if url.get_backend_name() != name or url.get_driver_name() != backend_class.driver:
        kind = (f"driver {url.get_driver_name()!r}, not {name}'s async driver "
                f"{backend_class.driver!r}" if "+" in url.drivername else "a sync driver")
        fixed = mask_url(url.set(drivername=f"{name}+{backend_class.driver}"))
        raise ConfigurationError(
            f"{where}, {kind}; the framework runs on asyncio: use {fixed!r}")
    if importlib.util.find_spec(backend_class.driver) is None:
        package = (f"'test_framework[{backend_class.extra}]'" if backend_class.extra
                   else backend_class.driver)
        raise ConfigurationError(
            f"{where}, which needs the {backend_class.driver!r} package, not installed; "
            f"run: pip install {package}")
    if timeouts is None:
        timeouts = project_settings().timeouts
    return backend_class(url, source=setting.source, timeouts=timeouts)


def backend_class_for_url(url: URL) -> type[Backend]:
    """Return the backend class for an already-working URL (e.g. a session's engine)."""
    name = ALIASES.get(url.get_backend_name(), url.get_backend_name())
    if name not in BACKENDS:
        raise ConfigurationError(
            f"{mask_url(url)!r}: backend {name!r} is not supported; use one of {sorted(BACKENDS)}")
    return _load(name)


def _load(name: str) -> type[Backend]:
    module_name, _, class_name = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)
