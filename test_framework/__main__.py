"""Command line: show the resolved configuration, check the server, manage test databases.

    python -m test_framework config            # every setting, its value and where it came from
    python -m test_framework check             # can we reach the configured database server?
    python -m test_framework databases list    # test_ databases on the server (see provision)
    python -m test_framework databases drop [--all | NAME ...]
    python -m test_framework bisect TEST_ID [--seed N | --order FILE] [-- unittest args]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import fields

from sqlalchemy import event
from sqlalchemy.pool import Pool

from test_framework.backends import backend_for
from test_framework.config import (DEFAULT_SOURCE, ENVIRONMENT_KEYS, RUN_KEYS, Setting,
                                   load_project_settings, run_setting)
from test_framework.errors import TestFrameworkError
from test_framework.log import mask_url


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["databases"]:
        from test_framework.provision.__main__ import main as databases
        return databases(argv[1:], prog="python -m test_framework databases")
    if argv[:1] == ["bisect"]:
        from test_framework.bisect import main as bisect
        return bisect(argv[1:], prog="python -m test_framework bisect")
    parser = argparse.ArgumentParser(prog="python -m test_framework",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["config", "check", "databases", "bisect"])
    args = parser.parse_args(argv)
    try:
        settings = load_project_settings()
        if args.command == "config":
            return show_config(settings)
        return asyncio.run(check(settings))
    except TestFrameworkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def show_config(settings) -> int:
    """Print each setting with its source; check the URL the way a test run would."""
    for field in fields(settings):
        setting = getattr(settings, field.name)
        value = setting.value
        if field.name == "database_url":
            value = mask_url(value) if value else "SQLite in a private temporary file"
        elif field.name == "asyncio_debug" and value is None:
            value = "off unless PYTHONASYNCIODEBUG or -X dev"
        print(f"{field.name:18} {value!s:50} ({setting.source})")
    status = 0
    for name in RUN_KEYS:
        try:
            print(run_setting_line(name, run_setting(name)))
        except TestFrameworkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
    try:
        backend_for(settings.database_url, timeouts=settings.timeouts)
    except TestFrameworkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return status


def run_setting_line(name: str, setting: Setting) -> str:
    """One line for a per-run switch; when unset, the line names the variable that sets it."""
    value = setting.value
    if value is None:
        value = "off"
    elif name == "shard":
        value = "/".join(map(str, value))
    elif name == "timing":
        value = f"on, {value} slowest tests listed"
    source = setting.source
    if source == DEFAULT_SOURCE:
        source = f"{ENVIRONMENT_KEYS[name]} (environment) if set"
    return f"{name:18} {value!s:50} ({source})"


async def check(settings) -> int:
    """List the test databases as a run would, and say what that reached.

    A server backend connects to its server to list them (one connection);
    SQLite only looks in its folders, so "reached" would claim a file that the
    framework never opens. What happened is observed, not guessed from the
    URL: any connection the listing opened shows as a pool ``connect`` event.
    """
    backend = backend_for(settings.database_url, timeouts=settings.timeouts)
    connections = []

    def opened(*_: object) -> None:
        connections.append(True)

    event.listen(Pool, "connect", opened)
    started = time.perf_counter()
    try:
        records = await backend.list_databases()
    except Exception as exc:
        print(f"error: {backend.describe_unreachable(exc)}", file=sys.stderr)
        return 1
    finally:
        event.remove(Pool, "connect", opened)
    took = f"{(time.perf_counter() - started) * 1000:.0f} ms"
    if connections:
        print(f"reached {backend.masked_url} in {took} ({backend.name}); "
              f"{len(records)} test database(s) there")
    elif not backend.is_persistent(backend.url):
        print(f"no server to reach for {backend.masked_url} ({backend.name}): each test class "
              "gets a database in memory")
    else:
        print(f"no server to reach for {backend.masked_url} ({backend.name}): the framework "
              "never opens that file; each run makes its test databases as files of its own "
              f"and drops them ({len(records)} there now, listed in {took})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
