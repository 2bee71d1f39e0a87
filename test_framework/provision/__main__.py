"""List and drop leftover test databases by hand.

    python -m test_framework.provision list
    python -m test_framework.provision drop            # orphans: owner process gone
    python -m test_framework.provision drop --all      # every test_ database on the server
    python -m test_framework.provision drop NAME ...   # these (each must start with test_)

The server is the configured one (TEST_DATABASE_URL, setup.cfg, default), or
``--url``. Only databases whose names start with ``test_`` are ever listed
or dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from test_framework.backends import backend_for
from test_framework.config import Setting, project_settings
from test_framework.errors import TestFrameworkError
from test_framework.provision import require_test_database
from test_framework.provision.ownership import is_orphan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m test_framework.provision",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="server URL (default: the configured one)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="show test databases and who owns them")
    drop = sub.add_parser("drop", help="drop orphans, or the named databases")
    drop.add_argument("names", nargs="*")
    drop.add_argument("--all", action="store_true", help="every test_ database")
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
            state = "orphan" if is_orphan(record) else (record.label or "no label")
            print(f"{record.name}\t{state}")
        print(f"{len(records)} test database(s) on {backend.masked_url}")
        return 0
    chosen = [r for r in records if args.all or r.name in args.names
              or (not args.names and is_orphan(r))]
    missing = sorted(set(args.names) - {r.name for r in records})
    for record in chosen:
        require_test_database(record.url, "drop")
        await backend.drop_database(record.url)
        print(f"dropped {record.name}")
    for name in missing:
        print(f"not found (or not a test_ database): {name}", file=sys.stderr)
    print(f"{len(chosen)} dropped")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
