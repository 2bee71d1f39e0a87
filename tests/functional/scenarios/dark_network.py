"""Tests that meet a network gone dark, for ``tests/test_faults_private.py``.

The parent runs this with ``TEST_DATABASE_URL`` pointing at its ``TcpProxy``
and ``DARK_AT`` saying where the network fails: ``statement`` (in the first
test), ``teardown`` (the first test's rollback) or ``class_cleanup`` (closing
the class's connections). There the scenario prints ``DARK?`` and reads a
line: the parent makes the network dark, then answers, and the next database
call gets no answer. After the first test's teardown it prints ``LIGHT?``:
the parent restores the network (unless it pressed Ctrl-C first), and the
second test must pass.
"""

import os
import sys

from test_framework import SSotAsyncTestCase

DARK_AT = os.environ.get("DARK_AT", "statement")


def ask_parent(question: str) -> None:
    """Print ``question`` and block until the parent answers (it has acted by then)."""
    print(question, flush=True, file=sys.stdout)
    sys.stdin.readline()


class DarkNetwork(SSotAsyncTestCase):
    isolation = os.environ.get("SCENARIO_ISOLATION", "rollback")

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        if DARK_AT == "class_cleanup":
            ask_parent("DARK?")  # the class cleanups run right after this

    async def asyncTearDown(self):
        try:
            await super().asyncTearDown()
        finally:
            if self._testMethodName.startswith("test_1") and DARK_AT != "class_cleanup":
                ask_parent("LIGHT?")

    async def test_1_meets_dark_network(self):
        await self.db.create_test_user({"email": "dark@x.test"})
        if DARK_AT != "class_cleanup":
            ask_parent("DARK?")
        if DARK_AT == "statement":
            await self.db.fetch_one("SELECT 1")

    async def test_2_runs_once_the_network_is_back(self):
        self.assertEqual((await self.db.fetch_one("SELECT 1 AS one")).one, 1)
