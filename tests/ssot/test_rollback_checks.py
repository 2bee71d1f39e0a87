"""What rollback isolation adds to each test: sequences reset before it, deferred
constraints checked before its rollback (``backends/*.py`` reset_sequences and
deferred_violation, called from ``ssot/isolation/rollback.py``)."""

import unittest

from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, text
from sqlalchemy.exc import IntegrityError

from test_framework import SSotAsyncTestCase
from test_framework.errors import DeferredConstraintError
from tests.support import backend_name, problems, run_case, timeout

SCHEMA = MetaData()
Table("ledgers", SCHEMA, Column("id", Integer, primary_key=True),
      Column("name", String(40), unique=True))
Table("entries", SCHEMA, Column("id", Integer, primary_key=True),
      Column("ledger_id", Integer,
             ForeignKey("ledgers.id", deferrable=True, initially="DEFERRED",
                        name="entries_ledger_deferred_fk")))
# AUTOINCREMENT on SQLite: ids never reused, counted in sqlite_sequence.
Table("tickets", SCHEMA, Column("id", Integer, primary_key=True),
      Column("title", String(40)), sqlite_autoincrement=True)


def inserting(table, seen, key, **attributes):
    """A class of two tests, each inserting one row into ``table`` and noting its id."""
    async def insert_one(self):
        await self.db.execute_query(f"INSERT INTO {table} (name) VALUES (:n)"
                                    if table == "ledgers" else
                                    f"INSERT INTO {table} (title) VALUES (:n)",
                                    {"n": self.id()[-6:]})
        row = await self.db.fetch_one(f"SELECT max(id) AS id FROM {table}")
        seen.setdefault(key, []).append(row.id)

    return type("Inserts", (SSotAsyncTestCase,), {
        "metadata": SCHEMA, "test_first": insert_one, "test_second": insert_one,
        **attributes})


class TestResetSequences(unittest.TestCase):
    def test_each_test_gets_id_1_with_reset_sequences(self):
        seen = {}
        result = run_case(inserting("ledgers", seen, "ids", reset_sequences=True))
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["ids"], [1, 1])

    def test_autoincrement_table_gets_id_1_with_reset_sequences(self):
        seen = {}
        result = run_case(inserting("tickets", seen, "ids", reset_sequences=True))
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["ids"], [1, 1])

    @unittest.skipUnless(backend_name() == "postgresql",
                         "SQLite's rollback restores max(rowid) + 1 by itself")
    def test_without_it_postgresql_gives_the_second_test_a_higher_id(self):
        seen = {}
        result = run_case(inserting("ledgers", seen, "ids"))
        self.assertTrue(result.wasSuccessful(), problems(result))
        first, second = seen["ids"]
        self.assertGreater(second, first)

    def test_committed_counter_is_brought_back_to_the_rows(self):
        """Committed work moved the counter past the table's rows (an insert, then a
        delete): the next id is 1 again only with reset_sequences."""
        seen = {}

        class Advances(SSotAsyncTestCase):
            metadata = SCHEMA
            isolation = "commit"

            async def test_commit_then_delete(self):
                async with self.session_factory() as app:
                    await app.execute(text("INSERT INTO tickets (title) VALUES ('x')"))
                    await app.execute(text("DELETE FROM tickets"))
                    await app.commit()

        for attributes, key in (({"reset_sequences": True}, "reset"), ({}, "plain")):
            advanced = run_case(Advances)
            self.assertTrue(advanced.wasSuccessful(), problems(advanced))
            result = run_case(inserting("tickets", seen, key, **attributes), "test_first")
            self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["reset"], [1])
        self.assertGreater(seen["plain"][0], 1)

    def test_class_data_rows_count(self):
        seen = {}

        class WithClassData(SSotAsyncTestCase):
            metadata = SCHEMA
            reset_sequences = True

            @classmethod
            async def asyncSetUpTestData(cls, db):
                await db.execute_query("INSERT INTO ledgers (name) VALUES ('a'), ('b')")

            async def test_first(self):
                await self.db.execute_query("INSERT INTO ledgers (name) VALUES ('c')")
                seen.setdefault("ids", []).append(
                    (await self.db.fetch_one("SELECT max(id) AS id FROM ledgers")).id)

            test_second = test_first

        result = run_case(WithClassData)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen["ids"], [3, 3])


class TestDeferredConstraints(unittest.TestCase):
    def test_deferred_violation_fails_the_test_naming_it(self):
        class LeavesOrphan(SSotAsyncTestCase):
            metadata = SCHEMA

            async def test_orphan_entry(self):
                async with self.session_factory() as app:
                    await app.execute(text("INSERT INTO entries (id, ledger_id) VALUES (1, 999)"))
                    await app.commit()  # a savepoint's release: nothing checked yet

        result = run_case(LeavesOrphan)
        self.assertEqual(len(result.errors), 1, problems(result))
        message = problems(result)
        self.assertIn(DeferredConstraintError.__name__, message)
        self.assertIn("check_deferred_constraints = False", message)
        if backend_name() == "postgresql":
            self.assertIn("entries_ledger_deferred_fk", message)
        else:
            self.assertIn("entries.ledger_id -> ledgers.id", message)

    def test_checked_after_a_class_of_another_model_set_used_the_connection(self):
        """Classes hand the connection on; an answer for one model set (no deferrable
        constraints) must not hide another's, whose tables came later."""
        class SampleFirst(SSotAsyncTestCase):
            async def test_uses_the_connection(self):
                await self.db.create_test_user({"email": "first@x.test"})

        class Deferrable(SSotAsyncTestCase):
            metadata = SCHEMA

            async def test_orphan_entry(self):
                await self.db.execute_query(
                    "INSERT INTO entries (id, ledger_id) VALUES (1, 999)")

        first = run_case(SampleFirst)
        self.assertTrue(first.wasSuccessful(), problems(first))
        result = run_case(Deferrable)
        self.assertEqual(len(result.errors), 1, problems(result))
        self.assertIn(DeferredConstraintError.__name__, problems(result))

    def test_check_can_be_turned_off(self):
        class Unchecked(SSotAsyncTestCase):
            metadata = SCHEMA
            check_deferred_constraints = False

            async def test_orphan_entry(self):
                await self.db.execute_query(
                    "INSERT INTO entries (id, ledger_id) VALUES (1, 999)")

        result = run_case(Unchecked)
        self.assertTrue(result.wasSuccessful(), problems(result))

    def test_clean_code_passes_parent_made_after_child(self):
        class ParentLater(SSotAsyncTestCase):
            metadata = SCHEMA

            async def test_child_first(self):
                await self.db.execute_query("INSERT INTO entries (id, ledger_id) VALUES (1, 7)")
                await self.db.execute_query("INSERT INTO ledgers (id, name) VALUES (7, 'late')")
                self.assertEqual(await self.db.count_records("entries"), 1)

        result = run_case(ParentLater)
        self.assertTrue(result.wasSuccessful(), problems(result))

    def test_violation_fixed_within_the_test_passes(self):
        class Fixes(SSotAsyncTestCase):
            metadata = SCHEMA

            async def test_fix(self):
                await self.db.execute_query("INSERT INTO entries (id, ledger_id) VALUES (1, 5)")
                await self.db.execute_query("DELETE FROM entries WHERE id = 1")

        result = run_case(Fixes)
        self.assertTrue(result.wasSuccessful(), problems(result))

    def test_integrity_error_recovered_inside_test_still_passes(self):
        class Recovers(SSotAsyncTestCase):
            metadata = SCHEMA

            @timeout(30)
            async def test_recover(self):
                await self.db.execute_query("INSERT INTO ledgers (name) VALUES ('dup')")
                with self.assertRaises(IntegrityError):
                    async with self.session_factory() as app:
                        await app.execute(text("INSERT INTO ledgers (name) VALUES ('dup')"))
                        await app.commit()
                await self.db.execute_query("INSERT INTO ledgers (name) VALUES ('after')")
                self.assertEqual(await self.db.count_records("ledgers"), 2)

        result = run_case(Recovers)
        self.assertTrue(result.wasSuccessful(), problems(result))

    def test_class_data_test_after_a_violation_is_still_deferred(self):
        """The check's IMMEDIATE mode is undone with the test's savepoint: the next test
        of a class with class data may still insert a child before its parent."""
        class WithClassData(SSotAsyncTestCase):
            metadata = SCHEMA

            @classmethod
            async def asyncSetUpTestData(cls, db):
                await db.execute_query("INSERT INTO ledgers (id, name) VALUES (1, 'base')")

            async def test_1_violates(self):
                await self.db.execute_query("INSERT INTO entries (id, ledger_id) VALUES (1, 99)")

            async def test_2_child_first(self):
                await self.db.execute_query("INSERT INTO entries (id, ledger_id) VALUES (2, 8)")
                await self.db.execute_query("INSERT INTO ledgers (id, name) VALUES (8, 'x')")

        result = run_case(WithClassData)
        self.assertEqual([test.id().rsplit(".", 1)[1] for test, _ in result.errors],
                         ["test_1_violates"], problems(result))
        self.assertEqual(result.failures, [])


if __name__ == "__main__":
    unittest.main()
