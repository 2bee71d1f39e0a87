"""The test database is set up on first use: a class that never uses it provisions nothing.

The first classes below name a database of their own: on PostgreSQL a port
nobody listens on, so any provisioning fails the test; on SQLite a name no
other test uses, so any database file made for it shows. A class that uses
that database shows each check can fail. The rest runs on this pass's database.
"""

from __future__ import annotations

import asyncio
import secrets
import unittest

from sqlalchemy import func, select, text

from test_framework import SSotAsyncTestCase, SSotBaseTestCase
from test_framework.backends.sqlite import cache_dir, private_dir
from test_framework.sample_schema import users
from tests.private_postgres import free_port
from tests.support import problems, run_case, timeout


def sqlite_files(stem: str) -> list:
    """Database and template files made for a URL named ``stem``."""
    return [*private_dir().glob(f"*{stem}*"), *cache_dir().glob(f"*{stem}*")]


class TestNothingIsProvisionedUnused(unittest.TestCase):
    def classes(self, url: str) -> tuple[type, type, type]:
        class PureAsync(SSotAsyncTestCase):
            database_url = url

            async def asyncSetUp(self):
                await super().asyncSetUp()
                self.numbers = [1, 2, 3]

            async def test_sum(self):
                self.assertEqual(sum(self.numbers), 6)

            async def test_logs(self):
                self.logger.info("no database here")

        class PureSync(SSotBaseTestCase):
            database_url = url

            def test_upper(self):
                self.assertEqual("a".upper(), "A")

        class UsesIt(SSotAsyncTestCase):
            database_url = url

            async def test_count(self):
                self.assertEqual(await self.db.count_records("users"), 0)

        return PureAsync, PureSync, UsesIt

    def run_pure(self, *cases: type) -> None:
        for case in cases:
            result = run_case(case)
            self.assertTrue(result.wasSuccessful(), problems(result))
            self.assertEqual(result.testsRun,
                             len(unittest.defaultTestLoader.getTestCaseNames(case)))

    def test_postgresql_classes_that_never_use_it_need_no_server(self):
        """Sync and async classes, with a set-up of their own, run with nothing
        listening; a class that uses the database fails and stops the run."""
        *pure, uses_it = self.classes(
            f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/app")
        self.run_pure(*pure)
        result = run_case(uses_it)
        self.assertEqual(len(result.errors), 1, problems(result))
        self.assertIn("DatabaseUnavailableError", problems(result))
        self.assertTrue(result.shouldStop, "an unusable database stops the run")

    def test_sqlite_classes_that_never_use_it_make_no_file(self):
        stem = f"lazy_{secrets.token_hex(4)}"
        *pure, uses_it = self.classes(f"sqlite+aiosqlite:///{stem}.db")
        self.run_pure(*pure)
        self.assertEqual(sqlite_files(stem), [])
        result = run_case(uses_it)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertNotEqual(sqlite_files(stem), [], "the class that used it made a file")

    def test_a_bad_setting_is_reported_though_the_database_is_never_used(self):
        class Typo(SSotAsyncTestCase):
            isolation = "comit"

            async def test_pure(self):
                pass

        result = run_case(Typo)
        self.assertIn("Typo.isolation (class attribute) is 'comit'", problems(result))


class TestFirstUse(unittest.TestCase):
    """Each body runs as two tests of a class of its own, the first of which sets up."""

    def run_fresh(self, body, *, sync: bool = False, extra: dict | None = None):
        base = SSotBaseTestCase if sync else SSotAsyncTestCase
        case = type("Fresh", (base,), {"test_first": body, "test_second": body,
                                        **(extra or {})})
        result = run_case(case)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(result.testsRun, 2)
        return case

    def test_a_plain_read_in_an_async_test_sets_up_and_isolates(self):
        seen = []

        @timeout(60)
        async def body(self):
            seen.append("db" in self.__dict__)
            await self.session.execute(users.insert().values(email="lazy@example.com"))
            count = await self.session.scalar(select(func.count()).select_from(users))
            self.assertEqual(count, 1, "the first test's row was undone for the second")

        self.run_fresh(body)
        self.assertEqual(seen, [False, True], "set up on first use, then eagerly")

    def test_a_sync_test_sets_up_on_first_use(self):
        def body(self):
            self.run_async(self.db.create_test_user())
            self.assertEqual(self.run_async(self.db.count_records("users")), 1)

        self.run_fresh(body, sync=True)

    def test_set_up_in_asyncsetup_override(self):
        async def set_up(self):
            await super(type(self), self).asyncSetUp()
            self.user = await self.db.create_test_user()

        async def body(self):
            self.assertEqual(await self.db.count_records("users"), 1)

        self.run_fresh(body, extra={"asyncSetUp": set_up})

    def test_two_tasks_using_it_first_at_once_share_one_set_up(self):
        """On PostgreSQL the set-up waits for the server, so the second task reads
        ``self.session_factory`` mid-set-up and must wait for it (on SQLite the
        set-up never yields, and this only shows both tasks work)."""
        urls = []

        @timeout(60)
        async def body(self):
            async def handler(name):
                async with self.session_factory() as session:
                    await session.execute(text("SELECT 1"))
                urls.append((name, str(self.test_database_url)))

            await asyncio.gather(handler("a"), handler("b"))
            self.assertEqual(len({url for _, url in urls[-2:]}), 1)

        self.run_fresh(body)
        self.assertEqual(len(urls), 4)

    def test_statements_of_the_set_up_are_not_counted(self):
        async def body(self):
            async with self.assertNumQueries(1):
                await self.db.count_records("users")

        self.run_fresh(body)

    def test_class_data_sets_up_before_the_first_test(self):
        seen = []

        @classmethod
        async def class_data(cls, db):
            cls.user = await db.create_test_user()

        async def body(self):
            seen.append("db" in self.__dict__)

        self.run_fresh(body, extra={"asyncSetUpTestData": class_data})
        self.assertEqual(seen, [True, True])


if __name__ == "__main__":
    unittest.main()


class TestFirstUseEdges(unittest.TestCase):
    """First uses away from the test's body, raced, cut short or failed."""

    def test_a_task_still_setting_up_at_teardown_is_waited_for_and_undone(self):
        """A fire-and-forget task is the first to use the database and writes after the
        test's body ended: teardown waits for its set-up, gives it its grace, and
        undoes the row (after another class, the set-up was still running then)."""
        class Earlier(SSotAsyncTestCase):
            async def test_x(self):
                await self.db.count_records("users")

        class FireAndForget(SSotAsyncTestCase):
            @timeout(60)
            async def test_1_fire_and_forget(self):
                async def handler():
                    async with self.session_factory() as session:
                        await session.execute(users.insert().values(email="leak@example.com"))
                        await session.commit()
                asyncio.create_task(handler())
                await asyncio.sleep(0)

            @timeout(60)
            async def test_2_sees_nothing(self):
                emails = (await self.session.execute(select(users.c.email))).scalars().all()
                self.assertEqual(emails, [])

        loader = unittest.defaultTestLoader
        result = unittest.TestResult()
        unittest.TestSuite([loader.loadTestsFromTestCase(Earlier),
                            loader.loadTestsFromTestCase(FireAndForget)]).run(result)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(result.testsRun, 3)

    def test_first_use_from_an_executor_thread(self):
        class FromThread(SSotAsyncTestCase):
            @timeout(60)
            async def test_url(self):
                url = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: str(self.test_database_url))
                self.assertIn("test_", url)
                self.assertEqual(await self.db.count_records("users"), 0)

        result = run_case(FromThread)
        self.assertTrue(result.wasSuccessful(), problems(result))

    def test_first_use_in_a_cleanup_or_after_the_framework_teardown(self):
        counts = []

        class Late(SSotAsyncTestCase):
            async def asyncTearDown(self):
                await super().asyncTearDown()
                counts.append(await self.db.count_records("users"))

            async def test_cleanup(self):
                async def count():
                    counts.append(await self.db.count_records("users"))
                self.add_cleanup(count)

            async def test_teardown(self):
                pass

        result = run_case(Late)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(counts, [0, 0, 0])

    def test_a_first_use_cut_short_by_a_timeout_is_finished_for_the_next_read(self):
        class CutShort(SSotAsyncTestCase):
            @timeout(60)
            async def test_1(self):
                with self.assertRaises(TimeoutError):
                    async with asyncio.timeout(0.0005):
                        await asyncio.sleep(0)
                        self.db  # noqa: B018 (the first use, cut short)
                        await asyncio.sleep(1)
                await self.db.create_test_user({"email": "after@example.com"})
                self.assertEqual(await self.db.count_records("users"), 1)

        result = run_case(CutShort)
        self.assertTrue(result.wasSuccessful(), problems(result))

    def test_a_failed_first_use_fails_every_later_read_the_same_way(self):
        class Unreachable(SSotAsyncTestCase):
            database_url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/app"

            async def test_1(self):
                for attempt in range(2):
                    with self.subTest(attempt=attempt):
                        await self.db.count_records("users")

        result = run_case(Unreachable)
        self.assertEqual(len(result.errors), 2, problems(result))
        for _, trace in result.errors:
            self.assertIn("DatabaseUnavailableError", trace)
            self.assertNotIn("AttributeError", trace)

    def test_failures_and_leftover_tasks_name_the_test_not_the_portal(self):
        async def slow_job():
            await asyncio.sleep(30)

        class Lazy(SSotAsyncTestCase):
            async def test_fails(self):
                self.assertEqual(1, 2)

            async def test_leaves_a_task(self):
                asyncio.create_task(slow_job())

        with self.assertWarnsRegex(ResourceWarning, r"\[<coroutine object .*slow_job"):
            result = run_case(Lazy)
        self.assertEqual(len(result.failures), 1, problems(result))
        self.assertNotIn("greenback", problems(result))
        self.assertNotIn("outcome", problems(result))
