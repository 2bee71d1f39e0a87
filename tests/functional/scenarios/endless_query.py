"""A test whose SQLite query never ends, for the Ctrl-C and statement-timeout tests.

The query calls ``entered()`` on its first row, from inside the running
statement, so a parent waiting for that line knows the statement is running.
"""

import sys

from sqlalchemy import text

from test_framework import SSotAsyncTestCase

ENDLESS = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
           "SELECT count(*) FROM c WHERE entered(x)")


def entered(x: int) -> bool:
    """Announce the first row (on the driver's thread, inside the statement)."""
    if x == 1:
        print("INSIDE", flush=True, file=sys.stdout)
    return True


class EndlessQuery(SSotAsyncTestCase):
    async def test_endless_query(self):
        raw = await (await self.session.connection()).get_raw_connection()
        await raw.driver_connection.create_function("entered", 1, entered)
        await self.session.execute(text(ENDLESS))
