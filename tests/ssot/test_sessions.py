"""The test's sessions: the class's options; on rollback isolation's one connection,
sessions that open and close in any order, and the tasks that may use them.

Each order is checked by counting rows in a fresh session inside the test (in
rollback mode nothing is visible outside the test's transaction), and the
classes run through ``run_case`` are checked from a separate connection
afterwards: nothing is left behind.
"""

import asyncio
import unittest
import warnings

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import registry

from test_framework import SSotAsyncTestCase
from test_framework.sample_schema import users
from test_framework.ssot.sessions import RollbackConflictError
from tests.support import count_rows_sync, problems, run_case, timeout

INSERT = text("INSERT INTO users (email, is_active) VALUES (:e, true)")


class User:
    """An ORM class on the sample ``users`` table, so flushes can fail."""

    def __init__(self, email: str) -> None:
        self.email = email
        self.is_active = True


registry().map_imperatively(User, users)


async def insert(session, email: str) -> None:
    await session.execute(INSERT, {"e": email})


async def app_commits(session_factory, email: str) -> None:
    """Application code: its own session, a real commit."""
    async with session_factory() as session:
        await insert(session, email)
        await session.commit()


class SessionsTestCase(SSotAsyncTestCase):
    async def emails(self) -> list[str]:
        """The users' emails as a fresh session sees them."""
        async with self.session_factory() as fresh:
            return list((await fresh.scalars(select(users.c.email).order_by("email"))).all())


class TestSessionsInAnyOrder(SessionsTestCase):
    async def test_reads_around_a_later_sessions_commit(self):
        outer = self.session_factory()
        await outer.execute(text("SELECT 1"))
        async with self.session_factory() as inner:
            await insert(inner, "inner@x.test")
            await inner.commit()
        await outer.close()
        await self.assertRowCount("users", 1)
        self.assertEqual(await self.emails(), ["inner@x.test"])

    async def test_reader_closed_before_the_writer_commits(self):
        outer = self.session_factory()
        await outer.execute(text("SELECT 1"))
        inner = self.session_factory()
        await insert(inner, "inner@x.test")
        await outer.close()
        await inner.commit()
        self.assertEqual(await self.emails(), ["inner@x.test"])

    async def test_both_commit_the_later_one_first(self):
        outer = self.session_factory()
        await insert(outer, "outer@x.test")
        await app_commits(self.session_factory, "inner@x.test")
        await outer.commit()
        self.assertEqual(await self.emails(), ["inner@x.test", "outer@x.test"])

    async def test_both_commit_the_earlier_one_first(self):
        outer, inner = self.session_factory(), self.session_factory()
        await insert(outer, "outer@x.test")
        await insert(inner, "inner@x.test")
        await outer.commit()
        await inner.commit()
        self.assertEqual(await self.emails(), ["inner@x.test", "outer@x.test"])

    async def test_later_session_rolls_back_after_the_earlier_committed(self):
        outer, inner = self.session_factory(), self.session_factory()
        await insert(outer, "outer@x.test")
        await insert(inner, "inner@x.test")
        await outer.commit()
        await inner.rollback()
        self.assertEqual(await self.emails(), ["outer@x.test"])

    async def test_later_session_rolls_back_while_the_earlier_is_open(self):
        outer, inner = self.session_factory(), self.session_factory()
        await insert(outer, "outer@x.test")
        await insert(inner, "inner@x.test")
        await inner.rollback()
        await outer.commit()
        self.assertEqual(await self.emails(), ["outer@x.test"])

    async def test_earlier_writer_rolling_back_under_a_later_commit_is_refused(self):
        for end in ("rollback", "close"):
            outer = self.session_factory()
            await insert(outer, f"outer-{end}@x.test")
            await app_commits(self.session_factory, f"inner-{end}@x.test")
            with self.assertRaises(RollbackConflictError) as caught:
                await getattr(outer, end)()
            message = str(caught.exception)
            self.assertRegex(message, r"^the session made in test_earlier_writer_rolling_back_\w+"
                                      r"\(\) at tests/ssot/test_sessions\.py:\d+ is rolling back "
                                      r"its writes, but the session made in app_commits\(\) at "
                                      r"tests/ssot/test_sessions\.py:\d+ \(committed\) wrote "
                                      r"after them\.")
            self.assertIn("so the first session's writes were kept, not undone", message)
            self.assertIn("isolation = 'commit'", message)
        self.assertEqual(await self.emails(), ["inner-close@x.test", "inner-rollback@x.test",
                                               "outer-close@x.test", "outer-rollback@x.test"])

    async def test_failed_flush_recovers_after_another_sessions_commit(self):
        await self.session.execute(text("SELECT 1"))  # self.session holds its read transaction
        await app_commits(self.session_factory, "taken@x.test")
        async with self.session_factory() as app:
            app.add(User("taken@x.test"))
            with self.assertRaises(IntegrityError):
                await app.flush()
            await app.rollback()
            app.add(User("free@x.test"))
            await app.commit()
        self.assertEqual(await self.emails(), ["free@x.test", "taken@x.test"])

    async def test_helper_create_duplicate_recovers_after_an_app_commit(self):
        await self.db.count_records("users")
        await app_commits(self.session_factory, "taken@x.test")
        with self.assertRaises(IntegrityError):
            await self.db.create_test_user({"email": "taken@x.test"})
        await self.assertRowCount("users", 1)
        await self.db.create_test_user({"email": "free@x.test"})
        self.assertEqual(await self.emails(), ["free@x.test", "taken@x.test"])

    async def test_nested_savepoint_begun_after_another_commit_rolls_back_alone(self):
        async with self.session_factory() as outer:
            await insert(outer, "outer@x.test")
            await app_commits(self.session_factory, "app@x.test")
            nested = await outer.begin_nested()
            await insert(outer, "nested@x.test")
            await nested.rollback()
            await outer.commit()
        self.assertEqual(await self.emails(), ["app@x.test", "outer@x.test"])


class TestRefusedRollbackOfAFailedFlush(unittest.TestCase):
    def test_is_loud_and_the_next_test_is_clean(self):
        """A flush failing after another session committed over this one's writes.

        Undoing the flush means undoing the commit: refused, with the
        IntegrityError as context. On PostgreSQL the test's transaction is then
        unusable; teardown still undoes everything.
        """
        seen = {}

        class FlushFails(SessionsTestCase):
            async def test_1_conflict(self):
                seen["url"] = self.engine.url
                mine = self.session_factory()
                await insert(mine, "mine@x.test")
                await app_commits(self.session_factory, "taken@x.test")
                mine.add(User("taken@x.test"))
                with self.assertRaises(RollbackConflictError) as caught:
                    await mine.flush()
                seen["context"] = type(caught.exception.__context__)

            async def test_2_next(self):
                seen["next"] = await self.emails()

        result = run_case(FlushFails)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["context"], IntegrityError)
        self.assertEqual(seen["next"], [])
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)


class TestOrdersLeaveNothingBehind(unittest.TestCase):
    def test_teardown_undoes_every_order_with_and_without_class_data(self):
        seen = {}

        class Orders(SessionsTestCase):
            async def test_orders(self):
                seen["url"] = self.engine.url
                outer, inner = self.session_factory(), self.session_factory()
                await outer.execute(text("SELECT 1"))
                await insert(inner, "inner@x.test")
                await outer.close()
                still_open = self.session_factory()
                await insert(still_open, "left-open@x.test")
                await app_commits(self.session_factory, "app@x.test")
                seen["inside"] = await self.emails()
                await inner.commit()

        class WithClassData(SessionsTestCase):
            @classmethod
            async def asyncSetUpTestData(cls, db):
                await db.create_test_user({"email": "class@x.test"})

            async def test_1_reads_around_a_commit(self):
                outer = self.session_factory()
                await outer.execute(text("SELECT 1"))
                await app_commits(self.session_factory, "app@x.test")
                await outer.close()
                seen["first"] = await self.emails()

            async def test_2_class_rows_only(self):
                seen["second"] = await self.emails()

        for case in (Orders, WithClassData):
            result = run_case(case)
            self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["inside"], ["app@x.test", "inner@x.test", "left-open@x.test"])
        self.assertEqual(seen["first"], ["app@x.test", "class@x.test"])
        self.assertEqual(seen["second"], ["class@x.test"])
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)


async def two_writers(session_factory):
    async def write(name):
        async with session_factory() as session:
            for n in range(3):
                await insert(session, f"{name}-{n}@x.test")
                await asyncio.sleep(0)
            await session.commit()
    tasks = [asyncio.create_task(write(name), name=f"writer-{name}") for name in "ab"]
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome


class TestRollbackModeTasks(SessionsTestCase):
    async def hold_a_session(self):
        """Leave a session of the test's own task open, as a read on it does."""
        await self.session.execute(text("SELECT 1"))
        self.assertTrue(self.session.in_transaction())

    @timeout(20)
    async def test_sequential_tasks_are_fine(self):
        await self.hold_a_session()
        await asyncio.create_task(app_commits(self.session_factory, "one@x.test"))
        await asyncio.create_task(app_commits(self.session_factory, "two@x.test"))
        self.assertEqual(await self.db.count_records("users"), 2)

    @timeout(20)
    async def test_awaited_child_tasks_may_use_sessions(self):
        await self.hold_a_session()
        factory = self.session_factory
        await asyncio.create_task(app_commits(factory, "created@x.test"))
        await asyncio.wait_for(app_commits(factory, "wait-for@x.test"), timeout=10)
        await asyncio.gather(app_commits(factory, "gathered@x.test"))
        async with asyncio.TaskGroup() as group:
            group.create_task(app_commits(factory, "group@x.test"))
        self.assertEqual(await self.emails(), ["created@x.test", "gathered@x.test",
                                               "group@x.test", "wait-for@x.test"])


class TestCommitModeTwoTasks(SSotAsyncTestCase):
    isolation = "commit"

    @timeout(30)
    async def test_concurrent_sessions_work(self):
        try:
            await two_writers(self.session_factory)
            self.assertEqual(await self.db.count_records("users"), 6)
        finally:
            await self.db.execute_query("DELETE FROM users")


class TestLeftoverTaskBeforeTeardown(unittest.TestCase):
    def test_task_still_using_the_connection_is_cancelled_before_rollback(self):
        class LeavesBusyTask(SSotAsyncTestCase):
            async def test_1_leaves(self):
                async def busy():
                    async with self.session_factory() as session:
                        while True:
                            await session.execute(text("SELECT 1"))
                asyncio.get_running_loop().create_task(busy())
                await asyncio.sleep(0.05)

            async def test_2_next(self):
                self.assertEqual(await self.db.count_records("users"), 0)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_case(LeavesBusyTask)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertTrue(any("test_1_leaves left 1 task(s) running" in str(w.message)
                            for w in caught))


class TestSessionOptions(unittest.TestCase):
    def test_defaults_keep_objects_loaded_after_commit_in_every_session(self):
        seen = {}

        class Defaults(SSotAsyncTestCase):
            async def test_sessions(self):
                seen["rollback"] = [session.sync_session.expire_on_commit for session in
                                    (self.session, self.session_factory())]

        class CommitDefaults(Defaults):
            isolation = "commit"

            async def test_sessions(self):
                seen["commit"] = [session.sync_session.expire_on_commit for session in
                                  (self.session, self.session_factory())]

        for case in (Defaults, CommitDefaults):
            result = run_case(case)
            self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen, {"rollback": [False, False], "commit": [False, False]})

    def test_class_options_reach_every_session_the_class_makes(self):
        seen = {}

        class LikeTheApp(SessionsTestCase):
            session_options = {"expire_on_commit": True, "autoflush": False}

            @classmethod
            async def asyncSetUpTestData(cls, db):
                seen["class data"] = _options(db.session)

            async def test_sessions(self):
                seen["self.session"] = _options(self.session)
                async with self.session_factory() as app:
                    seen["factory"] = _options(app)
                    user = User("expired@x.test")
                    app.add(user)
                    await app.commit()
                    seen["expired"] = sorted(sa_inspect(user).expired_attributes)

        result = run_case(LikeTheApp)
        self.assertTrue(result.wasSuccessful(), problems(result))
        for who in ("class data", "self.session", "factory"):
            self.assertEqual(seen[who], (True, False), who)
        self.assertIn("email", seen["expired"])

    def test_bad_options_are_explained(self):
        cases = [
            ({"expire_on_comit": True}, "has 'expire_on_comit', not an AsyncSession option; "
                                        "did you mean 'expire_on_commit'?"),
            ({"bind": None}, "sets 'bind'; the isolation mode sets it"),
            (["expire_on_commit"], "is ['expire_on_commit']; use a dict of AsyncSession "
                                   "options, such as {'expire_on_commit': True}"),
        ]
        for value, expected in cases:
            with self.subTest(value=value):
                Bad = type("Bad", (SSotAsyncTestCase,), {
                    "session_options": value, "test_x": _nothing})
                result = run_case(Bad)
                self.assertIn(f"Bad.session_options (class attribute) {expected}",
                              problems(result))


def _options(session) -> tuple[bool, bool]:
    return session.sync_session.expire_on_commit, session.sync_session.autoflush


async def _nothing(self):
    pass


if __name__ == "__main__":
    unittest.main()
