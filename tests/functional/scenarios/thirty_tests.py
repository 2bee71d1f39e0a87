"""Thirty quick tests in three classes (one synchronous), for the configuration-error test.

A setting that cannot work fails every test the same way; the run should stop
at the first instead of printing the same error thirty times.
"""

from test_framework import SSotAsyncTestCase, SSotBaseTestCase


class FirstTen(SSotAsyncTestCase):
    pass


class SecondTen(SSotAsyncTestCase):
    pass


class SyncTen(SSotBaseTestCase):
    pass


async def starts_empty(self):
    self.assertEqual(await self.db.count_records("users"), 0)


def starts_empty_sync(self):
    self.assertEqual(self.run_async(self.db.count_records("users")), 0)


for number in range(10):
    setattr(FirstTen, f"test_{number:02d}", starts_empty)
    setattr(SecondTen, f"test_{number:02d}", starts_empty)
    setattr(SyncTen, f"test_{number:02d}", starts_empty_sync)
