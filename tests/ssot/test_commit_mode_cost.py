"""Commit mode's per-test cost: one connection for the test, one cleanup transaction.

``self.session`` keeps the connection ``begin_test`` checked out, so the
helper's statements check out nothing more; the deletion of the test's rows
and the leftover count share one transaction on it. What must not change
with that: the deletion is committed (seen from another connection), a
failed count still deletes, leftovers are still reported.
"""

import asyncio
import unittest
import warnings

from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio.exc import AsyncMethodRequired

from test_framework import SSotAsyncTestCase
from test_framework.ssot.leftovers import LeftoverRowsWarning
from tests.ssot.test_sessions import User
from tests.support import (backend_name, count_rows, count_rows_sync, problems, run_case,
                           separate_connection, skip_unless_backend, timeout)


def counting(engine) -> dict:
    """Count the engine's pool checkouts and connection commits from now on."""
    seen = {"checkout": 0, "commit": 0}

    def on_checkout(*args):
        seen["checkout"] += 1

    def on_commit(*args):
        seen["commit"] += 1

    event.listen(engine.sync_engine.pool, "checkout", on_checkout)
    event.listen(engine.sync_engine, "commit", on_commit)
    seen["stop"] = lambda: (event.remove(engine.sync_engine.pool, "checkout", on_checkout),
                            event.remove(engine.sync_engine, "commit", on_commit))
    return seen


async def delete_everything(url) -> None:
    async with separate_connection(url) as connection:
        for table in ("messages", "threads", "users"):
            await connection.execute(text(f"DELETE FROM {table}"))


class TestOneConnectionPerTest(unittest.TestCase):
    def test_helper_and_session_statements_check_out_nothing_more(self):
        seen = {}

        class Works(SSotAsyncTestCase):
            isolation = "commit"

            async def test_work(self):
                seen["url"] = self.engine.url
                counts = counting(self.engine)
                user = await self.db.create_test_user({"email": "one@x.test"})
                await self.db.fetch_one("SELECT id FROM users WHERE id = :id", {"id": user.id})
                await self.db.count_records("users")
                await self.session.execute(text("UPDATE users SET full_name = 'F'"))
                await self.session.commit()
                counts["stop"]()
                seen["checkouts"] = counts["checkout"]
                seen["outside"] = await count_rows(self.engine.url, "users", "full_name = 'F'")

        result = run_case(Works)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["checkouts"], 0)
        self.assertEqual(seen["outside"], 1, "the session's commit is real")
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)

    def test_cleanup_and_leftover_count_are_one_transaction(self):
        seen = {}

        class Cleans(SSotAsyncTestCase):
            isolation = "commit"
            leftover_rows = "error"

            async def test_1_baseline(self):
                seen["url"] = self.engine.url

            async def test_2_rows(self):
                user = await self.db.create_test_user({"email": "two@x.test"})
                await self.db.create_test_thread({"id": "t2"}, user=user)

            async def asyncTearDown(self):
                counts = counting(self.engine)
                try:
                    await super().asyncTearDown()
                finally:
                    counts["stop"]()
                seen[self._testMethodName] = (counts["checkout"], counts["commit"])

        result = run_case(Cleans)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["test_2_rows"], (0, 1), "(checkouts, commits) in teardown")
        for table in ("threads", "users"):
            self.assertEqual(count_rows_sync(seen["url"], table), 0, table)

    def test_session_keeps_no_lock_between_its_transactions(self):
        """Another connection writes and commits while self.session's connection is held."""
        seen = {}

        class Other(SSotAsyncTestCase):
            isolation = "commit"

            async def test_other_writer(self):
                seen["url"] = self.engine.url
                await self.db.fetch_one("SELECT count(*) FROM users")
                async with separate_connection(self.engine.url) as other:
                    await other.execute(text(
                        "INSERT INTO users (email, is_active) VALUES ('other@x.test', true)"))
                    await other.execute(text("DELETE FROM users WHERE email = 'other@x.test'"))

        result = run_case(Other)
        self.assertTrue(result.wasSuccessful(), problems(result))


    def test_session_works_after_teardown_on_the_engine(self):
        """A cleanup that runs after teardown (addCleanup) may still use self.db."""
        seen = {}

        class UsesDbLate(SSotAsyncTestCase):
            isolation = "commit"

            async def test_app_row(self):
                seen["url"] = self.engine.url
                await self.db.execute_query(
                    "INSERT INTO users (email, is_active) VALUES ('late@x.test', true)")

            async def asyncTearDown(self):
                await super().asyncTearDown()
                seen["bound_to_engine"] = self.session.bind is self.engine
                await self.db.execute_query("DELETE FROM users WHERE email = 'late@x.test'")

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_case(UsesDbLate)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertTrue(seen["bound_to_engine"])
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)
        self.assertEqual([str(w.message) for w in caught if w.category is ResourceWarning], [])


class TestLoneStatementsOnTheTestsConnection(unittest.TestCase):
    """A helper call of one statement runs on the test's connection, not through
    ``self.session``, commits there at once, and leaves that connection with no
    transaction: a session bound to it must begin (and really commit) its own."""

    def test_lone_calls_skip_the_session_and_leave_it_committing_for_real(self):
        seen = {}

        class Lone(SSotAsyncTestCase):
            isolation = "commit"

            async def test_lone(self):
                seen["url"] = self.engine.url
                through_session = []
                event.listen(self.session.sync_session, "do_orm_execute",
                             lambda state: through_session.append(str(state.statement)))
                user = await self.db.create_test_user({"email": "lone@x.test"})
                await self.db.fetch_one("SELECT email FROM users WHERE id = :id",
                                        {"id": user.id})
                await self.db.fetch_all("SELECT email FROM users")
                seen["lone"] = list(through_session)
                seen["outside"] = await count_rows(self.engine.url, "users",
                                                   "email = 'lone@x.test'")
                self.assertTrue(await self.db.table_exists("users"))  # asked through it
                self.assertFalse(self.session.in_transaction())
                self.session.add(User("orm@x.test"))
                await self.session.commit()
                seen["orm outside"] = await count_rows(self.engine.url, "users",
                                                       "email = 'orm@x.test'")
                await self.session.execute(text("DELETE FROM users WHERE email = 'orm@x.test'"))
                await self.session.commit()

        result = run_case(Lone)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["lone"], [], "the lone calls went through self.session")
        self.assertEqual(seen["outside"], 1, "a lone create is committed at once")
        self.assertEqual(seen["orm outside"], 1, "the session's commit after the helpers' "
                         "calls must be real, not a join of a transaction left open")
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)

    def test_a_failed_lone_write_leaves_no_transaction_behind(self):
        seen = {}

        class Fails(SSotAsyncTestCase):
            isolation = "commit"

            async def test_fails(self):
                seen["url"] = self.engine.url
                await self.db.create_test_user({"email": "dup@x.test"})
                with self.assertRaises(IntegrityError):
                    await self.db.create_test_user({"email": "dup@x.test"})
                await self.db.create_test_user({"email": "after@x.test"})
                self.session.add(User("orm@x.test"))
                await self.session.commit()
                seen["outside"] = await count_rows(self.engine.url, "users")
                await self.session.execute(text("DELETE FROM users WHERE email = 'orm@x.test'"))
                await self.session.commit()

        result = run_case(Fails)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["outside"], 3, "dup, after and orm, each committed")
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)

    def test_returning_rows_of_a_write_are_read_before_its_commit(self):
        """SQLite refused to commit while an ``INSERT ... RETURNING`` was still being
        stepped ("SQL statements in progress"): its rows are read as it runs."""
        seen = {}

        class Returns(SSotAsyncTestCase):
            isolation = "commit"

            async def test_returns(self):
                seen["url"] = self.engine.url
                result = await self.db.execute_query(
                    "INSERT INTO users (email, is_active) VALUES ('ret@x.test', true) "
                    "RETURNING id")
                seen["rowcount"] = result.rowcount
                new_id = result.scalar_one()
                seen["outside"] = await count_rows(self.engine.url, "users", "id = :id",
                                                   {"id": new_id})
                await self.db.execute_query("DELETE FROM users WHERE id = :id", {"id": new_id})

        result = run_case(Returns)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["rowcount"], 1)
        self.assertEqual(seen["outside"], 1)
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)


DEFERRED_TABLES = ("CREATE TABLE parent (id INTEGER PRIMARY KEY)",
                   "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER "
                   "REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")


class DeferredChild(SSotAsyncTestCase):
    """A database of its own, with a foreign key checked only at COMMIT: a write that
    breaks it fails at the commit, after its statement succeeded."""

    isolation = "database"

    async def asyncSetUp(self):
        await super().asyncSetUp()
        for statement in DEFERRED_TABLES:
            await self.db.execute_query(statement)

    async def go_on(self, seen):
        """What the test can still do after a failed commit, each checked from outside."""
        await self.db.fetch_one("SELECT 1")
        await self.db.create_test_user({"email": "helper@x.test"})
        self.session.add(User("orm@x.test"))
        await self.session.commit()
        seen["users outside"] = await count_rows(self.engine.url, "users")
        seen["children outside"] = await count_rows(self.engine.url, "child")
        await self.session.execute(text("DELETE FROM users WHERE email = 'orm@x.test'"))
        await self.session.commit()


class TestFailedCommits(unittest.TestCase):
    """A helper call whose COMMIT fails (a deferred constraint, a cancel as it commits)
    is rolled back, and the test goes on: the connection holds no transaction, lone
    or through ``self.session``."""

    def check(self, seen, result):
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["users outside"], 2, "the helper's and the ORM's rows")
        self.assertEqual(seen["children outside"], 0, "the failed row was not committed")

    def test_a_lone_statement_whose_commit_fails(self):
        seen = {}

        class Lone(DeferredChild):
            async def test_lone(self):
                with self.assertRaises(IntegrityError):  # raised by the COMMIT
                    await self.db.execute_query("INSERT INTO child VALUES (1, 99)")
                await self.go_on(seen)

        self.check(seen, run_case(Lone))

    def test_a_create_through_the_session_whose_commit_fails(self):
        """``child`` is reflected first, through the session, so the create is the
        session's: its failed commit left the session unusable ("prepared" state)."""
        seen = {}

        class ThroughSession(DeferredChild):
            async def test_create(self):
                with self.assertRaises(IntegrityError):
                    await self.db.create("child", {"id": 1, "parent_id": 99})
                self.assertEqual(self.db.tracked_rows, [])
                await self.go_on(seen)

        self.check(seen, run_case(ThroughSession))

    @skip_unless_backend("postgresql")
    def test_a_lone_statement_cancelled_as_it_commits(self):
        seen = {}

        class Cancelled(DeferredChild):
            @timeout(30)
            async def test_cancelled(self):
                await self.db.execute_query(
                    "CREATE FUNCTION tf_slow() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$")
                await self.db.execute_query(
                    "CREATE CONSTRAINT TRIGGER tf_slow AFTER INSERT ON child DEFERRABLE "
                    "INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tf_slow()")
                await self.db.execute_query("INSERT INTO parent VALUES (1)")
                with self.assertRaises(TimeoutError):  # the COMMIT runs the 1 s trigger
                    await asyncio.wait_for(
                        self.db.execute_query("INSERT INTO child VALUES (1, 1)"), 0.3)
                await self.go_on(seen)

        self.check(seen, run_case(Cancelled))

    def test_a_streaming_statement_is_refused_with_nothing_committed(self):
        """Streamed rows are read after the helper returns: such a statement goes
        through the session, which refuses it, and rolls back what it did."""
        seen = {}

        class Streams(DeferredChild):
            async def test_streams(self):
                with self.assertRaises(AsyncMethodRequired):
                    await self.db.execute_query(
                        text("INSERT INTO parent VALUES (1), (2) RETURNING id")
                        .execution_options(stream_results=True))
                seen["parents outside"] = await count_rows(self.engine.url, "parent")
                await self.go_on(seen)

        result = run_case(Streams)
        self.check(seen, result)
        self.assertEqual(seen["parents outside"], 0)


class TestGuaranteesKept(unittest.TestCase):
    def test_failed_read_in_cleanup_still_deletes_and_commits(self):
        seen = {}

        class FailingRead(SSotAsyncTestCase):
            isolation = "commit"

            async def test_read_fails(self):
                seen["url"] = self.engine.url
                await self.db.create_test_user({"email": "kept@x.test"})

                async def bad_read(connection):
                    await connection.execute(text("SELECT * FROM no_such_table_here"))

                try:
                    await self.db.cleanup(before_commit=bad_read)
                except Exception as exc:
                    seen["error"] = str(exc)
                seen["tracked"] = len(self.db.tracked_rows)
                seen["outside"] = await count_rows(self.engine.url, "users")

        result = run_case(FailingRead)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertIn("no_such_table_here", seen.get("error", ""))
        self.assertEqual((seen["tracked"], seen["outside"]), (0, 0))

    def test_leftover_counted_beside_tracked_rows(self):
        seen = {}

        class Mixed(SSotAsyncTestCase):
            isolation = "commit"

            async def test_1_clean(self):
                seen["url"] = self.engine.url

            async def test_2_tracked_and_app_rows(self):
                await self.db.create_test_user({"email": "tracked@x.test"})
                async with self.session_factory() as app:
                    await app.execute(text(
                        "INSERT INTO users (email, is_active) VALUES ('app@x.test', true)"))
                    await app.commit()

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_case(Mixed)
        left = count_rows_sync(seen["url"], "users")
        asyncio.run(delete_everything(seen["url"]))
        self.assertTrue(result.wasSuccessful(), problems(result))
        leftovers = [str(w.message) for w in caught if w.category is LeftoverRowsWarning]
        self.assertEqual(len(leftovers), 1, leftovers)
        self.assertIn("Mixed.test_2_tracked_and_app_rows left rows behind: users +1",
                      leftovers[0])
        self.assertEqual(left, 1, "the tracked row deleted, the app's kept")

    def test_failed_cleanup_is_not_blamed_on_the_next_test(self):
        seen = {}

        class LeavesChild(SSotAsyncTestCase):
            isolation = "commit"

            async def test_1_child_made_by_app(self):
                seen["url"] = self.engine.url
                await self.db.create_test_thread({"id": "parent"})
                async with self.session_factory() as app:
                    await app.execute(text(
                        "INSERT INTO messages (id, thread_id, role) VALUES ('c', 'parent', 'u')"))
                    await app.commit()

            async def test_2_clean(self):
                pass

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_case(LeavesChild)
        asyncio.run(delete_everything(seen["url"]))
        self.assertEqual([t.id().rsplit(".", 1)[-1] for t, _ in result.errors],
                         ["test_1_child_made_by_app"], problems(result))
        self.assertIn("could not delete the rows this test created in ['threads']",
                      problems(result))
        leftovers = [str(w.message) for w in caught if w.category is LeftoverRowsWarning]
        self.assertEqual(leftovers, [])


if __name__ == "__main__":
    unittest.main()


class Logged(SSotAsyncTestCase):
    """Commit mode, with the BEGINs and COMMITs asyncpg sends on ``self.session``'s
    connection (it holds one for the test) in reach."""

    isolation = "commit"

    async def asyncSetUp(self):
        await super().asyncSetUp()
        raw = await (await self.session.connection()).get_raw_connection()
        self.driver = raw.driver_connection
        await self.session.commit()  # connection() began a transaction: end it

    async def transaction_statements(self, step):
        sent = []
        logger = lambda record: sent.append(record.query.strip(" ;"))  # noqa: E731
        self.driver.add_query_logger(logger)
        try:
            await step()
            await asyncio.sleep(0)  # asyncpg calls loggers with call_soon
        finally:
            self.driver.remove_query_logger(logger)
        return [query for query in sent if query in ("BEGIN", "COMMIT")]


@skip_unless_backend("postgresql")
class TestOneStatementWithoutTransaction(unittest.TestCase):
    """A helper call that is one statement in a transaction of its own sends no BEGIN or
    COMMIT; one of several statements keeps its transaction, all or nothing."""

    def test_a_read_alone_runs_outside_a_transaction_and_others_keep_theirs(self):
        seen = {}

        class Reads(Logged):
            async def test_reads(self):
                seen["url"] = self.engine.url
                one = "SELECT 1"
                seen["alone"] = await self.transaction_statements(
                    lambda: self.db.fetch_one(one))
                seen["count"] = await self.transaction_statements(
                    lambda: self.db.count_records("users"))
                self.session.add(User("pending@x.test"))  # flushed by the read, in a transaction
                seen["with pending"] = await self.transaction_statements(
                    lambda: self.db.fetch_all(one))
                await self.session.execute(text("DELETE FROM users"))
                await self.session.commit()

        result = run_case(Reads)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["alone"], [])
        self.assertEqual(seen["count"], [])
        self.assertEqual(seen["with pending"], ["BEGIN"], "the flush's transaction is the "
                         "test's (add() began it): it stays open until the test commits")
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)

    def test_a_create_alone_commits_at_once_and_one_with_a_parent_is_all_or_nothing(self):
        seen = {}

        class Creates(Logged):
            async def test_creates(self):
                seen["url"] = self.engine.url
                seen["user"] = await self.transaction_statements(
                    lambda: self.db.create_test_user({"email": "alone@x.test"}))
                seen["message"] = await self.transaction_statements(
                    lambda: self.db.create_test_message({"id": "m1", "role": "user"}))
                with self.assertRaises(IntegrityError):  # the message fails after its thread
                    await self.db.create_test_message({"id": "m2", "role": None})
                seen["threads"] = await count_rows(self.engine.url, "threads")

            async def asyncTearDown(self):
                seen["cleanup"] = await self.transaction_statements(super().asyncTearDown)

        result = run_case(Creates)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["user"], [])
        self.assertEqual(seen["message"], ["BEGIN", "COMMIT"], "a thread, then its message")
        self.assertEqual(seen["threads"], 1, "the failed message's thread was rolled back")
        self.assertEqual(seen["cleanup"], ["BEGIN", "COMMIT"], "three tables: one transaction")
        for table in ("messages", "threads", "users"):
            self.assertEqual(count_rows_sync(seen["url"], table), 0, table)

    def test_a_cleanup_of_one_table_is_one_statement_and_the_count_follows_it(self):
        seen = {}

        class OneTable(Logged):
            leftover_rows = "error"

            async def test_1_baseline(self):
                seen["url"] = self.engine.url

            async def test_2_users(self):
                for n in range(3):
                    await self.db.create_test_user({"email": f"u{n}@x.test"})

            async def asyncTearDown(self):
                seen[self._testMethodName] = await self.transaction_statements(
                    super().asyncTearDown)

        result = run_case(OneTable)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["test_2_users"], [], "one DELETE, then the leftover count")
        self.assertEqual(count_rows_sync(seen["url"], "users"), 0)


class TestCommitsDoNotWaitForTheDisk(unittest.TestCase):
    """A test database's commits return before they reach the disk, on both backends;
    connections the framework did not make keep the server's own setting."""

    def test_the_test_connections_skip_the_flush_and_others_keep_it(self):
        postgresql = backend_name() == "postgresql"
        read = "SHOW synchronous_commit" if postgresql else "PRAGMA synchronous"
        seen = {}

        class Reads(SSotAsyncTestCase):
            isolation = "commit"

            async def test_reads(self):
                seen["ours"] = (await self.session.execute(text(read))).scalar_one()
                await self.session.commit()
                if postgresql:
                    async with separate_connection(self.engine.url) as other:
                        seen["other"] = (await other.execute(text(read))).scalar_one()

        result = run_case(Reads)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["ours"], "off" if postgresql else 0)
        if postgresql:
            self.assertNotEqual(seen["other"], "off", "the server's setting, unchanged")
