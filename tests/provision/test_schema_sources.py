"""Schema sources other than metadata: a SQL file and Alembic migrations."""

import tempfile
import unittest
from pathlib import Path

from test_framework import SSotAsyncTestCase
from test_framework.provision.schema import AlembicSchema, SqlFileSchema
from tests.support import problems, run_case

HERE = Path(__file__).resolve().parent
SQL = """
CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL);
CREATE TABLE ledger_notes (id INTEGER PRIMARY KEY,
                           ledger_id INTEGER NOT NULL REFERENCES ledger (id), note TEXT);
"""


class TestSqlFile(unittest.TestCase):
    def test_sql_file_schema_is_built_and_used(self):
        seen = {}

        class UsesSqlFile(SSotAsyncTestCase):
            schema_sql = str(HERE / "ledger.sql")  # a fixed path: one template, reused

            async def test_tables_exist(self):
                seen["tables"] = (await self.db.table_exists("ledger"),
                                  await self.db.table_exists("ledger_notes"),
                                  await self.db.table_exists("users"))
                entry = await self.db.create("ledger", {"id": 1, "amount": 5})
                await self.db.create("ledger_notes", {"id": 1, "ledger_id": entry.id})
                seen["count"] = await self.db.count_records("ledger_notes")

        result = run_case(UsesSqlFile)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen, {"tables": (True, True, False), "count": 1})

    def test_fingerprint_follows_the_text(self):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "schema.sql"
            path.write_text(SQL)
            first = SqlFileSchema(path).fingerprint(None)
            path.write_text(SQL + "CREATE INDEX ledger_amount ON ledger (amount);")
            self.assertNotEqual(SqlFileSchema(path).fingerprint(None), first)

    def test_missing_file_is_explained(self):
        class Missing(SSotAsyncTestCase):
            schema_sql = "no/such/schema.sql"

            async def test_x(self):
                pass

        result = run_case(Missing)
        self.assertIn("Missing.schema_sql (class attribute) is 'no/such/schema.sql', which is "
                      "not a file", problems(result))


class TestAlembic(unittest.TestCase):
    def test_migrations_run_once_into_the_template(self):
        seen = {}

        class UsesAlembic(SSotAsyncTestCase):
            alembic_ini = str(HERE / "alembic_project" / "alembic.ini")

            async def test_migrated(self):
                await self.db.create("accounts", {"email": "a@x.test"})
                seen["accounts"] = await self.db.count_records("accounts")
                seen["version"] = (await self.db.fetch_one(
                    "SELECT version_num FROM alembic_version")).version_num

        result = run_case(UsesAlembic)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen, {"accounts": 1, "version": "0001"})

    def test_fingerprint_is_stable_and_names_the_revisions(self):
        ini = HERE / "alembic_project" / "alembic.ini"
        self.assertEqual(AlembicSchema(ini).fingerprint(None), AlembicSchema(ini).fingerprint(None))


class TestTruncateKeepsSchemaVersion(unittest.TestCase):
    def test_truncate_mode_never_empties_alembic_version(self):
        seen = []

        class TruncatesMigrated(SSotAsyncTestCase):
            alembic_ini = str(HERE / "alembic_project" / "alembic.ini")
            isolation = "truncate"

            async def test_1(self):
                await self.db.create("accounts", {"email": "a@x.test"})

            async def test_2(self):
                seen.append(await self.db.count_records("alembic_version"))
                seen.append(await self.db.count_records("accounts"))

        result = run_case(TruncatesMigrated)
        self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen, [1, 0])
