"""Concurrent code in rollback isolation: sessions of different tasks take turns.

``asyncio.gather`` of service calls that each open a session from
``self.session_factory`` runs them one session after another on the test's
one connection, each seeing what was committed before it; teardown undoes all
of it (checked from a separate connection after the inner classes ran). A wait
that cannot end fails within its bound, naming both tasks; one session used by
two tasks at once fails at once. Tasks a test starts and never awaits finish
inside the test's isolation.
"""

import asyncio
import unittest
import warnings

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from test_framework import SSotAsyncTestCase
from test_framework.sample_schema import users
from test_framework.ssot.sessions import ConcurrentSessionsError
from tests.support import count_rows_sync, problems, run_case, timeout

INSERT = text("INSERT INTO users (email, is_active) VALUES (:e, true)")


async def emails(session) -> set[str]:
    return set((await session.scalars(select(users.c.email))).all())


class GatheredServices:
    """Application code: each call opens its own session, as a service layer does."""

    def __init__(self, session_factory) -> None:
        self.factory = session_factory
        self.committed: set[str] = set()
        self.order: list[str] = []
        self.seen: dict[str, set[str]] = {}

    async def signup(self, name: str) -> None:
        async with self.factory() as session:
            await session.execute(INSERT, {"e": f"{name}@x.test"})
            self.order.append(name)
            await asyncio.sleep(0.01)  # the others try to run now
            self.seen[name] = await emails(session)
            await session.commit()
            self.committed.add(f"{name}@x.test")

    async def abandoned(self, name: str) -> None:
        async with self.factory() as session:
            await session.execute(INSERT, {"e": f"{name}@x.test"})
            self.order.append(name)
            await asyncio.sleep(0.01)
            await session.rollback()

    async def duplicate(self, name: str, email: str) -> None:
        """Insert an email that exists, recover from the IntegrityError, then write again."""
        async with self.factory() as session:
            self.order.append(name)
            try:
                await session.execute(INSERT, {"e": email})
                await session.commit()
            except IntegrityError:
                await session.rollback()
            await session.execute(INSERT, {"e": f"{name}@x.test"})
            await session.commit()
            self.committed.add(f"{name}@x.test")


class TestGatheredSessions(SSotAsyncTestCase):
    @timeout(30)
    async def test_gathered_sessions_take_turns_and_see_earlier_commits(self):
        services = GatheredServices(self.session_factory)
        await asyncio.gather(services.signup("a"), services.signup("b"), services.signup("c"))
        self.assertEqual(services.order, ["a", "b", "c"])  # first come, first served
        self.assertEqual(services.seen, {"a": {"a@x.test"}, "b": {"a@x.test", "b@x.test"},
                                         "c": {"a@x.test", "b@x.test", "c@x.test"}})
        self.assertEqual(await self.db.count_records("users"), 3)

    @timeout(30)
    async def test_rollback_and_integrity_error_in_gathered_sessions(self):
        async with self.session_factory() as first:
            await first.execute(INSERT, {"e": "taken@x.test"})
            await first.commit()
        services = GatheredServices(self.session_factory)
        await asyncio.gather(services.signup("a"), services.abandoned("b"),
                             services.duplicate("c", "taken@x.test"), services.signup("d"))
        async with self.session_factory() as fresh:
            self.assertEqual(await emails(fresh),
                             {"taken@x.test", "a@x.test", "c@x.test", "d@x.test"})

    @timeout(30)
    async def test_the_tests_own_open_session_does_not_block_its_children(self):
        self.assertEqual(await self.db.count_records("users"), 0)  # self.session is open
        services = GatheredServices(self.session_factory)
        await asyncio.gather(services.signup("a"), services.signup("b"))
        self.assertEqual(await self.db.count_records("users"), 2)

    @timeout(30)
    async def test_a_holder_that_waits_for_the_waiter_fails_within_the_bound(self):
        self.session_factory.savepoints.turns.bound = 0.5
        release = asyncio.Event()

        async def holder():
            async with self.session_factory() as session:
                await session.execute(INSERT, {"e": "holder@x.test"})
                await release.wait()
                await session.commit()

        async def waiter():
            async with self.session_factory() as session:
                await session.execute(text("SELECT 1"))
            release.set()

        holding = asyncio.create_task(holder(), name="holder")
        await asyncio.sleep(0.05)
        with self.assertRaises(ConcurrentSessionsError) as caught:
            await asyncio.create_task(waiter(), name="waiter")
        release.set()
        await holding
        message = str(caught.exception)
        self.assertRegex(message, r"^task 'waiter' waited lock_timeout \(0\.5s\) for the test's "
                                  r"connection, held by task 'holder' with the session made in "
                                  r"holder\(\) at tests/ssot/test_concurrent_sessions\.py:\d+ open")
        self.assertRegex(message, r"Task 'holder' waits at tests/ssot/test_concurrent_sessions"
                                  r"\.py:\d+ in holder: await release\.wait\(\)")
        self.assertRegex(message, r"task 'waiter' waits at tests/ssot/test_concurrent_sessions"
                                  r"\.py:\d+ in waiter: await session\.execute")
        self.assertEqual(await self.db.count_records("users"), 1)

    @timeout(30)
    async def test_one_session_used_by_two_tasks_at_once_fails_at_once(self):
        async def use(session):
            for _ in range(5):
                await session.execute(text("SELECT 1"))

        tasks = [asyncio.create_task(use(self.session), name=name) for name in ("one", "two")]
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        self.assertEqual(len(errors), 1, outcomes)
        self.assertIsInstance(errors[0], ConcurrentSessionsError)
        self.assertRegex(str(errors[0]), r"^two tasks use self\.session at once: task '(one|two)' "
                                         r"and task '(one|two)'\. .*its own session from "
                                         r"self\.session_factory")
        self.assertEqual(await self.db.count_records("users"), 0)  # still usable


class TestHelpersFromTwoTasks(unittest.TestCase):
    def test_two_tasks_calling_self_db_at_once_are_told_in_every_mode(self):
        """In commit mode this failed with an IndexError from the row tracking."""
        for isolation in ("rollback", "commit"):
            with self.subTest(isolation=isolation):
                class Gathers(SSotAsyncTestCase):
                    @timeout(30)
                    async def test_gather(self):
                        calls = [asyncio.create_task(self.db.create_test_user(), name=name)
                                 for name in ("one", "two")]
                        outcomes = await asyncio.gather(*calls, return_exceptions=True)
                        errors = [o for o in outcomes if isinstance(o, BaseException)]
                        self.assertEqual(len(errors), 1, outcomes)
                        self.assertIsInstance(errors[0], ConcurrentSessionsError)
                        self.assertRegex(str(errors[0]), r"^two tasks use self\.db at once: "
                                                         r"task '(one|two)' and task '(one|two)'")
                        self.assertEqual(await self.db.count_records("users"), 1)

                Gathers.isolation = isolation
                result = run_case(Gathers)
                self.assertTrue(result.wasSuccessful(), problems(result))


class TestNothingIsLeft(unittest.TestCase):
    def test_gathered_commits_and_fire_and_forget_tasks_are_undone(self):
        seen = {}

        class Concurrent(SSotAsyncTestCase):
            async def test_1_gathered(self):
                seen["url"] = self.engine.url
                services = GatheredServices(self.session_factory)
                await asyncio.gather(*(services.signup(name) for name in "abc"))

            async def test_2_fire_and_forget(self):
                async def later():
                    await asyncio.sleep(0.05)
                    async with self.session_factory() as session:
                        await session.execute(INSERT, {"e": "later@x.test"})
                        await session.commit()
                    seen["later"] = await self.db.count_records("users")

                asyncio.get_running_loop().create_task(later())  # never awaited

            async def test_3_next(self):
                seen["next"] = await self.db.count_records("users")

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_case(Concurrent)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["later"], 1)  # it ran, inside the test's transaction
        self.assertEqual(seen["next"], 0)
        self.assertEqual([str(w.message) for w in caught if "task" in str(w.message)], [])
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)


if __name__ == "__main__":
    unittest.main()
