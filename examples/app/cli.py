"""The app's command line: ``python -m app.cli register EMAIL FULL_NAME PASSWORD``.

A separate process using the same ``DATABASE_URL`` as the web app, as a
management command or a worker would. Prints the new user's id.
"""

from __future__ import annotations

import asyncio
import sys

from app.db import SessionLocal, engine
from app.service import ChatService

USAGE = "usage: python -m app.cli register EMAIL FULL_NAME PASSWORD"


async def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[0] != "register":
        print(USAGE, file=sys.stderr)
        return 2
    try:
        user = await ChatService(SessionLocal).register_user(*argv[1:])
        print(user.id)
        return 0
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
