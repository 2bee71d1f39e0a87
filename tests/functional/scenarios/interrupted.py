"""A long suite that signals its own readiness, for the Ctrl-C test to interrupt."""

import asyncio
import sys

from test_framework import SSotAsyncTestCase


class Interrupted(SSotAsyncTestCase):
    async def test_01_ready(self):
        await self.db.create_test_user({"email": "ready@x.test"})
        print("READY", self.get_test_context()["database_url"], flush=True, file=sys.stdout)
        await asyncio.sleep(60)
