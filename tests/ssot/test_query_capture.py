"""capture_queries(), assertNumQueries(n) and assertMaxQueries(n) on this pass's database."""

import unittest

from sqlalchemy import text

from test_framework import SSotAsyncTestCase, SSotBaseTestCase
from test_framework.errors import TestFrameworkError
from test_framework.ssot.query_capture import CapturedQuery, mask_passwords
from tests.support import problems, run_case

SECRET_URL = "postgresql://app:s3cret@db.example/app"


async def app_register(session_factory, email):
    """Application code: its own session and a real commit."""
    async with session_factory() as session:
        await session.execute(text("INSERT INTO users (email, is_active) VALUES (:e, :a)"),
                              {"e": email, "a": True})
        await session.commit()


class CaptureChecks:
    """Run in each isolation mode (the subclasses below)."""

    async def test_app_session_statements_without_transaction_bookkeeping(self):
        async with self.capture_queries() as queries:
            await app_register(self.session_factory, "app@x.test")
            await self.db.fetch_one("SELECT email FROM users WHERE email = :e", {"e": "app@x.test"})
        self.assertEqual(len(queries), 2, queries.render())
        self.assertTrue(queries[0].sql.startswith("INSERT INTO users"), queries[0])
        self.assertIn("app@x.test", repr(queries[0].parameters))
        self.assertTrue(queries.statements[1].startswith("SELECT email FROM users"))
        for word in ("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT"):
            self.assertFalse(any(sql.upper().startswith(word) for sql in queries.statements))
        # commit mode removes only rows made through self.db; this one the app made
        await self.db.execute_query("DELETE FROM users WHERE email = :e", {"e": "app@x.test"})

    async def test_assert_num_queries_passes_on_the_exact_count(self):
        async with self.assertNumQueries(3):
            user = await self.db.create_test_user()
            await self.db.create_test_thread(user=user)
            await self.db.count_records("threads")

    async def test_assert_max_queries_passes_at_and_under_the_budget(self):
        async with self.assertMaxQueries(3):
            user = await self.db.create_test_user()
            await self.db.create_test_thread(user=user)
            await self.db.count_records("threads")
        async with self.assertMaxQueries(5):
            await self.db.count_records("users")
        async with self.assertMaxQueries(0):
            pass

    async def test_savepoints_through_the_helper_are_not_counted(self):
        async with self.assertNumQueries(1):
            transaction = await self.db.begin_transaction()
            await self.db.create_test_user()
            await self.db.rollback_transaction(transaction)


class TestCaptureRollbackMode(CaptureChecks, SSotAsyncTestCase):
    pass


class TestCaptureCommitMode(CaptureChecks, SSotAsyncTestCase):
    isolation = "commit"


class TestWhatIsLeftOut(SSotAsyncTestCase):
    async def test_reflection_on_first_use_is_not_counted(self):
        await self.db.execute_query("CREATE TABLE capture_notes (id INTEGER PRIMARY KEY)")
        before = self.get_metric("db_query_count")
        async with self.assertNumQueries(2):
            await self.db.create("capture_notes", {"id": 1})  # reflects the table first
            await self.db.count_records("capture_notes")       # checks the table exists first
        self.assertEqual(self.get_metric("db_query_count") - before, 2)

    async def test_row_assertions_are_not_counted(self):
        async with self.assertNumQueries(1):
            await self.db.create_test_user({"email": "seen@x.test"})
            await self.assertRowExists("users", email="seen@x.test")
            await self.assertRowCount("users", 1)

    async def test_passwords_in_urls_are_masked(self):
        async with self.capture_queries() as queries:
            await self.db.fetch_one("SELECT :dsn AS dsn", {"dsn": SECRET_URL})
            await self.db.fetch_one(f"SELECT '{SECRET_URL}' AS dsn")
        rendered = queries.render()
        self.assertNotIn("s3cret", rendered)
        self.assertNotIn("s3cret", repr([q.parameters for q in queries]))
        self.assertEqual(rendered.count("app:***@db.example"), 2, rendered)

    async def test_shapes_take_the_values_out(self):
        async with self.capture_queries() as queries:
            for email in ("one@x.test", "two@x.test"):
                await self.db.fetch_one("SELECT id FROM users WHERE email = :e", {"e": email})
            await self.db.fetch_one("SELECT id FROM users WHERE email = 'three@x.test'")
        self.assertEqual(queries.shapes, ["SELECT id FROM users WHERE email = ?"] * 3)

    async def test_nested_captures_both_see_inner_statements(self):
        async with self.capture_queries() as outer:
            await self.db.count_records("users")
            async with self.capture_queries() as inner:
                await self.db.count_records("threads")
        self.assertEqual((len(outer), len(inner)), (2, 1))
        self.assertIn("threads", inner[0].sql)


class TestFailures(unittest.TestCase):
    def test_wrong_count_or_over_the_budget_fails_listing_the_statements(self):
        for assertion, expected in (("assertNumQueries", "1 expected"),
                                    ("assertMaxQueries", "at most 1 allowed")):
            class Counts(SSotAsyncTestCase):
                async def test_wrong(self):
                    async with getattr(self, assertion)(1, msg="listing users"):
                        await self.db.create_test_user({"email": "listed@x.test"})
                        await self.db.count_records("users")

            with self.subTest(assertion=assertion):
                result = run_case(Counts)
                self.assertEqual(len(result.failures), 1, problems(result))
                message = problems(result)
                self.assertIn(f"2 queries executed, {expected}; captured:", message)
                self.assertRegex(message, r"1\. INSERT INTO users .*listed@x\.test")
                self.assertRegex(message, r"2\. SELECT count\(\*\)")
                self.assertIn(": listing users", message)
                self.assertNotIn("ssot/query_capture.py", message, "framework frames hidden")

    def test_an_error_inside_the_block_is_reported_instead(self):
        class Raises(SSotAsyncTestCase):
            async def test_raises(self):
                async with self.assertNumQueries(5):
                    await self.db.count_records("users")
                    raise LookupError("the real problem")

        result = run_case(Raises)
        self.assertEqual((len(result.errors), len(result.failures)), (1, 0), problems(result))
        self.assertIn("LookupError: the real problem", problems(result))

    def test_sync_case_uses_plain_with(self):
        seen = {}

        class Sync(SSotBaseTestCase):
            def test_sync(self):
                with self.assertNumQueries(1):
                    self.run_async(self.db.create_test_user())
                with self.capture_queries() as queries:
                    self.run_async(self.db.count_records("users"))
                seen["sql"] = queries.statements

        result = run_case(Sync)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(len(seen["sql"]), 1)

    def test_misuse_is_explained(self):
        class Early(SSotAsyncTestCase):
            async def test_x(self):
                pass

        with self.assertRaisesRegex(TestFrameworkError, "before the test's database was set up"):
            Early("test_x").capture_queries()
        for bad in (-1, 1.5, True):
            for assertion in ("assertNumQueries", "assertMaxQueries"):
                with self.subTest(bad=bad, assertion=assertion):
                    with self.assertRaisesRegex(TestFrameworkError,
                                                rf"{assertion}\({bad!r}\).*whole number"):
                        getattr(Early("test_x"), assertion)(bad)


class TestMasking(unittest.TestCase):
    def test_mask_passwords_reaches_into_parameters(self):
        masked = mask_passwords(({"dsn": SECRET_URL}, [SECRET_URL], "plain", 3))
        self.assertEqual(masked, ({"dsn": "postgresql://app:***@db.example/app"},
                                  ["postgresql://app:***@db.example/app"], "plain", 3))
        self.assertEqual(mask_passwords("redis://:pw@cache:6379/0"), "redis://:***@cache:6379/0")
        self.assertEqual(mask_passwords("user@example.com: hi"), "user@example.com: hi")

    def test_captured_query_renders_on_one_line(self):
        query = CapturedQuery("SELECT a\nFROM  t", ("x",))
        self.assertEqual(str(query), "SELECT a FROM t -- parameters: ('x',)")
        self.assertEqual(str(CapturedQuery("SELECT 1", ())), "SELECT 1")
