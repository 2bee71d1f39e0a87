"""A worker forked by multiprocessing runs a framework test; the parent says how it ended.

Run as ``python -m tests.functional.scenarios.forked_worker return|terminate``.
The worker runs one test that makes a row (so its database exists), tells
the parent, then returns, or waits until the parent terminates it (SIGTERM).
The parent prints ``WORKER <pid> <passed>`` and ``EXIT <exitcode>``. No
runner plugin is involved: the framework arms the worker itself.
"""

import multiprocessing
import sys
import time
import unittest

from test_framework import SSotAsyncTestCase


class MakesRow(SSotAsyncTestCase):
    async def test_row(self):
        await self.db.create_test_user()


def work(mode: str, parent) -> None:
    result = unittest.TestResult()
    unittest.TestSuite([unittest.defaultTestLoader.loadTestsFromTestCase(MakesRow)]).run(result)
    parent.send(result.wasSuccessful())
    if mode == "terminate":
        time.sleep(60)


if __name__ == "__main__":
    context = multiprocessing.get_context("fork")
    parent_end, worker_end = context.Pipe()
    worker = context.Process(target=work, args=(sys.argv[1], worker_end))
    worker.start()
    print("WORKER", worker.pid, parent_end.recv(), flush=True)
    if sys.argv[1] == "terminate":
        worker.terminate()
    worker.join(60)
    print("EXIT", worker.exitcode, flush=True)
