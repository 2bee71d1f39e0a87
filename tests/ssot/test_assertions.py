"""Row assertions on the real database of this pass: what passes, and what a failure shows."""

import unittest
from types import SimpleNamespace

from sqlalchemy import text

from test_framework import SSotAsyncTestCase, SSotBaseTestCase
from test_framework.errors import QueryGuardError
from tests.support import problems, run_case


class TestPassing(SSotAsyncTestCase):
    async def test_exists_returns_the_matching_row(self):
        await self.db.create_test_user({"email": "a@x.test", "full_name": "A"})
        await self.db.create_test_user({"email": "b@x.test", "full_name": "B"})
        row = await self.assertRowExists("users", email="b@x.test", is_active=True)
        self.assertEqual(row.full_name, "B")

    async def test_none_matches_null_and_dict_conditions_combine(self):
        await self.db.create_test_user({"email": "null@x.test"})
        await self.assertRowExists("users", {"full_name": None}, email="null@x.test")
        await self.assertRowNotExists("users", {"full_name": "someone"})

    async def test_count_with_and_without_conditions(self):
        for n in range(3):
            await self.db.create_test_user({"email": f"c{n}@x.test", "is_active": n != 0})
        await self.assertRowCount("users", 3)
        await self.assertRowCount("users", 2, is_active=True)
        await self.assertRowCount("threads", 0)

    async def test_hostile_value_is_bound_not_interpolated(self):
        hostile = "x' OR '1'='1"
        await self.db.create_test_user({"email": "real@x.test"})
        await self.assertRowNotExists("users", email=hostile)
        await self.db.create_test_user({"email": hostile})
        await self.assertRowCount("users", 1, email=hostile)

    async def test_rows_the_application_committed_are_seen(self):
        async with self.session_factory() as session:
            await session.execute(text("INSERT INTO users (email, is_active) VALUES (:e, :a)"),
                                  {"e": "app@x.test", "a": True})
            await session.commit()
        await self.assertRowExists("users", email="app@x.test")

    async def test_row_equal_compares_only_the_named_columns(self):
        row = await self.db.create_test_user({"email": "eq@x.test", "full_name": "Eq"})
        self.assertRowEqual(row, {"email": "eq@x.test", "full_name": "Eq"})
        self.assertRowEqual({"email": "eq@x.test", "extra": 1}, {"email": "eq@x.test"})
        self.assertRowEqual(SimpleNamespace(email="eq@x.test"), {"email": "eq@x.test"})


class TestCommitMode(SSotAsyncTestCase):
    isolation = "commit"

    async def test_rows_committed_by_the_application_are_seen(self):
        async with self.session_factory() as session:
            await session.execute(text("INSERT INTO users (email, is_active) VALUES (:e, :a)"),
                                  {"e": "committed@x.test", "a": True})
            await session.commit()
        try:
            await self.assertRowCount("users", 1, email="committed@x.test")
        finally:
            await self.db.execute_query("DELETE FROM users WHERE email = :e",
                                        {"e": "committed@x.test"})
        await self.assertRowNotExists("users", email="committed@x.test")


class TestFailureMessages(unittest.TestCase):
    maxDiff = None

    def failure_of(self, body, setup_rows=()):
        """Run ``body(test)`` after making ``setup_rows``; return the failure message."""
        class Case(SSotAsyncTestCase):
            async def test_it(self):
                for row in setup_rows:
                    await self.db.create_test_user(row)
                await body(self)

        result = run_case(Case)
        self.assertEqual(len(result.failures), 1, problems(result))
        message = problems(result)
        self.assertNotIn("ssot/assertions.py", message, "framework frames hidden")
        return message.rsplit("AssertionError: ", 1)[1]

    def test_exists_shows_rows_sharing_a_value(self):
        message = self.failure_of(
            lambda t: t.assertRowExists("users", email="a@x.test", full_name="Wrong"),
            [{"email": "a@x.test", "full_name": "Right"}, {"email": "b@x.test"}])
        self.assertTrue(message.startswith(
            "no row in 'users' with email='a@x.test', full_name='Wrong'; the table has 2 rows; "
            "those sharing a value:\n"), message)
        self.assertIn("'full_name': 'Right'", message)
        self.assertNotIn("b@x.test", message)

    def test_exists_on_an_empty_table_says_so(self):
        message = self.failure_of(lambda t: t.assertRowExists("users", email="z@x.test"))
        self.assertEqual(message.strip(),
                         "no row in 'users' with email='z@x.test'; the table is empty")

    def test_not_exists_lists_the_matches_and_the_callers_msg(self):
        rows = [{"email": f"m{n}@x.test"} for n in range(7)]
        message = self.failure_of(
            lambda t: t.assertRowNotExists("users", is_active=True, msg="all inactive"), rows)
        self.assertTrue(message.startswith("7 rows in 'users' with is_active=True, expected none:"))
        self.assertEqual(message.count("@x.test"), 5, message)
        self.assertIn("... and 2 more : all inactive", message)

    def test_count_shows_the_matching_rows(self):
        message = self.failure_of(lambda t: t.assertRowCount("users", 2),
                                  [{"email": "only@x.test"}])
        self.assertTrue(message.startswith("'users' has 1 row, expected 2:\n"), message)
        self.assertIn("'email': 'only@x.test'", message)

    def test_row_equal_lists_each_difference(self):
        async def body(test):
            row = await test.db.create_test_user({"email": "d@x.test", "full_name": "D"})
            test.assertRowEqual(row, {"email": "d@x.test", "full_name": "E", "nick": "d"})

        message = self.failure_of(body)
        self.assertIn("row differs in 2 column(s):\n  full_name: expected 'E', found 'D'\n"
                      "  nick: expected 'd', but the row has no such column\nrow: {", message)

    def test_row_equal_on_none(self):
        async def body(test):
            test.assertRowEqual(await test.db.fetch_one("SELECT * FROM users"), {"id": 1})

        self.assertIn("row is None, expected one with {'id': 1}", self.failure_of(body))


class TestRefusedBeforeSql(SSotAsyncTestCase):
    async def test_unknown_column_names_the_columns(self):
        with self.assertRaisesRegex(QueryGuardError, r"assertRowExists\('users'\) got column\(s\) "
                                                     r"\['nick'\].*'email'"):
            await self.assertRowExists("users", nick="x")

    async def test_unknown_and_hostile_table_names(self):
        with self.assertRaisesRegex(QueryGuardError, "table 'ghosts' does not exist"):
            await self.assertRowCount("ghosts", 0)
        with self.assertRaisesRegex(QueryGuardError, "not a plain identifier"):
            await self.assertRowNotExists("users; DROP TABLE users")

    async def test_condition_given_twice(self):
        with self.assertRaisesRegex(QueryGuardError,
                                    r"\['email'\] both in the dict and as keywords"):
            await self.assertRowExists("users", {"email": "a"}, email="b")


class TestSyncCase(unittest.TestCase):
    def test_sync_case_runs_them_through_run_async(self):
        class Sync(SSotBaseTestCase):
            def test_sync(self):
                self.run_async(self.db.create_test_user({"email": "s@x.test"}))
                self.run_async(self.assertRowExists("users", email="s@x.test"))
                self.run_async(self.assertRowCount("users", 5))

        result = run_case(Sync)
        self.assertEqual(len(result.failures), 1, problems(result))
        self.assertIn("'users' has 1 row, expected 5", problems(result))
