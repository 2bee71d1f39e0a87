"""Schema sources other than metadata: a SQL file and Alembic migrations."""

import asyncio
import os
import secrets
import shutil
import tempfile
import unittest
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, text
from sqlalchemy.engine import make_url

from test_framework import SSotAsyncTestCase
from test_framework.backends import backend_for
from test_framework.config import project_settings
from test_framework.provision.schema import AlembicSchema, MetadataSchema, SqlFileSchema
from test_framework.provision.templates import template_name
from tests.support import postgres_url_from_env, problems, run_case, separate_connection

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
        message = problems(result)
        self.assertIn("Missing.schema_sql (class attribute) is 'no/such/schema.sql', which is "
                      "not a file; looked in: ", message)
        for folder in (HERE, HERE.parent, HERE.parents[1]):  # up to the project root
            self.assertIn(str(folder / "no/such/schema.sql"), message)

    def test_relative_paths_resolve_from_the_test_file_never_the_working_directory(self):
        seen = []

        class BesideTheTestFile(SSotAsyncTestCase):
            schema_sql = "ledger.sql"

            async def test_x(self):
                seen.append(await self.db.table_exists("ledger"))

        class FromTheProjectRoot(SSotAsyncTestCase):
            schema_sql = "tests/provision/ledger.sql"

            async def test_x(self):
                seen.append(await self.db.table_exists("ledger"))

        elsewhere = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, elsewhere, ignore_errors=True)
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(elsewhere)  # as with `pytest myapp/tests` from another folder
        for case in (BesideTheTestFile, FromTheProjectRoot):
            result = run_case(case)
            self.assertTrue(result.wasSuccessful(), problems(result))
        self.assertEqual(seen, [True, True])


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


SETTINGS_ENV_PY = '''
"""An env.py that builds its URL from the application's settings, ignoring sqlalchemy.url."""
import asyncio, os
from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine


def run(connection):
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


async def main():
    engine = create_async_engine(os.environ["APP_DATABASE_URL"])
    async with engine.connect() as connection:
        await connection.run_sync(run)
        await connection.commit()
    await engine.dispose()


asyncio.run(main())
'''

RECIPE_ENV_PY = '''
"""Alembic's recipe: use the connection handed over in config.attributes, else the settings."""
import asyncio, os
from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine


def run(connection):
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


async def main():
    engine = create_async_engine(os.environ["APP_DATABASE_URL"])
    async with engine.connect() as connection:
        await connection.run_sync(run)
    await engine.dispose()


connectable = context.config.attributes.get("connection")
if connectable is None:
    asyncio.run(main())
else:
    run(connectable)
'''


class TestAlembicEnvThatLooksElsewhere(unittest.TestCase):
    """env.py files that read the application's settings instead of the framework's URL."""

    def project(self, env_py: str) -> Path:
        folder = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        shutil.copytree(HERE / "alembic_project", folder, dirs_exist_ok=True)
        (folder / "env.py").write_text(env_py)
        return folder / "alembic.ini"

    def scratch_url(self) -> str:
        """A real database (not a test_ one) that the application's settings name."""
        server = postgres_url_from_env()
        if server is None:
            path = Path(tempfile.mkdtemp()) / "app_settings.sqlite3"
            self.addCleanup(shutil.rmtree, path.parent, ignore_errors=True)
            return f"sqlite+aiosqlite:///{path}"
        name = f"scratch_{secrets.token_hex(4)}"
        admin = make_url(server).set(database="postgres")

        async def execute(statement):
            async with separate_connection(admin) as connection:
                await connection.execute(text(statement))

        asyncio.run(execute(f'CREATE DATABASE "{name}"'))
        self.addCleanup(lambda: asyncio.run(execute(f'DROP DATABASE "{name}" WITH (FORCE)')))
        return make_url(server).set(database=name).render_as_string(hide_password=False)

    def run_class(self, ini: Path, app_url: str):
        os.environ["APP_DATABASE_URL"] = app_url
        self.addCleanup(os.environ.pop, "APP_DATABASE_URL", None)

        class Migrated(SSotAsyncTestCase):
            alembic_ini = str(ini)

            async def test_migrated(self):
                await self.db.create("accounts", {"email": "a@x.test"})

        return run_case(Migrated), AlembicSchema(ini)

    def test_env_py_ignoring_the_framework_fails_and_keeps_no_template(self):
        ini = self.project(SETTINGS_ENV_PY)
        result, schema = self.run_class(ini, self.scratch_url())
        message = problems(result)
        self.assertFalse(result.wasSuccessful())
        self.assertIn(f"Alembic ran {ini.parent / 'env.py'}", message)
        self.assertIn("no alembic_version table", message)
        self.assertIn("config.attributes.get('connection')", message)
        backend = backend_for(project_settings().database_url)
        template = template_name(backend, schema)
        names = {r.name for r in asyncio.run(backend.list_databases())}
        self.assertFalse({template, f"{template}_building"} & names, "no template kept")

    def test_env_py_following_the_recipe_uses_the_framework_connection(self):
        ini = self.project(RECIPE_ENV_PY)
        result, _ = self.run_class(ini, "postgresql+asyncpg://nobody@192.0.2.1:1/never_used")
        self.assertTrue(result.wasSuccessful(), problems(result))


def accounts_models(*, extra_column: bool) -> "MetaData":
    """The models of the alembic_project's accounts table (optionally one column ahead)."""
    from sqlalchemy import Column, Integer, MetaData, String, Table
    metadata = MetaData()
    columns = [Column("id", Integer, primary_key=True),
               Column("email", String(255), nullable=False, unique=True)]
    if extra_column:
        columns.append(Column("nickname", String(40)))
    Table("accounts", metadata, *columns)
    return metadata


class TestModelsBesideMigrations(unittest.TestCase):
    """metadata beside alembic_ini: used for what it adds, and optionally checked."""

    def run_with(self, metadata, *, check: bool):
        class MigratedWithModels(SSotAsyncTestCase):
            alembic_ini = str(HERE / "alembic_project" / "alembic.ini")
            check_models = check

            async def test_x(self):
                await self.db.create("accounts", {"email": "m@x.test"})

        MigratedWithModels.metadata = metadata
        return run_case(MigratedWithModels)

    def test_matching_models_pass_the_check(self):
        result = self.run_with(accounts_models(extra_column=False), check=True)
        self.assertTrue(result.wasSuccessful(), problems(result))

    def test_a_model_column_no_migration_creates_fails_with_the_difference(self):
        result = self.run_with(accounts_models(extra_column=True), check=True)
        message = problems(result)
        self.assertFalse(result.wasSuccessful())
        self.assertIn("differs from the class's metadata", message)
        self.assertIn("nickname", message)

    def test_models_are_used_not_ignored_without_the_check(self):
        """The helpers build their statements from the models given (here: one column ahead)."""
        result = self.run_with(accounts_models(extra_column=True), check=False)
        self.assertIn("nickname", problems(result), "the models' table was used")


class TestLeftoversWhateverTheSource(unittest.TestCase):
    def test_leftover_rows_found_in_tables_built_by_migrations(self):
        import warnings
        from test_framework.ssot.leftovers import LeftoverRowsWarning

        class LeavesARow(SSotAsyncTestCase):
            alembic_ini = str(HERE / "alembic_project" / "alembic.ini")
            isolation = "commit"

            async def test_untracked_insert(self):
                await self.db.execute_query("INSERT INTO accounts (email) VALUES ('x@x.test')")

            async def asyncTearDown(self):
                await super().asyncTearDown()
                await self.db.execute_query("DELETE FROM accounts")

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_case(LeavesARow)
        self.assertTrue(result.wasSuccessful(), problems(result))
        found = [str(w.message) for w in caught if issubclass(w.category, LeftoverRowsWarning)]
        self.assertEqual(len(found), 1, found)
        self.assertIn("accounts +1", found[0])


class TestMetadataFingerprint(unittest.TestCase):
    """A metadata's fingerprint follows its content, however MetaData objects come and go."""

    def test_a_new_metadata_at_a_freed_ones_address_gets_its_own_fingerprint(self):
        """CPython reuses a freed object's address, so ``id()`` names the object only
        while it lives: a model set built in a function, dropped, then another built,
        must not be given the first one's template."""
        dialect = backend_for(project_settings().database_url).dialect
        seen = {}
        for attempt in range(200):  # until an address is reused (at once, in practice)
            plain = MetadataSchema(_one_table(extra=False))
            seen[id(plain.metadata)] = plain.fingerprint(dialect)
            del plain
            wider = MetadataSchema(_one_table(extra=True))
            if id(wider.metadata) in seen:
                self.assertNotEqual(wider.fingerprint(dialect), seen[id(wider.metadata)])
                return
        self.skipTest("no address was reused in 200 tries on this interpreter")

    def test_a_table_added_later_changes_the_fingerprint(self):
        """Models imported after a first class ran add tables to the same MetaData."""
        dialect = backend_for(project_settings().database_url).dialect
        metadata = _one_table(extra=False)
        before = MetadataSchema(metadata).fingerprint(dialect)
        Table("later", metadata, Column("id", Integer, primary_key=True))
        self.assertNotEqual(MetadataSchema(metadata).fingerprint(dialect), before)


class TestModelsImportedLater(unittest.TestCase):
    def test_a_class_after_the_metadata_gained_a_table_finds_it(self):
        """A model module imported by a later test adds a table to the same MetaData:
        the next class's database has it."""
        metadata = _one_table(extra=False)
        seen = []

        class Uses(SSotAsyncTestCase):
            async def test_tables(self):
                seen.append((await self.db.table_exists("things"),
                             await self.db.table_exists("later_things")))

        Uses.metadata = metadata
        first = run_case(Uses)
        Table("later_things", metadata, Column("id", Integer, primary_key=True))

        class UsesAgain(Uses):
            pass

        second = run_case(UsesAgain)
        self.assertTrue(first.wasSuccessful() and second.wasSuccessful(),
                        problems(first) + problems(second))
        self.assertEqual(seen, [(True, False), (True, True)])


def _one_table(*, extra: bool) -> MetaData:
    metadata = MetaData()
    columns = [Column("id", Integer, primary_key=True)]
    if extra:
        columns.append(Column("extra", String(20)))
    Table("things", metadata, *columns)
    return metadata
