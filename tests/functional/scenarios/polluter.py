"""A planted order dependency: ``Reads.test_b_sees_no_users`` passes alone and fails after
``Pollutes.test_a_inserts_untracked_row``, which commits a row with raw SQL that the
framework does not track (so commit mode leaves it, and the leftover detector names it).

Ten innocent tests in four classes surround them, for shuffling and bisecting.
"""

from sqlalchemy import text

from test_framework import SSotAsyncTestCase, SSotBaseTestCase


class ChecksA(SSotAsyncTestCase):
    async def test_1(self):
        self.assertEqual(await self.db.count_records("threads"), 0)

    async def test_2(self):
        user = await self.db.create_test_user()
        self.assertEqual(await self.db.count_records("users", id=user.id), 1)

    async def test_3(self):
        self.assertEqual(await self.db.count_records("messages"), 0)


class ChecksB(SSotBaseTestCase):
    def test_1(self):
        self.assertEqual(self.run_async(self.db.count_records("threads")), 0)

    def test_2(self):
        self.assertEqual(sorted([3, 1, 2]), [1, 2, 3])

    def test_3(self):
        self.assertEqual(self.db.tables["user"], "users")


class Pollutes(SSotAsyncTestCase):
    isolation = "commit"

    async def test_a_inserts_untracked_row(self):
        await self.session.execute(
            text("INSERT INTO users (email, is_active) VALUES ('stray@example.com', true)"))
        await self.session.commit()

    async def test_c_tracked_rows_are_removed(self):
        await self.db.create_test_user()
        self.assertGreaterEqual(await self.db.count_records("users"), 1)

    async def test_d_reads(self):
        self.assertEqual(await self.db.count_records("threads"), 0)


class Reads(SSotAsyncTestCase):
    async def test_b_sees_no_users(self):
        self.assertEqual(await self.db.count_records("users"), 0)

    async def test_e_counts_threads(self):
        self.assertEqual(await self.db.count_records("threads"), 0)

    async def test_f_counts_messages(self):
        self.assertEqual(await self.db.count_records("messages"), 0)
