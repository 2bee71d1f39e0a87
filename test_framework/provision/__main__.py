"""List and drop leftover test databases by hand.

    python -m test_framework.provision list
    python -m test_framework.provision drop            # orphans: their run is provably gone
    python -m test_framework.provision drop --all      # every test_ database on the server
    python -m test_framework.provision drop NAME ...   # these (each must start with test_)
    python -m test_framework.provision drop --kept-failed  # failed tests' kept states

The server is the configured one (TEST_DATABASE_URL, setup.cfg, default), or
``--url``. Only databases whose names start with ``test_`` are ever listed
or dropped, and a database that a live run still holds is dropped only with
``--force``, even when named.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from test_framework.backends import backend_for
from test_framework.config import Setting, project_settings
from test_framework.errors import TestFrameworkError
from test_framework.provision import require_test_database
from test_framework.provision.kept_states import drop_kept_failed
from test_framework.provision.ownership import describe, held_by_live_run, template_of
from test_framework.provision.templates import template_lock


def main(argv: list[str] | None = None, *, prog: str = "python -m test_framework.provision"
         ) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="server URL (default: the configured one)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="show test databases and who owns them")
    drop = sub.add_parser("drop", help="drop orphans, or the named databases")
    drop.add_argument("names", nargs="*", metavar="NAME",
                      help="a test_ database to drop (default: the orphans)")
    drop.add_argument("--all", action="store_true", help="every test_ database")
    drop.add_argument("--kept-failed", action="store_true",
                      help="the states of failed tests that TEST_FRAMEWORK_KEEP_FAILED kept")
    drop.add_argument("--force", action="store_true",
                      help="also drop databases that a live run still holds")
    args = parser.parse_args(argv)
    setting = Setting(args.url, "--url") if args.url else project_settings().database_url
    try:
        return asyncio.run(_run(backend_for(setting), args))
    except TestFrameworkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


async def _run(backend, args) -> int:
    try:
        records = await backend.list_databases()
    except Exception as exc:
        print(f"error: {backend.describe_unreachable(exc)}", file=sys.stderr)
        return 2
    if args.command == "list":
        for record in records:
            print(f"{record.name}\t{await describe(backend, record)}")
        print(f"{len(records)} test database(s) on {backend.masked_url}")
        return 0
    if args.kept_failed:
        kept = await drop_kept_failed(backend)
        for name in kept:
            print(f"dropped {name}")
        if not args.names and not args.all:
            print(f"{len(kept)} dropped")
            return 0
    named = {r.name for r in records} & set(args.names)
    missing = sorted(set(args.names) - named)
    dropped = 0
    for record in records:
        if not (args.all or record.name in named):
            if args.names:
                continue
            async with backend.claim_orphan(record) as orphan:  # held while it is dropped
                if orphan:
                    await _drop(backend, record)
                    dropped += 1
            continue
        if not args.force and await held_by_live_run(backend, record):
            print(f"not dropped: {record.name} is held by a live run ({record.label}); "
                  "add --force to drop it anyway", file=sys.stderr)
            continue
        if template_of(record) is not None and not args.force:
            # Runs clone a template under a shared lock: drop it only while nobody holds it.
            async with backend.try_exclusive(template_lock(record.name)) as unused:
                if not unused:
                    print(f"not dropped: template {record.name} is being cloned by a run "
                          "right now; try again, or add --force", file=sys.stderr)
                    continue
                await _drop(backend, record)
            dropped += 1
            continue
        await _drop(backend, record)
        dropped += 1
    for name in missing:
        print(f"not found (or not a test_ database): {name}", file=sys.stderr)
    print(f"{dropped} dropped")
    return 1 if missing else 0


async def _drop(backend, record) -> None:
    require_test_database(record.url, "drop")
    await backend.drop_database(record.url)
    print(f"dropped {record.name}")


if __name__ == "__main__":
    sys.exit(main())
