"""Ctrl-C lands just after the test database was made, before the run recorded it."""

import signal
import sys

from test_framework import SSotAsyncTestCase
from test_framework.provision import templates

_mark_used = templates._mark_used


async def interrupted_mark_used(backend, template):
    """Runs right after the clone: the database exists, the run has not recorded it yet."""
    print("CREATED", flush=True, file=sys.stdout)
    signal.raise_signal(signal.SIGINT)
    await _mark_used(backend, template)


templates._mark_used = interrupted_mark_used


class CreatesItsDatabase(SSotAsyncTestCase):
    async def test_uses_it(self):
        await self.db.count_records("users")
